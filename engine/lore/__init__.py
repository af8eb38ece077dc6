"""Lore: lorebooks and world info, their keys, activation and SillyTavern import."""

from engine.lore.activation import DEFAULT_BUDGET, ActiveEntry, LoreActivation, Lorebook, LoreRole, activate
from engine.lore.worldinfo import (
    Placement,
    Roll,
    StoryCard,
    WorldInfoLike,
    WorldInfoScan,
    entry_name,
    roll_d100,
)
from engine.lore.worldinfo import activate as activate_world_info

__all__ = [
    "DEFAULT_BUDGET",
    "ActiveEntry",
    "LoreActivation",
    "LoreRole",
    "Lorebook",
    "Placement",
    "Roll",
    "StoryCard",
    "WorldInfoLike",
    "WorldInfoScan",
    "activate",
    "activate_world_info",
    "entry_name",
    "roll_d100",
]
