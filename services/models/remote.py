"""Using a model that another program serves: connect to it, remember it, say what it is.

A connected engine is the loaded model, like a local one, so every tab works with it
unchanged. The last engine used is remembered, but never its API key.
"""

from __future__ import annotations

from typing import Any

from engine.backend import Backend
from engine.remote import REMOTE_KINDS, RemoteBackend, RemoteSpec, without_credentials
from engine.remote import connect as connect_engine
from engine.types import LoadOptions, ModelInfo
from services.context import AppContext, Progress
from services.models import logic

SETTING = "last_remote"  # {"kind", "url", "model", "n_ctx"}: never the key


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
    """Connect to a remote engine, pick its prompt format, make it the loaded model, remember it.

    The server's chat template (llama.cpp's `/props`) is judged before the engine is
    swapped in, on the same budget as a local model's (`AppContext.use_backend`).

    Raises:
        RemoteConnectError, RemoteAuthError: the previous model stays loaded.
    """
    report = progress or (lambda _f, _m: None)
    report(0.1, f"Connecting to {spec.base_url}")
    backend = connect_engine(spec)
    report(0.8, f"Connected: {backend.info.name} on {backend.info.architecture}")
    ctx.use_backend(backend, LoadOptions(n_ctx=backend.n_ctx), file_name=backend.model_id, progress=report)
    url = without_credentials(spec.url)  # like the key, a password in the address is never saved
    remembered = {"kind": spec.kind, "url": url, "model": spec.model, "n_ctx": spec.n_ctx}
    ctx.store.set_setting(SETTING, remembered)
    report(1.0, f"Using {backend.info.name}")
    return backend.info


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
