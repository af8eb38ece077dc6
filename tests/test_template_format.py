"""Current models' chat templates: the formats Hearth ships for them, byte for byte, and
the templates no set of wraps reproduces, rendered in full for every prompt.

The templates are the models' own, as llama.cpp keeps them (`tests/model_templates.py`).
The expected text comes from Jinja itself, in a sandbox built here, so a mistake in
Hearth's reading of the marked prompt cannot hide behind the same mistake twice.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

import app
from api.deps import ApiSettings
from api.server import create_api_app, root_app, serve_in_thread
from catalog.detect import detect_model_format
from engine.fake import FakeBackend, fake_model_info
from engine.prompts import Turn, chat_parts, fit_prompt, through_template
from engine.types import LoadOptions
from model_templates import inline_template, template
from presets.errors import FormatError
from presets.formats import PromptFormat, Speakers, load_builtin_formats
from presets.jinja_format import render_format
from presets.samplers import SamplerParams
from presets.template_format import (
    MARKS,
    RENDERED_ID,
    START_LINE,
    ChatTemplate,
    conversation,
    marked_format,
    read_marked,
)
from services.chat import logic
from services.chat import reply as chat_reply
from services.chat.logic import ChatSettings
from services.chat.thinking import set_thinking
from services.context import AppContext, Settings, create_context
from tiny_model import write_tiny_llama

SYSTEM = "You are Mira, a careful guide."
CHAT = [
    ("user", "Hello there"),
    ("assistant", "Hi! Where shall we go?"),
    ("user", "Tell me about the old mill\nby the river"),
    ("assistant", "It ground flour for a hundred years."),
    ("user", "And then?"),
]
BOS = {"mistral": "<s>", "deepseek": "<｜begin▁of▁sentence｜>"}


def _oracle(
    source: str, messages: list[tuple[str, str]], bos: str = "", eos: str = "", **options: Any
) -> str:
    """What the template writes, by Jinja directly, without the leading BOS the tokenizer adds."""
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)

    def refuse(message: str) -> None:
        raise ValueError(message)

    env.globals["raise_exception"] = refuse
    text = env.from_string(source).render(
        messages=[{"role": r, "content": c} for r, c in messages],
        add_generation_prompt=True,
        bos_token=bos,
        eos_token=eos,
        **options,
    )
    return text[len(bos) :] if bos and text.startswith(bos) else text


# -- the formats Hearth ships, each against its model's own template ---------------------

SHIPPED = [
    ("qwen3", lambda: template("Qwen-Qwen3-0.6B"), "", True),
    ("deepseek-r1", lambda: template("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B"), BOS["deepseek"], True),
    ("deepseek-r1", lambda: template("deepseek-ai-DeepSeek-R1-Distill-Llama-8B"), BOS["deepseek"], True),
    # Given no system prompt, Mistral's template writes its own, dated one: Hearth writes none.
    ("mistral-v7-tekken", lambda: template("Mistral-Small-3.2-24B-Instruct-2506"), BOS["mistral"], False),
    ("mistral-v7-tekken", lambda: template("unsloth-mistral-Devstral-Small-2507"), BOS["mistral"], False),
    ("phi-4", lambda: inline_template("phi-4"), "", True),
    ("glm-4", lambda: inline_template("ChatGLM4"), "", True),
]


@pytest.mark.parametrize(("format_id", "source", "bos", "bare"), SHIPPED)
def test_a_shipped_format_writes_what_its_model_s_template_writes(
    format_id: str, source: Any, bos: str, bare: bool
) -> None:
    fmt = load_builtin_formats()[format_id]
    text = source()
    eos = "</s>" if bos == BOS["mistral"] else "<｜end▁of▁sentence｜>" if bos else ""
    for system in (SYSTEM, "") if bare else (SYSTEM,):
        for turns in (CHAT, CHAT[:1], CHAT[:3]):
            messages = ([("system", system)] if system else []) + turns
            expected = _oracle(text, messages, bos, eos, enable_thinking=True)
            assert render_format(fmt, system, turns) == expected, (format_id, system, len(turns))
    found = detect_model_format(load_builtin_formats(), chat_template=text, bos_token=bos, eos_token=eos)
    assert found.format_id == format_id
    assert found.template is not None and not found.in_full


def test_a_format_of_ours_that_writes_other_bytes_gives_way_to_the_template() -> None:
    """GLM-4.6's template has GLM-4's markers but writes an empty thinking block into every
    earlier reply: the format derived from the template wins, and writes what it does."""
    text = template("GLM-4.6")
    found = detect_model_format(load_builtin_formats(), chat_template=text)
    assert found.format_id != "glm-4" and found.derived
    assert found.format.start == "[gMASK]<sop>"
    for system in (SYSTEM, ""):
        expected = _oracle(text, ([("system", system)] if system else []) + CHAT, enable_thinking=True)
        assert render_format(found.format, system, CHAT) == expected


def test_the_thinking_prompt_is_asked_for_as_llama_cpp_asks_for_it() -> None:
    """DeepSeek-R1's template closes the thinking block at once unless `enable_thinking`
    is set: a derived format must open it, not close it."""
    text = template("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B")
    found = detect_model_format({"plain": load_builtin_formats()["plain"]}, chat_template=text)
    assert found.format.generation_prompt.endswith("<think>\n")


# -- templates rendered in full --------------------------------------------------------

IN_FULL = [
    ("openai-gpt-oss-120b", "", "<|return|>"),
    ("mistralai-Mistral-Nemo-Instruct-2407", BOS["mistral"], "</s>"),
    ("microsoft-Phi-3.5-mini-instruct", "<s>", "<|endoftext|>"),
    ("CohereForAI-c4ai-command-r7b-12-2024-tool_use", "<BOS_TOKEN>", "<|END_OF_TURN_TOKEN|>"),
    ("Apertus-8B-Instruct", "<s>", "</s>"),
    ("tencent-Hy3", "", ""),
]


def _rendered(name: str, bos: str, eos: str) -> tuple[str, PromptFormat, ChatTemplate]:
    source = template(name)
    found = detect_model_format(load_builtin_formats(), chat_template=source, bos_token=bos, eos_token=eos)
    assert found.format_id == RENDERED_ID, found.reason
    assert found.template is not None and found.template.source == source
    return source, found.format, found.template


@pytest.mark.parametrize(("name", "bos", "eos"), IN_FULL)
def test_a_template_no_wraps_reproduce_is_rendered_in_full(name: str, bos: str, eos: str) -> None:
    source, fmt, chat_template = _rendered(name, bos, eos)
    for system, turns in ((SYSTEM, CHAT), ("", CHAT), (SYSTEM, CHAT[:1])):
        parts = chat_parts(fmt, system, [Turn(r, t) for r, t in turns], Speakers())  # type: ignore[arg-type]
        fitted = fit_prompt(parts, 10**6, len, rewrite=through_template(chat_template.render_marked))
        messages = ([("system", system)] if system else []) + turns
        assert fitted.text == _oracle(source, messages, bos, eos, enable_thinking=True)
        assert not set(fitted.text) & set(MARKS)


def test_a_template_without_a_system_role_gets_the_system_prompt_in_the_first_message() -> None:
    """Gemma 2's template refuses a system message, and a chat opening with the character's
    greeting: the system prompt joins the first user turn, after a start line."""
    chat_template = ChatTemplate(template("google-gemma-2-2b-it"), "<bos>", "<eos>")
    fmt = marked_format("<eos>", "")
    turns = [Turn("assistant", "Welcome, traveller."), Turn("user", "Hello")]
    parts = chat_parts(fmt, SYSTEM, turns, Speakers())
    text = fit_prompt(parts, 10**6, len, rewrite=through_template(chat_template.render_marked)).text
    expected = [
        ("user", f"{SYSTEM}\n\n{START_LINE}"),
        ("assistant", "Welcome, traveller."),
        ("user", "Hello"),
    ]
    assert text == _oracle(chat_template.source, expected, "<bos>", "<eos>")


def test_the_budget_holds_for_the_rendered_prompt_and_its_parts_are_found_again() -> None:
    """The template adds its own text around each message: the fit counts the rendered
    prompt, drops the oldest turns until it fits, and the inspector's spans cover it."""
    source, fmt, chat_template = _rendered("openai-gpt-oss-120b", "", "<|return|>")
    turns = [Turn("user" if i % 2 == 0 else "assistant", f"message number {i} " * 8) for i in range(41)]
    parts = chat_parts(fmt, SYSTEM, turns, Speakers())
    whole = fit_prompt(parts, 10**6, len, rewrite=through_template(chat_template.render_marked))
    budget = len(whole.text) // 2
    renders: list[str] = []

    def counted(text: str) -> str:
        renders.append(text)
        return chat_template.render_marked(text)

    fitted = fit_prompt(parts, budget, len, rewrite=through_template(counted))
    # Each rendering is a process of its own: the excess is dropped at once, not a turn a time,
    # even where the template's own text is most of the prompt (short messages).
    short = chat_parts(fmt, SYSTEM, [Turn(t.role, f"m{i}") for i, t in enumerate(turns)], Speakers())
    renders.clear()
    squeezed = fit_prompt(short, budget // 4, len, rewrite=through_template(counted))
    assert len(renders) <= 4 and squeezed.n_tokens <= budget // 4 and squeezed.start > 0
    assert fitted.n_tokens == len(fitted.text) <= budget
    assert fitted.start > 0 and "message number 40" in fitted.text and "message number 0 " not in fitted.text
    assert fitted.spans[0].start == 0 and fitted.spans[-1].end == len(fitted.text)
    assert all(a.end == b.start for a, b in zip(fitted.spans, fitted.spans[1:], strict=False))
    assert [span.part for span in fitted.spans] == ["template", "system", "history", "tail"]
    system_span = next(span for span in fitted.spans if span.part == "system")
    assert SYSTEM in fitted.text[system_span.start : system_span.end]


def test_continuing_a_reply_renders_the_template_and_the_words_so_far() -> None:
    chat_template = ChatTemplate(template("openai-gpt-oss-120b"), "", "<|return|>")
    fmt = marked_format("<|return|>", "")
    marked = fmt.head(SYSTEM, Speakers()) + fmt.turn("user", "Hello there", Speakers())
    marked += fmt.open_turn("assistant", "Once upon", Speakers())
    text = chat_template.render_marked(marked)
    asked = _oracle(chat_template.source, [("system", SYSTEM), ("user", "Hello there")])
    assert text == asked + "<|channel|>final<|message|>Once upon"


def test_notes_in_the_chat_join_the_next_user_message() -> None:
    marks = marked_format("", "")
    speakers = Speakers()
    text = marks.head(SYSTEM, speakers) + marks.turn("assistant", "Welcome!", speakers)
    text += marks.system.prefix + "The mill burned in 1902." + marks.system.suffix
    text += marks.turn("user", "What happened?", speakers) + marks.generation_prefix(speakers)
    read = read_marked(text)
    assert (read.open_role, read.open_text) == ("assistant", "")
    assert conversation(read.messages) == [
        ("system", SYSTEM),
        ("assistant", "Welcome!"),
        ("user", "The mill burned in 1902.\n\nWhat happened?"),
    ]
    assert conversation(read.messages, start_line=True)[1] == ("user", START_LINE)


def test_a_prompt_that_asks_for_nothing_is_refused() -> None:
    marks = marked_format("", "")
    with pytest.raises(FormatError):
        read_marked(marks.turn("user", "Hello", Speakers()))


def test_a_template_that_writes_no_reply_prompt_is_not_rendered_in_full() -> None:
    numbered = "{% for m in messages %}{{ loop.index }}. {{ m.content }}\n{% endfor %}"
    with pytest.raises(FormatError, match="no prompt for the model's reply"):
        ChatTemplate(numbered).check()


def test_a_chat_with_a_template_rendered_in_full_reuses_the_cache_on_the_next_turn(tmp_path: Path) -> None:
    """Reuse is computed on the rendered tokens: the next turn evaluates about what is new."""
    command_r = template("CohereForAI-c4ai-command-r7b-12-2024-tool_use")
    info = replace(fake_model_info("command-r7b"), chat_template=command_r)
    backend = FakeBackend(n_ctx=4096, info=info)
    ctx: AppContext = create_context(Settings(data_dir=tmp_path / "data", load_model=False))
    try:
        detection = ctx.use_backend(backend, LoadOptions(n_ctx=4096), file_name="command-r7b.gguf")
        assert detection.format_id == RENDERED_ID
        settings = ChatSettings(params=SamplerParams(max_new_tokens=32))
        view = logic.send(ctx, logic.new_chat(ctx, settings), "Hi there", settings)
        backend.enqueue(["Hello", "!", " How", " can", " I", " help", "?"])
        first = chat_reply.start(ctx, view, "me")
        first.wait(10)
        assert "<|USER_TOKEN|>Hi there" in first.request.prompt and not set(first.request.prompt) & set(MARKS)
        view = logic.send(ctx, view, "Tell me a story", settings)
        second = chat_reply.start(ctx, view, "me")
        usage = second.wait(10).usage
        new = usage.prompt_tokens - len(backend.tokenize(first.request.prompt))
        assert usage.prompt_reused > 0
        assert 0 < usage.prompt_evaluated <= 2 * new
        reply_cue = "<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>"
        assert second.request.prompt.endswith("Tell me a story" + reply_cue)
    finally:
        ctx.models.unload()
        ctx.store.close()


# -- the chat's thinking switches, given to the template -------------------------------


def _chat_on(
    tmp_path: Path, source: str, name: str, bos: str = "", eos: str = ""
) -> tuple[AppContext, FakeBackend]:
    info = replace(fake_model_info(name), chat_template=source)
    backend = FakeBackend(n_ctx=4096, info=info)
    backend.special_tokens = lambda: (bos, eos)  # type: ignore[method-assign]
    ctx = create_context(Settings(data_dir=tmp_path / "data", load_model=False))
    ctx.use_backend(backend, LoadOptions(n_ctx=4096), file_name=f"{name}.gguf")
    return ctx, backend


def _prompt_for(ctx: AppContext, text: str, mode: str = "hide", effort: str = "") -> str:
    settings = ChatSettings(params=SamplerParams(max_new_tokens=32), system_prompt=SYSTEM)
    view = logic.send(ctx, logic.new_chat(ctx, settings), text, settings)
    set_thinking(ctx, view.session_id, mode, 0, effort)
    return chat_reply.build_prompt(ctx, view).request.prompt


def test_thinking_off_is_asked_of_the_template_that_reads_the_switch(tmp_path: Path) -> None:
    """Qwen3's template writes its own empty thinking block for `enable_thinking=false`:
    a chat with thinking off gets exactly that, rendered by the template."""
    source = template("Qwen-Qwen3-0.6B")
    ctx, _ = _chat_on(tmp_path, source, "qwen3-0.6b")
    try:
        assert ctx.detected_format().format_id == "qwen3"
        messages = [("system", SYSTEM), ("user", "Hello there")]
        assert _prompt_for(ctx, "Hello there") == _oracle(source, messages, enable_thinking=True)
        off = _prompt_for(ctx, "Hello there", mode="off")
        assert off == _oracle(source, messages, enable_thinking=False)
        assert off.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    finally:
        ctx.models.unload()
        ctx.store.close()


def test_the_reasoning_effort_reaches_a_template_that_reads_it(tmp_path: Path) -> None:
    source = template("openai-gpt-oss-120b")
    ctx, _ = _chat_on(tmp_path, source, "gpt-oss-20b", eos="<|return|>")
    try:
        assert ctx.detected_format().in_full
        assert "Reasoning: medium" in _prompt_for(ctx, "Hello")
        high = _prompt_for(ctx, "Hello", effort="high")
        assert "Reasoning: high" in high
        assert high == _oracle(source, [("system", SYSTEM), ("user", "Hello")], reasoning_effort="high")
    finally:
        ctx.models.unload()
        ctx.store.close()


def test_a_reply_prompt_that_opens_the_thinking_block_says_so(tmp_path: Path) -> None:
    source = template("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B")
    ctx, _ = _chat_on(tmp_path, source, "r1-distill", BOS["deepseek"], "<｜end▁of▁sentence｜>")
    try:
        settings = ChatSettings(params=SamplerParams(max_new_tokens=32))
        view = logic.send(ctx, logic.new_chat(ctx, settings), "Hi", settings)
        assert chat_reply.build_prompt(ctx, view).request.thinking_opened
        set_thinking(ctx, view.session_id, "off", 0)
        prepared = chat_reply.build_prompt(ctx, view)
        assert not prepared.request.thinking_opened
        assert prepared.request.prompt.endswith("<｜Assistant｜><think>\n</think>")
    finally:
        ctx.models.unload()
        ctx.store.close()


def test_the_api_hands_a_request_s_switches_to_the_template(tmp_path: Path) -> None:
    """`chat_template_kwargs` (llama.cpp server's) and `reasoning_effort` (OpenAI's) reach
    the templates that read them; anything else there is refused with a clear message."""
    source = template("Qwen-Qwen3-0.6B")
    ctx, backend = _chat_on(tmp_path, source, "qwen3-0.6b")
    api = create_api_app(app.api_deps(ctx), ApiSettings(), host="127.0.0.1")
    server = serve_in_thread(root_app(api), "127.0.0.1", 0)
    try:
        body = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
        off = {**body, "chat_template_kwargs": {"enable_thinking": False}}
        answer = httpx.post(f"{server.url}/v1/chat/completions", json=off, timeout=30)
        assert answer.status_code == 200, answer.text
        assert backend.calls[-1].prompt == _oracle(source, [("user", "Hi")], enable_thinking=False)
        odd = {**body, "chat_template_kwargs": {"tools_in_user_message": True}}
        refused = httpx.post(f"{server.url}/v1/chat/completions", json=odd, timeout=30)
        assert refused.status_code == 400 and "enable_thinking" in refused.text
        wrong = httpx.post(f"{server.url}/v1/chat/completions", json={**body, "reasoning_effort": "max"})
        assert wrong.status_code == 400 and "low" in wrong.text
    finally:
        server.stop()
        ctx.models.unload()
        ctx.store.close()


def test_a_reasoning_template_end_to_end_on_a_tiny_model(tmp_path: Path) -> None:
    """DeepSeek-R1's own template on the tiny model, through llama.cpp: the prompt opens the
    thinking block, so what the model writes is its thinking, folded and kept out of the
    next prompt."""
    source = template("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B")
    model = write_tiny_llama(tmp_path / "tiny-r1.gguf", chat_template=source, name="tiny-r1")
    ctx = create_context(Settings(data_dir=tmp_path / "data", load_model=False))
    try:
        ctx.load_model(model, LoadOptions(n_ctx=512))
        assert ctx.detected_format().format_id == "deepseek-r1"
        settings = ChatSettings(params=SamplerParams(max_new_tokens=8, seed=3))
        view = logic.send(ctx, logic.new_chat(ctx, settings), "Hello there", settings)
        first = chat_reply.start(ctx, view, "me")
        first.wait(30)
        assert first.request.thinking_opened and first.request.prompt.endswith("<｜Assistant｜><think>\n")
        reply = ctx.store.sessions.messages(view.session_id)[-1]
        assert reply.text.startswith("<think>")  # the block the prompt opened, kept with the reply
        history, _, _ = logic.visible_history(ctx, view)
        assert 'class="hearth-think"' in history[-1]["content"]
        view = logic.send(ctx, view, "And then?", settings)
        again = chat_reply.build_prompt(ctx, view).request.prompt
        assert again.endswith("<｜User｜>And then?<｜Assistant｜><think>\n")
        thought = reply.text.removeprefix("<think>").strip()
        assert thought and thought not in again  # its thinking stayed out
    finally:
        ctx.models.unload()
        ctx.store.close()
