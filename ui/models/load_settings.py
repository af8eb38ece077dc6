"""The Installed section's load settings: context, GPU layers and threads, the advanced
performance settings in an accordion, and the plan they make for the picked model.

Picking a model fills the settings it was last loaded with (remembered per file), and
every change redraws its plan, so the numbers are seen before anything loads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from engine.types import CACHE_TYPES, FLASH_ATTENTION, LoadOptions
from services.context import AppContext
from services.models import plan as plans
from ui.errors import shown_errors

CONTEXTS = ["auto", "2048", "4096", "8192", "16384", "32768"]
LAYERS = ["auto", "all", "0"]


@dataclass
class LoadSettingsWidgets:
    n_ctx: gr.Dropdown
    gpu: gr.Dropdown
    threads: gr.Number
    threads_batch: gr.Number
    flash_attn: gr.Radio
    cache_k: gr.Dropdown
    cache_v: gr.Dropdown
    mmap: gr.Checkbox
    mlock: gr.Checkbox
    n_batch: gr.Number
    n_ubatch: gr.Number
    plan: gr.Markdown

    @property
    def inputs(self) -> list[Any]:
        """The settings, in the order `services.models.plan.form_options` takes them."""
        return [
            self.n_ctx, self.gpu, self.threads, self.threads_batch, self.flash_attn, self.cache_k,
            self.cache_v, self.mmap, self.mlock, self.n_batch, self.n_ubatch,
        ]  # fmt: skip


def layout(ctx: AppContext) -> LoadSettingsWidgets:
    o = ctx.settings.load_options
    with gr.Row():
        n_ctx = gr.Dropdown(
            CONTEXTS, value=plans.count_text(o.n_ctx), allow_custom_value=True,
            label="Context size (tokens; auto fits it to memory)", elem_id="load-n-ctx",
        )  # fmt: skip
        gpu = gr.Dropdown(
            LAYERS, value=plans.count_text(o.n_gpu_layers, all_word=True), allow_custom_value=True,
            label="GPU layers (auto: as many as fit)", elem_id="load-gpu",
        )  # fmt: skip
        threads = gr.Number(o.threads, label="CPU threads", precision=0, minimum=1, elem_id="load-threads")
    plan = gr.Markdown(elem_id="load-plan")
    with gr.Accordion("Advanced load settings", open=False, elem_id="load-advanced"):
        with gr.Row():
            flash_attn = gr.Radio(
                list(FLASH_ATTENTION), value=o.flash_attn, label="Flash attention", elem_id="load-flash"
            )
            cache_k = gr.Dropdown(
                list(CACHE_TYPES), value=o.cache_type_k, label="K cache", elem_id="load-cache-k"
            )
            cache_v = gr.Dropdown(
                list(CACHE_TYPES), value=o.cache_type_v, label="V cache (quantized: flash attention on)",
                elem_id="load-cache-v",
            )  # fmt: skip
        with gr.Row():
            threads_batch = gr.Number(
                o.threads_batch, label="Prompt threads (empty: as CPU threads)", precision=0, minimum=1,
                elem_id="load-threads-batch",
            )  # fmt: skip
            n_batch = gr.Number(
                o.n_batch, label="Batch (n_batch)", precision=0, minimum=1, elem_id="load-batch"
            )
            n_ubatch = gr.Number(
                o.n_ubatch, label="Micro-batch (n_ubatch)", precision=0, minimum=1, elem_id="load-ubatch"
            )
        with gr.Row():
            mmap = gr.Checkbox(o.use_mmap, label="Memory-map the file (mmap)", elem_id="load-mmap")
            mlock = gr.Checkbox(o.use_mlock, label="Keep it in RAM (mlock)", elem_id="load-mlock")
    return LoadSettingsWidgets(
        n_ctx, gpu, threads, threads_batch, flash_attn, cache_k, cache_v, mmap, mlock, n_batch, n_ubatch, plan
    )


def values(options: LoadOptions) -> list[Any]:
    """Widget values for `options`, in the order of `LoadSettingsWidgets.inputs`."""
    return [
        plans.count_text(options.n_ctx), plans.count_text(options.n_gpu_layers, all_word=True),
        options.threads, options.threads_batch, options.flash_attn, options.cache_type_k,
        options.cache_type_v, options.use_mmap, options.use_mlock, options.n_batch, options.n_ubatch,
    ]  # fmt: skip


def options_for(ctx: AppContext, path: Path) -> LoadOptions:
    """The settings a model loads with: those it was last loaded with, else the start-up ones."""
    return plans.remembered_options(ctx.store, path, ctx.settings.load_options)


def wire(
    w: LoadSettingsWidgets, ctx: AppContext, picked: Callable[[str | None], Path | None], choice: Any
) -> None:
    """Picking a model fills its remembered settings and its plan; a change redraws the plan.
    `picked` turns the list's value into the model's file (None for none, or a legacy file)."""

    @shown_errors
    def on_pick(item_id: str | None) -> list[Any]:
        path = picked(item_id)
        if path is None:
            return [*(gr.skip() for _ in w.inputs), ""]
        options = options_for(ctx, path)
        return [*values(options), plans.plan_markdown(path, options)]

    def on_change(item_id: str | None, *settings: Any) -> str:
        path = picked(item_id)
        try:
            options = plans.form_options(*settings)
        except plans.LoadSettingsError as exc:
            return f"**Plan:** {exc}"
        return plans.plan_markdown(path, options)

    quiet: dict[str, Any] = {"api_visibility": "undocumented"}
    choice.input(on_pick, [choice], [*w.inputs, w.plan], **quiet)
    for widget in w.inputs:
        widget.input(on_change, [choice, *w.inputs], [w.plan], **quiet)
