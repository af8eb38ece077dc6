"""The sampler accordion: a preset dropdown, one slider per parameter, save-as."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from presets.samplers import DEFAULT_PRESET, RANGES, SamplerParams, SamplerPreset, ordered_names

FIELDS = list(RANGES)


@dataclass
class SamplerPanel:
    """The widgets other code needs to read or update."""

    preset: gr.Dropdown
    sliders: list[gr.Slider]
    save_name: gr.Textbox
    save_button: gr.Button


def build_sampler_panel(presets: dict[str, SamplerPreset]) -> SamplerPanel:
    default = presets[DEFAULT_PRESET].params
    with gr.Accordion("Sampler", open=False):
        preset = gr.Dropdown(
            choices=ordered_names(presets.values()),
            value=DEFAULT_PRESET,
            label="Preset",
            allow_custom_value=True,  # the user's presets are added at run time
            elem_id="sampler-preset",
        )
        sliders = [
            gr.Slider(
                minimum=RANGES[name].low,
                maximum=RANGES[name].high,
                step=RANGES[name].step,
                value=getattr(default, name),
                label=RANGES[name].label,
                elem_id=f"sampler-{name}",
            )
            for name in FIELDS
        ]
        with gr.Row():
            save_name = gr.Textbox(label="Save these settings as", placeholder="My preset", scale=3)
            save_button = gr.Button("Save preset", scale=1)
    return SamplerPanel(preset, sliders, save_name, save_button)


def params_from(values: list[Any]) -> SamplerParams:
    """Validate slider values (they can arrive from the API, not only the sliders).

    Raises:
        SamplerError: a value is out of range.
    """
    return SamplerParams.from_mapping(dict(zip(FIELDS, values, strict=True)))


def slider_values(params: SamplerParams) -> list[Any]:
    return [getattr(params, name) for name in FIELDS]


def preset_choices(presets: dict[str, SamplerPreset]) -> list[str]:
    return ordered_names(presets.values())


def follow_presets(panel: SamplerPanel, presets: Callable[[], dict[str, SamplerPreset]]) -> None:
    """Picking a preset fills the sliders with its values (read afresh: presets can be saved)."""
    panel.preset.input(lambda name: slider_values(presets()[name].params), [panel.preset], panel.sliders)
