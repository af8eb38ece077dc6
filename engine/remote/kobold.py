"""A model behind the KoboldAI API: KoboldCpp, or KoboldAI United.

KoboldCpp says what it is at `/api/extra/version`. It streams
(`/api/extra/generate/stream`), counts tokens (`/api/extra/tokencount`) and stops one
generation by its key (`/api/extra/abort`). KoboldAI United has only the blocking
`/api/v1/generate`: its replies arrive whole, and token counts are estimates.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from typing import Any

from engine.errors import RemoteAuthError, RemoteConnectError, RemoteEngineError
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

log = logging.getLogger(__name__)

ABORT_TIMEOUT = 5.0  # seconds to wait for the server to acknowledge an abort
ABORT_GRACE = 2.0  # seconds a blocking generate may take to return its partial text after an abort
_POLL = 0.1
_PROTECTED = "koboldcpp/protected-model"  # KoboldCpp's model name for a client without the password


class KoboldBackend(RemoteBackend):
    """A model served through the KoboldAI API. `streams` is True for KoboldCpp."""

    streams: bool = False

    @classmethod
    def connect(cls, spec: RemoteSpec) -> KoboldBackend:
        """Ask the server which model it serves, what it is and how much context it holds.

        Raises:
            RemoteConnectError, RemoteAuthError: the previous model stays loaded.
        """
        http = RemoteHTTP(spec.base_url, spec.api_key, api="KoboldAI")
        try:
            answer = http.get("/api/v1/model")
            name = answer.get("result") if isinstance(answer, dict) else None
            if not isinstance(name, str) or not name:
                raise RemoteConnectError(
                    f"{http.base_url}/api/v1/model did not name a model the way a KoboldAI server does. "
                    "Check the address, or try the OpenAI-compatible kind."
                )
            if name == _PROTECTED:
                raise RemoteAuthError("KoboldCpp wants its password: type it as the API key.")
            version = http.get("/api/extra/version", optional=True)
            koboldcpp = isinstance(version, dict) and version.get("result") == "KoboldCpp"
            tokens = TokenCounting.detect(http, [TokenizeEndpoint("/api/extra/tokencount", "prompt")])
            n_ctx, source = choose_n_ctx(_reported_n_ctx(http, koboldcpp), spec.n_ctx)
            engine = f"KoboldCpp {version.get('version', '')}".strip() if koboldcpp else "KoboldAI"
            info = ModelInfo(
                path=spec.shown_url,
                name=name.removeprefix("koboldcpp/"),
                architecture=engine,
                file_size=0,
                quant="remote",
                context_length=n_ctx,
                remote=True,
            )
        except BaseException:
            http.close()
            raise
        backend = cls(info, n_ctx, http, tokens, model_id=name, n_ctx_source=source)
        backend.streams = koboldcpp
        return backend

    def generate(self, request: GenerationRequest, cancel: threading.Event) -> Iterator[Chunk | Finish]:
        genkey = f"HEARTH{uuid.uuid4().hex[:12]}"  # lets an abort end this generation and no other
        body = kobold_body(request, self.n_ctx, genkey)
        pieces = (
            self._streamed(body, genkey, cancel) if self.streams else self._blocking(body, genkey, cancel)
        )
        parts: list[str] = []
        reason: FinishReason | None = None
        for piece in pieces:
            if isinstance(piece, FinishReason):
                reason = piece
            else:
                parts.append(piece)
                yield Chunk(piece)
        if cancel.is_set():
            reason = FinishReason.CANCELLED
        text = "".join(parts)
        prompt_tokens = self.count_safely(request.prompt) + int(self.adds_bos)
        usage = Usage(prompt_tokens, prompt_tokens, 0, self.count_safely(text) if text else 0)
        yield Finish(reason or FinishReason.STOP, usage)

    def _streamed(
        self, body: dict[str, Any], genkey: str, cancel: threading.Event
    ) -> Iterator[str | FinishReason]:
        """KoboldCpp's token stream. Stop asks the server to abort, then closes the stream."""
        try:
            with (
                self.http.stream("/api/extra/generate/stream", body) as response,
                StreamAbort(cancel, response, also=lambda: self._abort(genkey)) as abort,
            ):
                for event in sse_events(response):
                    text = str(event.get("token") or "")
                    if text:
                        yield text
                    reason = reason_of(event.get("finish_reason"))
                    if reason is not None:
                        yield reason
                    if cancel.is_set():
                        abort.fire()
                        break
        except RemoteEngineError:
            if not cancel.is_set():
                raise

    def _blocking(
        self, body: dict[str, Any], genkey: str, cancel: threading.Event
    ) -> Iterator[str | FinishReason]:
        """`/api/v1/generate`, which answers once the reply is done; Stop stops waiting for it."""
        answers: list[Any] = []
        failures: list[Exception] = []
        done = threading.Event()

        def ask() -> None:
            try:
                answers.append(self.http.post("/api/v1/generate", body))
            except Exception as exc:  # handed to the generator, which raises or drops it
                failures.append(exc)
            finally:
                done.set()

        threading.Thread(target=ask, name="kobold-generate", daemon=True).start()
        while not done.wait(_POLL):
            if cancel.is_set():
                # KoboldCpp answers an aborted generation with its text so far; United cannot
                # be stopped, so Hearth stops waiting and lets it finish alone.
                if self._abort(genkey):
                    done.wait(ABORT_GRACE)
                break
        if failures and not cancel.is_set():
            raise failures[0]
        results = answers[0].get("results") if answers and isinstance(answers[0], dict) else None
        if not isinstance(results, list) or not results or not isinstance(results[0], dict):
            if cancel.is_set():
                return
            raise RemoteEngineError(f"{self.http.base_url}/api/v1/generate answered without a reply.")
        text = str(results[0].get("text") or "")
        if text:
            yield text
        reason = reason_of(results[0].get("finish_reason"))
        if reason is not None:
            yield reason

    def _abort(self, genkey: str) -> bool:
        """Ask the server to end the generation `genkey`; True if it says it did."""
        try:
            answer = self.http.post(
                "/api/extra/abort", {"genkey": genkey}, optional=True, timeout=ABORT_TIMEOUT
            )
        except RemoteEngineError as exc:  # Stop goes on: the stream is closed, or no longer waited for
            log.warning("could not ask %s to stop: %s", self.http.base_url, exc)
            return False
        return isinstance(answer, dict) and answer.get("success") in ("true", True)


def kobold_body(request: GenerationRequest, n_ctx: int, genkey: str) -> dict[str, Any]:
    """The KoboldAI generate request for `request`.

    `max_context_length` is Hearth's context: KoboldCpp cuts the prompt's start to fit
    it, and Hearth's prompt already fits, so nothing is cut.
    """
    p = request.params
    body: dict[str, Any] = {
        "prompt": request.prompt,
        "max_length": p.max_new_tokens,
        "max_context_length": n_ctx,
        "temperature": p.temperature,
        "top_p": p.top_p,
        "top_k": p.top_k,
        "min_p": p.min_p,
        "typical": p.typical_p,
        "rep_pen": p.repeat_penalty,
        "rep_pen_range": p.repeat_last_n,
        "presence_penalty": p.presence_penalty,
        "mirostat": p.mirostat_mode,
        "mirostat_tau": p.mirostat_tau,
        "mirostat_eta": p.mirostat_eta,
        "stop_sequence": list(request.stop),
        "genkey": genkey,
        "quiet": True,
    }
    if p.seed >= 0:
        body["sampler_seed"] = p.seed
    return body


def _reported_n_ctx(http: RemoteHTTP, koboldcpp: bool) -> int | None:
    """KoboldCpp's real context (`true_max_context_length`), else the advertised one."""
    paths = ["/api/extra/true_max_context_length"] if koboldcpp else []
    for path in [*paths, "/api/v1/config/max_context_length"]:
        answer = http.get(path, optional=True)
        value = answer.get("value") if isinstance(answer, dict) else None
        if (count := whole_number(value)) is not None:
            return count
    return None
