"""Lore: lorebooks and world info, their keys, activation and SillyTavern import."""

from engine.lore.activation import DEFAULT_BUDGET, LoreActivation, Lorebook, LoreRole, activate
from engine.lore.worldinfo import Placement, Roll, StoryCard, WorldInfoLike, WorldInfoScan, roll_d100

__all__ = [
    "DEFAULT_BUDGET",
    "LoreActivation",
    "LoreRole",
    "Lorebook",
    "Placement",
    "Roll",
    "StoryCard",
    "WorldInfoLike",
    "WorldInfoScan",
    "activate",
    "roll_d100",
]
