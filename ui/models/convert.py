"""The Models tab's Convert panel: a legacy GGML file becomes a GGUF, with progress, then loads.

The panel opens when a `.bin` is dropped on the page, added by path, or picked under
Installed. It says what the file is; for a file that can convert it shows a small form
of the metadata GGML never stored, prefilled from the catalog or the file's shape; for
one that cannot, the plain reason and the catalog's GGUF alternative.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from catalog.errors import ConversionError
from presets.errors import InputError
from services.context import AppContext
from services.models import convert as logic
from services.models.logic import JobBoard, facts_markdown
from ui.errors import shown_errors, warn
from ui.models.download import tab_after_load
from ui.shared import owner_of

LEGACY_TYPES = [".bin", ".gguf"]


@dataclass
class ConvertWidgets:
    drop: gr.File
    pending: gr.State
    panel: gr.Column
    about: gr.Markdown
    form: gr.Column
    name: gr.Textbox
    prompt_format: gr.Dropdown
    context: gr.Number
    epsilon: gr.Dropdown
    gqa: gr.Number
    rope: gr.Number
    start: gr.Button
    cancel: gr.Button
    status: gr.Markdown

    @property
    def open_outputs(self) -> list[Any]:
        """What `open_values` and `closed_values` fill, in order."""
        return [
            self.pending, self.panel, self.about, self.form, self.name, self.prompt_format,
            self.context, self.epsilon, self.gqa, self.rope, self.status, self.drop,
        ]  # fmt: skip

    @property
    def form_inputs(self) -> list[Any]:
        return [self.pending, self.name, self.prompt_format, self.context, self.epsilon, self.gqa, self.rope]


def layout(ctx: AppContext) -> ConvertWidgets:
    drop = gr.File(
        label="Drop a legacy GGML .bin here to convert it to GGUF",
        file_types=LEGACY_TYPES,
        elem_id="convert-drop",
        height=120,
    )
    pending = gr.State(None, delete_callback=discard_upload)  # the copy goes when the window does
    with gr.Column(visible=False, elem_id="convert-panel") as panel:
        about = gr.Markdown(elem_id="convert-about")
        with gr.Column(visible=False, elem_id="convert-form") as form:
            with gr.Row():
                name = gr.Textbox(label="Model name", scale=2, elem_id="convert-name")
                formats = [(f.name, f.id) for f in ctx.formats.values()]
                prompt_format = gr.Dropdown(
                    formats, label="Prompt format (suggested)", scale=1, elem_id="convert-format"
                )
            with gr.Row():
                context = gr.Number(
                    label="Context length (Llama 2: 4096)", precision=0, minimum=1, elem_id="convert-context"
                )
                epsilon = gr.Dropdown(
                    logic.EPSILON_CHOICES, label="RMS epsilon", allow_custom_value=True, elem_id="convert-eps"
                )
                gqa = gr.Number(label="GQA factor (70B: 8)", precision=0, minimum=1, elem_id="convert-gqa")
                rope = gr.Number(label="Rope base (usually 10000)", minimum=1, elem_id="convert-rope")
            with gr.Row():
                start = gr.Button("Convert to GGUF", variant="primary", elem_id="convert-start")
                cancel = gr.Button("Cancel", variant="stop", elem_id="convert-cancel")
        status = gr.Markdown(elem_id="convert-status")
    return ConvertWidgets(
        drop,
        pending,
        panel,
        about,
        form,
        name,
        prompt_format,
        context,
        epsilon,
        gqa,
        rope,
        start,
        cancel,
        status,
    )


def wire(
    w: ConvertWidgets, ctx: AppContext, jobs: JobBoard, facts: gr.Markdown, tabs: gr.Tabs, tab_ids: set[str]
) -> Any:
    """Wire the panel; returns the Convert event, for chaining what follows a load. The
    model `facts` and the `tabs` are updated once the converted model has loaded."""

    @shown_errors
    def on_drop(path: str | None, previous: logic.PendingConversion | None) -> tuple[Any, ...]:
        if previous is not None and str(previous.path) != path:
            discard_upload(previous)  # a file dropped before this one and never converted
        if not path:
            return closed_values()
        return _examine_drop(ctx, Path(path))

    def on_clear(previous: logic.PendingConversion | None) -> tuple[Any, ...]:
        discard_upload(previous)
        return closed_values()

    @shown_errors
    def on_convert(
        request: gr.Request, waiting: logic.PendingConversion | None, *form: Any
    ) -> Iterator[tuple[Any, ...]]:
        if waiting is None:
            raise InputError("Drop a legacy GGML file here, or pick one under Installed, first.")
        model_name, format_id, n_ctx, rms_eps, gqa_factor, rope_base = form
        values = logic.FormValues(
            model_name or "", n_ctx, rms_eps or "", gqa_factor, rope_base, format_id or ""
        )
        options = logic.options_from_form(ctx, waiting, values)
        skip = gr.skip()
        outcome = logic.ConversionOutcome()
        for line in logic.convert_and_load(ctx, jobs, owner_of(request), waiting, options, outcome):
            yield line, skip, skip, skip, skip, skip
        if outcome.loaded is not None:
            done = facts_markdown(ctx, outcome.loaded), tab_after_load(ctx, tab_ids)
            yield gr.skip(), *done, None, gr.update(visible=False), None

    def on_cancel(request: gr.Request) -> None:
        jobs.cancel(owner_of(request))

    quiet: dict[str, Any] = {"api_visibility": "undocumented"}
    w.drop.upload(on_drop, [w.drop, w.pending], w.open_outputs, concurrency_limit=2, **quiet)
    w.drop.clear(on_clear, [w.pending], w.open_outputs, **quiet)
    loaded = w.start.click(
        on_convert,
        w.form_inputs,
        [w.status, facts, tabs, w.pending, w.form, w.drop],
        api_name="convert_model",
        concurrency_id="model-jobs",
        concurrency_limit=2,
        show_progress="hidden",  # the status line carries its own progress bar
    )
    w.cancel.click(on_cancel, None, None, concurrency_limit=None, **quiet)
    return loaded


def _examine_drop(ctx: AppContext, upload: Path) -> tuple[Any, ...]:
    try:
        if upload.suffix.lower() not in LEGACY_TYPES:
            raise ConversionError(f"{upload.name} is not a model file: drop a legacy GGML .bin file.")
        examined = logic.examine(ctx, upload, "upload")
    except ConversionError:
        _discard(upload)
        raise
    if not examined.convertible:
        _discard(upload)  # nothing will use the copy
    return open_values(ctx, examined, dropped=True)


def open_values(ctx: AppContext, examined: logic.Examined, *, dropped: bool = False) -> tuple[Any, ...]:
    """Values for `ConvertWidgets.open_outputs` that show a file in the panel.

    A file that cannot convert also raises a warning toast with the reason and the
    catalog's GGUF alternative. The drop zone keeps only a dropped file that can convert.
    """
    about = logic.describe_markdown(ctx, examined)
    waiting = examined.pending
    drop = gr.skip() if dropped and waiting is not None else None
    if waiting is None:
        warn(examined.message)
        form: tuple[Any, ...] = (gr.update(visible=False), *(gr.skip() for _ in range(6)))
    else:
        values = logic.form_values(waiting)
        llama_only = not waiting.gpt2  # GPT-2 files hold their own sizes; only Llama needs these
        form = (
            gr.update(visible=True),
            values.name,
            values.prompt_format_id,
            values.context_length,
            gr.update(value=values.rms_epsilon, visible=llama_only),
            gr.update(value=values.gqa, visible=llama_only),
            gr.update(value=values.rope_freq_base, visible=llama_only),
        )
    return waiting, gr.update(visible=True), about, *form, "", drop


def closed_values() -> tuple[Any, ...]:
    """Values for `ConvertWidgets.open_outputs` that hide the panel and forget the file."""
    return None, gr.update(visible=False), *(gr.skip() for _ in range(9)), None


def discard_upload(pending: logic.PendingConversion | None) -> None:
    """Remove the upload copy behind a pending conversion; a library file is never touched."""
    if isinstance(pending, logic.PendingConversion) and pending.origin == "upload":
        _discard(pending.path)


def _discard(upload: Path) -> None:
    """Remove Hearth's copy of an upload that will not be converted (the user's file is elsewhere)."""
    with suppress(OSError):
        upload.unlink(missing_ok=True)
