"""Prompt building for every mode: the parts model and its fitter, chat, characters, story, adventure."""

from engine.prompts.adventure import ADVENTURE_STOPS, InputKind, player_input, trim_reply
from engine.prompts.channels import HarmonyStream, uses_channels
from engine.prompts.character import (
    CharacterPrompt,
    CharacterSheet,
    ChatLine,
    DepthNote,
    PersonaSheet,
    build_character_prompt,
)
from engine.prompts.character_format import TurnRenderer, stop_strings
from engine.prompts.chat import Turn, chat_parts, clean_reply
from engine.prompts.itemization import BOS_PART, Itemization, PartCount, itemize
from engine.prompts.macros import MacroContext, expand_macros
from engine.prompts.parts import Block, FittedPrompt, Label, PromptParts, Rewrite, Span, fit_prompt
from engine.prompts.rendered import through_template
from engine.prompts.scenario import (
    Scenario,
    ScenarioError,
    ScenarioStart,
    load_builtin_scenarios,
    parse_scenario,
)
from engine.prompts.story import StoryPrompt, StorySteering, part_tokens, story_parts
from engine.prompts.thinking import (
    THINK_CLOSE,
    THINK_OPEN,
    ThinkingStream,
    Thought,
    answer_of,
    as_kept,
    split_thinking,
)

__all__ = [
    "ADVENTURE_STOPS",
    "BOS_PART",
    "Block",
    "CharacterPrompt",
    "CharacterSheet",
    "ChatLine",
    "DepthNote",
    "FittedPrompt",
    "HarmonyStream",
    "InputKind",
    "Itemization",
    "Label",
    "MacroContext",
    "PartCount",
    "PersonaSheet",
    "PromptParts",
    "Rewrite",
    "Scenario",
    "ScenarioError",
    "ScenarioStart",
    "Span",
    "StoryPrompt",
    "StorySteering",
    "THINK_CLOSE",
    "THINK_OPEN",
    "ThinkingStream",
    "Thought",
    "Turn",
    "TurnRenderer",
    "answer_of",
    "as_kept",
    "build_character_prompt",
    "chat_parts",
    "clean_reply",
    "expand_macros",
    "fit_prompt",
    "through_template",
    "uses_channels",
    "itemize",
    "load_builtin_scenarios",
    "parse_scenario",
    "part_tokens",
    "player_input",
    "split_thinking",
    "stop_strings",
    "story_parts",
    "trim_reply",
]
