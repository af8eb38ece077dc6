"""Prompt formats produce the exact bytes their model families document."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from jinja2.sandbox import ImmutableSandboxedEnvironment

from engine.prompts.chat import Turn, chat_parts
from engine.prompts.parts import fit_prompt
from presets.errors import FormatError
from presets.formats import BUILTIN_FORMATS_DIR, Speakers, load_builtin_formats, load_formats, parse_format

FORMATS = load_builtin_formats()
SPEAKERS = Speakers("User", "Assistant")
TURNS = [Turn("user", "U1"), Turn("assistant", "A1"), Turn("user", "U2")]

# [system S, user U1, assistant A1, user U2] followed by the generation prompt.
EXPECTED = {
    "alpaca": "S\n\n### Instruction:\nU1\n\n### Response:\nA1\n\n### Instruction:\nU2\n\n### Response:\n",
    "vicuna-1.1": "S USER: U1 ASSISTANT: A1</s>USER: U2 ASSISTANT:",
    "llama-2-chat": "[INST] <<SYS>>\nS\n<</SYS>>\n\nU1 [/INST] A1 </s><s>[INST] U2 [/INST]",
    "chatml": (
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU1<|im_end|>\n"
        "<|im_start|>assistant\nA1<|im_end|>\n<|im_start|>user\nU2<|im_end|>\n<|im_start|>assistant\n"
    ),
    "mistral-instruct": "[INST] S\n\nU1 [/INST]A1</s>[INST] U2 [/INST]",
    "llama-3": (
        "<|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nU1<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nA1<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nU2<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    ),
    "gemma": (
        "<start_of_turn>user\nS\n\nU1<end_of_turn>\n<start_of_turn>model\nA1<end_of_turn>\n"
        "<start_of_turn>user\nU2<end_of_turn>\n<start_of_turn>model\n"
    ),
    "metharme": "<|system|>S<|user|>U1<|model|>A1<|user|>U2<|model|>",
    "plain": "S\n\nUser: U1\nAssistant: A1\nUser: U2\nAssistant:",
}

# Without a system prompt (formats with a default system prompt use it).
EXPECTED_NO_SYSTEM = {
    "llama-2-chat": "[INST] U1 [/INST] A1 </s><s>[INST] U2 [/INST]",
    "mistral-instruct": "[INST] U1 [/INST]A1</s>[INST] U2 [/INST]",
    "gemma": (
        "<start_of_turn>user\nU1<end_of_turn>\n<start_of_turn>model\nA1<end_of_turn>\n"
        "<start_of_turn>user\nU2<end_of_turn>\n<start_of_turn>model\n"
    ),
    "vicuna-1.1": (
        "A chat between a curious user and an artificial intelligence assistant. The assistant "
        "gives helpful, detailed, and polite answers to the user's questions. "
        "USER: U1 ASSISTANT: A1</s>USER: U2 ASSISTANT:"
    ),
    "plain": (
        "A conversation between a curious User and a friendly, knowledgeable Assistant.\n\n"
        "User: Hi! What can you do?\nAssistant: Hello! I can answer questions, explain things and "
        "help you write. What would you like to talk about?\n\n"
        "User: U1\nAssistant: A1\nUser: U2\nAssistant:"
    ),
}


def render(format_id: str, system: str, turns: list[Turn] = TURNS) -> str:
    parts = chat_parts(FORMATS[format_id], system, turns, SPEAKERS)
    return fit_prompt(parts, 100_000, len).text


def test_every_required_format_ships() -> None:
    assert set(EXPECTED) <= set(FORMATS)


@pytest.mark.parametrize("format_id", sorted(EXPECTED))
def test_format_bytes(format_id: str) -> None:
    assert render(format_id, "S") == EXPECTED[format_id]


@pytest.mark.parametrize("format_id", sorted(EXPECTED_NO_SYSTEM))
def test_format_bytes_without_system(format_id: str) -> None:
    assert render(format_id, "") == EXPECTED_NO_SYSTEM[format_id]


@pytest.mark.parametrize("format_id", ["llama-2-chat", "gemma", "mistral-instruct"])
def test_system_in_first_user_turn_when_chat_opens_with_a_reply(format_id: str) -> None:
    """A greeting before any user message still yields a well-formed first turn."""
    text = render(format_id, "S", [Turn("assistant", "Hi!"), Turn("user", "U")])
    fmt = FORMATS[format_id]
    assert text.startswith(fmt.head("S", SPEAKERS) + fmt.user.suffix + fmt.assistant.prefix + "Hi!")


# text-generation-webui ships Jinja templates for several of these formats; where they
# follow the same family documentation, our bytes must equal theirs. Its Metharme and
# Mistral templates leave the system prompt unwrapped, so those compare without one.
TGW_TEMPLATES = {
    "alpaca": ("Alpaca.yaml", "S"),
    "chatml": ("ChatML.yaml", "S"),
    "llama-3": ("Llama-v3.yaml", "S"),
    "metharme": ("Metharme.yaml", ""),
    "mistral-instruct": ("Mistral.yaml", ""),
}


@pytest.mark.parametrize("format_id", sorted(TGW_TEMPLATES))
def test_matches_text_generation_webui_template(format_id: str, third_party: Path) -> None:
    file_name, system = TGW_TEMPLATES[format_id]
    template = yaml.safe_load((third_party / "yaml" / file_name).read_text())["instruction_template"]
    messages = [{"role": "system", "content": system}] if system else []
    messages += [{"role": t.role, "content": t.text} for t in TURNS]
    theirs = (
        ImmutableSandboxedEnvironment()
        .from_string(template)
        .render(messages=messages, add_generation_prompt=True)
    )
    assert render(format_id, system) == theirs


def test_stop_strings_fill_in_names() -> None:
    assert FORMATS["plain"].stop_strings(Speakers("Ann", "Bob")) == ("\nAnn:",)
    assert "<|im_end|>" in FORMATS["chatml"].stop_strings(SPEAKERS)


def test_plain_format_uses_speaker_names() -> None:
    parts = chat_parts(
        FORMATS["plain"], "{{char}} helps {{user}}.", [Turn("user", "hi")], Speakers("Ann", "Bob")
    )
    assert fit_prompt(parts, 1000, len).text == "Bob helps Ann.\n\nAnn: hi\nBob:"


@pytest.mark.parametrize(
    "change, message",
    [
        ({"stop": "x"}, "stop must be a list"),
        ({"system": {"prefix": 1}}, "must be strings"),
        ({"schema_version": 99}, "schema_version"),
        ({"id": "Bad Id"}, "id"),
        ({"surprise": True}, "unknown field surprise"),
        ({"system_placement": "middle"}, "system_placement"),
        ({"detect": {"name_patterns": ["("]}}, "not a valid regex"),
    ],
)
def test_invalid_format_is_rejected_with_its_problem(change: dict[str, object], message: str) -> None:
    raw = json.loads((BUILTIN_FORMATS_DIR / "chatml.json").read_text())
    raw.update(change)
    with pytest.raises(FormatError, match=message):
        parse_format(raw, source="broken.json", builtin=False)


def test_missing_field_is_named() -> None:
    raw = json.loads((BUILTIN_FORMATS_DIR / "chatml.json").read_text())
    del raw["user"]
    with pytest.raises(FormatError, match="missing user"):
        parse_format(raw, source="broken.json", builtin=False)


def test_user_folder_adds_and_overrides_formats(tmp_path: Path) -> None:
    raw = json.loads((BUILTIN_FORMATS_DIR / "chatml.json").read_text())
    raw["name"] = "My ChatML"
    (tmp_path / "mine.json").write_text(json.dumps(raw))
    formats = load_formats([BUILTIN_FORMATS_DIR, tmp_path])
    assert formats["chatml"].name == "My ChatML"
    assert not formats["chatml"].builtin


def test_not_json_format_file_is_a_format_error(tmp_path: Path) -> None:
    (tmp_path / "plain.json").write_text("{not json")
    with pytest.raises(FormatError, match="not valid JSON"):
        load_formats([tmp_path])
