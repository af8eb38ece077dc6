"""The guide's catalog: every recommended model present, strict validation, matching files back."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from catalog.entries import CATALOG_PATH, GROUPS, file_base, load_catalog, parse_catalog
from catalog.errors import CatalogDataError, CatalogError
from presets.formats import load_builtin_formats

# Every model the guide recommends, at every size it links, by entry id.
GUIDE_MODELS = {
    "assistant": [
        "nous-hermes-l2-7b",
        "nous-hermes-l2-13b",
        "nous-hermes-l2-70b",
        "rwkv-4-raven-1.5b",
        "rwkv-4-raven-3b",
        "rwkv-4-raven-7b",
        "rwkv-4-raven-14b",
        "lamini-flan-t5-783m",
    ],
    "roleplay_story": [
        "mythomax-l2-13b",
        "zarablend-l2-7b",
        "airoboros-l2-7b",
        "airoboros-l2-13b",
        "airoboros-33b",
        "airoboros-l2-70b",
        "airochronos-33b",
        "holodeck-l2-13b",
        "holomax-l2-13b",
    ],
    "adventure": ["spring-dragon-13b", "ai-dungeon-classic"],
}


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


@pytest.fixture
def raw() -> dict[str, Any]:
    return json.loads(CATALOG_PATH.read_text(encoding="utf-8"))


def entry_raw(raw: dict[str, Any], entry_id: str) -> dict[str, Any]:
    return next(e for e in raw["entries"] if e["id"] == entry_id)


def test_every_guide_model_is_present_in_its_group_in_the_guides_order(catalog) -> None:
    for group_id, expected in GUIDE_MODELS.items():
        ids = [e.id for e in catalog if e.group == group_id and not e.bundled]
        assert ids == expected
    titles = [title for _, title, _ in catalog.grouped()]
    assert titles == ["Assistant", "Roleplay and Storywriting", "Adventure"]


def test_sizes_parameters_and_kv_facts_match_the_guide(catalog) -> None:
    assert catalog.get("nous-hermes-l2-7b").parameters == 7e9
    assert catalog.get("nous-hermes-l2-70b").parameters == 70e9
    assert [catalog.get(f"rwkv-4-raven-{s}").parameters for s in ("1.5b", "3b", "7b", "14b")] == [
        1.5e9,
        3e9,
        7e9,
        14e9,
    ]
    l2_13b = catalog.get("mythomax-l2-13b").kv
    assert (l2_13b.n_layer, l2_13b.n_embd, l2_13b.n_head, l2_13b.n_head_kv) == (40, 5120, 40, 40)
    l2_70b = catalog.get("airoboros-l2-70b").kv
    assert (l2_70b.n_layer, l2_70b.n_head, l2_70b.n_head_kv, l2_70b.head_dim) == (80, 64, 8, 128)
    llama1_33b = catalog.get("airochronos-33b")
    assert (llama1_33b.kv.n_layer, llama1_33b.kv.n_embd, llama1_33b.kv.n_head) == (60, 6656, 52)
    assert llama1_33b.context_length == 2048


def test_runnable_entries_name_a_gguf_repo_and_a_q4_k_m_file(catalog) -> None:
    for entry in catalog:
        if not entry.runnable or entry.bundled:
            continue
        assert entry.gguf_repo and entry.gguf_repo.endswith("GGUF"), entry.id
        assert entry.recommended is not None and entry.recommended.quant == "Q4_K_M", entry.id
        assert entry.recommended.size_gb and entry.recommended.size_gb > 0, entry.id
        assert entry.guide_repo and entry.guide_link.startswith("https://huggingface.co/"), entry.id
    assert catalog.get("mythomax-l2-13b").recommended_file == "mythomax-l2-13b.Q4_K_M.gguf"


def test_unrunnable_entries_explain_why_and_point_at_a_runnable_alternative(catalog) -> None:
    unrunnable = {e.id for e in catalog if not e.runnable}
    assert unrunnable == {
        "rwkv-4-raven-1.5b",
        "rwkv-4-raven-3b",
        "rwkv-4-raven-7b",
        "rwkv-4-raven-14b",
        "lamini-flan-t5-783m",
        "ai-dungeon-classic",
    }
    for entry_id in unrunnable:
        entry = catalog.get(entry_id)
        assert entry.gguf_repo is None and entry.recommended is None
        assert entry.why_not and len(entry.why_not.split()) > 10
        assert catalog.get(entry.alternative).runnable
    assert "RWKV-6" in catalog.get("rwkv-4-raven-7b").why_not
    assert "encoder-decoder" in catalog.get("lamini-flan-t5-783m").why_not
    assert catalog.get("ai-dungeon-classic").alternative == "spring-dragon-13b"


def test_formats_and_tabs_follow_the_guide(catalog) -> None:
    formats = load_builtin_formats()
    assert all(e.format_id in formats for e in catalog)
    assert catalog.get("mythomax-l2-13b").format_id == "alpaca"
    assert catalog.get("airoboros-l2-13b").format_id == "vicuna-1.1"
    assert catalog.get("holodeck-l2-13b").format_id == "plain"
    assert catalog.get("holodeck-l2-13b").default_tab == "story"
    assert catalog.get("spring-dragon-13b").default_tab == "adventure"
    assert catalog.get("nous-hermes-l2-13b").default_tab == "chat"


def test_the_bundled_model_is_one_assistant_entry(catalog) -> None:
    bundled = [e for e in catalog if e.bundled]
    assert [e.id for e in bundled] == ["gemma-3-270m"]
    assert bundled[0].group == "assistant" and bundled[0].runnable
    assert bundled[0].kv.head_dim == 256  # not 640 / 4: Gemma 3 states its key length


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("mythomax-l2-13b.Q4_K_M.gguf", "mythomax-l2-13b"),
        ("mythomax-l2-13b.Q8_0.gguf", "mythomax-l2-13b"),
        ("TheBloke/MythoMax-L2-13B-GGUF", "mythomax-l2-13b"),
        ("https://huggingface.co/TheBloke/Spring-Dragon-GGML", "spring-dragon-13b"),
        (
            "/home/me/models/TheBloke/Nous-Hermes-Llama2-GGUF/nous-hermes-llama2-13b.Q5_K_M.gguf",
            "nous-hermes-l2-13b",
        ),
        ("nous-hermes-llama-2-7b.Q4_K_M.gguf", "nous-hermes-l2-7b"),
        ("nous-hermes-llama2-70b.Q2_K.gguf", "nous-hermes-l2-70b"),
        ("airoboros-l2-70b-gpt4-1.4.1.Q6_K-00001-of-00002.gguf", "airoboros-l2-70b"),
        ("airoboros-33b-gpt4-1.4.Q4_K_M.gguf", "airoboros-33b"),
        ("airochronos-33b.Q4_K_M.gguf", "airochronos-33b"),
        ("LLaMA2-13B-Holomax.i1-Q4_K_M.gguf", "holomax-l2-13b"),
        ("LLAMA2-13B-Holodeck-1.Q4_K_M.gguf", "holodeck-l2-13b"),
        ("mythomax-l2-13b.ggmlv3.q4_K_M.bin", "mythomax-l2-13b"),
        ("AI-Dungeon-2-Classic.bin", "ai-dungeon-classic"),
        ("gemma-3-270m-q4_k_m.gguf", "gemma-3-270m"),
        ("gemma-3-270m-it-Q4_K_M.gguf", None),  # an instruct model is not the bundled base model
        ("tiny-llama.gguf", None),
    ],
)
def test_match_finds_the_entry_for_real_file_names(catalog, name: str, expected: str | None) -> None:
    entry = catalog.match(name)
    assert (entry.id if entry else None) == expected


def test_file_base_strips_quant_and_split_suffixes() -> None:
    assert file_base("mythomax-l2-13b.Q4_K_M.gguf") == "mythomax-l2-13b"
    assert file_base("x-Q4_K_M-00002-of-00003.gguf") == "x"
    assert file_base("LLaMA2-13B-Holomax.i1-IQ3_XS.gguf") == "llama2-13b-holomax"


def test_get_unknown_entry_is_a_plain_error(catalog) -> None:
    with pytest.raises(CatalogError, match="no model called 'nope'"):
        catalog.get("nope")
    assert catalog.find("nope") is None


def mutated(raw: dict[str, Any], entry_id: str, **changes: Any) -> dict[str, Any]:
    result = copy.deepcopy(raw)
    target = entry_raw(result, entry_id)
    for key, value in changes.items():
        if value is DELETE:
            del target[key]
        else:
            target[key] = value
    return result


DELETE = object()


@pytest.mark.parametrize(
    ("entry_id", "changes", "message"),
    [
        ("mythomax-l2-13b", {"colour": "blue"}, r"'mythomax-l2-13b', field 'colour': is not a known field"),
        ("mythomax-l2-13b", {"notes": DELETE}, r"'mythomax-l2-13b', field 'notes': is missing"),
        ("mythomax-l2-13b", {"parameters": "13B"}, r"field 'parameters': has the wrong type \(str\)"),
        ("mythomax-l2-13b", {"runnable": 1}, r"field 'runnable': has the wrong type"),
        ("mythomax-l2-13b", {"context_length": True}, r"field 'context_length': has the wrong type"),
        (
            "mythomax-l2-13b",
            {"format": "chatml-9"},
            r"field 'format': 'chatml-9' is not a known prompt format",
        ),
        ("mythomax-l2-13b", {"group": "horror"}, r"field 'group': 'horror' is not a guide section"),
        ("mythomax-l2-13b", {"default_tab": "notebook"}, r"field 'default_tab'"),
        ("mythomax-l2-13b", {"recommended_file": "other.Q4_K_M.gguf"}, r"field 'recommended_file'"),
        ("mythomax-l2-13b", {"gguf_repo": "../../etc"}, r"field 'gguf_repo'"),
        ("mythomax-l2-13b", {"why_not": "no reason"}, r"field 'why_not'"),
        ("ai-dungeon-classic", {"why_not": DELETE}, r"'ai-dungeon-classic', field 'why_not'"),
        ("ai-dungeon-classic", {"alternative": "missing-model"}, r"field 'alternative': 'missing-model'"),
        ("ai-dungeon-classic", {"alternative": "rwkv-4-raven-3b"}, r"is not a runnable entry"),
        ("mythomax-l2-13b", {"id": "nous-hermes-l2-7b"}, r"field 'id': is used by two entries"),
        ("mythomax-l2-13b", {"kv": {"n_layer": 40}}, r"field 'kv.n_embd': is missing"),
        ("mythomax-l2-13b", {"name_patterns": ["(unclosed"]}, r"field 'name_patterns'"),
        (
            "mythomax-l2-13b",
            {"quants": [{"quant": "Q4_K_M", "file": "../x.gguf", "size_gb": 1}]},
            r"quants.file",
        ),
    ],
)
def test_broken_catalog_data_is_rejected_naming_the_problem(
    raw: dict[str, Any], entry_id: str, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(CatalogDataError, match=message):
        parse_catalog(mutated(raw, entry_id, **changes), source="models.json")


def test_broken_catalog_files_are_rejected(tmp_path: Path, raw: dict[str, Any]) -> None:
    bad_json = tmp_path / "models.json"
    bad_json.write_text("{not json", encoding="utf-8")
    with pytest.raises(CatalogDataError, match="not valid JSON"):
        load_catalog(bad_json)
    raw["schema_version"] = 2
    bad_json.write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(CatalogDataError, match="schema_version 2 is not supported"):
        load_catalog(bad_json)
    with pytest.raises(CatalogDataError, match="Could not read"):
        load_catalog(tmp_path / "missing.json")


def test_groups_cover_every_entry(catalog) -> None:
    grouped = [e.id for _, _, entries in catalog.grouped() for e in entries]
    assert sorted(grouped) == sorted(e.id for e in catalog)
    assert set(GROUPS) == {e.group for e in catalog}
