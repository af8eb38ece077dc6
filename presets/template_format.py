"""A model's own chat template, rendered in full for every prompt.

Most templates reduce to per-role wraps (`presets.jinja_format`), which the prompt
assembler writes itself. The rest cannot: Mistral Nemo puts the system prompt inside
the *last* user message, gpt-oss writes a header with today's date and a channel on
every reply, Phi-3.5 and Command R write the reply prompt their own way. For those,
the prompt is assembled as usual in `MARKED`, a format whose wraps are private-use
characters that never reach the model, so the assembler still decides which messages
fit. `ChatTemplate.render_marked` then reads the messages back out of that text and
renders them with the template, in the sandbox and on its budget
(`presets.template_budget`), like every template Hearth runs.

The template sees a conversation it can accept: one system message first, then
turns that alternate. Notes the assembler places mid-chat (lore, the author's note)
join the user message after them, and a chat that opens with the character's
greeting gets a start line before it when the template insists on a user turn first.
What the model writes is unchanged; reuse of the KV cache is computed by the engine
on the rendered tokens, which stay the same from turn to turn for all but the newest
messages.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from presets.errors import FormatError
from presets.formats import PromptFormat, Wrap
from presets.template_budget import (
    DEFAULT_BUDGET,
    DEFAULT_OPTIONS,
    RenderCall,
    TemplateBudget,
    TemplateOptions,
    render_isolated,
)

Message = tuple[str, str]  # (role, content)

# Private-use characters: the marked format's wraps. None of them reaches the model.
_OPEN = {"system": "\ue001", "user": "\ue002", "assistant": "\ue003"}
_ROLE_OF = {mark: role for role, mark in _OPEN.items()}
_CLOSE = "\ue004"
MARKS = "".join(_OPEN.values()) + _CLOSE
_PIECES = re.compile(f"([{MARKS}])")
# Stands for the text of an open turn (continue, impersonate): the template writes it as a
# finished message, and everything from this placeholder on is cut and replaced.
_OPEN_TEXT = "HearthOpenTurnQ8"
# The line before a greeting, for templates that want a user message first (SillyTavern's).
START_LINE = "[Start a new chat]"

RENDERED_ID = "gguf-template-rendered"
# A short chat in the marked format: a system prompt, a message, the reply prompt.
_SAMPLE = f"{_OPEN['system']}You are helpful.{_CLOSE}{_OPEN['user']}Hello{_CLOSE}{_OPEN['assistant']}"


def marked_format(eos_token: str, description: str, stop: tuple[str, ...] = ()) -> PromptFormat:
    """The format the assembler writes before `ChatTemplate.render_marked` renders it;
    replies end at the EOS token and at `stop`."""
    return PromptFormat(
        id=RENDERED_ID,
        name="Model's own template (rendered in full)",
        description=description,
        system=Wrap(_OPEN["system"], _CLOSE),
        user=Wrap(_OPEN["user"], _CLOSE),
        assistant=Wrap(_OPEN["assistant"], _CLOSE),
        generation_prompt=_OPEN["assistant"],
        stop=tuple(dict.fromkeys(s for s in (eos_token, *stop) if s)),
        builtin=False,
    )


def is_rendered(fmt: PromptFormat) -> bool:
    """Whether prompts in `fmt` go through the model's template before the model sees them."""
    return fmt.id == RENDERED_ID


@dataclass(frozen=True)
class Marked:
    """A prompt in the marked format, read back: finished messages, then an open turn."""

    messages: tuple[Message, ...]
    open_role: str  # "assistant" or "user": whose turn the prompt ends in
    open_text: str  # what that turn already holds ("" for a fresh reply)


def read_marked(text: str) -> Marked:
    """The messages of a marked prompt, in order. Text outside any message (there should be
    none) is kept as a note where it stands."""
    messages: list[Message] = []
    role = ""  # the role of the turn being read, "" between turns
    for piece in _PIECES.split(text):
        if piece in _ROLE_OF:
            role = _ROLE_OF[piece]
        elif piece == _CLOSE:
            role = ""
        elif role:
            messages.append((role, piece))
        elif piece.strip():
            messages.append(("system", piece.strip()))
    if not role:
        raise FormatError("The prompt does not end in an open turn, so there is nothing to ask the model.")
    # The open turn was read last: `split` yields its text, "" when the prompt ends at its mark.
    *done, (_, partial) = messages
    return Marked(tuple(done), role, partial)


def conversation(
    messages: Sequence[Message], *, start_line: bool = False, fold_system: bool = False
) -> list[Message]:
    """`messages` as a template accepts them: one system message first, then alternating
    turns (see the module docstring). `start_line` opens with a user turn whatever comes
    first; `fold_system` puts the system prompt at the start of the first user turn, for
    templates with no system role (Gemma's)."""
    system: list[str] = []
    turns: list[Message] = []
    pending: list[str] = []  # notes waiting for the next user message
    leading = True
    for role, content in messages:
        if role == "system" and leading:
            system.append(content)
            continue
        leading = False
        if role == "system":
            pending.append(content)
            continue
        if role == "user" and pending:
            content, pending = "\n\n".join([*pending, content]), []
        if turns and turns[-1][0] == role:
            turns[-1] = (role, turns[-1][1] + "\n\n" + content)
        else:
            turns.append((role, content))
    if pending:
        turns = _with_notes(turns, pending)
    if start_line and (not turns or turns[0][0] != "user"):
        turns.insert(0, ("user", START_LINE))
    if system and fold_system:
        turns = turns if turns and turns[0][0] == "user" else [("user", START_LINE), *turns]
        turns[0] = ("user", "\n\n".join([*system, turns[0][1]]))
        return turns
    head = [("system", "\n\n".join(system))] if system else []
    return head + turns


def _with_notes(turns: list[Message], notes: list[str]) -> list[Message]:
    """Notes after the last user message join it; with no user message, they become one."""
    joined = "\n\n".join(notes)
    for index in range(len(turns) - 1, -1, -1):
        if turns[index][0] == "user":
            turns[index] = ("user", turns[index][1] + "\n\n" + joined)
            return turns
    return [("user", joined), *turns]


@dataclass(frozen=True)
class ChatTemplate:
    """A model's own Jinja chat template and the special tokens it is rendered with."""

    source: str
    bos_token: str = ""
    eos_token: str = ""
    options: TemplateOptions = DEFAULT_OPTIONS
    budget: TemplateBudget = DEFAULT_BUDGET

    def render(self, messages: Sequence[Message], *, add_generation_prompt: bool = True) -> str:
        """One conversation, rendered (without the leading BOS, which the tokenizer adds).

        Raises:
            FormatError: the template failed, or refused the conversation.
        """
        return self._first_rendered([RenderCall(tuple(messages), add_generation_prompt, self.options)])

    def reads(self, name: str) -> bool:
        """Whether the template reads a switch (`enable_thinking`, `reasoning_effort`)."""
        return name in self.source

    def check(self) -> None:
        """Raises FormatError unless the template renders a short chat with each message in
        it, and ends a prompt asking for a reply the way it opens a reply (a template that
        does not is no chat template)."""
        messages = read_marked(_SAMPLE).messages
        asked = self.render_marked(_SAMPLE)
        answered = self.render([*messages, ("assistant", _OPEN_TEXT)], add_generation_prompt=False)
        if not all(content in asked for _, content in messages):
            raise FormatError("The model's chat template leaves messages out.")
        last = messages[-1][1]
        cue = asked[asked.rfind(last) + len(last) :]
        opening = answered[answered.rfind(last) + len(last) : answered.rfind(_OPEN_TEXT)]
        if not cue.strip() or not opening.startswith(cue):
            raise FormatError("The model's chat template writes no prompt for the model's reply.")

    def render_marked(self, text: str) -> str:
        """A prompt written in `marked_format`, rendered with the template.

        Raises:
            FormatError: the template failed, refused the conversation however it was
                put, or ran past its budget (`TemplateBudgetError`).
        """
        marked = read_marked(text)
        # As the chat stands; opening with a user turn; and with no system role at all.
        calls = [
            self._call(marked),
            self._call(marked, start_line=True),
            self._call(marked, fold_system=True),
        ]
        rendered = self._first_rendered(calls)
        if marked.open_role == "assistant" and not marked.open_text:
            return rendered
        at = rendered.rfind(_OPEN_TEXT)
        if at < 0:
            raise FormatError("The model's chat template dropped the message being continued.")
        return rendered[:at] + marked.open_text

    def _call(self, marked: Marked, *, start_line: bool = False, fold_system: bool = False) -> RenderCall:
        messages = list(marked.messages)
        fresh_reply = marked.open_role == "assistant" and not marked.open_text
        if not fresh_reply:
            messages.append((marked.open_role, _OPEN_TEXT))
        turns = conversation(messages, start_line=start_line, fold_system=fold_system)
        return RenderCall(tuple(turns), fresh_reply, self.options)

    def _first_rendered(self, calls: list[RenderCall]) -> str:
        unique = list(dict.fromkeys(calls))
        renders = render_isolated(
            self.source, unique, bos_token=self.bos_token, eos_token=self.eos_token, budget=self.budget
        )
        for rendered in renders:
            if rendered.error is None:
                text = rendered.text
                if self.bos_token and text.startswith(self.bos_token):
                    text = text[len(self.bos_token) :]
                return text
        raise FormatError(f"The model's chat template could not be rendered: {renders[0].error}")
