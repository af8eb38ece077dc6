"""The Models tab: what is loaded, and loading another GGUF file with progress."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from engine import LoadOptions, ModelInfo, ModelLoadError, ModelNotFoundError
from ui.context import AppContext
from ui.errors import shown_errors

MODEL_SUFFIXES = (".gguf", ".bin")


@dataclass
class ModelsTab:
    facts: gr.Markdown
    choice: gr.Dropdown
    loaded: Any  # the event that fires after a successful load, for other tabs to chain on


def build(ctx: AppContext) -> ModelsTab:
    options = ctx.settings.load_options
    facts = gr.Markdown(elem_id="model-facts")
    with gr.Group():
        with gr.Row():
            choice = gr.Dropdown(
                label=f"Model in {ctx.store.models_dir}",
                choices=[],
                allow_custom_value=True,  # validated by resolve_model_path
                scale=3,
                elem_id="model-choice",
            )
            refresh = gr.Button("Refresh", scale=0, min_width=90, elem_id="refresh-models")
        path_box = gr.Textbox(label="…or the path of a .gguf file", elem_id="model-path")
        with gr.Row():
            n_ctx = gr.Number(
                value=options.n_ctx, label="Context size (n_ctx)", precision=0, minimum=256, maximum=1_048_576
            )
            threads = gr.Number(
                value=options.threads, label="CPU threads", precision=0, minimum=1, maximum=256
            )
            gpu = gr.Number(
                value=options.n_gpu_layers, label="GPU layers", precision=0, minimum=-1, maximum=1000
            )
        load = gr.Button("Load model", variant="primary", elem_id="load-model")
    status = gr.Markdown(elem_id="load-status")

    @shown_errors
    def on_load_model(
        selected: str | None,
        typed: str,
        ctx_size: float,
        n_threads: float,
        layers: float,
        progress: gr.Progress = gr.Progress(),
    ) -> tuple[str, str]:
        path = resolve_model_path(ctx, selected, typed)
        opts = LoadOptions(n_ctx=int(ctx_size), threads=int(n_threads), n_gpu_layers=int(layers))
        info = ctx.models.load(path, opts, lambda f, m: progress(f, desc=m))
        ctx.store.set_setting("last_model", str(path))
        return facts_markdown(ctx, info), f"Loaded **{_md(info.name)}**."

    def on_refresh() -> Any:
        return gr.update(choices=model_choices(ctx))

    loaded = load.click(
        on_load_model,
        [choice, path_box, n_ctx, threads, gpu],
        [facts, status],
        api_name="load_model",
        concurrency_id="llm",
        concurrency_limit=1,
    )
    refresh.click(on_refresh, None, choice, api_visibility="undocumented")
    return ModelsTab(facts=facts, choice=choice, loaded=loaded)


def startup_values(ctx: AppContext) -> tuple[str, Any]:
    """Facts and the file list, once the start-up load has finished."""
    ctx.wait_ready()
    if ctx.startup_error:
        gr.Warning(ctx.startup_error)
    return facts_markdown(ctx, ctx.models.info), gr.update(choices=model_choices(ctx))


def model_choices(ctx: AppContext) -> list[str]:
    """File names of the models in the data folder's models directory."""
    folder = ctx.store.models_dir
    return sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() in MODEL_SUFFIXES)


def resolve_model_path(ctx: AppContext, selected: str | None, typed: str) -> Path:
    """The file to load: a typed path wins over the list.

    A name from the list must be a plain file name inside the models folder; a typed
    path must name an existing model file. Nothing else reaches the loader.

    Raises:
        ModelNotFoundError: neither names a usable model file.
    """
    if typed and typed.strip():
        path = Path(typed.strip()).expanduser().resolve()
    elif selected:
        folder = ctx.store.models_dir.resolve()
        path = (folder / selected).resolve()
        if path.parent != folder:
            raise ModelNotFoundError("Pick a model from the list.")
    else:
        raise ModelNotFoundError("Pick a model from the list, or type the path of a .gguf file.")
    if not path.is_file():
        raise ModelNotFoundError(f"There is no model file at {path}.")
    if path.suffix.lower() not in MODEL_SUFFIXES:
        raise ModelLoadError(f"{path.name} is not a model file: Hearth loads .gguf files.")
    return path


def facts_markdown(ctx: AppContext, info: ModelInfo | None) -> str:
    if info is None:
        return "### No model loaded\nPick a model below and press **Load model**."
    backend = ctx.models.backend
    detected = ctx.detected_format()
    rows = [
        ("Architecture", info.architecture),
        ("Quantization", info.quant),
        ("File size", human_size(info.file_size)),
        ("Trained context", f"{info.context_length:,} tokens"),
        ("Loaded context", f"{backend.n_ctx:,} tokens"),
        ("Chat template", "yes" if info.chat_template else "none (base model)"),
        ("Prompt format", f"{ctx.formats[detected.format_id].name} ({detected.reason})"),
        ("File", info.path),
    ]
    table = "\n".join(f"| {k} | {_md(str(v))} |" for k, v in rows)
    return f"### {_md(info.name)}\n\n| Loaded model | |\n|---|---|\n{table}"


def human_size(size: int) -> str:
    """Bytes in the largest unit that keeps the number readable."""
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:,.0f} {unit}" if unit == "bytes" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} GiB"


def _md(text: str) -> str:
    """Escape text from a model file for a Markdown table cell."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace("|", "\\|").replace("\n", " ")
