"""What the catalog adds to a legacy file: its entry, the GGUF alternative, better suggestions."""

from __future__ import annotations

from pathlib import Path

import pytest
from gguf import GGMLQuantizationType as T

from catalog.entries import Catalog, load_catalog
from catalog.ggml import (
    default_output_name,
    gguf_alternative,
    inspect_legacy,
    options_for,
    refusal_message,
    suggest_options,
)
from ggml_writer import write_gpt2, write_gptj, write_llama, write_rwkv


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


@pytest.mark.parametrize(
    ("file_name", "alternative", "words"),
    [
        (
            "rwkv-4-raven-7b-v12-q5_1.bin",
            "nous-hermes-l2-7b",
            "closest runnable model is Nous-Hermes Llama 2 7B (TheBloke/Nous-Hermes-Llama-2-7B-GGUF)",
        ),
        (
            "rwkv-4-raven-1b5-q5_1.bin",
            "gemma-3-270m",
            "closest runnable model is Gemma 3 270M (bundled), which ships",
        ),
    ],
)
def test_rwkv_files_point_at_the_catalogs_alternative(
    tmp_path: Path, catalog: Catalog, file_name: str, alternative: str, words: str
) -> None:
    model = inspect_legacy(write_rwkv(tmp_path / file_name))
    found = gguf_alternative(catalog, model)
    assert found is not None and found.id == alternative
    message = refusal_message(catalog, model)
    assert message.startswith(model.explanation) and words in message


def test_old_quant_of_a_catalog_model_points_at_its_own_gguf(tmp_path: Path, catalog: Catalog) -> None:
    path = write_llama(tmp_path / "airoboros-33b-gpt4-1.4.ggmlv3.q4_0.bin", container="GGJT", version=1)
    model = inspect_legacy(path)
    assert not model.convertible
    assert refusal_message(catalog, model).endswith(
        "The catalog has this model as GGUF: Airoboros 33B (LLaMA 1) "
        "(TheBloke/airoboros-33B-gpt4-1.4-GGUF) under Models → Recommended."
    )


def test_gpt2_is_explained_with_spring_dragon_once(tmp_path: Path, catalog: Catalog) -> None:
    # write_gpt2's token list is not GPT-2's, so its merge rules cannot be rebuilt and the
    # file is refused; the AI Dungeon entry points at Spring Dragon, and the message names it once.
    for name in ("AI-Dungeon-2-Classic.bin", "aid2-q4_0.bin"):
        model = inspect_legacy(write_gpt2(tmp_path / name))
        found = gguf_alternative(catalog, model)
        assert found is not None and found.id == "spring-dragon-13b"
        message = refusal_message(catalog, model)
        assert message == model.explanation and message.count("TheBloke/Spring-Dragon-GGUF") == 1


def test_no_alternative_without_a_match(tmp_path: Path, catalog: Catalog, tiny_gguf: Path) -> None:
    model = inspect_legacy(write_gptj(tmp_path / "gpt-j-6b-q4_0.bin"))
    assert gguf_alternative(catalog, model) is None
    assert refusal_message(catalog, model) == model.explanation
    assert gguf_alternative(catalog, inspect_legacy(tiny_gguf)) is None  # a GGUF needs no alternative
    assert gguf_alternative(None, model) is None


def test_options_from_the_catalog_entry(tmp_path: Path, catalog: Catalog) -> None:
    spring = inspect_legacy(write_llama(tmp_path / "spring-dragon.ggmlv3.q4_0.bin", weight_type=T.Q4_0))
    options = options_for(spring, catalog)
    # The catalog says 2048 tokens and the plain transcript (the tiny file's GQA says Llama 2).
    assert (options.name, options.context_length, options.prompt_format_id) == (
        "Spring-Dragon",
        2048,
        "plain",
    )
    assert options.notes[-2:] == (
        "2,048-token context: what the catalog says Spring Dragon 13B was trained on.",
        "Prompt format plain: the catalog's recommendation for Spring Dragon 13B.",
    )
    unknown = inspect_legacy(write_llama(tmp_path / "some-13b.ggmlv3.q4_0.bin", weight_type=T.Q4_0))
    assert options_for(unknown, catalog) == suggest_options(unknown, None)


@pytest.mark.parametrize(
    ("file_name", "output"),
    [
        ("mythomax-l2-13b.ggmlv3.q4_K_M.bin", "mythomax-l2-13b.q4_K_M.gguf"),
        ("llama-7b.ggmlv3.gguf", "llama-7b.gguf"),
        ("CON.bin", "converted-CON.gguf"),
        ("ünïcode mödel.bin", "n-code-m-del.gguf"),
        ("...bin", "converted.gguf"),
        ("x" * 200 + ".bin", "x" * 150 + ".gguf"),
    ],
)
def test_output_names_are_safe(tmp_path: Path, file_name: str, output: str) -> None:
    model = inspect_legacy(write_llama(tmp_path / file_name))
    assert default_output_name(model) == output
