"""The guide's model catalog: `catalog/models.json`, validated strictly when loaded.

Each entry is one model at one size, as the newcomers' guide recommends it, with the
GGUF repository to download today, the facts a memory estimate needs, and the prompt
format and tab it works best with. Models llama.cpp cannot run stay in the catalog,
marked `runnable: false` with the reason and a runnable alternative, because the guide
recommends them and a user will look for them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catalog.errors import CatalogDataError, CatalogError
from presets.formats import load_builtin_formats

CATALOG_SCHEMA_VERSION = 1
CATALOG_PATH = Path(__file__).parent / "models.json"

# The guide's sections, in its order, with the titles the Models tab shows.
GROUPS: dict[str, str] = {
    "assistant": "Assistant",
    "roleplay_story": "Roleplay and Storywriting",
    "adventure": "Adventure",
}
TABS = ("chat", "story", "adventure")

_REPO = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")
_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\.gguf")
_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_HUB_URL = re.compile(r"https?://(?:www\.)?huggingface\.co/(?P<repo>[^/#?]+/[^/#?]+)")
# A quant suffix at the end of a file's stem: ".Q4_K_M", "-q4_k_m", ".i1-Q4_K_M", ".ggmlv3.q4_0", ".F16".
_QUANT_SUFFIX = re.compile(
    r"[._-](?:ggml(?:v\d)?[._-])?(?:i1[._-])?(?:i?q\d[a-z0-9_]*|f16|f32|bf16)$", re.IGNORECASE
)
_SPLIT_SUFFIX = re.compile(r"-\d{5}-of-\d{5}$")

_REQUIRED = {
    **dict.fromkeys(
        ("id", "name", "group", "architecture", "format", "default_tab", "license", "notes"), str
    ),
    **dict.fromkeys(("guide_link", "gguf_repo", "recommended_file"), (str, type(None))),
    "quants": list,
    "parameters": (int, float),
    "context_length": (int, type(None)),
    "kv": (dict, type(None)),
    "runnable": bool,
}
_OPTIONAL = {"name_patterns": list, "why_not": str, "alternative": str, "bundled": bool}
_QUANT_KEYS = {"quant": str, "file": str, "size_gb": (int, float, type(None))}
_KV_KEYS = ("n_layer", "n_embd", "n_head", "n_head_kv", "head_dim")


@dataclass(frozen=True)
class QuantFile:
    """One downloadable file of a model: its quantization, name and approximate size."""

    quant: str
    file: str
    size_gb: float | None = None

    @property
    def size_bytes(self) -> int | None:
        """The approximate size in bytes (the Hub shows decimal gigabytes)."""
        return None if self.size_gb is None else int(self.size_gb * 1e9)


@dataclass(frozen=True)
class KVFacts:
    """The shape facts a KV-cache estimate needs.

    `head_dim` is usually n_embd / n_head, but not always (Gemma 3 270M: 640 / 4 heads, yet 256).
    """

    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: int
    head_dim: int


@dataclass(frozen=True)
class CatalogEntry:
    """One model of the guide at one size."""

    id: str
    name: str
    group: str
    guide_link: str | None
    gguf_repo: str | None
    recommended_file: str | None
    quants: tuple[QuantFile, ...]
    parameters: float
    architecture: str
    context_length: int | None
    kv: KVFacts | None
    format_id: str
    default_tab: str
    license: str
    notes: str
    name_patterns: tuple[str, ...] = ()
    runnable: bool = True
    why_not: str | None = None
    alternative: str | None = None
    bundled: bool = False

    @property
    def guide_repo(self) -> str | None:
        """The Hugging Face repo the guide linked (its GGML repo), when the link is one."""
        match = _HUB_URL.match(self.guide_link or "")
        return match.group("repo") if match else None

    @property
    def recommended(self) -> QuantFile | None:
        """The file to download by default (Q4_K_M where the repo has it)."""
        return self.quant(self.recommended_file) if self.recommended_file else None

    def quant(self, quant_or_file: str) -> QuantFile | None:
        """The quant file by quant name ("Q5_K_M") or file name, any case."""
        wanted = quant_or_file.lower()
        return next((q for q in self.quants if wanted in (q.quant.lower(), q.file.lower())), None)

    def matches_name(self, text: str) -> bool:
        """True if a file or repo name matches one of this entry's name patterns."""
        lowered = text.lower()
        return any(re.search(pattern, lowered) for pattern in self.name_patterns)


@dataclass(frozen=True)
class Catalog:
    """The validated catalog, in the guide's order."""

    entries: tuple[CatalogEntry, ...]

    def __iter__(self) -> Iterator[CatalogEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def grouped(self) -> list[tuple[str, str, list[CatalogEntry]]]:
        """(group id, title, entries) for each of the guide's sections, in its order."""
        return [(gid, title, [e for e in self.entries if e.group == gid]) for gid, title in GROUPS.items()]

    def find(self, entry_id: str) -> CatalogEntry | None:
        """The entry with this id, or None."""
        return next((e for e in self.entries if e.id == entry_id), None)

    def get(self, entry_id: str) -> CatalogEntry:
        """The entry with this id.

        Raises:
            CatalogError: there is no such entry.
        """
        entry = self.find(entry_id)
        if entry is None:
            raise CatalogError(f"The catalog has no model called {entry_id!r}.")
        return entry

    def match(self, file_name_or_repo: str) -> CatalogEntry | None:
        """The entry a file name, local path, repo id or Hub URL belongs to, or None.

        Tries, in order: the GGUF repo or the guide's repo; the file name without its quant
        and split suffixes; then each entry's name patterns.
        """
        text = file_name_or_repo.strip().replace("\\", "/")
        url = _HUB_URL.match(text)
        lowered = (url.group("repo") + text[url.end() :] if url else text).lower()
        # A repo id, a repo id with a file after it, or a local path through an owner/name folder.
        padded = f"/{lowered}/"
        for entry in self.entries:
            for repo in (entry.gguf_repo, entry.guide_repo):
                if repo and f"/{repo.lower()}/" in padded:
                    return entry
        # Any quant (or split part, or old GGML file) of a catalog file shares its base name.
        base = file_base(lowered.rsplit("/", 1)[-1])
        for entry in self.entries:
            if base and any(base == file_base(q.file) for q in entry.quants):
                return entry
        # Patterns see the last two path parts, so a repo-named folder helps but a far-up folder does not.
        tail = "/".join(lowered.rsplit("/", 2)[-2:])
        return next((e for e in self.entries if e.matches_name(tail)), None)


def file_base(file_name: str) -> str:
    """A model file's name without extension, split suffix and quant suffix, lowercased."""
    stem = file_name.lower()
    for extension in (".gguf", ".bin"):
        stem = stem.removesuffix(extension)
    stem = _SPLIT_SUFFIX.sub("", stem)
    return _QUANT_SUFFIX.sub("", stem)


def load_catalog(path: Path | None = None, *, format_ids: Collection[str] | None = None) -> Catalog:
    """Read and validate the catalog data file.

    Args:
        path: the JSON file; the bundled `catalog/models.json` by default.
        format_ids: the prompt format ids entries may name; the built-in formats by default.

    Raises:
        CatalogDataError: the file is unreadable, not JSON, or breaks the schema (the message
            names the entry and the field).
    """
    path = path or CATALOG_PATH
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogDataError(f"Could not read the model catalog {path.name}: {exc}.") from exc
    except json.JSONDecodeError as exc:
        raise CatalogDataError(
            f"The model catalog {path.name} is not valid JSON (line {exc.lineno})."
        ) from exc
    return parse_catalog(raw, source=path.name, format_ids=format_ids)


def parse_catalog(raw: Any, *, source: str, format_ids: Collection[str] | None = None) -> Catalog:
    """Validate a catalog mapping and build it.

    Raises:
        CatalogDataError: naming the entry and the field of the first problem found.
    """
    if not isinstance(raw, Mapping) or set(raw) != {"schema_version", "entries"}:
        raise CatalogDataError(f"{source}: the catalog must be an object with schema_version and entries.")
    if raw["schema_version"] != CATALOG_SCHEMA_VERSION:
        raise CatalogDataError(
            f"{source}: schema_version {raw['schema_version']!r} is not supported "
            f"(expected {CATALOG_SCHEMA_VERSION})."
        )
    if not isinstance(raw["entries"], list) or not raw["entries"]:
        raise CatalogDataError(f"{source}: entries must be a non-empty list.")
    known_formats = set(format_ids) if format_ids is not None else set(load_builtin_formats())
    entries = tuple(
        _parse_entry(item, _Where(source, index), known_formats) for index, item in enumerate(raw["entries"])
    )
    _check_across(entries, source)
    return Catalog(entries)


@dataclass(frozen=True)
class _Where:
    source: str
    index: int
    entry_id: str = ""

    def fail(self, field: str, problem: str) -> CatalogDataError:
        who = f"entry {self.entry_id!r}" if self.entry_id else f"entry #{self.index + 1}"
        return CatalogDataError(f"{self.source}: {who}, field {field!r}: {problem}.")


def _parse_entry(raw: Any, where: _Where, known_formats: set[str]) -> CatalogEntry:
    if not isinstance(raw, Mapping):
        raise where.fail("(entry)", "each entry must be a JSON object")
    if isinstance(raw.get("id"), str):
        where = _Where(where.source, where.index, raw["id"])
    _check_keys(raw, _REQUIRED, where)
    entry_id = raw["id"]
    _check_values(raw, where, known_formats)
    quants = tuple(_parse_quant(q, where) for q in raw["quants"])
    recommended = raw["recommended_file"]
    if recommended is not None and recommended not in {q.file for q in quants}:
        raise where.fail("recommended_file", f"{recommended!r} is not one of the entry's quants")
    patterns = _parse_patterns(raw.get("name_patterns", []), where)
    runnable, bundled = raw["runnable"], raw.get("bundled", False)
    _check_runnable(raw, where, runnable=runnable, bundled=bundled)
    return CatalogEntry(
        id=entry_id,
        name=raw["name"],
        group=raw["group"],
        guide_link=raw["guide_link"],
        gguf_repo=raw["gguf_repo"],
        recommended_file=recommended,
        quants=quants,
        parameters=float(raw["parameters"]),
        architecture=raw["architecture"],
        context_length=raw["context_length"],
        kv=_parse_kv(raw["kv"], where),
        format_id=raw["format"],
        default_tab=raw["default_tab"],
        license=raw["license"],
        notes=raw["notes"],
        name_patterns=patterns,
        runnable=runnable,
        why_not=raw.get("why_not"),
        alternative=raw.get("alternative"),
        bundled=bundled,
    )


def _check_values(raw: Mapping[str, Any], where: _Where, known_formats: set[str]) -> None:
    if not _ID.fullmatch(raw["id"]):
        raise where.fail("id", "use lowercase letters, digits, '.', '_' or '-'")
    choices = (("group", GROUPS, "a guide section"), ("default_tab", TABS, "a tab"))
    for field, allowed, label in (*choices, ("format", known_formats, "a known prompt format")):
        if raw[field] not in allowed:
            raise where.fail(field, f"{raw[field]!r} is not {label} ({', '.join(sorted(allowed))})")
    if raw["gguf_repo"] is not None and not _REPO.fullmatch(raw["gguf_repo"]):
        raise where.fail("gguf_repo", f"{raw['gguf_repo']!r} is not an owner/name repo id")
    if raw["guide_link"] is not None and not raw["guide_link"].startswith("https://"):
        raise where.fail("guide_link", "must be an https:// link")
    for field in ("parameters", "context_length"):
        if raw[field] is not None and raw[field] <= 0:
            raise where.fail(field, "must be positive")
    for field in ("name", "architecture", "license", "notes"):
        if not raw[field].strip():
            raise where.fail(field, "must not be empty")


def _check_keys(raw: Mapping[str, Any], required: Mapping[str, Any], where: _Where, prefix: str = "") -> None:
    optional = _OPTIONAL if not prefix else {}
    unknown = sorted(set(raw) - set(required) - set(optional))
    if unknown:
        raise where.fail(prefix + unknown[0], "is not a known field")
    missing = [k for k in required if k not in raw]
    if missing:
        raise where.fail(prefix + missing[0], "is missing")
    for key, kinds in {**required, **optional}.items():
        value = raw.get(key)
        # bool is an int in Python; a number field must not accept true/false.
        if key in raw and (not isinstance(value, kinds) or (isinstance(value, bool) and kinds is not bool)):
            raise where.fail(prefix + key, f"has the wrong type ({type(value).__name__})")


def _parse_quant(raw: Any, where: _Where) -> QuantFile:
    if not isinstance(raw, Mapping):
        raise where.fail("quants", "each quant must be an object with quant, file and size_gb")
    _check_keys(raw, _QUANT_KEYS, where, "quants.")
    if not _FILE.fullmatch(raw["file"]):
        raise where.fail("quants.file", f"{raw['file']!r} is not a plain .gguf file name")
    size = raw["size_gb"]
    if size is not None and size <= 0:
        raise where.fail("quants.size_gb", "must be positive")
    return QuantFile(raw["quant"], raw["file"], None if size is None else float(size))


def _parse_kv(raw: Any, where: _Where) -> KVFacts | None:
    if raw is None:
        return None
    _check_keys(raw, dict.fromkeys(_KV_KEYS, int), where, "kv.")
    if any(raw[k] <= 0 for k in _KV_KEYS) or raw["n_head"] % raw["n_head_kv"]:
        raise where.fail("kv", "counts must be positive and n_head a multiple of n_head_kv")
    return KVFacts(**{k: raw[k] for k in _KV_KEYS})


def _parse_patterns(raw: list[Any], where: _Where) -> tuple[str, ...]:
    for pattern in raw:
        if not isinstance(pattern, str) or not pattern:
            raise where.fail("name_patterns", "must be a list of non-empty strings")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise where.fail("name_patterns", f"{pattern!r} is not a valid regex ({exc})") from exc
    return tuple(raw)


def _check_runnable(raw: Mapping[str, Any], where: _Where, *, runnable: bool, bundled: bool) -> None:
    if runnable:
        for key in ("why_not", "alternative"):
            if key in raw:
                raise where.fail(key, "only entries with runnable false explain why not")
        if not bundled and not raw["gguf_repo"]:
            raise where.fail("gguf_repo", "a runnable entry needs a GGUF repo")
        if not raw["recommended_file"]:
            raise where.fail("recommended_file", "a runnable entry needs a recommended file")
        return
    if bundled:
        raise where.fail("bundled", "the bundled model must be runnable")
    if not str(raw.get("why_not", "")).strip():
        raise where.fail("why_not", "an entry llama.cpp cannot run must say why in words")
    if not raw.get("alternative"):
        raise where.fail("alternative", "an entry llama.cpp cannot run must name a runnable alternative")


def _check_across(entries: tuple[CatalogEntry, ...], source: str) -> None:
    by_id: dict[str, CatalogEntry] = {}
    for index, entry in enumerate(entries):
        if entry.id in by_id:
            raise _Where(source, index, entry.id).fail("id", "is used by two entries")
        by_id[entry.id] = entry
    for index, entry in enumerate(entries):
        target = by_id.get(entry.alternative or "")
        if entry.alternative is not None and (target is None or not target.runnable):
            problem = f"{entry.alternative!r} is not a runnable entry of the catalog"
            raise _Where(source, index, entry.id).fail("alternative", problem)
    if sum(e.bundled for e in entries) > 1:
        raise CatalogDataError(f"{source}: only one entry may be the bundled model.")
