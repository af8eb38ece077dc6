"""The Models tab's Remote engine section: use a model that another program serves.

Layout first (`layout`), events second (`wire`); the work is in `services.models.remote`
(`connect`, `remote_status`, `saved_remote`), which tests call without a browser.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import gradio as gr

from engine.remote import RemoteKind, RemoteSpec
from services.context import AppContext
from services.models import logic
from services.models.remote import connect, remote_status, saved_remote
from ui.errors import shown_errors

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


def layout(ctx: AppContext) -> RemoteWidgets:
    """The "Remote engine" group, showing the last engine used; `wire` connects it."""
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


def wire(w: RemoteWidgets, ctx: AppContext, facts: gr.Markdown) -> Any:
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

    return w.connect.click(
        on_connect, [w.kind, w.url, w.api_key, w.model, w.n_ctx], [facts, w.status],
        api_name="connect_remote", concurrency_id="model-jobs", concurrency_limit=1,
    )  # fmt: skip
