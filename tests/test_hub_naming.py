"""GGUF file names: quants, split parts, and names that must never become paths."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from catalog.download import _Item
from catalog.errors import UnsafeNameError
from catalog.hub import FileVersion, repo_id_from_query
from catalog.naming import (
    RemoteFile,
    group_gguf_files,
    preferred_projector,
    quant_from_name,
    safe_relative_path,
    split_info,
    windows_reserved,
)


@pytest.mark.parametrize(
    ("name", "quant"),
    [
        ("mythomax-l2-13b.Q4_K_M.gguf", "Q4_K_M"),
        ("llama-2-7b.q2_k.gguf", "Q2_K"),
        ("model-Q8_0-00001-of-00003.gguf", "Q8_0"),
        ("Model_Q5_K_S.gguf", "Q5_K_S"),
        ("gemma-3-270m-it-qat-Q4_0.gguf", "Q4_0"),
        ("phi-3-mini-IQ3_XXS.gguf", "IQ3_XXS"),
        ("mistral-7b-iq4_nl.gguf", "IQ4_NL"),
        ("qwen-UD-Q4_K_XL.gguf", "Q4_K_XL"),
        ("llama-3-8b-f16.gguf", "F16"),
        ("llama-3-8b.BF16.gguf", "BF16"),
        ("tiny.F32.gguf", "F32"),
        ("sub/dir/model.Q6_K.gguf", "Q6_K"),
        ("Q8_0-prefix-but-Q3_K_L.gguf", "Q3_K_L"),
        ("README.md", None),
        ("model.gguf", None),
        ("xq4_k_m.gguf", None),
    ],
)
def test_quant_is_read_from_the_file_name(name: str, quant: str | None) -> None:
    assert quant_from_name(name) == quant


def _file(path: str, size: int = 10) -> RemoteFile:
    return RemoteFile(path, size, None)


def test_incomplete_split_is_left_out_and_non_gguf_ignored() -> None:
    files = [
        _file("m-Q4_K_M-00001-of-00002.gguf"),
        _file("m-Q8_0-00001-of-00003.gguf"),
        _file("m-Q8_0-00003-of-00003.gguf"),
        _file("notes.txt"),
        _file("m.Q2_K.GGUF", 5),
        _file("mmproj-m-f16.gguf"),
    ]
    assert [c.name for c in group_gguf_files(files)] == ["m.Q2_K.GGUF"]


def test_a_model_gets_its_repo_s_preferred_projector() -> None:
    files = [_file("m.Q4_K_M.gguf", 100), _file("mmproj-m-F32.gguf", 40), _file("mmproj-m-BF16.gguf", 20)]
    files.append(_file("mmproj-m-f16.gguf", 20))
    (choice,) = group_gguf_files(files)
    assert choice.projector is not None and choice.projector.path == "mmproj-m-f16.gguf"
    assert choice.total_size == 120
    assert preferred_projector(["mmproj-BF16.gguf", "mmproj-Q8_0.gguf"]) == "mmproj-Q8_0.gguf"
    assert preferred_projector([]) is None
    (alone,) = group_gguf_files([_file("m.Q4_K_M.gguf", 100)])
    assert alone.projector is None and alone.total_size == 100


def test_split_parts_are_ordered_whatever_the_listing_order() -> None:
    parts = [_file(f"m-Q4_0-{i:05d}-of-00003.gguf", i) for i in (3, 1, 2)]
    (choice,) = group_gguf_files(parts)
    assert [p.path for p in choice.parts] == [f"m-Q4_0-{i:05d}-of-00003.gguf" for i in (1, 2, 3)]
    assert (choice.total_size, choice.quant, choice.is_split) == (6, "Q4_0", True)


def test_safe_path_is_owner_repo_file() -> None:
    assert safe_relative_path("TheBloke/MythoMax-L2-13B-GGUF", "sub/m.Q4_K_M.gguf") == PurePosixPath(
        "TheBloke", "MythoMax-L2-13B-GGUF", "sub", "m.Q4_K_M.gguf"
    )


@pytest.mark.parametrize(
    "filename",
    [
        "../escape.gguf",
        "sub/../../escape.gguf",
        "/etc/passwd",
        "sub\\..\\escape.gguf",
        "a//b.gguf",
        "a/./b.gguf",
        "trailing/",
        "",
        "nul\x00.gguf",
        "line\nbreak.gguf",
        "tab\t.gguf",
        ".hidden.gguf",
        "-dash.gguf",
        "space name.gguf",
        "unicodé.gguf",
        "CON.gguf",
        "x" * 300 + ".gguf",
        "model.gguf.part",
        "model.gguf.part.json",
        "model.gguf\n",  # a `$` pattern with `match` accepts a final newline
        "sub\n/model.gguf",
        "com1.gguf",
        "LPT9.Q4_K_M.gguf",
        "sub/aux/model.gguf",
    ],
)
def test_unsafe_file_names_are_refused(filename: str) -> None:
    with pytest.raises(UnsafeNameError) as caught:
        safe_relative_path("owner/repo", filename)
    message = str(caught.value)
    assert "\x00" not in message and "\n" not in message


@pytest.mark.parametrize(
    "repo_id",
    ["..", "../etc", "owner", "a/b/c", "a/..", "a/.b", "/abs/repo", "a b/c", "a/", "a/b\n", "a\n/b"],
)
def test_unsafe_repo_ids_are_refused(repo_id: str) -> None:
    with pytest.raises(UnsafeNameError):
        safe_relative_path(repo_id, "model.gguf")


def test_names_ending_in_a_newline_are_not_names() -> None:
    assert split_info("m-00001-of-00002.gguf") == ("m", 1, 2)
    assert split_info("m-00001-of-00002.gguf\n") is None
    assert repo_id_from_query("owner/repo") == "owner/repo"
    assert repo_id_from_query("owner/repo\n") is None
    sha256 = "a" * 64
    assert FileVersion("u", 1, sha256, None).sha256 == sha256
    assert FileVersion("u", 1, sha256 + "\n", None).sha256 is None
    git_sha1 = "b" * 40  # a small file's etag: checked as git's blob hash

    def item(etag: str) -> _Item:
        return _Item("o/r", "m.gguf", Path("m.gguf"), FileVersion("u", 1, etag, None), 1, None)

    assert item(git_sha1).verifier() is not None
    assert item(git_sha1 + "\n").verifier() is None


@pytest.mark.parametrize(
    "name",
    [
        "CON", "con", "Con.txt", "nul.tar.gz", "PRN", "aux.json", "CONIN$", "conout$.log",
        "COM1", "com9.gguf", "LPT1", "lpt5.x", "com¹", "COM²", "LPT³", "lpt³.txt",
        "CON ", "con .txt", "NUL.", "nul..txt", "AUX  .json",
    ],
)  # fmt: skip
def test_windows_device_names_are_reserved(name: str) -> None:
    assert windows_reserved(name)


@pytest.mark.parametrize(
    "name", ["", "CONN", "Connie", "xcon", "COM0", "COM10", "LPT", "com⁴", "CONIN", ".con", "my-nul", "a.CON"]
)
def test_names_like_device_names_are_not_reserved(name: str) -> None:
    assert not windows_reserved(name)
