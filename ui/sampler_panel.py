"""The sampler accordion: a preset dropdown, one slider per parameter, a grammar and a
JSON schema the reply must follow (for power users), save-as."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from presets.errors import InputError
from presets.samplers import (
    CONTROLS,
    DEFAULT_PRESET,
    RANGES,
    SamplerParams,
    SamplerPreset,
    ordered_names,
    ordered_values,
)
from services.context import AppContext
from ui.errors import shown_errors

# A slider over the whole range would be too coarse to use; its number box takes more.
SLIDER_HIGH = {"max_new_tokens": 8192}


@dataclass
class SamplerWidgets:
    """The widgets other code needs to read or update."""

    preset: gr.Dropdown
    sliders: list[gr.Slider]
    grammar: gr.Textbox
    json_schema: gr.Textbox
    save_name: gr.Textbox
    save_button: gr.Button

    @property
    def controls(self) -> list[Any]:
        """Every setting, in the order of `ordered_values` and `params_from`."""
        return [*self.sliders, self.grammar, self.json_schema]

    @property
    def texts(self) -> list[gr.Textbox]:
        return [self.grammar, self.json_schema]


def layout(presets: dict[str, SamplerPreset]) -> SamplerWidgets:
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
                maximum=SLIDER_HIGH.get(name, RANGES[name].high),
                step=RANGES[name].step,
                value=getattr(default, name),
                label=RANGES[name].label,
                elem_id=f"sampler-{name}",
            )
            for name in RANGES
        ]
        with gr.Accordion("Constrain the reply (grammar, JSON schema)", open=False):
            grammar = _text_box("GBNF grammar (llama.cpp's)", 'root ::= "yes" | "no"', "sampler-grammar")
            json_schema = _text_box(
                "JSON schema (the reply is JSON that follows it)",
                '{"type": "object", "properties": {"name": {"type": "string"}}}',
                "sampler-json-schema",
            )
        with gr.Row():
            save_name = gr.Textbox(label="Save these settings as", placeholder="My preset", scale=3)
            save_button = gr.Button("Save preset", scale=1)
    return SamplerWidgets(preset, sliders, grammar, json_schema, save_name, save_button)


def _text_box(label: str, placeholder: str, elem_id: str) -> gr.Textbox:
    return gr.Textbox(label=label, placeholder=placeholder, lines=3, max_lines=12, elem_id=elem_id)


def params_from(values: list[Any]) -> SamplerParams:
    """Validate the controls' values (they can arrive from the API, not only the panel).

    Raises:
        SamplerError: a value is out of range, or the schema is not a JSON object.
    """
    return SamplerParams.from_mapping(dict(zip(CONTROLS, values, strict=True)))


def preset_choices(presets: dict[str, SamplerPreset]) -> list[str]:
    return ordered_names(presets.values())


def wire(w: SamplerWidgets, ctx: AppContext) -> None:
    """Picking a preset fills the sliders with its values (read afresh: presets can be saved)."""

    @shown_errors
    def on_pick(name: str) -> list[Any]:
        preset = ctx.presets().get(name)
        if preset is None:
            raise InputError(f"There is no sampler preset called {name}.")
        return ordered_values(preset.params)

    w.preset.input(on_pick, [w.preset], w.controls, api_visibility="undocumented")


def wire_save(w: SamplerWidgets, ctx: AppContext, description: str, api_name: str | None = None) -> None:
    """Saving the sliders as a named preset; `description` says where it was saved from.
    The list is read afresh whenever it is opened, so a preset saved in another tab (or
    window) is there. Only one tab's Save is in the API, as `api_name`."""

    @shown_errors
    def on_save_preset(name: str, *values: Any) -> tuple[Any, ...]:
        name = " ".join(name.split())
        if not name:
            raise InputError("Give the preset a name first.")
        if name in ctx.builtin_presets:
            raise InputError(f"{name} is a built-in preset; pick another name.")
        ctx.store.save_preset(SamplerPreset(name, description, params_from(list(values)), False))
        return gr.update(choices=preset_choices(ctx.presets()), value=name), ""

    shown: dict[str, Any] = {"api_name": api_name} if api_name else {"api_visibility": "undocumented"}
    w.save_button.click(on_save_preset, [w.save_name, *w.controls], [w.preset, w.save_name], **shown)
    w.preset.focus(
        lambda: gr.update(choices=preset_choices(ctx.presets())), None, [w.preset],
        queue=False, show_progress="hidden", api_visibility="undocumented",
    )  # fmt: skip
