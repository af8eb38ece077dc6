"""What GGUF file names say, and which names are safe to turn into paths.

Pure functions on strings, plus `RemoteFile`, the record a repo listing is made
of: nothing here touches the network or imports `huggingface_hub` (the Hub client
imports this module, never the reverse). A repository's listing is untrusted input (anyone can name a
file `../../.bashrc`), so every name is checked against a conservative pattern
before it becomes part of a path under the models folder.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import PurePosixPath

from catalog.errors import UnsafeNameError

# llama.cpp's quantisation names as they appear in file names, longest first where one
# is a prefix of another (Q4_K_M before Q4_K, Q4_0_4_8 before Q4_0).
_QUANT = re.compile(
    r"(?<![A-Za-z0-9])("
    r"IQ[1-4]_(?:XXS|XS|NL|S|M)"
    r"|TQ[12]_0"
    r"|Q[2-8]_K(?:_(?:XL|S|M|L))?"
    r"|Q[4-8]_[01](?:_[48]_[48])?"
    r"|MXFP4|BF16|F16|F32"
    r")(?![A-Za-z0-9])",
    re.IGNORECASE,
)
# llama.cpp's gguf-split naming: `<base>-00001-of-00003.gguf`.
# Always `fullmatch`: with `match`, a `$` also matches before a final newline.
_SPLIT = re.compile(r"(?P<base>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf", re.IGNORECASE)
_COMPONENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_MAX_COMPONENT = 200
# Device names Windows reserves in any case, with any extension (NUL.txt and NUL.tar.gz are
# NUL too) and with spaces or dots before it; it also reads the superscripts ¹²³ as digits.
_WINDOWS_DEVICES = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
    + [f"{port}{digit}" for port in ("COM", "LPT") for digit in "123456789¹²³"]
)
# Suffixes the downloader uses for unfinished files; a repo file with one could collide.
_WORK_SUFFIXES = (".part", ".part.json")


@dataclass(frozen=True)
class RemoteFile:
    """A file in a repo: its path, size in bytes, and the LFS sha256 when the Hub has one."""

    path: str
    size: int
    sha256: str | None = None


@dataclass(frozen=True)
class GgufChoice:
    """One model a user can pick from a repo: a single GGUF, or every part of a split one."""

    name: str
    quant: str | None
    total_size: int  # the model's parts and its projector
    parts: tuple[RemoteFile, ...]
    projector: RemoteFile | None = None  # the repo's vision projector, downloaded beside the model

    @property
    def first_part(self) -> str:
        """The repo path llama.cpp is given; it finds the other parts beside it."""
        return self.parts[0].path

    @property
    def is_split(self) -> bool:
        return len(self.parts) > 1


def quant_from_name(name: str) -> str | None:
    """The quantisation named in a GGUF file name, upper-cased, or None.

    `mythomax-l2-13b.Q4_K_M.gguf` gives "Q4_K_M"; when a name holds several
    candidates the last one wins, because the quant sits at the end by convention.
    """
    matches = _QUANT.findall(PurePosixPath(name).name)
    return matches[-1].upper() if matches else None


def split_info(name: str) -> tuple[str, int, int] | None:
    """(base, part index, part count) for a gguf-split part name, else None."""
    match = _SPLIT.fullmatch(name)
    if match is None:
        return None
    index, count = int(match["index"]), int(match["count"])
    if not 1 <= index <= count:
        return None
    return match["base"], index, count


def group_gguf_files(files: Iterable[RemoteFile]) -> list[GgufChoice]:
    """Turn a repo's file list into the GGUF models it offers, smallest first.

    Parts of a split model become one choice, in part order; a split whose parts are
    not all listed is left out, since llama.cpp cannot load it. Non-GGUF files are
    ignored; a vision projector (`mmproj-*`) is no model on its own, but goes with
    every model of its repo (the preferred one, when there are several).
    """
    singles: list[GgufChoice] = []
    splits: dict[tuple[str, int], dict[int, RemoteFile]] = {}
    projectors: dict[str, RemoteFile] = {}
    for remote in files:
        basename = PurePosixPath(remote.path).name
        if is_projector(basename):
            projectors[remote.path] = remote
        if not basename.lower().endswith(".gguf") or is_projector(basename):
            continue
        info = split_info(remote.path)
        if info is None:
            singles.append(GgufChoice(remote.path, quant_from_name(remote.path), remote.size, (remote,)))
        else:
            base, index, count = info
            splits.setdefault((base, count), {})[index] = remote
    for (base, count), by_index in splits.items():
        if sorted(by_index) != list(range(1, count + 1)):
            continue
        parts = tuple(by_index[i] for i in range(1, count + 1))
        name = f"{base}.gguf"
        singles.append(GgufChoice(name, quant_from_name(base), sum(p.size for p in parts), parts))
    chosen = preferred_projector(list(projectors))
    if chosen is not None:
        extra = projectors[chosen]
        singles = [replace(c, projector=extra, total_size=c.total_size + extra.size) for c in singles]
    return sorted(singles, key=lambda choice: (choice.total_size, choice.name))


PROJECTOR_PREFIX = "mmproj"
# A projector's precision, best first: llama.cpp's own advice is F16 (BF16 is slow on CPUs).
_PROJECTOR_PRECISIONS = [re.compile(rf"(^|[-_.]){p}([-_.]|$)") for p in ("f16", "q8_0", "bf16", "f32")]


def is_projector(file_name: str) -> bool:
    """Whether a file is a vision projector (`mmproj-*.gguf`), by its name."""
    name = PurePosixPath(file_name).name.lower()
    return name.startswith(PROJECTOR_PREFIX) and name.endswith(".gguf")


def preferred_projector(paths: list[str]) -> str | None:
    """The projector to pair with a model, of several: by precision, then by name."""

    def rank(path: str) -> tuple[int, str]:
        name = PurePosixPath(path).name.lower()
        found = [i for i, pattern in enumerate(_PROJECTOR_PRECISIONS) if pattern.search(name)]
        return (found[0] if found else len(_PROJECTOR_PRECISIONS), path)

    return min(paths, key=rank) if paths else None


def check_repo_id(repo_id: str) -> tuple[str, str]:
    """Split `owner/name` after checking both halves are plain names.

    Raises:
        UnsafeNameError: the id is not exactly two safe components.
    """
    pieces = repo_id.split("/")
    if len(pieces) != 2:
        raise UnsafeNameError(
            f"{_show(repo_id)} is not a Hugging Face model id; it should look like owner/model-name."
        )
    for piece in pieces:
        _check_component(piece, what="repository id", whole=repo_id)
    return pieces[0], pieces[1]


def safe_relative_path(repo_id: str, filename: str) -> PurePosixPath:
    """Where a repo file lives under the models folder: `<owner>/<repo>/<filename>`.

    Raises:
        UnsafeNameError: the repo id or file name could point outside the models folder
            or is not a plain name (absolute, `..`, backslashes, control characters...).
    """
    owner, name = check_repo_id(repo_id)
    if not filename or filename.startswith("/") or "\\" in filename:
        raise UnsafeNameError(f"The file name {_show(filename)} is not a plain relative name; not saving it.")
    pieces = filename.split("/")
    for piece in pieces:
        _check_component(piece, what="file name", whole=filename)
    if filename.endswith(_WORK_SUFFIXES):
        raise UnsafeNameError(
            f"The file name {_show(filename)} ends like Hearth's unfinished downloads; not saving it."
        )
    return PurePosixPath(owner, name, *pieces)


def _check_component(piece: str, *, what: str, whole: str) -> None:
    if not piece:
        raise UnsafeNameError(f"The {what} {_show(whole)} has an empty part (a doubled or trailing '/').")
    if piece in (".", ".."):
        raise UnsafeNameError(f"The {what} {_show(whole)} refers to a parent folder; not allowed.")
    if len(piece) > _MAX_COMPONENT:
        raise UnsafeNameError(
            f"The {what} {_show(whole)} has a part longer than {_MAX_COMPONENT} characters."
        )
    if not _COMPONENT.fullmatch(piece):
        raise UnsafeNameError(
            f"The {what} {_show(whole)} may only use letters, digits, '.', '_' and '-', "
            "and each part must start with a letter or digit."
        )
    if windows_reserved(piece):
        raise UnsafeNameError(f"The {what} {_show(whole)} uses a name reserved by Windows ({piece}).")


def windows_reserved(name: str) -> bool:
    """Whether Windows reserves a file name (or stem) for a device: CON, nul.txt, COM¹, "LPT1 .x"."""
    return name.split(".", 1)[0].rstrip(" ").upper() in _WINDOWS_DEVICES


def _show(text: str) -> str:
    """Quote an untrusted name for a message without echoing control characters."""
    cleaned = "".join(ch if ch.isprintable() else "?" for ch in text)
    return repr(cleaned[:120] + ("..." if len(cleaned) > 120 else ""))
