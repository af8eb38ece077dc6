"""A model behind an OpenAI-compatible completions endpoint (`/v1/completions`).

llama.cpp's server, llama-cpp-python's server, vLLM and KoboldCpp all speak it. Hearth
sends its own prompt text, so the server's chat template is never applied; samplers
go by the names each server reads. At connect the server is asked what it serves
(`/v1/models`), what it is (`/props` is llama.cpp's), and how it tokenizes.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Any

from engine.errors import RemoteConnectError, RemoteEngineError
from engine.remote.base import (
    RemoteBackend,
    RemoteSpec,
    TokenCounting,
    TokenizeEndpoint,
    choose_n_ctx,
    whole_number,
)
from engine.remote.http import RemoteHTTP, StreamAbort, reason_of, sse_events
from engine.types import Chunk, Finish, FinishReason, GenerationRequest, ModelInfo, Usage

# How servers word a prompt that does not fit, with the context size in it.
_CONTEXT_SIZE = re.compile(r"context (?:length|window|size) (?:is|of) (\d+)", re.IGNORECASE)


class OpenAIBackend(RemoteBackend):
    """A model served through an OpenAI-compatible API."""

    @classmethod
    def connect(cls, spec: RemoteSpec) -> OpenAIBackend:
        """Ask the server what it serves, how it tokenizes and how much context it holds.

        Raises:
            RemoteConnectError, RemoteAuthError: the previous model stays loaded.
        """
        http = RemoteHTTP(spec.base_url, spec.api_key, api="OpenAI-compatible")
        try:
            model_id, entry = _pick_model(http, spec.model)
            answer = http.get("/props", optional=True)
            props: dict[str, Any] = answer if isinstance(answer, dict) else {}
            tokens = TokenCounting.detect(http, _tokenizers(model_id))
            n_ctx, source = choose_n_ctx(_reported_n_ctx(props, entry), spec.n_ctx)
            found = entry.get("meta")
            meta: dict[str, Any] = found if isinstance(found, dict) else {}
            info = ModelInfo(
                path=spec.shown_url,
                name=_display_name(model_id),
                architecture=_engine_name(props, entry, tokens),
                file_size=whole_number(meta.get("size")) or 0,
                quant="remote",
                context_length=whole_number(meta.get("n_ctx_train")) or n_ctx,
                chat_template=_props_text(props, "chat_template"),
                remote=True,
            )
        except BaseException:
            http.close()
            raise
        backend = cls(info, n_ctx, http, tokens, model_id=model_id, n_ctx_source=source)
        backend.bos_eos = (_props_text(props, "bos_token"), _props_text(props, "eos_token"))
        return backend

    def generate(self, request: GenerationRequest, cancel: threading.Event) -> Iterator[Chunk | Finish]:
        parts: list[str] = []
        reason: FinishReason | None = None
        usage: dict[str, Any] = {}
        timings: dict[str, Any] = {}
        events = 0
        try:
            body = completion_body(self.model_id, request)
            with self.http.stream("/v1/completions", body) as response, StreamAbort(cancel, response):
                for event in sse_events(response):
                    events += 1
                    choice = (event.get("choices") or [{}])[0]
                    text = str(choice.get("text") or "")
                    if text:
                        parts.append(text)
                        yield Chunk(text)
                    reason = reason_of(choice.get("finish_reason")) or reason
                    usage = event.get("usage") or usage
                    timings = event.get("timings") or timings
                    if cancel.is_set():
                        break
        except RemoteEngineError:
            if not cancel.is_set():
                raise
        if cancel.is_set():
            reason = FinishReason.CANCELLED
        elif reason is None and events == 0:
            self._explain_empty_stream(request)
        usage_now = self._usage(request.prompt, "".join(parts), usage, timings)
        yield Finish(reason or FinishReason.STOP, usage_now)

    def _usage(self, prompt: str, text: str, usage: dict[str, Any], timings: dict[str, Any]) -> Usage:
        """The server's counts when it gives them, else ours."""
        given = usage.get("prompt_tokens")
        prompt_tokens = given if isinstance(given, int) else self.count_safely(prompt) + int(self.adds_bos)
        given = usage.get("completion_tokens")
        completion_tokens = given if isinstance(given, int) else self.count_safely(text)
        # llama.cpp's server says how many prompt tokens it evaluated; the rest came from its cache.
        given = timings.get("prompt_n")
        evaluated = min(given, prompt_tokens) if isinstance(given, int) else prompt_tokens
        return Usage(prompt_tokens, evaluated, prompt_tokens - evaluated, completion_tokens)

    def _explain_empty_stream(self, request: GenerationRequest) -> None:
        """A stream that ended with nothing in it: ask again, unstreamed, to learn why.

        llama-cpp-python's server ends the stream silently when a prompt does not fit
        its context, while its plain answer names the size, which Hearth then adopts.
        """
        body = {**completion_body(self.model_id, request), "stream": False, "max_tokens": 1}
        body.pop("stream_options")
        try:
            self.http.post("/v1/completions", body)
        except RemoteEngineError as exc:
            found = _CONTEXT_SIZE.search(str(exc))
            if found is None or int(found.group(1)) >= self.n_ctx:
                raise
            self.learn_n_ctx(int(found.group(1)))
            raise RemoteEngineError(
                f"The server's context holds {self.n_ctx} tokens, fewer than Hearth assumed. "
                f"Hearth now fits prompts to {self.n_ctx} tokens: send again."
            ) from exc
        raise RemoteEngineError(
            f"{self.http.base_url} ended the reply without sending anything. Its log may say why."
        )


def completion_body(model_id: str, request: GenerationRequest) -> dict[str, Any]:
    """The streaming `/v1/completions` request for `request`.

    Servers name some samplers differently; each reads the names it knows and ignores
    the rest, so both spellings are sent.
    """
    p = request.params
    body: dict[str, Any] = {
        "model": model_id,
        "prompt": request.prompt,
        "max_tokens": p.max_new_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": p.temperature,
        "top_p": p.top_p,
        "top_k": p.top_k,
        "min_p": p.min_p,
        "typical_p": p.typical_p,
        "presence_penalty": p.presence_penalty,
        "frequency_penalty": p.frequency_penalty,
        "repeat_penalty": p.repeat_penalty,  # llama.cpp, llama-cpp-python
        "repetition_penalty": p.repeat_penalty,  # vLLM
        "repeat_last_n": p.repeat_last_n,
        "mirostat_mode": p.mirostat_mode,  # llama-cpp-python
        "mirostat": p.mirostat_mode,  # llama.cpp
        "mirostat_tau": p.mirostat_tau,
        "mirostat_eta": p.mirostat_eta,
    }
    if request.stop:
        body["stop"] = list(request.stop)
    if p.seed >= 0:
        body["seed"] = p.seed
    return body


def _pick_model(http: RemoteHTTP, wanted: str) -> tuple[str, dict[str, Any]]:
    """The model id to ask for, and its `/v1/models` entry."""
    listing = http.get("/v1/models")
    data = listing.get("data") if isinstance(listing, dict) else None
    if not isinstance(data, list):
        raise RemoteConnectError(
            f"{http.base_url}/v1/models did not list models the way an OpenAI-compatible server does. "
            "Check the address, or try the KoboldAI kind."
        )
    entries = {str(e["id"]): e for e in data if isinstance(e, dict) and e.get("id")}
    if wanted:
        if entries and wanted not in entries:
            offered = ", ".join(list(entries)[:10])
            raise RemoteConnectError(f"The server has no model named {wanted}. It offers: {offered}.")
        return wanted, entries.get(wanted, {})
    if not entries:
        raise RemoteConnectError("The server lists no models. Type the name of the model to use.")
    model_id = next(iter(entries))
    return model_id, entries[model_id]


def _tokenizers(model_id: str) -> list[TokenizeEndpoint]:
    """Tokenize endpoints to try: llama.cpp's server, vLLM, llama-cpp-python's server, KoboldCpp."""
    return [
        TokenizeEndpoint("/tokenize", "content"),
        TokenizeEndpoint("/tokenize", "prompt", {"model": model_id, "add_special_tokens": False}),
        TokenizeEndpoint("/extras/tokenize", "input", {"model": model_id}),
        TokenizeEndpoint("/api/extra/tokencount", "prompt"),
    ]


def _reported_n_ctx(props: dict[str, Any], entry: dict[str, Any]) -> int | None:
    """The context the server runs with: llama.cpp's `/props`, or vLLM's `max_model_len`."""
    settings = props.get("default_generation_settings")
    for value in (
        settings.get("n_ctx") if isinstance(settings, dict) else None,
        props.get("n_ctx"),
        entry.get("max_model_len"),
    ):
        if (count := whole_number(value)) is not None:
            return count
    return None


def _engine_name(props: dict[str, Any], entry: dict[str, Any], tokens: TokenCounting) -> str:
    if props:
        return "llama.cpp server"
    if tokens.endpoint is not None and tokens.endpoint.path == "/extras/tokenize":
        return "llama-cpp-python server"
    owner = str(entry.get("owned_by") or "")
    return {"vllm": "vLLM", "koboldcpp": "KoboldCpp"}.get(owner, "OpenAI-compatible server")


def _props_text(props: dict[str, Any], key: str) -> str:
    """A text field of `/props`, or "" when it is missing or not text. The chat template is
    untrusted code: it runs only on a budget, when the format is detected (`presets.template_budget`)."""
    value = props.get(key)
    return value if isinstance(value, str) else ""


def _display_name(model_id: str) -> str:
    """A model id that is a file path shows as its file name."""
    if model_id.lower().endswith(".gguf"):
        return PurePosixPath(model_id.replace("\\", "/")).name
    return model_id
