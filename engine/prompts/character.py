"""Character chat's view of the prompt model: a card, a persona and a chat become `PromptParts`.

The layout follows SillyTavern's text-completion prompt (its Default context template
and the V2/V3 card specs). Callers turn stored cards into the input dataclasses here,
so the engine never imports the store.

- **head** (byte-stable while its inputs are): the story string inside the format's
  system wrap (`PromptFormat.head`). The story string has one part per line, each only
  when it is not empty, in this order: the system prompt; lore before the character;
  the description; `{{char}}'s personality: …`; `Scenario: …`; lore after the
  character; the persona description. Formats that fold the system prompt into the
  first user turn (Llama-2, Mistral, Gemma) also get the first visible message pinned
  into the head, as in chat mode, so the text after any cut renders the same way.
  Example dialogue then comes after that first message; as it is usually the
  character's greeting and examples start with the user, turns still alternate.
- **optional**: example dialogue, one block per `<START>` block, rendered as turns and
  pushed out oldest first. In the plain transcript each block starts with a `***` line
  and the last one ends with another, the chat-start marker (see `TurnRenderer.examples`).
- **body**: one block per visible message, oldest first. Hidden messages never enter
  the prompt, nor the lore scan. Message text is used as it is (no macros).
- **injections**, in this order where they share a depth: lore entries with a depth;
  the "recent" lore note (depth 2); the card's depth note; the post-history
  instructions (depth 0, so last before the tail). A system note is a system turn
  where the format has a system role, a bare line in the transcript, else a user turn;
  user and assistant notes (a depth note's or a lore entry's role) are turns of theirs.
- **tail**: reply: the format's generation prefix; continue: the last message (the
  character's) as an open turn; impersonate: an open user turn.

The system prompt is the card's `system_prompt` when it is not blank, with
`{{original}}` standing for the one it replaces: the global prompt, or the format's
default when that is blank. `post_history_instructions` has no global counterpart, so
`{{original}}` is empty there. Macros (`engine.prompts.macros`) are expanded in every card
field, the system prompt, the examples, the persona, lore and the notes; `{{char}}` is
the card's nickname when it has one.

Lore placement, and the KV cache: with `"character"` (SillyTavern's way) keyword
entries sit inside the definition, high in the prompt where cards expect them, but the
head changes whenever the set of activated entries changes, and every cached token
after it is evaluated again: on a long chat that is the whole chat. With `"recent"`
the before/after entries are grouped into one system note two messages from the end.
The head then depends only on the card, persona and system prompt, so it stays cached;
the price is a note that moves each turn (the few messages after its old place are
evaluated again) and lore read as a recent aside rather than part of the definition.
Entries with an explicit depth go to their depth in both placements.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from engine.errors import EngineError
from engine.lore import DEFAULT_BUDGET, ActiveEntry, LoreActivation, Lorebook, LoreRole, activate
from engine.prompts.character_format import Mode, TurnRenderer, stop_strings
from engine.prompts.chat import Role, Turn
from engine.prompts.examples import parse_examples
from engine.prompts.macros import MacroContext, expand_macros
from engine.prompts.parts import Block, Injection, Label, PromptParts
from engine.tokens import Counter
from presets.errors import InputError
from presets.formats import PromptFormat, Speakers

__all__ = [
    "RECENT_LORE_DEPTH",
    "CannotContinueError",
    "CharacterPrompt",
    "CharacterSheet",
    "ChatLine",
    "DepthNote",
    "LorePlacement",
    "Mode",
    "PersonaSheet",
    "build_character_prompt",
]

LorePlacement = Literal["character", "recent"]
LoreNames = dict[int, str]  # id() of an inserted lore entry -> its name in the prompt inspector

RECENT_LORE_DEPTH = 2  # messages from the end for the "recent" lore note
_MODES = ("reply", "continue", "impersonate")
_PLACEMENTS = ("character", "recent")


class CannotContinueError(EngineError, InputError):
    """Continue was asked for, but the last visible message is not the character's."""


@dataclass(frozen=True)
class DepthNote:
    """SillyTavern's `extensions.depth_prompt`: text placed `depth` messages from the end."""

    text: str
    depth: int = 4
    role: LoreRole = "system"


@dataclass(frozen=True)
class CharacterSheet:
    """The card fields that reach the prompt (never creator notes, tags or creator)."""

    name: str
    nickname: str = ""  # V3: when set, `{{char}}` and the speaker name are the nickname
    description: str = ""
    personality: str = ""
    scenario: str = ""
    system_prompt: str = ""
    post_history_instructions: str = ""
    mes_example: str = ""
    depth_prompt: DepthNote | None = None


@dataclass(frozen=True)
class PersonaSheet:
    """The user's persona: the name `{{user}}` stands for, and its description."""

    name: str = "User"
    description: str = ""


@dataclass(frozen=True)
class ChatLine:
    """One message of the chat; hidden ones stay in the chat but out of the prompt."""

    role: Role
    text: str
    hidden: bool = False


@dataclass(frozen=True)
class CharacterPrompt:
    """The built prompt: its parts, the stop strings, the names used and the lore that fired."""

    parts: PromptParts
    stop: tuple[str, ...]
    speakers: Speakers
    lore: LoreActivation


def build_character_prompt(
    fmt: PromptFormat,
    sheet: CharacterSheet,
    persona: PersonaSheet,
    lines: Sequence[ChatLine],
    *,
    count_tokens: Counter,
    global_system: str = "",
    books: Sequence[Lorebook] = (),
    mode: Mode = "reply",
    lore_placement: LorePlacement = "character",
    lore_budget: int = DEFAULT_BUDGET,
    rng: random.Random | None = None,
    pick_seed: str = "",
) -> CharacterPrompt:
    """Build the prompt parts of a character chat (layout in the module docstring).

    Args:
        fmt: the loaded model's prompt format.
        lines: the whole chat, oldest first, hidden messages included.
        count_tokens: counts tokens for the lore budget (the model's tokenizer).
        global_system: the user's system prompt, which a card's system prompt replaces.
        books: lorebooks in precedence order: the character's, then the user's.
        mode: "reply", "continue" (extend the character's last message) or
            "impersonate" (write the user's next message).
        lore_placement: "character" (inside the definition) or "recent" (a note near
            the end, which keeps the head cached).
        lore_budget: tokens each book may use, and all books together.
        rng: drives `{{random}}`, `{{roll}}` and lore probability; seed it in tests.
        pick_seed: a chat id, so `{{pick}}` differs between chats but not between turns.

    Raises:
        CannotContinueError: mode is "continue" and the last visible message is not
            the character's.
    """
    if mode not in _MODES or lore_placement not in _PLACEMENTS:
        raise ValueError(f"Unknown mode {mode!r} or lore placement {lore_placement!r}.")
    macros = _macro_context(sheet, persona, rng, pick_seed)
    speakers = Speakers(user=persona.name, char=macros.char_display)
    visible = [line for line in lines if not line.hidden]
    history, continued = _split_continued(visible, mode)
    lore = activate(
        books,
        [f"{_speaker(line, speakers)}: {line.text}" for line in visible],
        count_tokens,
        default_budget=lore_budget,
        total_budget=lore_budget,
        expand=lambda text: expand_macros(text, macros),
        rng=rng,
    )
    in_definition = lore if lore_placement == "character" else LoreActivation()
    system = _system_prompt(fmt, sheet, global_system, macros)
    names = _lore_names(lore)
    story, labels = _story_string(system, sheet, persona, macros, in_definition, names)
    head = fmt.head(story, speakers)
    folded = bool(head) and fmt.system_placement == "first_user"
    renderer = TurnRenderer(fmt, speakers, open_head=folded and not history)
    if folded and history:
        first, *history = history
        pinned = fmt.turn(first.role, first.text, speakers, after_head=True)
        head += pinned
        labels.append(Label("history", pinned))
    tail = renderer.tail(mode, continued.text if continued else "")
    examples = renderer.examples(parse_examples(sheet.mes_example, macros))
    parts = PromptParts(
        head=head,
        optional=[replace(block, part="examples") for block in examples],
        body=[replace(renderer.block([_turn(line)]), part="history") for line in history],
        injections=_injections(renderer, sheet, macros, lore, lore_placement, names),
        tail=replace(tail, part="continued" if mode == "continue" else "tail"),
        keep_last=1,
        head_labels=tuple(labels),
    )
    return CharacterPrompt(parts=parts, stop=stop_strings(fmt, speakers, mode), speakers=speakers, lore=lore)


def _macro_context(
    sheet: CharacterSheet, persona: PersonaSheet, rng: random.Random | None, pick_seed: str
) -> MacroContext:
    return MacroContext(
        user=persona.name,
        char=sheet.name,
        char_nickname=sheet.nickname or None,
        fields={
            "description": sheet.description,
            "personality": sheet.personality,
            "scenario": sheet.scenario,
            "persona": persona.description,
            "charPrompt": sheet.system_prompt,
            "charJailbreak": sheet.post_history_instructions,
        },
        rng=rng,
        pick_seed=pick_seed,
    )


def _split_continued(visible: list[ChatLine], mode: Mode) -> tuple[list[ChatLine], ChatLine | None]:
    """The history that goes into the body, and the message to continue (continue mode)."""
    if mode != "continue":
        return visible, None
    if not visible:
        raise CannotContinueError("There is no message to continue yet. Ask for a reply instead.")
    if visible[-1].role != "assistant":
        raise CannotContinueError(
            "Only the character's last message can be continued, and the last message is yours. "
            "Ask for a reply instead."
        )
    return visible[:-1], visible[-1]


def _speaker(line: ChatLine, speakers: Speakers) -> str:
    return speakers.user if line.role == "user" else speakers.char


def _turn(line: ChatLine) -> Turn:
    return Turn(line.role, line.text)


def _system_prompt(fmt: PromptFormat, sheet: CharacterSheet, global_system: str, macros: MacroContext) -> str:
    """The card's system prompt, else the global one, else the format's default."""
    original = global_system.strip() or fmt.default_system
    card = sheet.system_prompt.strip()
    if not card:
        return expand_macros(original, macros).strip()
    return expand_macros(card, replace(macros, original=original)).strip()


def _story_string(
    system: str,
    sheet: CharacterSheet,
    persona: PersonaSheet,
    macros: MacroContext,
    lore: LoreActivation,
    names: LoreNames,
) -> tuple[str, list[Label]]:
    """SillyTavern's standard story string: each non-empty part on its own line; and
    labels naming the parts (each lore entry by name) for the prompt inspector."""
    personality = _expand(sheet.personality, macros)
    scenario = _expand(sheet.scenario, macros)
    parts = (
        system,
        lore.text("before_char"),
        _expand(sheet.description, macros),
        f"{macros.char_display}'s personality: {personality}" if personality else "",
        f"Scenario: {scenario}" if scenario else "",
        lore.text("after_char"),
        _expand(persona.description, macros),
    )
    labels = [
        Label("system", system),
        *_lore_labels(lore.before_char, names),
        Label("description", parts[2]),
        Label("personality", parts[3]),
        Label("scenario", parts[4]),
        *_lore_labels(lore.after_char, names),
        Label("persona", parts[6]),
    ]
    return "\n".join(part for part in parts if part), labels


def _lore_names(lore: LoreActivation) -> LoreNames:
    """Each inserted entry's name for the inspector (its label; `#2`... when two share one)."""
    names: LoreNames = {}
    seen: dict[str, int] = {}
    for entry in (*lore.before_char, *lore.after_char, *lore.at_depth):
        label = entry.entry.label
        seen[label] = seen.get(label, 0) + 1
        names[id(entry)] = label if seen[label] == 1 else f"{label} #{seen[label]}"
    return names


def _lore_labels(entries: Iterable[ActiveEntry], names: LoreNames) -> list[Label]:
    return [Label("lore", entry.text, names.get(id(entry), entry.entry.label)) for entry in entries]


def _lore_note(
    renderer: TurnRenderer, role: LoreRole, entries: Sequence[ActiveEntry], names: LoreNames
) -> Block:
    """Lore entries joined into one note, each labelled by name."""
    note = renderer.note(role, "\n".join(entry.text for entry in entries))
    return replace(note, part="lore", labels=tuple(_lore_labels(entries, names)))


def _injections(
    renderer: TurnRenderer,
    sheet: CharacterSheet,
    macros: MacroContext,
    lore: LoreActivation,
    placement: LorePlacement,
    names: LoreNames,
) -> list[Injection]:
    """Notes placed in the chat; where two share a depth, the earlier here comes first."""
    injections = [
        Injection(_lore_note(renderer, role, entries, names), depth, label="lore")
        for depth, role, entries in lore.depth_entries()
    ]
    if placement == "recent":
        entries = (*lore.before_char, *lore.after_char)
        if entries:
            note = _lore_note(renderer, "system", entries, names)
            injections.append(Injection(note, RECENT_LORE_DEPTH, label="lore"))
    depth_note = sheet.depth_prompt
    if depth_note is not None and (text := _expand(depth_note.text, macros)):
        injections.append(
            Injection(renderer.note(depth_note.role, text), depth_note.depth, label="depth_note")
        )
    post_history = expand_macros(sheet.post_history_instructions, replace(macros, original="")).strip()
    if post_history:
        injections.append(Injection(renderer.note("system", post_history), 0, label="post_history"))
    return injections


def _expand(text: str, macros: MacroContext) -> str:
    return expand_macros(text, macros).strip()
