"""Character cards: every real fixture imports, round-trips losslessly, and bad files fail plainly."""

from __future__ import annotations

import base64
import copy
import io
import json
import re
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from store.cards import (
    BACKFILL_NOTE,
    MAX_FILE_BYTES,
    MAX_TEXT_CHARS,
    AssetFile,
    CardAsset,
    CharacterCard,
    ImportedCard,
    card_from_record,
    card_to_record,
    export_charx,
    export_json,
    export_png,
    export_png_report,
    import_card,
    plain_png,
)
from store.errors import CardFormatError, CardTooLargeError, StoreError

NOW = 1_700_000_000

# file, source format, spec, name, alternate greetings, lorebook entries (None: no book)
FIXTURES = [
    ("cards/default_Seraphina.png", "png", "v2", "Seraphina", 0, 4),
    ("cards/default_Seraphina_ccv3.png", "png", "v3", "Seraphina", 0, 4),
    ("cards/Aqua.png", "png", "v1", "Aqua", 0, None),
    ("cards/Aqua.json", "json", "v1", "Aqua", 0, None),
    ("cards/Example.json", "json", "v1", "Chiharu Yamada", 0, None),
    ("cards/contest_Assistant_Gloria.png", "png", "v2", "Gloria, PA", 1, None),
    ("cards/contest_Assistant_Sakana.png", "png", "v2", "Sakana", 0, 14),
    ("cards/contest_Assistant_Amy.png", "png", "v3", "Amy", 1, None),
    ("cards/yuzu.png", "png", "v1", "Yuzu, the shy cat girl maid", 0, None),
    ("cards/test-card.json", "json", "v3", "Luna Starweaver", 2, 1),
    ("yaml/Example.yaml", "yaml", "v1", "Chiharu Yamada", 0, None),
    ("yaml/Assistant.yaml", "yaml", "v1", "AI", 0, None),
]
FIXTURE_FILES = [row[0] for row in FIXTURES]
# The fixtures whose card is spec-shaped JSON (in a file or a PNG chunk), for data-level checks.
WRAPPED = [
    ("cards/default_Seraphina.png", "chara"),
    ("cards/default_Seraphina_ccv3.png", "ccv3"),
    ("cards/contest_Assistant_Gloria.png", "chara"),
    ("cards/contest_Assistant_Sakana.png", "chara"),
    ("cards/contest_Assistant_Amy.png", "ccv3"),
    ("cards/test-card.json", None),
]


# --- helpers (an independent PNG walker, so the tests do not trust the code under test) ---


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack_from(">I", data, pos + 8 + length)
        assert crc == zlib.crc32(kind + body), f"bad CRC in {kind!r}"
        chunks.append((kind, body))
        pos += 12 + length
    return chunks


def text_chunks(data: bytes) -> dict[str, list[bytes]]:
    found: dict[str, list[bytes]] = {}
    for kind, body in png_chunks(data):
        if kind == b"tEXt":
            keyword, _, text = body.partition(b"\0")
            found.setdefault(keyword.decode("latin-1"), []).append(text)
    return found


def chunk_json(data: bytes, keyword: str) -> dict[str, Any]:
    return json.loads(base64.b64decode(text_chunks(data)[keyword][0]))


def make_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def card_png(*texts: tuple[str, bytes], picture: bytes | None = None) -> bytes:
    """A small PNG with the given tEXt chunks (keyword, raw text) inserted before IEND."""
    base = picture or plain_png(4, 6)
    extra = b"".join(make_chunk(b"tEXt", key.encode("latin-1") + b"\0" + text) for key, text in texts)
    return base[:-12] + extra + base[-12:]


def b64json(value: Any) -> bytes:
    return base64.b64encode(json.dumps(value).encode("utf-8"))


def v2_card(**data: Any) -> dict[str, Any]:
    return {"spec": "chara_card_v2", "spec_version": "2.0", "data": {"name": "Test", **data}}


def v3_card(**data: Any) -> dict[str, Any]:
    return {"spec": "chara_card_v3", "spec_version": "3.0", "data": {"name": "Test", **data}}


def as_json(value: Any) -> bytes:
    return json.dumps(value).encode("utf-8")


def as_exported_v3(card: CharacterCard) -> CharacterCard:
    """What the `ccv3` chunk of an export reads back as: the documented V3 upgrade of the card."""
    upgraded = copy.deepcopy(card)
    upgraded.spec = "v3"
    upgraded.modification_date = NOW
    if upgraded.group_only_greetings is None:
        upgraded.group_only_greetings = []
    for entry in upgraded.character_book.entries if upgraded.character_book else []:
        entry.use_regex = bool(entry.use_regex)
    return upgraded


def documented_upgrades(original: dict[str, Any]) -> dict[str, Any]:
    """The original card JSON plus exactly the changes an export documents for it."""
    expected = copy.deepcopy(original)
    data = expected["data"]
    book = data.get("character_book")
    if book is not None:
        book.setdefault("extensions", {})
    if expected["spec"] == "chara_card_v3":
        data["modification_date"] = NOW
        data.setdefault("group_only_greetings", [])
        for entry in book["entries"] if book else []:
            entry.setdefault("use_regex", False)
    return expected


def load(third_party: Path, name: str) -> ImportedCard:
    return import_card((third_party / name).read_bytes(), name)


def build_charx(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, payload in members.items():
            archive.writestr(name, payload)
    return buffer.getvalue()


# --- every fixture imports with the facts SOURCES.md states ---


@pytest.mark.parametrize(("name", "source", "spec", "card_name", "greetings", "entries"), FIXTURES)
def test_fixture_imports_with_the_documented_facts(
    third_party: Path, name: str, source: str, spec: str, card_name: str, greetings: int, entries: int | None
) -> None:
    imported = load(third_party, name)
    card = imported.card
    assert (imported.source_format, card.spec, card.name) == (source, spec, card_name)
    assert len(card.alternate_greetings) == greetings
    assert card.first_mes.strip()
    assert (len(card.character_book.entries) if card.character_book else None) == entries
    assert imported.warnings == ()
    if source == "png":
        original = Image.open(third_party / name)
        avatar = imported.avatar_png
        assert avatar is not None
        assert not any(kind in (b"tEXt", b"iTXt", b"zTXt") for kind, _ in png_chunks(avatar))
        with Image.open(io.BytesIO(avatar)) as picture:
            picture.load()
            assert picture.size == original.size
    else:
        assert imported.avatar_png is None


def test_specific_fields_land_where_they_belong(third_party: Path) -> None:
    seraphina = load(third_party, "cards/default_Seraphina_ccv3.png").card
    assert seraphina.extensions["depth_prompt"] == {"prompt": "", "depth": 4, "role": "system"}
    assert seraphina.extensions["world"] == "Eldoria"
    book = seraphina.character_book
    assert book is not None and book.name == "Eldoria"
    assert [entry.id for entry in book.entries] == [0, 1, 2, 3]
    assert book.entries[0].keys == ["eldoria", "wood", "forest", "magical forest"]
    assert book.entries[0].position == "before_char" and book.entries[0].use_regex is True
    assert "sticky" in book.entries[0].extensions
    assert seraphina.top_level["fav"] is False and "creatorcomment" in seraphina.top_level
    sakana = load(third_party, "cards/contest_Assistant_Sakana.png").card
    assert sakana.character_book is not None
    assert {entry.position for entry in sakana.character_book.entries} == {"after_char"}
    assert sakana.character_book.entries[7].secondary_keys == ["me"]
    gloria = load(third_party, "cards/contest_Assistant_Gloria.png").card
    assert "\r\n" in gloria.creator and gloria.v1_mirror is False
    luna = load(third_party, "cards/test-card.json").card
    assert luna.assets == [] and luna.group_only_greetings == []
    assert luna.character_book is not None and luna.character_book.token_budget == 512
    assert luna.character_book.entries[0].use_regex is False  # V3 requires it; absent means false
    aqua = load(third_party, "cards/Aqua.json").card
    assert aqua.scenario == "" and aqua.top_level["last_mes"] == [",,,,,,,,,,", ""]


def test_yaml_and_pygmalion_map_their_keys(third_party: Path) -> None:
    yaml_card = load(third_party, "yaml/Example.yaml").card
    assert yaml_card.description.startswith("Chiharu Yamada's Persona:")
    assert yaml_card.first_mes.startswith("*Chiharu strides into the room")
    pyg_source = json.loads((third_party / "cards/Example.json").read_text())
    pyg = load(third_party, "cards/Example.json").card
    assert pyg.description == pyg_source["char_persona"]
    assert pyg.first_mes == pyg_source["char_greeting"]
    assert pyg.mes_example == pyg_source["example_dialogue"]
    assert pyg.top_level == {}
    old_yaml = (
        b"char_name: Old\nchar_persona: A persona\nchar_greeting: Hi\nworld_scenario: A place\nmood: 3\n"
    )
    old = import_card(old_yaml, "old.yml").card
    assert (old.name, old.description, old.first_mes, old.scenario) == ("Old", "A persona", "Hi", "A place")
    assert old.top_level == {"mood": 3}


def test_yaml_is_parsed_safely() -> None:
    hostile = b"name: !!python/object/apply:os.system ['echo pwned']\ncontext: x\n"
    with pytest.raises(CardFormatError, match="not valid YAML"):
        import_card(hostile, "evil.yaml")


# --- lossless round trips ---


@pytest.mark.parametrize("name", FIXTURE_FILES)
def test_png_export_round_trips_every_fixture(third_party: Path, name: str) -> None:
    imported = load(third_party, name)
    exported = export_png(imported.card, imported.avatar_png, now=NOW)
    again = import_card(exported, "exported.png")
    assert again.card == as_exported_v3(imported.card)
    if imported.avatar_png is not None:
        assert again.avatar_png == imported.avatar_png
    texts = text_chunks(exported)
    assert (len(texts["chara"]), len(texts["ccv3"])) == (1, 1)


@pytest.mark.parametrize("name", FIXTURE_FILES)
def test_json_export_round_trips_every_fixture(third_party: Path, name: str) -> None:
    card = load(third_party, name).card
    again = import_card(export_json(card, now=NOW), "exported.json").card
    expected = copy.deepcopy(card)
    if card.spec == "v3":
        expected.modification_date = NOW
    expected.spec = "v2" if card.spec == "v1" else card.spec  # V1 is written as V2 (with the V1 mirror)
    assert again == expected
    assert card_from_record(card_to_record(card)) == card


@pytest.mark.parametrize(("name", "keyword"), WRAPPED)
def test_exported_json_equals_the_original_but_for_documented_upgrades(
    third_party: Path, name: str, keyword: str | None
) -> None:
    raw = (third_party / name).read_bytes()
    original = chunk_json(raw, keyword) if keyword else json.loads(raw)
    exported = json.loads(export_json(import_card(raw, name).card, now=NOW))
    assert exported == documented_upgrades(original)


def test_v1_card_is_written_as_v2_with_the_v1_fields_mirrored(third_party: Path) -> None:
    original = json.loads((third_party / "cards/Aqua.json").read_bytes())
    exported = json.loads(export_json(load(third_party, "cards/Aqua.json").card, now=NOW))
    assert (exported["spec"], exported["spec_version"]) == ("chara_card_v2", "2.0")
    assert exported["data"]["scenario"] == "" and exported["scenario"] == ""
    assert exported["data"]["extensions"] == {} and exported["data"]["alternate_greetings"] == []
    for key, value in original.items():  # every V1 key and TavernAI extra is still at the top
        assert exported[key] == value


def test_edits_reach_the_mirrored_v1_fields(third_party: Path) -> None:
    card = load(third_party, "cards/default_Seraphina.png").card
    card.name = "Sera"
    exported = json.loads(export_json(card, now=NOW))
    assert exported["name"] == exported["data"]["name"] == "Sera"


def test_unknown_keys_survive_at_every_level() -> None:
    entry = {"keys": ["k"], "content": "c", "extensions": {"x/e": [1]}, "enabled": True, "insertion_order": 1}
    original = {
        "spec": "chara_card_v3",
        "spec_version": "3.0",
        "top_secret": {"a": 1},
        "data": {
            "name": "N",
            "future_field": "kept",
            "nickname": None,  # explicit nulls are kept as nulls
            "extensions": {"risuai": {"deep": [{"x": None}]}, "agnai/voice": "v"},
            "character_book": {
                "extensions": {"b": 2},
                "entries": [{**entry, "entry_extra": 7}],
                "book_extra": "y",
            },
            "assets": [
                {"type": "x_custom", "uri": "https://example.com/a.png", "name": "a", "ext": "png", "z": 1}
            ],
        },
    }
    exported = json.loads(export_json(import_card(as_json(original), "c.json").card, now=NOW))
    assert exported["top_secret"] == {"a": 1}
    data = exported["data"]
    assert data["future_field"] == "kept" and "nickname" in data and data["nickname"] is None
    assert data["extensions"] == original["data"]["extensions"]
    assert data["character_book"]["book_extra"] == "y" and data["character_book"]["extensions"] == {"b": 2}
    assert data["character_book"]["entries"][0]["entry_extra"] == 7
    assert data["character_book"]["entries"][0]["extensions"] == {"x/e": [1]}
    assert data["assets"][0]["z"] == 1 and data["assets"][0]["uri"] == "https://example.com/a.png"


# --- PNG specifics ---


def test_ccv3_wins_over_chara_and_keywords_ignore_case() -> None:
    png = card_png(("Chara", b64json(v2_card(name="Old"))), ("CCV3", b64json(v3_card(name="New"))))
    imported = import_card(png, "card.png")
    assert (imported.card.name, imported.card.spec) == ("New", "v3")


def test_both_chunks_v3_reads_ccv3(third_party: Path) -> None:
    amy = load(third_party, "cards/contest_Assistant_Amy.png").card
    assert amy.spec == "v3" and amy.group_only_greetings == []
    assert amy.extensions["group_greetings_mode"] == 0


def test_damaged_ccv3_falls_back_to_chara_with_a_warning() -> None:
    png = card_png(("chara", b64json(v2_card(name="Backup"))), ("ccv3", b"@@not base64@@"))
    imported = import_card(png, "card.png")
    assert imported.card.name == "Backup"
    assert "V3 data is damaged" in imported.warnings[0]


def test_itxt_and_ztxt_are_ignored() -> None:
    itxt = make_chunk(b"iTXt", b"chara\0\0\0\0\0" + b64json(v2_card(name="Hidden")))
    base = plain_png(4, 6)
    with pytest.raises(CardFormatError, match="this PNG has no character card in it"):
        import_card(base[:-12] + itxt + base[-12:], "x.png")


def test_png_without_a_card_says_so(third_party: Path) -> None:
    with pytest.raises(CardFormatError, match="this PNG has no character card in it"):
        load(third_party, "yaml/Example.png")


def test_unknown_huge_text_chunks_are_skipped(third_party: Path) -> None:
    yuzu = load(third_party, "cards/yuzu.png")
    assert yuzu.avatar_png is not None
    assert len(yuzu.avatar_png) < (third_party / "cards/yuzu.png").stat().st_size - 3_000_000
    # An unknown chunk far over the chunk limit does not stop the import either.
    huge = card_png(("risuai", b"A" * (17 * 1024 * 1024)), ("chara", b64json(v2_card(name="Big"))))
    assert import_card(huge, "big.png").card.name == "Big"


def test_export_png_replaces_old_chunks_and_writes_a_v2_backfill(third_party: Path) -> None:
    original = (third_party / "cards/default_Seraphina_ccv3.png").read_bytes()
    card = import_card(original, "s.png").card
    card.nickname = "Sera"
    card.assets = [CardAsset(type="icon", uri="ccdefault:", name="main", ext="png")]
    assert card.character_book is not None
    card.character_book.entries[0].content = "@@depth 2\n@@role system\nThe forest."
    exported = export_png(card, original, now=NOW)
    kinds = [kind for kind, _ in png_chunks(exported)]
    assert kinds[-3:] == [b"tEXt", b"tEXt", b"IEND"]
    assert kinds.count(b"tEXt") == 2
    chara, ccv3 = chunk_json(exported, "chara"), chunk_json(exported, "ccv3")
    assert (chara["spec"], chara["spec_version"], ccv3["spec"], ccv3["spec_version"]) == (
        "chara_card_v2",
        "2.0",
        "chara_card_v3",
        "3.0",
    )
    assert chara["data"]["creator_notes"].startswith(BACKFILL_NOTE)
    for v3_only in ("nickname", "assets", "group_only_greetings", "modification_date"):
        assert v3_only not in chara["data"]
    assert chara["data"]["character_book"]["entries"][0]["content"] == "The forest."
    assert "use_regex" not in chara["data"]["character_book"]["entries"][0]
    assert ccv3["data"]["nickname"] == "Sera" and ccv3["data"]["modification_date"] == NOW
    assert ccv3["data"]["character_book"]["entries"][0]["content"].startswith("@@depth 2")
    assert not ccv3["data"]["creator_notes"].startswith(BACKFILL_NOTE)
    with Image.open(io.BytesIO(exported)) as picture:
        picture.verify()  # checks every CRC
    # Exporting an export does not pile up notes.
    again = export_png(import_card(exported, "e.png").card, exported, now=NOW)
    assert chunk_json(again, "chara")["data"]["creator_notes"].count(BACKFILL_NOTE) == 1


def test_export_png_of_a_v2_card_writes_no_backfill_note(third_party: Path) -> None:
    # Apps that read only V2 show creator_notes to people: a V2 card's `chara` copy is
    # the card as it was, Hearth's note goes only into a V3 card's backfill.
    original = (third_party / "cards/default_Seraphina.png").read_bytes()
    card = import_card(original, "s.png").card
    assert card.spec == "v2" and card.creator_notes
    exported = export_png(card, original, now=NOW)
    chara = chunk_json(exported, "chara")
    assert chara["data"]["creator_notes"] == card.creator_notes
    assert BACKFILL_NOTE not in exported.decode("latin-1") and BACKFILL_NOTE not in json.dumps(chara)
    v1 = import_card((third_party / "cards/Aqua.png").read_bytes(), "a.png").card
    assert chunk_json(export_png(v1, None, now=NOW), "chara")["data"]["creator_notes"] == ""


def test_export_png_carries_charx_assets_and_leaves_no_dangling_embeded_uri() -> None:
    icon = plain_png(5, 7)
    archive = build_charx(
        {
            "card.json": as_json(_charx_card()),
            "assets/icon/images/main.png": icon,
            "assets/emotion/images/happy.webp": b"RIFF....WEBPhappy",
        }
    )
    imported = import_card(archive, "luna.charx")
    report = export_png_report(imported.card, imported.avatar_png, asset_files=imported.asset_files, now=NOW)
    ccv3 = chunk_json(report.data, "ccv3")
    uris = [asset["uri"] for asset in ccv3["data"]["assets"]]
    assert not [uri for uri in uris if uri.startswith(("embeded://", "embedded://"))], uris
    # The main icon is the PNG's own picture; the other file rides in a legacy asset chunk.
    assert uris == ["ccdefault:", "ccdefault:", "__asset:0", "https://example.com/bg.png"]
    assert text_chunks(report.data)["chara-ext-asset_0"] == [base64.b64encode(b"RIFF....WEBPhappy")]
    assert len(report.notes) == 1 and "CHARX" in report.notes[0]
    again = import_card(report.data, "luna.png")
    assert again.avatar_png == imported.avatar_png and not again.warnings
    assert [(f.uri, f.data) for f in again.asset_files] == [("__asset:0", b"RIFF....WEBPhappy")]
    # And from that PNG to CHARX, the emotion is a file of the archive again.
    back = import_card(export_charx(again.card, again.avatar_png, again.asset_files, now=NOW), "b.charx")
    assert b"RIFF....WEBPhappy" in [f.data for f in back.asset_files]
    assert back.avatar_png == imported.avatar_png


def test_export_png_leaves_out_assets_too_big_for_a_png_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    card = import_card(as_json(_charx_card()), "c.json").card
    monkeypatch.setattr("store.cards.exports.MAX_FILE_BYTES", 70 * 1024)
    big = [AssetFile("asset-000", "embeded://assets/emotion/images/happy.webp", "webp", b"x" * 200_000)]
    report = export_png_report(card, None, asset_files=big, now=NOW)
    assets = chunk_json(report.data, "ccv3")["data"]["assets"]
    assert [a["name"] for a in assets] == ["default", "main", "bg"]  # the emotion's entry went with it
    assert "chara-ext-asset_0" not in text_chunks(report.data)
    assert report.notes[-1] == (
        "The card's asset file did not fit in a PNG and was left out of it; a CHARX export keeps them."
    )
    # Without the avatar standing in for it, the main icon keeps its own reference.
    assert assets[1]["uri"] == "embeded://assets/icon/images/main.png"


def test_export_png_without_avatar_generates_a_picture() -> None:
    exported = export_png(CharacterCard(name="Plain", first_mes="Hi"), None, now=NOW)
    with Image.open(io.BytesIO(exported)) as picture:
        picture.load()
        assert picture.size == (400, 600)
    assert import_card(exported, "p.png").card.name == "Plain"


def test_export_png_rejects_an_avatar_that_is_not_a_png() -> None:
    with pytest.raises(CardFormatError, match="Could not export the card: the avatar picture cannot be used"):
        export_png(CharacterCard(name="X"), b"GIF89a....", now=NOW)


def test_legacy_png_asset_chunks_round_trip() -> None:
    card = v3_card(assets=[{"type": "emotion", "uri": "__asset:0", "name": "happy", "ext": "webp"}])
    png = card_png(("ccv3", b64json(card)), ("chara-ext-asset_0", base64.b64encode(b"RIFF-happy")))
    imported = import_card(png, "risu.png")
    assert imported.asset_files == (
        AssetFile(key="asset-000", uri="__asset:0", ext="webp", data=b"RIFF-happy"),
    )
    exported = export_png(imported.card, imported.avatar_png, asset_files=imported.asset_files, now=NOW)
    assert import_card(exported, "again.png").asset_files == imported.asset_files


# --- detection is by content, and the right errors ---


def test_detection_ignores_the_extension(third_party: Path) -> None:
    png = (third_party / "cards/Aqua.png").read_bytes()
    assert import_card(png, "Aqua.json").source_format == "png"
    assert import_card(as_json(v2_card()), "card.png").source_format == "json"


@pytest.mark.parametrize(
    "payload",
    [
        {"spec": "lorebook_v3", "data": {"entries": []}},
        {"entries": {"0": {"uid": 0, "key": ["a"], "content": "x"}}},
        {"name": "Book", "description": "d", "entries": []},
    ],
)
def test_a_lorebook_is_not_a_card(payload: dict[str, Any]) -> None:
    with pytest.raises(CardFormatError, match="lorebook"):
        import_card(as_json(payload), "book.json")


def test_the_real_world_info_file_is_refused(third_party: Path) -> None:
    with pytest.raises(CardFormatError, match=r"“Eldoria\.json”: this file is a lorebook"):
        load(third_party, "cards/Eldoria.json")


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (v2_card(alternate_greetings="hi"), "data.alternate_greetings must be a list of strings"),
        (v2_card(tags=["a", 1]), "data.tags must be a list of strings"),
        (v2_card(name=["x"]), "data.name must be text"),
        (v2_card(extensions=[]), "data.extensions must be an object"),
        (
            v2_card(character_book={"entries": [{"keys": "k"}]}),
            r"data.character_book.entries\[0\].keys must be",
        ),
        (v2_card(character_book={"entries": [{"enabled": "yes"}]}), "enabled must be true or false"),
        (v2_card(character_book={"entries": [{"id": 1.5}]}), "id must be a number or text"),
        (v3_card(assets=[{"type": "icon"}, 3]), r"data.assets\[1\] must be an object"),
        (v3_card(creation_date="yesterday"), "data.creation_date must be a number"),
        ({"spec": "chara_card_v2", "spec_version": "2.0"}, "has no data object"),
        ({"spec": "chara_card_v9", "data": {}}, "not one Hearth reads"),
        (v3_card() | {"spec_version": "three"}, "is not a version number"),
        ({"hello": "world"}, "not a character card"),
        ([1, 2], "not a character card"),
    ],
)
def test_invalid_cards_name_what_is_wrong(payload: Any, message: str) -> None:
    with pytest.raises(CardFormatError, match=message):
        import_card(as_json(payload), "bad.json")


def test_bad_chunk_contents_name_the_chunk() -> None:
    with pytest.raises(CardFormatError, match="the chara chunk is not valid base64"):
        import_card(card_png(("chara", b"!!!")), "x.png")
    with pytest.raises(CardFormatError, match="the chara chunk is not valid JSON"):
        import_card(card_png(("chara", base64.b64encode(b"{nope"))), "x.png")
    with pytest.raises(CardFormatError, match="the chara chunk is not UTF-8"):
        import_card(card_png(("chara", base64.b64encode(b"\xff\xfe{}"))), "x.png")


def test_v3_versions_are_compared_as_numbers() -> None:
    newer = import_card(as_json(v3_card() | {"spec_version": "3.5"}), "new.json")
    assert newer.card.name == "Test" and "newer than the 3.0" in newer.warnings[0]
    older = import_card(as_json(v3_card() | {"spec_version": 2.9}), "old.json")
    assert older.warnings == () and older.card.group_only_greetings == []


def test_limits_raise_card_too_large() -> None:
    with pytest.raises(CardTooLargeError, match="data.description is too long"):
        import_card(as_json(v2_card(description="x" * (MAX_TEXT_CHARS + 1))), "long.json")
    with pytest.raises(CardTooLargeError, match="the limit is 32.0 MB"):
        import_card(b" " * (MAX_FILE_BYTES + 1), "huge.json")
    with pytest.raises(CardTooLargeError, match="the chara chunk is 17.0 MB"):
        import_card(card_png(("chara", b"A" * (17 * 1024 * 1024))), "x.png")
    with pytest.raises(CardTooLargeError, match="alternate_greetings has 1,001 items"):
        import_card(as_json(v2_card(alternate_greetings=["hi"] * 1001)), "many.json")
    assert issubclass(CardTooLargeError, CardFormatError) and issubclass(CardFormatError, StoreError)


# --- CHARX ---


def _charx_card() -> dict[str, Any]:
    return v3_card(
        first_mes="Hello",
        assets=[
            {"type": "icon", "uri": "ccdefault:", "name": "default", "ext": "png"},
            {"type": "icon", "uri": "embeded://assets/icon/images/main.png", "name": "main", "ext": "png"},
            {
                "type": "emotion",
                "uri": "embeded://assets/emotion/images/happy.webp",
                "name": "happy",
                "ext": "webp",
            },
            {"type": "background", "uri": "https://example.com/bg.png", "name": "bg", "ext": "png"},
        ],
        extensions={"risuai": {"x": 1}},
    )


def test_charx_imports_assets_and_round_trips() -> None:
    icon = card_png(("chara", b64json(v2_card(name="stale"))), picture=plain_png(5, 7))
    archive = build_charx(
        {
            "card.json": as_json(_charx_card()),
            "assets/icon/images/main.png": icon,
            "assets/emotion/images/happy.webp": b"RIFF....WEBPhappy",
            "x_meta/1.json": b"{}",
        }
    )
    imported = import_card(archive, "luna.charx")
    assert imported.source_format == "charx" and imported.card.name == "Test"
    assert imported.avatar_png == plain_png(5, 7)  # the main icon, its stale card chunk removed
    assert [(f.key, f.uri, f.ext) for f in imported.asset_files] == [
        ("asset-000", "embeded://assets/icon/images/main.png", "png"),
        ("asset-001", "embeded://assets/emotion/images/happy.webp", "webp"),
    ]
    assert imported.asset_files[1].data == b"RIFF....WEBPhappy"
    exported = export_charx(imported.card, imported.avatar_png, imported.asset_files, now=NOW)
    again = import_card(exported, "again.charx")
    assert again.card == as_exported_v3(imported.card)
    assert [f.data for f in again.asset_files] == [plain_png(5, 7), b"RIFF....WEBPhappy"]
    assert again.avatar_png == imported.avatar_png


def test_charx_export_adds_an_icon_when_the_card_has_none() -> None:
    exported = export_charx(CharacterCard(name="Plain"), plain_png(3, 3), now=NOW)
    again = import_card(exported, "p.charx")
    assert again.avatar_png == plain_png(3, 3)
    assert again.card.assets == [CardAsset("icon", "embeded://assets/icon/images/main.png", "main", "png")]


def test_charx_icon_that_is_not_png_is_kept_but_not_the_avatar() -> None:
    card = v3_card(assets=[{"type": "icon", "uri": "embeded://icon.webp", "name": "main", "ext": "webp"}])
    imported = import_card(build_charx({"card.json": as_json(card), "icon.webp": b"RIFFxxxxWEBP"}), "w.charx")
    assert imported.avatar_png is None and len(imported.asset_files) == 1
    assert "not a PNG picture" in imported.warnings[0]


def test_risu_jpeg_with_an_appended_charx_imports() -> None:
    jpeg = b"\xff\xd8\xff\xe0" + bytes(200) + b"\xff\xd9"
    imported = import_card(jpeg + build_charx({"card.json": as_json(v3_card(name="Jay"))}), "jay.jpeg")
    assert (imported.source_format, imported.card.name) == ("charx", "Jay")
    with pytest.raises(CardFormatError, match="JPEG picture without a character card"):
        import_card(jpeg, "photo.jpg")


def test_charx_without_card_json() -> None:
    with pytest.raises(CardFormatError, match="card.json is missing from the CHARX archive"):
        import_card(build_charx({"assets/a.png": b"x"}), "a.charx")


@pytest.mark.parametrize(
    "member",
    [
        "../evil.png",
        "assets/../../evil.png",
        "/etc/passwd",
        "assets\\..\\evil.png",
        "C:/evil.png",
        "a\x01b.png",
    ],
)
def test_hostile_zip_names_are_rejected(member: str) -> None:
    with pytest.raises(CardFormatError, match="unsafe name"):
        import_card(build_charx({"card.json": as_json(_charx_card()), member: b"x"}), "evil.charx")


def test_asset_uris_never_reach_the_filesystem() -> None:
    card = v3_card(
        assets=[{"type": "icon", "uri": "embeded://../../etc/passwd", "name": "main", "ext": "png"}]
    )
    imported = import_card(build_charx({"card.json": as_json(card)}), "a.charx")
    assert imported.asset_files == () and imported.avatar_png is None
    assert imported.card.assets is not None and imported.card.assets[0].uri == "embeded://../../etc/passwd"
    assert "not in the file" in imported.warnings[0]


def test_encrypted_charx_members_are_refused() -> None:
    archive = bytearray(build_charx({"card.json": as_json(v3_card())}))
    central = archive.index(b"PK\x01\x02")
    archive[central + 8] |= 1  # the "encrypted" flag of the one member
    archive[6] |= 1
    with pytest.raises(CardFormatError, match="encrypted"):
        import_card(bytes(archive), "locked.charx")


def test_asset_keys_are_generated() -> None:
    card = v3_card(assets=[{"type": "x_evil", "uri": "embeded://a.png", "name": "../../x", "ext": "../sh"}])
    imported = import_card(build_charx({"card.json": as_json(card), "a.png": b"data"}), "a.charx")
    (file,) = imported.asset_files
    assert re.fullmatch(r"asset-\d{3}", file.key) and file.ext == "bin"
