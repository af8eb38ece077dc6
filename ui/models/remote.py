"""The Models tab's Remote engine section: use a model that another program serves.

Layout first (`build_remote_section`), events second (`wire_remote`); the work is in
plain functions (`connect`, `remote_status`, `saved_remote`) that tests call without a
browser. A connected engine is the loaded model, like a local one, so every tab
works with it unchanged. The last engine used is remembered, but never its API key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import gradio as gr

from catalog.detect import detect_model_format
from engine.backend import Backend
from engine.remote import REMOTE_KINDS, RemoteBackend, RemoteKind, RemoteSpec, without_credentials
from engine.types import ModelInfo
from services.context import AppContext, Progress
from services.models import logic
from ui.errors import shown_errors

SETTING = "last_remote"  # {"kind", "url", "model", "n_ctx"}: never the key
KIND_CHOICES = [
    ("OpenAI-compatible (llama.cpp, vLLM, ...)", "openai"),
    ("KoboldAI (KoboldCpp, United)", "kobold"),
]


@dataclass
class RemoteWidgets:
    kind: gr.Radio
    url: gr.Textbox
    api_key: gr.Textbox
    model: gr.Textbox
    n_ctx: gr.Number
    connect: gr.Button
    status: gr.Markdown


# -- logic -----------------------------------------------------------------------------------


def saved_remote(ctx: AppContext) -> dict[str, Any]:
    """The last remote engine used, checked field by field (a damaged setting gives defaults)."""
    raw = ctx.store.get_setting(SETTING, {})
    raw = raw if isinstance(raw, dict) else {}
    kind, url, model, n_ctx = raw.get("kind"), raw.get("url"), raw.get("model"), raw.get("n_ctx")
    return {
        "kind": kind if kind in REMOTE_KINDS else "openai",
        "url": url if isinstance(url, str) else "",
        "model": model if isinstance(model, str) else "",
        "n_ctx": n_ctx if isinstance(n_ctx, int) and n_ctx >= 0 else 0,
    }


def connect(ctx: AppContext, spec: RemoteSpec, progress: Progress | None = None) -> ModelInfo:
    """Connect to a remote engine, make it the loaded model, pick its prompt format, remember it.

    Raises:
        RemoteConnectError, RemoteAuthError: the previous model stays loaded.
    """
    info = ctx.models.connect_remote(spec, progress)
    backend = ctx.models.backend
    bos, eos = backend.special_tokens()
    ctx.model_format = detect_model_format(
        ctx.formats,
        catalog=ctx.catalog,
        file_name=backend.model_id if isinstance(backend, RemoteBackend) else info.name,
        model_name=info.name,
        chat_template=info.chat_template,
        bos_token=bos,
        eos_token=eos,
    )
    url = without_credentials(spec.url)  # like the key, a password in the address is never saved
    remembered = {"kind": spec.kind, "url": url, "model": spec.model, "n_ctx": spec.n_ctx}
    ctx.store.set_setting(SETTING, remembered)
    return info


def estimate_note(backend: Backend) -> str:
    """ " (estimated)" when the backend's token counts are estimates, for context lines."""
    return " (estimated)" if backend.token_count_is_estimate else ""


def remote_status(ctx: AppContext) -> str:
    """What the connected remote engine is and how Hearth uses it ("" when none is)."""
    backend = ctx.models.backend if ctx.models.loaded else None
    if not isinstance(backend, RemoteBackend):
        return ""
    info = backend.info
    counting = (
        "token counts are estimated (the server has no tokenize endpoint)"
        if backend.token_count_is_estimate
        else "tokens counted by the server"
    )
    detected = ctx.detected_format()
    return (
        f"Connected to **{logic.md(info.name)}** on {logic.md(backend.engine)} at {logic.md(info.path)}.\n\n"
        f"Context: {backend.n_ctx:,} tokens ({logic.md(backend.n_ctx_source)}) · {counting} · "
        f"{logic.md(detected.format.name)} format ({logic.md(detected.reason)})"
    )


# -- layout and events -----------------------------------------------------------------------


def build_remote_section(ctx: AppContext) -> RemoteWidgets:
    """The "Remote engine" accordion; call `wire_remote` once the outputs exist."""
    saved = saved_remote(ctx)
    with gr.Group(elem_id="remote-engine"):
        gr.Markdown(
            "Use a model that another program serves: llama.cpp's server, vLLM, KoboldCpp, or any "
            "OpenAI-compatible endpoint. Hearth still builds the prompts, so Chat, Story and "
            "Adventure work as with a local model."
        )
        kind = gr.Radio(KIND_CHOICES, value=saved["kind"], label="API", elem_id="remote-kind")
        with gr.Row():
            url = gr.Textbox(
                saved["url"], label="Server address", placeholder="http://127.0.0.1:8080", scale=3,
                elem_id="remote-url",
            )  # fmt: skip
            api_key = gr.Textbox(
                label="API key (if the server wants one)", type="password", scale=2, elem_id="remote-key"
            )
        with gr.Row():
            model = gr.Textbox(
                saved["model"],
                label="Model name (empty: the server's first)",
                scale=3,
                elem_id="remote-model",
            )
            n_ctx = gr.Number(
                saved["n_ctx"], label="Context size (0 = ask the server)", precision=0, minimum=0, scale=2,
                elem_id="remote-n-ctx",
            )  # fmt: skip
        connect_button = gr.Button("Connect", variant="primary", elem_id="remote-connect")
        status = gr.Markdown(remote_status(ctx), elem_id="remote-status")
    return RemoteWidgets(kind, url, api_key, model, n_ctx, connect_button, status)


def wire_remote(ctx: AppContext, widgets: RemoteWidgets, facts: gr.Markdown) -> Any:
    """Wire Connect; returns its event, so what follows a model load can chain on it."""

    @shown_errors
    def on_connect(
        kind: str | None,
        url: str | None,
        api_key: str | None,
        model: str | None,
        n_ctx: float | None,
        progress: gr.Progress = gr.Progress(),
    ) -> tuple[str, str]:
        chosen = cast(RemoteKind, kind or "openai")  # RemoteSpec checks it
        spec = RemoteSpec(chosen, url or "", api_key or "", (model or "").strip(), int(n_ctx or 0))
        info = connect(ctx, spec, lambda f, m: progress(f, desc=m))
        return logic.facts_markdown(ctx, info), remote_status(ctx)

    w = widgets
    return w.connect.click(
        on_connect, [w.kind, w.url, w.api_key, w.model, w.n_ctx], [facts, w.status],
        api_name="connect_remote", concurrency_id="model-jobs", concurrency_limit=1,
    )  # fmt: skip
