"""The character store: every fixture card stored and read back, search, edits, copies, crashes."""

from __future__ import annotations

import base64
import errno
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import store.characters as characters_module
from store.cards import (
    CharacterCard,
    ImportedCard,
    card_to_record,
    export_charx,
    import_card,
    plain_png,
)
from store.cards.png import text_chunk, with_text_chunks
from store.characters import CREATED_IN_HEARTH, UNFINISHED_DIR, CharacterStore
from store.errors import CardFormatError, NotFoundError, StoreCorruptError, StoreError

ROOT = Path(__file__).resolve().parent.parent
# Every card file among the fixtures (Eldoria.json beside them is a lorebook, not a card).
CARD_FILES = {
    "Aqua.json": "Aqua",
    "Aqua.png": "Aqua",
    "Example.json": "Chiharu Yamada",
    "contest_Assistant_Amy.png": "Amy",
    "contest_Assistant_Gloria.png": "Gloria, PA",
    "contest_Assistant_Sakana.png": "Sakana",
    "default_Seraphina.png": "Seraphina",
    "default_Seraphina_ccv3.png": "Seraphina",
    "test-card.json": "Luna Starweaver",
    "yuzu.png": "Yuzu, the shy cat girl maid",
}


def load(third_party: Path, name: str) -> ImportedCard:
    return import_card((third_party / "cards" / name).read_bytes(), name)


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def build_charx(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, payload in members.items():
            archive.writestr(name, payload)
    return buffer.getvalue()


def as_json(value: Any) -> bytes:
    return json.dumps(value).encode("utf-8")


def v3_card(**data: Any) -> dict[str, Any]:
    return {"spec": "chara_card_v3", "spec_version": "3.0", "data": {"name": "Test", **data}}


class FakeClock:
    """Stands in for the `time` module inside store.characters, so update times are exact."""

    def __init__(self, start: float) -> None:
        self.now = start

    def time(self) -> float:
        return self.now


@pytest.fixture
def characters(tmp_path: Path) -> CharacterStore:
    return CharacterStore(tmp_path / "characters")


# --- every fixture card goes in and comes back unchanged ---


def test_every_fixture_card_round_trips(third_party: Path, characters: CharacterStore) -> None:
    on_disk = {path.name for path in (third_party / "cards").iterdir()} - {"Eldoria.json"}
    assert on_disk == set(CARD_FILES), "a new fixture card appeared; add it to CARD_FILES"
    added = {}
    for name in sorted(CARD_FILES):
        imported = load(third_party, name)
        summary = characters.create(imported)
        added[summary.id] = imported
        assert summary.name == CARD_FILES[name]
        assert summary.has_avatar == (imported.avatar_png is not None)
    for character_id, imported in added.items():
        stored = characters.get(character_id)
        assert card_to_record(stored.card) == card_to_record(imported.card)
        assert stored.avatar_png() == imported.avatar_png
        assert stored.source_format == imported.source_format
        assert stored.warnings == imported.warnings
    listed = characters.list()
    assert [s.name for s in listed] == sorted(CARD_FILES.values(), key=str.casefold)
    assert {s.id for s in listed} == set(added)
    seraphina = next(s for s in listed if s.name == "Seraphina" and s.avatar_path is not None)
    assert seraphina.avatar_path.read_bytes() == characters.get(seraphina.id).avatar_png()


def test_search_by_name_tag_creator_and_nickname_ignores_case(
    third_party: Path, characters: CharacterStore
) -> None:
    for name in ("default_Seraphina.png", "test-card.json", "Aqua.json", "contest_Assistant_Gloria.png"):
        characters.create(load(third_party, name))

    def names(query: str) -> list[str]:
        return [s.name for s in characters.list(query)]

    assert names("seraPHINA") == ["Seraphina"]
    assert names("FANTASY") == ["Luna Starweaver"]  # a tag of test-card.json
    assert names("card architect") == ["Luna Starweaver"]  # its creator; every word must match
    assert names("otisalejandro") == ["Seraphina"]  # Seraphina's creator
    assert names("a") == ["Aqua", "Gloria, PA", "Luna Starweaver", "Seraphina"]
    assert names("") == names("  ") == ["Aqua", "Gloria, PA", "Luna Starweaver", "Seraphina"]
    assert names("nobody-has-this") == []
    aqua = characters.list("aqua")[0]
    card = characters.get(aqua.id).card
    characters.save(aqua.id, replace(card, nickname="Water Goddess"))
    assert names("goddess") == ["Aqua"]


# --- editing, copies, avatars, deletion ---


def test_edit_and_save_keeps_avatar_and_bumps_updated(
    third_party: Path, characters: CharacterStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock(1_000.0)
    monkeypatch.setattr(characters_module, "time", clock)
    imported = load(third_party, "default_Seraphina.png")
    summary = characters.create(imported)
    clock.now = 2_000.0
    card = characters.get(summary.id).card
    card.name, card.description, card.tags = "Sera", "A guardian.", ["forest", "healer"]
    saved = characters.save(summary.id, card)
    assert (saved.name, saved.tags, saved.updated) == ("Sera", ("forest", "healer"), 2_000.0)
    stored = characters.get(summary.id)
    assert card_to_record(stored.card) == card_to_record(card)
    assert (stored.created, stored.updated) == (1_000.0, 2_000.0)
    assert stored.avatar_png() == imported.avatar_png
    assert [s.name for s in characters.list("healer")] == ["Sera"]  # the list sees the edit


def test_a_card_that_breaks_the_rules_is_not_saved(third_party: Path, characters: CharacterStore) -> None:
    summary = characters.create(load(third_party, "test-card.json"))
    before = card_to_record(characters.get(summary.id).card)
    bad = characters.get(summary.id).card
    bad.tags = ["ok", 7]  # type: ignore[list-item]
    with pytest.raises(CardFormatError, match=r"cannot be saved: data\.tags must be a list of strings"):
        characters.save(summary.id, bad)
    assert card_to_record(characters.get(summary.id).card) == before


def test_duplicate_copies_everything_under_a_new_id(third_party: Path, characters: CharacterStore) -> None:
    original = characters.create(load(third_party, "default_Seraphina.png"))
    copy = characters.duplicate(original.id)
    assert copy.id != original.id and copy.name == "Seraphina (copy)"
    first, second = characters.get(original.id), characters.get(copy.id)
    assert second.avatar_png() == first.avatar_png()
    assert card_to_record(replace(second.card, name="Seraphina")) == card_to_record(first.card)
    characters.save(copy.id, replace(second.card, description="changed"))
    assert characters.get(original.id).card.description == first.card.description
    assert [s.name for s in characters.list()] == ["Seraphina", "Seraphina (copy)"]


def test_delete_removes_the_folder_and_the_listing(third_party: Path, characters: CharacterStore) -> None:
    kept = characters.create(load(third_party, "Aqua.png"))
    gone = characters.create(load(third_party, "yuzu.png"))
    characters.delete(gone.id)
    assert [s.id for s in characters.list()] == [kept.id]
    assert not (characters.root / gone.id).exists()
    assert not any((characters.root / UNFINISHED_DIR).iterdir())
    with pytest.raises(NotFoundError):
        characters.get(gone.id)
    with pytest.raises(NotFoundError):
        characters.delete(gone.id)


def test_create_blank_is_an_empty_v2_card(characters: CharacterStore) -> None:
    summary = characters.create_blank("  New   friend ")
    stored = characters.get(summary.id)
    assert (summary.name, summary.has_avatar, summary.avatar_path) == ("New friend", False, None)
    assert stored.card == CharacterCard(name="New friend", spec="v2")
    assert stored.source_format == CREATED_IN_HEARTH and stored.avatar_png() is None
    with pytest.raises(StoreError, match="needs a name"):
        characters.create_blank("   ")


def test_set_avatar_strips_text_and_refuses_non_png(characters: CharacterStore) -> None:
    summary = characters.create_blank("Pic")
    picture = plain_png(4, 4)
    with_card = with_text_chunks(picture, [text_chunk("chara", base64.b64encode(b'{"name": "stale"}'))])
    updated = characters.set_avatar(summary.id, with_card)
    assert updated.has_avatar and updated.avatar_path == characters.root / summary.id / "avatar.png"
    assert characters.get(summary.id).avatar_png() == picture
    with pytest.raises(CardFormatError, match="cannot be the avatar: the file is not a PNG picture"):
        characters.set_avatar(summary.id, b"\xff\xd8\xff jpeg")
    assert characters.get(summary.id).avatar_png() == picture
    cleared = characters.set_avatar(summary.id, None)
    assert not cleared.has_avatar and not (characters.root / summary.id / "avatar.png").exists()


# --- assets and hostile names ---


def _charx_with_assets() -> bytes:
    card = v3_card(
        first_mes="Hello",
        assets=[
            {"type": "icon", "uri": "embeded://assets/icon/images/main.png", "name": "main", "ext": "png"},
            {"type": "emotion", "uri": "embeded://assets/emotion/happy.webp", "name": "happy", "ext": "webp"},
            {"type": "x", "uri": "embeded://assets/other/blob", "name": "../../etc/passwd", "ext": "../sh"},
            {"type": "background", "uri": "https://example.com/bg.png", "name": "bg", "ext": "png"},
        ],
    )
    return build_charx(
        {
            "card.json": as_json(card),
            "assets/icon/images/main.png": plain_png(5, 7),
            "assets/emotion/happy.webp": b"RIFF....WEBPhappy",
            "assets/other/blob": b"blob bytes",
        }
    )


def test_charx_assets_are_stored_and_returned(characters: CharacterStore) -> None:
    imported = import_card(_charx_with_assets(), "luna.charx")
    summary = characters.create(imported)
    stored = characters.get(summary.id)
    assert [(f.uri, f.ext, f.data) for f in stored.asset_files()] == [
        ("embeded://assets/icon/images/main.png", "png", plain_png(5, 7)),
        ("embeded://assets/emotion/happy.webp", "webp", b"RIFF....WEBPhappy"),
        ("embeded://assets/other/blob", "bin", b"blob bytes"),
    ]
    assert files_under(characters.root / summary.id) == {
        "character.json",
        "avatar.png",
        "assets/asset-000.png",
        "assets/asset-001.webp",
        "assets/asset-002.bin",
    }
    exported = export_charx(stored.card, stored.avatar_png(), stored.asset_files(), now=1_700_000_000)
    again = import_card(exported, "again.charx")
    assert [f.data for f in again.asset_files] == [f.data for f in imported.asset_files]
    copy = characters.get(characters.duplicate(summary.id).id)
    assert [f.data for f in copy.asset_files()] == [f.data for f in stored.asset_files()]


def test_path_tricks_in_names_leave_nothing_outside_the_folder(tmp_path: Path) -> None:
    # Deep enough that any of the "../" below would still land inside tmp_path, where we look.
    data = tmp_path / "a" / "b" / "c" / "d" / "data"
    characters = CharacterStore(data / "characters")
    tricky = "../../../evil"
    card = v3_card(
        name="../../../../tmp/evil",
        assets=[{"type": "x", "uri": f"__asset:{tricky}", "name": "/etc/passwd", "ext": "../../sh"}],
    )
    chunks = [
        text_chunk("ccv3", base64.b64encode(as_json(card))),
        text_chunk(f"chara-ext-asset_{tricky}", base64.b64encode(b"payload")),
    ]
    png = with_text_chunks(plain_png(3, 3), chunks)
    png_id = characters.create(import_card(png, "../../../../evil.png")).id
    charx_id = characters.create(import_card(_charx_with_assets(), "..\\..\\evil.charx")).id
    stored = characters.get(png_id)
    assert stored.card.name == "../../../../tmp/evil"
    assert [(f.uri, f.ext, f.data) for f in stored.asset_files()] == [
        (f"__asset:{tricky}", "bin", b"payload")
    ]
    in_png = ("character.json", "avatar.png", "assets/asset-000.bin")
    in_charx = ("character.json", "avatar.png", "assets/asset-000.png", "assets/asset-001.webp")
    expected = {f"{png_id}/{name}" for name in in_png} | {f"{charx_id}/{name}" for name in in_charx}
    expected.add(f"{charx_id}/assets/asset-002.bin")
    assert files_under(tmp_path) == {f"a/b/c/d/data/characters/{path}" for path in expected}


def test_ids_from_input_never_reach_the_filesystem(characters: CharacterStore) -> None:
    for bad in ("../x", "..", "", UNFINISHED_DIR, "A" * 32):
        with pytest.raises(NotFoundError):
            characters.get(bad)
        with pytest.raises(NotFoundError):
            characters.delete(bad)


def test_a_damaged_record_is_skipped_not_fatal(third_party: Path, characters: CharacterStore) -> None:
    good = characters.create(load(third_party, "Aqua.json"))
    bad = characters.create(load(third_party, "test-card.json"))
    (characters.root / bad.id / "character.json").write_text('{"character": {"1": {"id": 5}}}')
    assert [s.id for s in characters.list()] == [good.id]
    with pytest.raises(StoreCorruptError, match="damaged"):
        characters.get(bad.id)
    (characters.root / bad.id / "character.json").write_text("{not json")
    assert [s.id for s in characters.list()] == [good.id]


# --- crashes: never half a character ---


def test_a_failed_final_rename_leaves_no_half_character(
    third_party: Path, characters: CharacterStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = characters.create(load(third_party, "Aqua.png"))

    def fail(source: Path, target: Path) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(characters_module, "_rename_folder", fail)
    with pytest.raises(StoreError, match="Could not save the character: Input/output error"):
        characters.create(load(third_party, "default_Seraphina.png"))
    with pytest.raises(StoreError):
        characters.duplicate(kept.id)
    assert [s.id for s in characters.list()] == [kept.id]
    assert {p.name for p in characters.root.iterdir()} == {kept.id, UNFINISHED_DIR}
    assert not any((characters.root / UNFINISHED_DIR).iterdir())


CRASHING_ADD = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, {root!r})
    from pathlib import Path
    import store.characters as module
    from store.cards import import_card
    characters = module.CharacterStore(Path({data!r}))
    card = Path({card!r})
    print("kept", characters.create(import_card(card.read_bytes(), card.name)).id, flush=True)
    module._rename_folder = lambda source, target: os._exit(9)  # die just before the commit
    characters.create(import_card(card.read_bytes(), card.name))
    print("not reached", flush=True)
    """
)


def test_a_crash_just_before_the_rename_leaves_no_trace(third_party: Path, tmp_path: Path) -> None:
    data = tmp_path / "characters"
    card = third_party / "cards" / "default_Seraphina.png"
    script = CRASHING_ADD.format(root=str(ROOT), data=str(data), card=str(card))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 9, done.stderr
    kept = done.stdout.split()[1]
    assert "not reached" not in done.stdout
    assert len(list((data / UNFINISHED_DIR).iterdir())) == 1  # the staged folder the crash left
    characters = CharacterStore(data)  # opening cleans it up
    assert [s.id for s in characters.list()] == [kept]
    assert {p.name for p in data.iterdir()} == {kept}
    assert characters.get(kept).avatar_png() == import_card(card.read_bytes(), card.name).avatar_png


ADD_FOREVER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {root!r})
    from pathlib import Path
    from store.characters import CharacterStore
    from store.cards import import_card
    characters = CharacterStore(Path({data!r}))
    card = Path({card!r})
    imported = import_card(card.read_bytes(), card.name)
    print("ready", flush=True)
    while True:
        print("ack", characters.create(imported).id, flush=True)
    """
)


def test_sigkill_during_adds_leaves_only_whole_characters(third_party: Path, tmp_path: Path) -> None:
    data = tmp_path / "characters"
    card = third_party / "cards" / "contest_Assistant_Sakana.png"
    script = ADD_FOREVER.format(root=str(ROOT), data=str(data), card=str(card))
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    assert first.startswith("ready"), f"the writer failed to start: {first!r} {proc.stderr.read()}"
    time.sleep(0.6)
    os.kill(proc.pid, signal.SIGKILL)
    acknowledged = {line.split()[1] for line in proc.stdout.read().splitlines() if line.startswith("ack")}
    proc.wait()
    assert acknowledged, "the writer was killed before it added anything"
    print(f"killed after {len(acknowledged)} acknowledged adds")
    imported = import_card(card.read_bytes(), card.name)
    characters = CharacterStore(data)
    listed = {s.id for s in characters.list()}
    assert acknowledged <= listed and len(listed - acknowledged) <= 1
    assert {p.name for p in data.iterdir()} == listed
    for character_id in listed:
        stored = characters.get(character_id)
        assert card_to_record(stored.card) == card_to_record(imported.card)
        assert stored.avatar_png() == imported.avatar_png
