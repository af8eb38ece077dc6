"""Export file names: whatever a card name or chat title holds, the file lands in its own folder."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.files import MAX_STEM_CHARS, download_file, read_upload, safe_stem
from store.errors import StoreError

HOSTILE = [
    "../x",
    "/etc/passwd",
    "a\\b",
    "a\x00b",
    "",
    "n" * 300,
    "....",
    ".",
    "..",
    "../../..",
    "C:\\x",
    "~/x",
]


@pytest.fixture
def temp_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point `tempfile` at the test's folder, so exports are checked (and cleaned up) there."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def assert_safe_name(name: str) -> None:
    assert name and name not in (".", "..")
    assert not set(name) & set('/\\\x00:*?"<>|')
    assert not name.startswith((".", "-")) and not name.endswith((".", " "))
    assert len(name.encode("utf-8")) <= 255


@pytest.mark.parametrize("title", HOSTILE)
def test_hostile_titles_land_inside_a_fresh_export_folder(temp_root: Path, title: str) -> None:
    path = download_file(title, "json", b"{}")
    folder = path.parent
    assert folder.parent == temp_root and folder.name.startswith("hearth-export-")
    assert path.resolve().parent == folder.resolve()
    assert list(folder.iterdir()) == [path] and path.read_bytes() == b"{}"
    assert path.suffix == ".json"
    assert_safe_name(path.name)
    assert_safe_name(path.stem)


def test_what_the_names_become() -> None:
    assert safe_stem("../x") == "x"
    assert safe_stem("/etc/passwd") == "etc_passwd"
    assert safe_stem("a\\b") == "a_b"
    assert safe_stem("a\x00b") == "a_b"
    assert safe_stem("") == safe_stem("....") == safe_stem("../..") == "hearth"
    assert safe_stem("n" * 300) == "n" * MAX_STEM_CHARS
    assert safe_stem("Chat with Seraphina") == "Chat_with_Seraphina"
    assert safe_stem("Сераφина 猫") == "Сераφина_猫"  # names in any script stay readable


def test_windows_device_names_are_changed() -> None:
    assert safe_stem("CON") == "CON_"
    assert safe_stem("nul.txt") == "nul_.txt"
    assert safe_stem("Connie") == "Connie"
    # Windows reads the superscripts ¹²³ as digits: COM¹ and LPT³ are devices too.
    assert safe_stem("com¹") == "com¹_"
    assert safe_stem("LPT³") == "LPT³_"
    assert safe_stem("COM².v2") == "COM²_.v2"
    assert (safe_stem("con ."), safe_stem("CON..."), safe_stem("nul ")) == ("con_", "CON_", "nul_")
    assert safe_stem("Aux. chat") == "Aux_._chat"
    assert safe_stem("CONIN$") == "CONIN" and safe_stem("conout$.txt") == "conout_.txt"  # "$" goes
    assert safe_stem("com⁴") == "com⁴"  # not a device


def test_each_export_gets_its_own_folder(temp_root: Path) -> None:
    first, second = download_file("same", "txt", b"1"), download_file("same", "txt", b"2")
    assert first.parent != second.parent and first.name == second.name == "same.txt"
    assert (first.read_bytes(), second.read_bytes()) == (b"1", b"2")


def test_the_extension_is_cleaned_too(temp_root: Path) -> None:
    path = download_file("x", "../../evil/sh", b"")
    assert path.parent.parent == temp_root and path.name == "x.evilsh"
    assert download_file("x", "", b"").name == "x.bin"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_any_title_gives_a_safe_stem(title: str) -> None:
    stem = safe_stem(title)
    assert_safe_name(stem)
    assert len(stem) <= MAX_STEM_CHARS + 1  # + the "_" after a device name


def test_uploads_are_read_within_the_limit(tmp_path: Path) -> None:
    upload = tmp_path / "card.json"
    upload.write_bytes(b"12345")
    assert read_upload(str(upload)) == b"12345"
    with pytest.raises(StoreError, match="too big"):
        read_upload(str(upload), limit=4)
    with pytest.raises(StoreError, match="No file"):
        read_upload(None)
