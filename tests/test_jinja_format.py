"""Prompt formats derived from chat templates: byte-exact against the template, and sandboxed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from jinja2.sandbox import ImmutableSandboxedEnvironment

from engine.prompts.chat import Turn, chat_parts
from engine.prompts.parts import fit_prompt
from presets.errors import FormatError
from presets.formats import Speakers, load_builtin_formats
from presets.jinja_format import GGUF_TEMPLATE_ID, GGUF_TEMPLATE_NAME, format_from_template

TGW_TEMPLATES = ["Alpaca", "ChatML", "Llama-v2", "Llama-v3", "Metharme", "Mistral", "Vicuna-v1.1"]

# Chat templates as Hugging Face model repos ship them in tokenizer_config.json.
QWEN_CHATML = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
LLAMA2 = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}"
    "{% endfor %}"
)
GEMMA_NO_SYSTEM = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for message in messages %}{% if message['role'] == 'assistant' %}{% set role = 'model' %}"
    "{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
)

CONVERSATIONS = [
    [("user", "Hi")],
    [("user", "What is a fox?"), ("assistant", "A small wild dog."), ("user", "Where do they live?")],
    [
        ("user", "Line one\nline two"),
        ("assistant", "Noted."),
        ("user", "Again"),
        ("assistant", "Noted again."),
        ("user", "Last one"),
    ],
]


def reference_render(template: str, system: str, turns, *, bos: str = "", eos: str = "") -> str:
    """The template rendered the way Hugging Face and text-generation-webui render it."""

    def raise_exception(message: str) -> None:
        raise ValueError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": r, "content": c} for r, c in turns
    ]
    text = env.from_string(template).render(
        messages=messages,
        add_generation_prompt=True,
        bos_token=bos,
        eos_token=eos,
        raise_exception=raise_exception,
    )
    return text[len(bos) :] if bos and text.startswith(bos) else text


def engine_render(fmt, system: str, turns) -> str:
    """The prompt Hearth's chat assembler builds with `fmt` (system "" means the format's default)."""
    parts = chat_parts(fmt, system, [Turn(r, c) for r, c in turns], Speakers())
    return fit_prompt(parts, 10**6, len).text


def tgw_template(third_party: Path, name: str) -> str:
    return yaml.safe_load((third_party / "yaml" / f"{name}.yaml").read_text(encoding="utf-8"))[
        "instruction_template"
    ]


@pytest.mark.parametrize("name", TGW_TEMPLATES)
def test_tgw_templates_are_reproduced_byte_for_byte(third_party: Path, name: str) -> None:
    template = tgw_template(third_party, name)
    fmt = format_from_template(template, eos_token="</s>")
    assert fmt.id == GGUF_TEMPLATE_ID and fmt.name == GGUF_TEMPLATE_NAME and not fmt.builtin
    for turns in CONVERSATIONS:
        with_system = reference_render(template, "Be kind and brief.", turns)
        assert engine_render(fmt, "Be kind and brief.", turns) == with_system
        # With no system prompt the template writes its default one, which the format keeps.
        assert engine_render(fmt, "", turns) == reference_render(template, "", turns)


@pytest.mark.parametrize(
    ("name", "builtin_id"), [("ChatML", "chatml"), ("Alpaca", "alpaca"), ("Llama-v3", "llama-3")]
)
def test_derived_wraps_equal_the_builtin_format(third_party: Path, name: str, builtin_id: str) -> None:
    derived = format_from_template(tgw_template(third_party, name))
    builtin = load_builtin_formats()[builtin_id]
    assert (derived.system, derived.user, derived.assistant) == (
        builtin.system,
        builtin.user,
        builtin.assistant,
    )
    assert derived.generation_prompt == builtin.generation_prompt
    assert derived.default_system == builtin.default_system


def test_default_system_prompts_are_recovered(third_party: Path) -> None:
    assert (
        format_from_template(tgw_template(third_party, "Llama-v2")).default_system == "Answer the questions."
    )
    assert format_from_template(QWEN_CHATML).default_system == "You are a helpful assistant."
    assert format_from_template(tgw_template(third_party, "ChatML")).default_system == ""


def test_hf_chatml_template(tmp_path: Path) -> None:
    fmt = format_from_template(QWEN_CHATML, eos_token="<|im_end|>")
    assert fmt.system_placement == "own"
    assert fmt.stop[0] == "<|im_end|>" and "<|im_start|>user" in fmt.stop
    for turns in CONVERSATIONS:
        assert engine_render(fmt, "Talk like a pirate.", turns) == reference_render(
            QWEN_CHATML, "Talk like a pirate.", turns
        )


def test_hf_llama3_template_drops_the_leading_bos() -> None:
    bos, eos = "<|begin_of_text|>", "<|eot_id|>"
    fmt = format_from_template(LLAMA3, bos_token=bos, eos_token=eos)
    builtin = load_builtin_formats()["llama-3"]
    assert (fmt.system, fmt.user, fmt.assistant) == (builtin.system, builtin.user, builtin.assistant)
    assert bos not in engine_render(fmt, "Sys", CONVERSATIONS[1])
    assert fmt.stop[0] == eos
    for turns in CONVERSATIONS:
        assert engine_render(fmt, "Sys", turns) == reference_render(LLAMA3, "Sys", turns, bos=bos, eos=eos)


def test_hf_llama2_template_folds_the_system_prompt_into_the_first_turn() -> None:
    fmt = format_from_template(LLAMA2, bos_token="<s>", eos_token="</s>")
    assert fmt.system_placement == "first_user"
    # Every user turn opens with <s>; it moves to the end of the previous reply.
    assert fmt.user.prefix == "[INST] " and fmt.assistant.suffix == " </s><s>"
    assert fmt.stop == ("</s>", "[INST]")
    for turns in CONVERSATIONS:
        expected = reference_render(LLAMA2, "Be safe.", turns, bos="<s>", eos="</s>")
        assert engine_render(fmt, "Be safe.", turns) == expected


def test_template_without_a_system_role_gets_the_system_prompt_in_the_first_turn() -> None:
    fmt = format_from_template(GEMMA_NO_SYSTEM, bos_token="<bos>", eos_token="<eos>")
    assert fmt.system_placement == "first_user" and "no system role" in fmt.description
    for turns in CONVERSATIONS:
        assert engine_render(fmt, "", turns) == reference_render(GEMMA_NO_SYSTEM, "", turns, bos="<bos>")
    folded = engine_render(fmt, "Be brief.", [("user", "Hi")])
    assert folded == "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n"


@pytest.mark.parametrize(
    "payload",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ lipsum.__globals__['os'].popen('touch PWNED').read() }}",
        "{{ cycler.__init__.__globals__.os.system('touch PWNED') }}",
        "{{ joiner.__init__.__globals__ }}",
        "{{ namespace.__init__.__globals__ }}",
        "{{ raise_exception.__globals__['__builtins__'] }}",
        "{% for m in messages %}{{ m.__class__.__base__.__subclasses__() }}{% endfor %}",
        "{{ messages.append({'role': 'user', 'content': 'x'}) }}",
    ],
)
def test_sandbox_escapes_fail_safely(payload: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FormatError, match="chat template"):
        format_from_template(payload)
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("", "empty"),
        ("{% for m in messages %}{{ m.content }", "not valid Jinja"),
        ("Hello, world", "exactly once"),
        # Consistent for four messages, different from the fifth on: caught by the second conversation.
        (
            "{% for m in messages %}{% if loop.index0 > 3 %}(late) {% endif %}"
            "{{ m.role }}: {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}",
            "cannot reproduce exactly",
        ),
        ("{% for m in messages %}{{ loop.index }}. {{ m.content }}\n{% endfor %}", "cannot reproduce"),
        ("{{ raise_exception('nope') }}", "nope"),
    ],
)
def test_unusable_templates_raise_format_error(template: str, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        format_from_template(template)


def test_sandbox_refusal_is_named() -> None:
    with pytest.raises(FormatError, match="unsafe"):
        format_from_template("{{ ''.__class__.__mro__ }}")


def test_templates_get_hugging_face_helpers() -> None:
    # tojson without HTML escaping, as Hugging Face renders it; strftime_now and raise_exception exist.
    template = (
        "{% if strftime_now('%Y') | length != 4 %}{{ raise_exception('no date') }}{% endif %}"
        "{% for m in messages %}{{ ('<' + m.role + '>') | tojson }}{{ m.content }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<assistant>' | tojson }}{% endif %}"
    )
    fmt = format_from_template(template)
    assert fmt.user.prefix == '"<user>"' and fmt.generation_prompt == '"<assistant>"'
