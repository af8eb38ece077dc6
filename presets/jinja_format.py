"""A prompt format derived from a model's own chat template (GGUF `tokenizer.chat_template`).

Hearth assembles prompts from wraps (see `presets.formats`), not by rendering Jinja per
turn, so the KV-cache prefix stays stable. To use a template we do not know, we render
it once with placeholder messages, cut the output at the placeholders to recover each
role's prefix and suffix, then render a different conversation both ways and demand the
same bytes. A template our wraps cannot reproduce is refused with `FormatError`, and
the caller falls back to name heuristics or the plain transcript.

Templates come from downloaded files, so they are untrusted code: they run only in
Jinja's immutable sandbox, which refuses `__class__`, `__globals__` and the like
(CVE-2024-34359 was a GGUF template rendered without one), and only on a budget of
time, memory, work, output and depth, in a child process (`presets.template_budget`).
Every rendering the derivation needs is asked for at once, so one child serves a
template; what exceeds the budget raises `TemplateBudgetError`, a `FormatError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from presets.errors import FormatError
from presets.formats import Placement, PromptFormat, Role, Speakers, Wrap
from presets.template_budget import (
    DEFAULT_BUDGET,
    DEFAULT_OPTIONS,
    RenderCall,
    Rendered,
    TemplateBudget,
    render_isolated,
)

GGUF_TEMPLATE_ID = "gguf-template"
GGUF_TEMPLATE_NAME = "Model's own template"

# Placeholder contents: plain words no template rewrites (templates often trim or rstrip).
_SYS, _U1, _A1, _U2 = "HearthSysQ7", "HearthUserK3", "HearthReplyZ5", "HearthUserW9"
_Pair = tuple[str, str]  # (role, content)
# The conversation used to check a derived format: different words, more turns, a line break.
_CHECK = [
    ("user", "Hello there"),
    ("assistant", "Hi! How can I help?"),
    ("user", "Tell me a story\nabout a fox"),
    ("assistant", "Once upon a time, a fox found a lantern."),
    ("user", "And then?"),
]
_CHECK_SYSTEM = "You are a careful narrator."
# Does the template write a system message? Asked first.
_SYSTEM_PROBE = RenderCall((("system", _SYS), ("user", _U1)), add_generation_prompt=True)


@dataclass(frozen=True)
class _Template:
    """The template's renderings of every conversation the derivation asks about."""

    renders: Mapping[RenderCall, Rendered]
    bos_token: str
    eos_token: str

    def render(self, call: RenderCall) -> str:
        rendered = self.renders[call]
        # The template is untrusted code: any failure at all means it cannot be used.
        if rendered.error is not None:
            raise FormatError(f"The model's chat template could not be rendered: {rendered.error}")
        text = rendered.text
        # The tokenizer adds BOS itself, so a template's leading BOS must not be in the text.
        if self.bos_token and text.startswith(self.bos_token):
            text = text[len(self.bos_token) :]
        return text


def format_from_template(
    template: str, *, bos_token: str = "", eos_token: str = "", budget: TemplateBudget = DEFAULT_BUDGET
) -> PromptFormat:
    """Derive and verify a prompt format from a Jinja chat template.

    Args:
        template: the chat template text (as in GGUF `tokenizer.chat_template`).
        bos_token: the model's BOS token text, e.g. "<s>".
        eos_token: the model's EOS token text, e.g. "</s>".
        budget: what the template may spend (time, memory, work, output, depth).

    Raises:
        TemplateBudgetError: the template ran past its budget and was stopped.
        FormatError: the template does not compile, fails to render, breaks out of the
            sandbox, or does something our wraps cannot reproduce byte for byte.
    """
    if not template.strip():
        raise FormatError("The model's chat template is empty.")
    calls = _renders_needed()
    asked = [replace(call, options=DEFAULT_OPTIONS) for call in calls]
    renders = render_isolated(template, asked, bos_token=bos_token, eos_token=eos_token, budget=budget)
    t = _Template(dict(zip(calls, renders, strict=True)), bos_token, eos_token)
    if _accepts_system(t):
        fmt = _derive_with_system(t)
        for turns in (_CHECK, _CHECK[:1]):
            _verify(t, fmt, _CHECK_SYSTEM, turns)
        return _with_default_system(t, fmt)
    # The template refuses a system message (Gemma 1 and 2) or drops it: derive without one
    # and let the system prompt open the first user turn, as those models expect.
    fmt = _derive_without_system(t)
    for turns in (_CHECK, _CHECK[:1]):
        _verify(t, fmt, "", turns)
    return fmt


def render_format(fmt: PromptFormat, system: str, turns: Sequence[tuple[str, str]]) -> str:
    """A conversation written with `fmt` the way the chat prompt assembles it, asking for a reply."""
    speakers = Speakers()
    head = fmt.head(system, speakers)
    parts = [head]
    for index, (role, text) in enumerate(turns):
        kind: Role = "user" if role == "user" else "assistant"
        parts.append(fmt.turn(kind, text, speakers, after_head=index == 0 and bool(head)))
    parts.append(fmt.generation_prefix(speakers, after_head=not turns and bool(head)))
    return "".join(parts)


def writes_alike(a: PromptFormat, b: PromptFormat) -> bool:
    """Whether two formats write the same bytes for chats that ask a reply to a message,
    with and without a system prompt."""
    return all(
        render_format(a, system, turns) == render_format(b, system, turns)
        for system in (_CHECK_SYSTEM, "")
        for turns in (_CHECK, _CHECK[:1])
    )


def _renders_needed() -> list[RenderCall]:
    """Every rendering the derivation below may ask for, so one child renders them all."""
    calls = [_SYSTEM_PROBE]
    for lead in ([("system", _SYS)], []):
        calls.extend(_turn_renders(lead))
    for system in (_CHECK_SYSTEM, ""):
        calls.extend(_check_render(system, turns) for turns in (_CHECK, _CHECK[:1]))
    return list(dict.fromkeys(calls))


def _accepts_system(t: _Template) -> bool:
    try:
        rendered = t.render(_SYSTEM_PROBE)
    except FormatError:
        return False
    return _SYS in rendered


def _cut(text: str, markers: Sequence[str]) -> list[str]:
    """The text around each marker, in order: len(markers) + 1 pieces."""
    pieces, start = [], 0
    for marker in markers:
        at = text.find(marker, start)
        if at < 0 or text.count(marker) != 1:
            raise FormatError("The model's chat template does not write each message exactly once.")
        pieces.append(text[start:at])
        start = at + len(marker)
    pieces.append(text[start:])
    return pieces


def _after(piece: str, head: str, what: str) -> str:
    if not piece.startswith(head):
        raise FormatError(f"The model's chat template writes {what} in a way Hearth cannot reproduce.")
    return piece[len(head) :]


@dataclass(frozen=True)
class _Turns:
    """What surrounds the user and assistant messages, shared by both derivations."""

    user: Wrap
    assistant: Wrap
    generation_prompt: str


def _turn_renders(lead: Sequence[_Pair]) -> tuple[RenderCall, RenderCall, RenderCall]:
    """[lead..., U1, A1, U2] asking for a reply and not, and [lead..., U1, A1]."""
    conversation = (*lead, ("user", _U1), ("assistant", _A1), ("user", _U2))
    return (
        RenderCall(conversation, add_generation_prompt=True),
        RenderCall(conversation, add_generation_prompt=False),
        RenderCall(conversation[:-1], add_generation_prompt=False),
    )


def _check_render(system: str, turns: Sequence[_Pair]) -> RenderCall:
    """A check conversation, with the system prompt when there is one, asking for a reply."""
    return RenderCall((*([("system", system)] if system else []), *turns), add_generation_prompt=True)


def _turns(t: _Template, lead: list[_Pair]) -> tuple[_Turns, list[str]]:
    """Wraps of user and assistant turns from [lead..., U1, A1, U2]; also the pieces before U1."""
    markers = [content for _, content in lead] + [_U1, _A1, _U2]
    with_reply, without_reply, before_last = _turn_renders(lead)
    full = _cut(t.render(with_reply), markers)
    user_suffix = _cut(t.render(without_reply), markers)[-1]
    assistant_suffix = _cut(t.render(before_last), markers[:-1])[-1]
    between_ua, between_au, end = full[-3], full[-2], full[-1]
    generation_prompt = _after(end, user_suffix, "the reply prompt")
    assistant_prefix = _after(between_ua, user_suffix, "the start of a reply")
    user_prefix = _after(between_au, assistant_suffix, "the start of a user message")
    if t.bos_token and user_prefix.startswith(t.bos_token):
        # Llama-2 opens every user turn with <s>; keep it on the previous reply's end instead, so the
        # first turn matches a rendering whose leading BOS the tokenizer supplies.
        assistant_suffix += t.bos_token
        user_prefix = user_prefix[len(t.bos_token) :]
    turns = _Turns(
        Wrap(user_prefix, user_suffix), Wrap(assistant_prefix, assistant_suffix), generation_prompt
    )
    return turns, full[:-3]


def _derive_with_system(t: _Template) -> PromptFormat:
    turns, (before_system, between_su) = _turns(t, [("system", _SYS)])
    user_prefix = turns.user.prefix
    placement: Placement
    if user_prefix and before_system.startswith(user_prefix) and not between_su.endswith(user_prefix):
        placement, system = "first_user", Wrap(before_system[len(user_prefix) :], between_su)
    elif between_su.endswith(user_prefix):
        placement = "own"
        system = Wrap(before_system, between_su[: len(between_su) - len(user_prefix)])
    else:
        raise FormatError(
            "The model's chat template joins the system prompt and the first message "
            "in a way Hearth cannot reproduce."
        )
    return _build(turns, system, placement, t.eos_token, "Derived from the model's chat template.")


def _derive_without_system(t: _Template) -> PromptFormat:
    turns, (before_user,) = _turns(t, [])
    if before_user != turns.user.prefix:
        raise FormatError(
            "The model's chat template adds text Hearth cannot reproduce before the first message."
        )
    note = (
        "Derived from the model's chat template, which has no system role: "
        "the system prompt opens the first user message."
    )
    return _build(turns, Wrap("", "\n\n"), "first_user", t.eos_token, note)


def _build(
    turns: _Turns, system: Wrap, placement: Placement, eos_token: str, description: str
) -> PromptFormat:
    # The EOS token, then what ends a reply and what opens the user's turn, unless already covered
    # (Llama-2's reply ends "</s><s>": "</s>" stops it first). One-character strings would cut replies.
    stops: list[str] = [eos_token] if eos_token else []
    for candidate in (turns.assistant.suffix.strip(), turns.user.prefix.strip()):
        if len(candidate) >= 2 and not any(stop in candidate for stop in stops):
            stops.append(candidate)
    return PromptFormat(
        id=GGUF_TEMPLATE_ID,
        name=GGUF_TEMPLATE_NAME,
        description=description,
        system=system,
        user=turns.user,
        assistant=turns.assistant,
        generation_prompt=turns.generation_prompt,
        stop=tuple(stops),
        system_placement=placement,
        builtin=False,
    )


def _verify(t: _Template, fmt: PromptFormat, system: str, turns: Sequence[_Pair]) -> None:
    expected = t.render(_check_render(system, turns))
    if render_format(fmt, system, turns) != expected:
        raise FormatError(
            "The model's chat template does something Hearth's prompt formats cannot reproduce exactly "
            "(it depends on more than each message's role)."
        )


def _with_default_system(t: _Template, fmt: PromptFormat) -> PromptFormat:
    """Keep the system prompt the template writes when given none (e.g. Qwen's) as the default."""
    rendered = t.render(_check_render("", _CHECK))
    bare = render_format(fmt, "", _CHECK)
    if rendered == bare:
        return fmt
    start = rendered[: len(rendered) - len(bare)]
    if fmt.system_placement == "own" and rendered.endswith(bare) and fmt.system.prefix.startswith(start):
        # Text the template writes first with or without a system prompt (GLM-4's "[gMASK]<sop>").
        candidate = replace(fmt, start=start, system=Wrap(fmt.system.prefix[len(start) :], fmt.system.suffix))
        if render_format(candidate, "", _CHECK) == rendered:
            return candidate
    before, _, after = render_format(fmt, _SYS, _CHECK).partition(_SYS)
    if rendered.startswith(before) and rendered.endswith(after) and len(rendered) > len(before) + len(after):
        default = rendered[len(before) : len(rendered) - len(after)]
        candidate = replace(fmt, default_system=default)
        if render_format(candidate, default, _CHECK) == rendered:
            return candidate
    # Without a system prompt the template writes something our wraps cannot; with one it matches,
    # so the format is kept: it differs from the template only in a chat that sets no system prompt.
    return fmt
