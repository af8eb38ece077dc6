"""Fuzzing `import_card`: whatever the bytes, it returns a card or raises `CardFormatError`.

Every test keeps its inputs small and its example count bounded, so the file runs in a
few seconds. A hang would show up as a test that never ends; none of the inputs here is
big enough to be slow when handled correctly.
"""

from __future__ import annotations

import base64
import io
import json
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store.cards import (
    MAX_ARCHIVE_BYTES,
    MAX_MEMBER_BYTES,
    MAX_YAML_BYTES,
    ImportedCard,
    decode,
    export_json,
    export_png,
    import_card,
    plain_png,
)
from store.cards.model import MAX_YAML_NODES
from store.errors import CardFormatError, CardTooLargeError

FUZZ = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
SMALL = settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
NOW = 1_700_000_000


def import_or_card_error(data: bytes, name: str = "fuzz.bin") -> ImportedCard | None:
    """The property under test: a card, or CardFormatError; any other exception fails the test."""
    try:
        return import_card(data, name)
    except CardFormatError as err:
        assert str(err).startswith("Could not import")
        return None


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def small_card_png(card: dict[str, Any] | None = None) -> bytes:
    """An 8×8 PNG carrying a small V2 card with a lorebook, so mutations hit every part often."""
    card = card or {
        "spec": "chara_card_v2",
        "spec_version": "2.0",
        "data": {
            "name": "Fuzz",
            "first_mes": "Hi",
            "alternate_greetings": ["Hey"],
            "extensions": {"x": [1, {"y": None}]},
            "character_book": {"extensions": {}, "entries": [{"keys": ["k"], "content": "c", "id": 0}]},
        },
    }
    text = chunk(b"tEXt", b"chara\0" + base64.b64encode(json.dumps(card).encode()))
    base = plain_png(8, 8)
    return base[:-12] + text + base[-12:]


def chunk_spans(data: bytes) -> list[tuple[int, int]]:
    spans, pos = [], 8
    while pos + 12 <= len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        spans.append((pos, pos + 12 + length))
        pos += 12 + length
    return spans


def refresh_crc(data: bytearray, start: int, end: int) -> None:
    data[end - 4 : end] = struct.pack(">I", zlib.crc32(bytes(data[start + 4 : end - 4])))


SEED_PNG = small_card_png()


@FUZZ
@given(
    st.binary(max_size=2048),
    st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"PK\x03\x04", b"{", b"\xff\xd8\xff"]),
)
def test_random_bytes(tail: bytes, head: bytes) -> None:
    import_or_card_error(head + tail)


@FUZZ
@given(st.data())
def test_mutated_png_chunks(data: st.DataObject) -> None:
    png = bytearray(SEED_PNG)
    spans = chunk_spans(bytes(png))
    start, end = data.draw(st.sampled_from(spans))
    action = data.draw(st.sampled_from(["flip", "flip_keep_crc", "truncate", "drop", "duplicate", "length"]))
    if action in ("flip", "flip_keep_crc"):
        at = data.draw(st.integers(start, end - 1))
        png[at] ^= data.draw(st.integers(1, 255))
        if action == "flip_keep_crc" and at >= start + 8 and at < end - 4:
            refresh_crc(png, start, end)
    elif action == "truncate":
        del png[data.draw(st.integers(0, len(png) - 1)) :]
    elif action == "drop":
        del png[start:end]
    elif action == "duplicate":
        png[end:end] = png[start:end]
    else:
        png[start : start + 4] = struct.pack(">I", data.draw(st.integers(0, 2**32 - 1)))
    import_or_card_error(bytes(png), "mutated.png")


@FUZZ
@given(
    st.sampled_from(["chara", "ccv3", "CHARA"]),
    st.binary(max_size=512) | st.text(max_size=200).map(str.encode),
)
def test_bad_base64_and_json_inside_card_chunks(keyword: str, payload: bytes) -> None:
    for text in (payload, base64.b64encode(payload)):
        body = keyword.encode() + b"\0" + text
        base = plain_png(4, 4)
        import_or_card_error(base[:-12] + chunk(b"tEXt", body) + base[-12:], "chunk.png")


JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
CARD_KEYS = [
    "name",
    "first_mes",
    "alternate_greetings",
    "tags",
    "extensions",
    "character_book",
    "nickname",
    "assets",
    "group_only_greetings",
    "creation_date",
    "creator_notes_multilingual",
]
ENTRY = st.dictionaries(
    st.sampled_from(
        ["keys", "content", "enabled", "insertion_order", "id", "secondary_keys", "use_regex", "x"]
    ),
    JSON_VALUES,
    max_size=6,
)
BOOK = st.fixed_dictionaries({"entries": st.lists(ENTRY, max_size=3)}, optional={"name": JSON_VALUES})


@SMALL
@given(
    st.sampled_from(["chara_card_v2", "chara_card_v3"]),
    st.dictionaries(st.sampled_from(CARD_KEYS), JSON_VALUES, max_size=6),
    BOOK | JSON_VALUES,
)
def test_random_card_json_imports_or_fails_plainly_and_round_trips(
    spec: str, fields: dict[str, Any], book: Any
) -> None:
    card = {"spec": spec, "spec_version": "3.0", "data": {**fields, "character_book": book}}
    imported = import_or_card_error(json.dumps(card).encode(), "random.json")
    if imported is None:
        return
    # Whatever was accepted must export and read back to the same card.
    again = import_card(export_json(imported.card, now=NOW), "again.json")
    expected = imported.card
    if expected.spec == "v3":
        expected.modification_date = NOW
    assert again.card == expected
    import_card(export_png(imported.card, None, now=NOW), "again.png")


@pytest.mark.parametrize("depth", [65, 5_000, 200_000])
def test_deeply_nested_json(depth: int) -> None:
    nested = b"[" * depth + b"]" * depth
    card = b'{"spec":"chara_card_v2","data":{"name":"x","extensions":{"deep":' + nested + b"}}}"
    with pytest.raises(CardFormatError, match="nested too deeply"):
        import_card(card, "deep.json")
    png = plain_png(4, 4)
    text = chunk(b"tEXt", b"ccv3\0" + base64.b64encode(card))
    with pytest.raises(CardFormatError, match="nested too deeply"):
        import_card(png[:-12] + text + png[-12:], "deep.png")


@pytest.fixture(params=["libyaml", "python"])
def yaml_loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> type[yaml.SafeLoader]:
    """Each YAML test runs with the C loader Hearth prefers and the pure-Python fallback."""
    if request.param == "libyaml":
        if not yaml.__with_libyaml__:
            pytest.skip("PyYAML was built without libyaml")
        loader: type[yaml.SafeLoader] = yaml.CSafeLoader
    else:
        loader = yaml.SafeLoader
    monkeypatch.setattr(decode, "_YAML_LOADER", loader)
    return loader


@pytest.fixture
def no_yaml_values_built(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail if PyYAML starts building values: the slow part a refusal must come before."""

    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("the YAML was built before it was refused")

    monkeypatch.setattr(yaml.constructor.BaseConstructor, "construct_document", refuse)


def laughs(levels: int) -> bytes:
    lines = ["name: bomb", 'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels + 1):
        lines.append(f"a{level}: &a{level} [{','.join([f'*a{level - 1}'] * 9)}]")
    return "\n".join(lines).encode()


def test_deeply_nested_and_exploding_yaml(yaml_loader: type[yaml.SafeLoader]) -> None:
    with pytest.raises(CardFormatError, match="nested too deeply"):
        import_card(b"name: x\ncontext: " + b"[" * 500 + b"]" * 500, "deep.yaml")
    assert import_card(laughs(2), "small.yaml").card.top_level["a2"][0][0] == ["lol"] * 9


@pytest.mark.usefixtures("no_yaml_values_built")
@pytest.mark.parametrize("levels", [4, 8, 30])
def test_yaml_alias_bombs_are_refused_before_anything_is_built(
    yaml_loader: type[yaml.SafeLoader], levels: int
) -> None:
    with pytest.raises(CardTooLargeError, match="YAML holds more than 20,000 values"):
        import_card(laughs(levels), "bomb.yaml")


@pytest.mark.usefixtures("no_yaml_values_built")
@pytest.mark.parametrize(
    "body",
    [
        "".join(f"k{i}: v{i}\n" for i in range(70_000)),  # 1 MB of small values: seconds to build
        "l: [" + ",".join(str(i) for i in range(150_000)) + "]\n",
        "l:\n" + "".join(f"- {i}\n" for i in range(MAX_YAML_NODES)),
    ],
)
def test_big_yaml_of_small_values_is_refused_before_anything_is_built(
    yaml_loader: type[yaml.SafeLoader], body: str
) -> None:
    data = f"name: x\n{body}".encode()
    assert len(data) <= MAX_YAML_BYTES
    with pytest.raises(CardTooLargeError, match="YAML holds more than 20,000 values.*as JSON or PNG"):
        import_card(data, "big.yaml")


def test_yaml_within_the_limits_still_imports(yaml_loader: type[yaml.SafeLoader]) -> None:
    context = "word " * 150_000  # one big text is quick to read, whatever the loader
    many = "".join(f"k{i}: {i}\n" for i in range(MAX_YAML_NODES // 2 - 10))
    card = import_card(f"name: x\ncontext: {context}\n{many}".encode(), "ok.yaml").card
    assert card.description == context.strip() and card.top_level["k0"] == 0


@pytest.mark.parametrize("text", ["a: &a [1, *a]", "a: *nowhere", "a: &a {b: *a}"])
def test_yaml_aliases_to_nothing_or_to_themselves(yaml_loader: type[yaml.SafeLoader], text: str) -> None:
    with pytest.raises(CardFormatError, match="not valid YAML"):
        import_card(f"name: x\n{text}\n".encode(), "alias.yaml")


def test_hearth_prefers_the_c_yaml_loader() -> None:
    assert decode._YAML_LOADER is (yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader)


@pytest.mark.parametrize("text", ['"\\ud800"', "NaN", "1e999", "1" * 5_000])
def test_json_values_other_apps_cannot_read(text: str) -> None:
    card = '{"spec":"chara_card_v2","data":{"name":"x","extensions":{"v":' + text + "}}}"
    with pytest.raises(CardFormatError):
        import_card(card.encode(), "odd.json")


def test_huge_fields() -> None:
    card = {"spec": "chara_card_v2", "data": {"name": "x", "first_mes": "y" * 1_000_001}}
    with pytest.raises(CardTooLargeError, match="data.first_mes is too long"):
        import_card(json.dumps(card).encode(), "huge.json")
    card = {"spec": "chara_card_v2", "data": {"name": "x", "tags": ["t"] * 1_001}}
    with pytest.raises(CardTooLargeError, match="data.tags has 1,001 items"):
        import_card(json.dumps(card).encode(), "many.json")


def zip_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, payload in members.items():
            archive.writestr(name, payload)
    return buffer.getvalue()


def test_zip_bomb_card_json_is_refused_by_its_declared_size() -> None:
    bomb = zip_of({"card.json": b" " * (MAX_MEMBER_BYTES + 1)})
    assert len(bomb) < 200_000  # a tiny file that would unpack to over 32 MB
    with pytest.raises(CardTooLargeError, match="card.json' in the CHARX archive is 32.0 MB"):
        import_card(bomb, "bomb.charx")


def test_zip_bomb_with_a_lying_size_is_capped_while_reading() -> None:
    archive = bytearray(zip_of({"card.json": b"{" + b" " * 5_000_000 + b"}"}))
    # Claim 10 bytes in both headers: reading must stop, not trust the claim or run on.
    central = archive.index(b"PK\x01\x02")
    struct.pack_into("<I", archive, central + 24, 10)
    struct.pack_into("<I", archive, 22, 10)
    with pytest.raises(CardFormatError):
        import_card(bytes(archive), "liar.charx")


def test_zip_bomb_spread_over_assets_hits_the_archive_limit() -> None:
    count = MAX_ARCHIVE_BYTES // (30 * 1024 * 1024) + 1
    assets = [
        {"type": "x_a", "uri": f"embeded://a{i}.bin", "name": str(i), "ext": "bin"} for i in range(count)
    ]
    card = {"spec": "chara_card_v3", "spec_version": "3.0", "data": {"name": "x", "assets": assets}}
    members = {"card.json": json.dumps(card).encode()}
    members |= {f"a{i}.bin": bytes(30 * 1024 * 1024) for i in range(count)}
    with pytest.raises(CardTooLargeError, match="unpacks to more than 64.0 MB"):
        import_card(zip_of(members), "spread.charx")


def test_zip_with_too_many_members() -> None:
    with pytest.raises(CardTooLargeError, match="the limit is 1,000"):
        import_card(zip_of({f"f{i}": b"" for i in range(1_001)}), "many.charx")


@SMALL
@given(
    st.dictionaries(
        st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), min_size=1, max_size=12)
        | st.sampled_from(["card.json", "../x", "a/b.png", "a\\b", "/abs"]),
        st.binary(max_size=64),
        max_size=4,
    )
)
def test_random_zip_archives(members: dict[str, bytes]) -> None:
    import_or_card_error(zip_of(members), "random.charx")


@SMALL
@given(st.integers(0, 10_000), st.binary(min_size=1, max_size=8))
def test_damaged_zip_bytes(offset: int, noise: bytes) -> None:
    archive = bytearray(
        zip_of({"card.json": json.dumps({"spec": "chara_card_v3", "data": {"name": "z"}}).encode()})
    )
    at = offset % len(archive)
    archive[at : at + len(noise)] = noise
    import_or_card_error(bytes(archive), "damaged.charx")


@SMALL
@given(st.text(max_size=300))
def test_random_text_as_json_or_yaml(text: str) -> None:
    import_or_card_error(text.encode("utf-8", "surrogatepass"), "random.txt")
    import_or_card_error(("name: x\ncontext: " + text).encode("utf-8", "surrogatepass"), "random.yaml")


def test_real_card_fuzz_seed_is_valid(third_party: Path) -> None:
    # The mutation tests start from a valid card; make sure it is one, and so is a real fixture.
    assert import_card(SEED_PNG, "seed.png").card.name == "Fuzz"
    assert import_card((third_party / "cards/contest_Assistant_Gloria.png").read_bytes(), "g.png").card.name
