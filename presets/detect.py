"""Choosing a prompt format for a model from what its file says about itself."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from presets.formats import PLAIN_FORMAT_ID, PromptFormat


@dataclass(frozen=True)
class Detection:
    """The format chosen for a model, and why, in words for the UI."""

    format_id: str
    reason: str


def detect_format(formats: Mapping[str, PromptFormat], chat_template: str, model_name: str) -> Detection:
    """Pick a format: the GGUF chat template first, then the model's name, then plain.

    Base models (like the bundled Gemma 3 270M) carry no template and get the plain
    `Name: text` transcript.
    """
    if chat_template:
        for fmt in formats.values():
            if fmt.matches_template(chat_template):
                return Detection(fmt.id, "matched the model's chat template")
    for fmt in formats.values():
        if fmt.matches_name(model_name):
            return Detection(fmt.id, "guessed from the model's name")
    return Detection(PLAIN_FORMAT_ID, "no chat template, so a plain transcript")
