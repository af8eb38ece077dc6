"""Format detection: catalog entry, then chat template, then name, then the plain transcript."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from catalog.detect import best_template_match, detect_model_format
from catalog.entries import load_catalog
from engine.gguf import model_info
from hang_guard import returns
from presets.formats import load_builtin_formats
from presets.jinja_format import GGUF_TEMPLATE_ID
from tiny_model import write_tiny_llama

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
LLAMA2_MARKERS = "[INST] <<SYS>>\n{{ system }}\n<</SYS>>\n\n{{ user }} [/INST]"
ZEPHYR = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + eos_token + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)


@pytest.fixture(scope="module")
def formats():
    return load_builtin_formats()


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def test_catalog_entry_comes_first(formats, catalog) -> None:
    # Even a ChatML template loses to the catalog's word for a model it knows.
    found = detect_model_format(
        formats, catalog=catalog, file_name="mythomax-l2-13b.Q4_K_M.gguf", chat_template=CHATML
    )
    assert (found.format_id, found.catalog_id, found.default_tab) == ("alpaca", "mythomax-l2-13b", "chat")
    assert "MythoMax L2 13B" in found.reason and found.format is formats["alpaca"]


def test_catalog_gives_the_default_tab(formats, catalog) -> None:
    holodeck = detect_model_format(formats, catalog=catalog, file_name="LLAMA2-13B-Holodeck-1.Q4_K_M.gguf")
    assert (holodeck.format_id, holodeck.default_tab) == ("plain", "story")
    dragon = detect_model_format(formats, catalog=catalog, file_name="TheBloke/Spring-Dragon-GGUF")
    assert dragon.default_tab == "adventure"
    airo = detect_model_format(formats, catalog=catalog, file_name="airoboros-l2-13b-gpt4-1.4.1.Q4_K_M.gguf")
    assert airo.format_id == "vicuna-1.1"


def test_known_template_matches_a_builtin_format(formats, catalog) -> None:
    found = detect_model_format(formats, catalog=catalog, file_name="some-model.gguf", chat_template=CHATML)
    assert found.format_id == "chatml" and found.reason == "matched the model's chat template"
    assert found.catalog_id is None and found.default_tab == "chat" and not found.derived


def test_a_template_that_writes_other_bytes_than_its_markers_format_keeps_its_own(formats) -> None:
    """A ChatML-marked template with no reply prompt is not ChatML: its own format wins."""
    bare = CHATML.split("{% if")[0]
    found = detect_model_format(formats, file_name="some-model.gguf", chat_template=bare)
    assert found.format_id == GGUF_TEMPLATE_ID and found.format.generation_prompt == ""


def test_the_most_specific_template_match_wins(formats, third_party: Path) -> None:
    # A Llama-2 template holds Mistral's markers too; Llama-2's own wraps make it the better match.
    assert best_template_match(formats, LLAMA2_MARKERS).id == "llama-2-chat"
    llama2 = yaml.safe_load((third_party / "yaml" / "Llama-v2.yaml").read_text())["instruction_template"]
    assert best_template_match(formats, llama2).id == "llama-2-chat"
    mistral = yaml.safe_load((third_party / "yaml" / "Mistral.yaml").read_text())["instruction_template"]
    assert best_template_match(formats, mistral).id == "mistral-instruct"
    assert best_template_match(formats, "no markers here") is None


def test_unknown_template_is_derived(formats) -> None:
    found = detect_model_format(formats, file_name="zephyr.gguf", chat_template=ZEPHYR, eos_token="</s>")
    assert found.derived and found.format_id == GGUF_TEMPLATE_ID
    assert found.format.user.prefix == "<|user|>\n" and "exactly" in found.reason


def test_unusable_template_falls_back_to_the_name(formats) -> None:
    broken = "{% for m in messages %}{{ loop.index }}. {{ m.content }}{% endfor %}"
    found = detect_model_format(formats, file_name="vicuna-13b.Q4_K_M.gguf", chat_template=broken)
    assert found.format_id == "vicuna-1.1"
    assert found.reason.startswith("guessed from the model's name") and "could not be used" in found.reason
    plain = detect_model_format(formats, file_name="mystery.gguf", chat_template=broken)
    assert plain.format_id == "plain" and "could not be used" in plain.reason


@pytest.mark.parametrize(
    ("template", "limit"),
    [
        ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "steps of work"),
        ("{{ 'a' * 1500000000 }}", "1,500,000,000 long"),
        ("{% if true %}" * 3000 + "x" + "{% endif %}" * 3000, "too deeply"),
        ("{{ ([0] * 100000) * 100000 }}", "10,000,000,000 long"),
    ],
)
def test_a_template_over_its_budget_leaves_the_name_to_decide(formats, template: str, limit: str) -> None:
    found = returns(
        lambda: detect_model_format(formats, file_name="vicuna-13b.Q4_K_M.gguf", chat_template=template)
    )
    assert found.format_id == "vicuna-1.1" and found.reason.startswith("guessed from the model's name")
    assert "could not be used" in found.reason and limit in found.reason  # shown in the Models tab
    # Detection keeps working right after.
    again = detect_model_format(formats, file_name="zephyr.gguf", chat_template=ZEPHYR, eos_token="</s>")
    assert again.derived and again.format.user.prefix == "<|user|>\n"


def test_name_heuristics_then_plain(formats) -> None:
    assert detect_model_format(formats, file_name="qwen2-7b-instruct-q4_k_m.gguf").format_id == "chatml"
    assert detect_model_format(formats, model_name="Meta Llama-3 8B").format_id == "llama-3"
    plain = detect_model_format(formats, file_name="tiny.gguf")
    assert plain.format_id == "plain" and plain.reason == "no chat template, so a plain transcript"


def test_without_a_catalog_steps_two_to_four_still_work(formats) -> None:
    found = detect_model_format(formats, file_name="mythomax-l2-13b.Q4_K_M.gguf")
    assert found.format_id == "alpaca" and found.catalog_id is None  # from alpaca's name pattern


@pytest.mark.parametrize(
    "template, name, expected",
    [
        ("{{ '<|im_start|>' + message['role'] }}", "whatever", "chatml"),
        ("<start_of_turn>user", "x", "gemma"),
        ("{% if x %}<|start_header_id|>{% endif %}<|eot_id|>", "x", "llama-3"),
        ("", "mythomax-l2-13b.Q4_K_M.gguf", "alpaca"),
        ("", "airoboros-l2-13b-gpt4-1.4.1.Q4_K_M.gguf", "vicuna-1.1"),
        ("", "llama-2-13b-chat.Q4_K_M.gguf", "llama-2-chat"),
        ("", "gemma-3-270m-q4_k_m.gguf", "plain"),
    ],
)
def test_template_or_model_name_without_a_catalog(formats, template: str, name: str, expected: str) -> None:
    assert detect_model_format(formats, chat_template=template, model_name=name).format_id == expected


def test_detection_from_a_real_gguf(formats, catalog, tmp_path: Path) -> None:
    path = write_tiny_llama(tmp_path / "custom.gguf", chat_template=ZEPHYR, name="Custom")
    info = model_info(path)
    found = detect_model_format(
        formats, catalog=catalog, file_name=path.name, model_name=info.name, chat_template=info.chat_template
    )
    assert found.derived and found.format.assistant.prefix == "<|assistant|>\n"
    bundled_like = write_tiny_llama(tmp_path / "gemma-3-270m-q4_k_m.gguf")
    base = detect_model_format(formats, catalog=catalog, file_name=bundled_like.name)
    assert (base.format_id, base.catalog_id) == ("plain", "gemma-3-270m")
