"""Fuzzing `import_card`: whatever the bytes, it returns a card or raises `CardFormatError`.

Every test keeps its inputs small and its example count bounded, so the file runs in a
few seconds. A hang would show up as a test that never ends; none of the inputs here is
big enough to be slow when handled correctly.
"""

from __future__ import annotations

import base64
import functools
import io
import json
import os
import random
import signal
import struct
import subprocess
import sys
import zipfile
import zlib
from collections.abc import Iterator
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
    AssetFile,
    ImportedCard,
    decode,
    export_charx,
    export_json,
    export_png,
    import_card,
    plain_png,
)
from store.cards.model import MAX_YAML_NODES
from store.errors import CardFormatError, CardTooLargeError

# Seeded: the same examples every run (HEARTH_RELIABILITY_ROUNDS=N runs N times as many).
ROUNDS = max(1, int(os.environ.get("HEARTH_RELIABILITY_ROUNDS") or 1))
FUZZ = settings(
    max_examples=150 * ROUNDS, deadline=None, database=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)  # fmt: skip
SMALL = settings(
    max_examples=60 * ROUNDS, deadline=None, database=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)  # fmt: skip
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
def yaml_built(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bool]]:
    """Whether PyYAML started building values (the slow part a refusal must come before);
    it builds nothing here, as a failure's traceback would print the whole node graph."""
    built: list[bool] = []

    def build_nothing(*_args: Any) -> None:
        built.append(True)

    monkeypatch.setattr(yaml.constructor.BaseConstructor, "construct_document", build_nothing)
    yield built


def laughs(levels: int) -> bytes:
    lines = ["name: bomb", 'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels + 1):
        lines.append(f"a{level}: &a{level} [{','.join([f'*a{level - 1}'] * 9)}]")
    return "\n".join(lines).encode()


def test_deeply_nested_and_exploding_yaml(yaml_loader: type[yaml.SafeLoader]) -> None:
    with pytest.raises(CardFormatError, match="nested too deeply"):
        import_card(b"name: x\ncontext: " + b"[" * 500 + b"]" * 500, "deep.yaml")
    assert import_card(laughs(2), "small.yaml").card.top_level["a2"][0][0] == ["lol"] * 9


@pytest.mark.parametrize("levels", [4, 8, 30])
def test_yaml_alias_bombs_are_refused_before_anything_is_built(
    yaml_loader: type[yaml.SafeLoader], yaml_built: list[bool], levels: int
) -> None:
    with pytest.raises(CardFormatError) as refused:
        import_card(laughs(levels), "bomb.yaml")
    assert "YAML holds more than 20,000 values" in str(refused.value) and not yaml_built


@pytest.mark.parametrize(
    "body",
    [
        "".join(f"k{i}: v{i}\n" for i in range(70_000)),  # 1 MB of small values: seconds to build
        "l: [" + ",".join(str(i) for i in range(150_000)) + "]\n",
        "l:\n" + "".join(f"- {i}\n" for i in range(MAX_YAML_NODES)),
    ],
)
def test_big_yaml_of_small_values_is_refused_before_anything_is_built(
    yaml_loader: type[yaml.SafeLoader], yaml_built: list[bool], body: str
) -> None:
    data = f"name: x\n{body}".encode()
    assert len(data) <= MAX_YAML_BYTES
    with pytest.raises(CardTooLargeError, match="YAML holds more than 20,000 values.*as JSON or PNG"):
        import_card(data, "big.yaml")
    assert not yaml_built


def test_yaml_within_the_limits_still_imports(yaml_loader: type[yaml.SafeLoader]) -> None:
    context = "word " * 10_000
    many = "".join(f"k{i}: {i}\n" for i in range(2_000))
    card = import_card(f"name: x\ncontext: {context}\n{many}".encode(), "ok.yaml").card
    assert card.description == context.strip() and card.top_level["k0"] == 0


@pytest.mark.parametrize("text", ["a: &a [1, *a]", "a: *nowhere", "a: &a {b: *a}"])
def test_yaml_aliases_to_nothing_or_to_themselves(yaml_loader: type[yaml.SafeLoader], text: str) -> None:
    with pytest.raises(CardFormatError, match="not valid YAML"):
        import_card(f"name: x\n{text}\n".encode(), "alias.yaml")


@pytest.mark.parametrize(
    "value", ["!!timestamp hello", "!!timestamp 2001-13-45", "!!int x", "!!float y", "!!binary ?", "!!set 1"]
)
def test_yaml_tags_on_values_they_do_not_fit(yaml_loader: type[yaml.SafeLoader], value: str) -> None:
    with pytest.raises(CardFormatError, match="not valid YAML"):
        import_card(f"name: x\ncontext: {value}\n".encode(), "tagged.yaml")


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


# -- mutation fuzzing in a bounded child process ------------------------------------------------
# Real card files of every kind, mutated with a seeded generator: bytes flipped, cut, doubled
# or spliced, PNG chunks changed with their CRC fixed, JSON values swapped for hostile ones
# inside a chunk or a CHARX, YAML given anchors and aliases. Every case must import or fail
# with `CardFormatError`, and an imported card must export and import again. It runs in a
# child process under a memory limit, each case under an alarm, so a blowup or a hang fails
# the test instead of the machine. HEARTH_RELIABILITY_ROUNDS=N runs N times as many cases;
# HEARTH_RELIABILITY_SEED picks other ones; a failure names its case for `mutation_case`.

FUZZ_CASES = 3_000 * ROUNDS
FUZZ_SEED = int(os.environ.get("HEARTH_RELIABILITY_SEED") or 20_260_801)
FUZZ_MEMORY = 3 * 1024**3  # bytes of address space the child may map
CASE_ALARM = 60  # seconds; a case a thousand times slower than the others is a hang
HOSTILE_JSON: list[Any] = [
    None, True, False, -1, 0, 10**30, 2**63, 1.5, -0.0, "", "x" * 5_000, "{{user}}{{char}}", "<START>",
    "{{random::a,b}}", "/(a+)+$/", "@@depth 0", "\u202e\ufeff", "NaN", "4abc", [], [None, 1, "a"], ["", ""],
    [["nested"]], {}, {"a": {"b": []}}, {"prompt": 1, "depth": "x"},
]  # fmt: skip
YAML_SNIPPETS = [
    "&a ", "*a", "<<: *a\n", "!!binary aGk=", "!!python/object:os.system\n", "? [a]\n: b\n", "- ", ": ",
    "{", "[", "'", '"', "|\n", ">-\n", "%YAML 1.1\n---\n", "\t", "!!timestamp 2001-12-14", "~", "1e999",
]  # fmt: skip


@functools.cache
def fuzz_seed_files() -> tuple[tuple[str, bytes], ...]:
    """One file of each kind Hearth reads, each holding a lorebook, assets and extensions."""
    rich = {
        "spec": "chara_card_v3",
        "spec_version": "3.0",
        "data": {
            "name": "Seed", "first_mes": "Hi {{user}}", "alternate_greetings": ["Hey"], "tags": ["t"],
            "extensions": {"depth_prompt": {"prompt": "note", "depth": 2, "role": "user"}, "x": [1]},
            "character_book": {"extensions": {}, "entries": [
                {"keys": ["k"], "content": "c", "id": 0, "extensions": {"position": 4, "depth": 1}},
            ]},
            "assets": [
                {"type": "icon", "uri": "embeded://assets/icon/main.png", "name": "main", "ext": "png"},
                {"type": "x_data", "uri": "__asset:0", "name": "blob", "ext": "bin"},
            ],
        },
    }  # fmt: skip
    imported = import_card(json.dumps(rich).encode(), "seed.json")
    card, avatar = imported.card, plain_png(6, 6)
    files = [AssetFile("asset-000", "__asset:0", "bin", b"\x00asset-bytes")]
    yaml_card = "name: Seed\ncontext: &c A keeper.\ngreeting: Hi\nexample_dialogue: *c\nlist: [1, 2]\n"
    return (
        ("seed.png", export_png(card, avatar, asset_files=files, now=NOW)),
        ("seed.json", export_json(card, now=NOW)),
        ("seed.v2.json", export_json(card, "v2", now=NOW)),
        ("seed.charx", export_charx(card, avatar, files, now=NOW)),
        ("seed.yaml", yaml_card.encode()),
        ("small.png", SEED_PNG),
    )


def mutation_case(seed: int, index: int) -> tuple[str, bytes]:
    """Case `index` of a fuzz run: a seed file with one to four seeded mutations."""
    rng = random.Random(f"{seed}-{index}")
    name, data = rng.choice(fuzz_seed_files())
    for _ in range(rng.choice([1, 1, 1, 2, 3, 4])):
        data = _mutate(rng, name, data)
    return name, data


# How often each mutation is picked, by kind of file: mostly ones that keep the file
# readable enough to reach the card inside (byte noise alone stops at the first check).
_MUTATIONS = {
    "png": ["flip", "cut", "double", "splice", "insert"] + ["chunk"] * 3 + ["card_json"] * 4,
    "charx": ["flip", "cut", "zip_bytes", "splice"] + ["member_json"] * 5,
    "json": ["text", "text", "cut", "double"] + ["json"] * 5,
    "yaml": ["text", "text", "cut", "double"] + ["yaml"] * 4,
}
_TEXT_NOISE = '{}[]:,"\\ \n\t-#&*!|>?0123456789aeiouxyzé€😀'


def _mutate(rng: random.Random, name: str, data: bytes) -> bytes:
    kind = rng.choice(_MUTATIONS[name.rsplit(".", 1)[-1]])
    out = bytearray(data)
    if not out or kind == "insert":
        at = rng.randint(0, len(out))
        out[at:at] = rng.randbytes(rng.randint(1, 16))
    elif kind == "flip":
        for _ in range(rng.randint(1, 8)):
            out[rng.randrange(len(out))] ^= rng.randint(1, 255)
    elif kind == "text":
        text = list(out.decode("utf-8", "replace"))
        for _ in range(rng.randint(1, 8)):
            text[rng.randrange(len(text))] = rng.choice(_TEXT_NOISE)
        out = bytearray("".join(text).encode())
    elif kind == "cut":
        start = rng.randrange(len(out))
        del out[start : start + rng.randint(1, max(1, len(out) // 4))]
    elif kind == "double":
        start = rng.randrange(len(out))
        end = min(len(out), start + rng.randint(1, 256))
        out[end:end] = out[start:end] * rng.randint(1, 20)
    elif kind == "splice":
        other = rng.choice(fuzz_seed_files())[1]
        out = out[: rng.randint(0, len(out))] + other[rng.randint(0, len(other)) :]
    elif kind == "chunk":
        out = bytearray(_mutate_chunk(rng, bytes(out)))
    elif kind == "card_json":
        out = bytearray(_with_card_chunk(rng, bytes(out)))
    elif kind == "member_json":
        out = bytearray(_with_member_json(rng, bytes(out)))
    elif kind == "zip_bytes":
        at = rng.randrange(len(out))
        out[at : at + 4] = rng.choice([b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", rng.randbytes(4)])
    elif kind == "json":
        out = bytearray(_mutated_json(rng, bytes(out)))
    else:
        text = out.decode("utf-8", "replace")
        at = rng.randint(0, len(text))
        out = bytearray((text[:at] + rng.choice(YAML_SNIPPETS) + text[at:]).encode())
    return bytes(out)


def _mutate_chunk(rng: random.Random, png: bytes) -> bytes:
    out = bytearray(png)
    spans = [(start, end) for start, end in chunk_spans(png) if end <= len(png)]
    if not spans:
        return png
    start, end = rng.choice(spans)
    action = rng.choice(["flip_keep_crc", "length", "drop", "duplicate", "swap"])
    if action == "flip_keep_crc" and end - start > 12:
        out[rng.randrange(start + 8, end - 4)] ^= rng.randint(1, 255)
        refresh_crc(out, start, end)
    elif action == "length":
        out[start : start + 4] = struct.pack(">I", rng.choice([0, 1, 2**31 - 1, 2**32 - 1, end - start]))
    elif action == "drop":
        del out[start:end]
    elif action == "duplicate":
        out[end:end] = out[start:end]
    else:  # swap two chunks
        (a, b), (c, d) = sorted([(start, end), rng.choice(spans)])
        if b <= c:
            out = out[:a] + out[c:d] + out[b:c] + out[a:b] + out[d:]
    return bytes(out)


def _hostile_json(rng: random.Random, value: Any, depth: int = 0) -> Any:
    """`value` with one of its parts (or itself) replaced, removed or nested deeper."""
    if isinstance(value, dict) and value and depth < 8 and rng.random() < 0.8:
        into_data = depth == 0 and isinstance(value.get("data"), dict) and rng.random() < 0.9
        key = "data" if into_data else rng.choice(sorted(value))  # the card, more than its wrapper
        out = dict(value)
        if rng.random() < 0.15:
            del out[key]
        else:
            out[key] = _hostile_json(rng, value[key], depth + 1)
        return out
    if isinstance(value, list) and value and depth < 8 and rng.random() < 0.8:
        at = rng.randrange(len(value))
        return [*value[:at], _hostile_json(rng, value[at], depth + 1), *value[at + 1 :]]
    if rng.random() < 0.6:  # a value of the same type: it gets past the type checks, deeper in
        same = [v for v in HOSTILE_JSON if type(v) is type(value) and v != value]
        if same:
            return rng.choice(same)
    return rng.choice([*HOSTILE_JSON, [value] * rng.randint(1, 3), {"k": value}])


def _mutated_json(rng: random.Random, raw: bytes) -> bytes:
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    return json.dumps(_hostile_json(rng, value)).encode()


def _with_card_chunk(rng: random.Random, png: bytes) -> bytes:
    """The PNG with a card chunk's JSON changed and re-encoded (CRC fixed), so it parses."""
    out = bytearray()
    for start, end in chunk_spans(png):
        if end > len(png):
            return png
        body = png[start + 8 : end - 4]
        keyword, sep, payload = body.partition(b"\0")
        is_card = png[start + 4 : start + 8] == b"tEXt" and sep and keyword in (b"chara", b"ccv3")
        if is_card and rng.random() < 0.7:
            try:
                card = json.loads(base64.b64decode(payload))
            except ValueError:
                card = None
            if card is not None:
                body = keyword + b"\0" + base64.b64encode(json.dumps(_hostile_json(rng, card)).encode())
                out += chunk(b"tEXt", body)
                continue
        out += png[start:end]
    return png[:8] + bytes(out)


def _with_member_json(rng: random.Random, archive: bytes) -> bytes:
    try:
        with zipfile.ZipFile(io.BytesIO(archive)) as source:
            members = {info.filename: source.read(info) for info in source.infolist()}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, zlib.error, NotImplementedError):
        return archive
    if "card.json" in members:
        members["card.json"] = _mutated_json(rng, members["card.json"])
    if rng.random() < 0.1:
        odd_names = ["../x", "a/../../b", "/abs", "C:\\x", "card.json/", "assets/icon/images/main.png"]
        members[rng.choice(odd_names)] = b"\x89PNG"
    return zip_of(members)


def fuzz_cards(seed: int, count: int) -> list[str]:
    """Run `count` cases; the failures, each naming its case. Run in a child process."""

    def hang(_signum: int, _frame: Any) -> None:
        raise TimeoutError(f"no answer in {CASE_ALARM} s")

    signal.signal(signal.SIGALRM, hang)
    failures = []
    for index in range(count):
        name, data = mutation_case(seed, index)
        signal.alarm(CASE_ALARM)
        try:
            _import_and_export(data, name)
        except Exception as err:  # noqa: BLE001 - the property is "nothing but CardFormatError"
            failures.append(f"mutation_case({seed}, {index}) [{name}]: {type(err).__name__}: {err}"[:400])
        finally:
            signal.alarm(0)
    return failures


def _import_and_export(data: bytes, name: str) -> None:
    try:
        imported = import_card(data, name)
    except CardFormatError as err:
        assert str(err).startswith("Could not import"), str(err)
        return
    card, avatar, files = imported.card, imported.avatar_png, imported.asset_files
    again = import_card(export_json(card, now=NOW), "again.json")
    assert again.card.name == card.name
    import_card(export_png(card, avatar, asset_files=files, now=NOW), "again.png")
    import_card(export_charx(card, avatar, files, now=NOW), "again.charx")


def test_mutated_card_files_import_or_fail_plainly_in_bounded_memory_and_time() -> None:
    here = Path(__file__).resolve().parent
    script = (
        "import json, resource, sys\n"
        f"resource.setrlimit(resource.RLIMIT_AS, ({FUZZ_MEMORY}, {FUZZ_MEMORY}))\n"
        f"sys.path[:0] = [{str(here)!r}, {str(here.parent)!r}]\n"
        "import test_cards_fuzz\n"
        f"print(json.dumps(test_cards_fuzz.fuzz_cards({FUZZ_SEED}, {FUZZ_CASES})))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=3_600)
    assert done.returncode == 0, done.stderr[-3000:]  # a MemoryError or a crash ends up here
    failures = json.loads(done.stdout.strip().splitlines()[-1])
    assert failures == [], "\n".join(failures[:20])


def test_the_mutations_are_reproducible() -> None:
    assert [mutation_case(7, i) for i in range(30)] == [mutation_case(7, i) for i in range(30)]
    names = {name for name, _data in (mutation_case(7, i) for i in range(200))}
    assert names == {name for name, _data in fuzz_seed_files()}  # every kind of file is fuzzed
