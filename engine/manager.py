"""The loaded model, and the runs going through it.

`ModelManager` is the one place a model is loaded, swapped or unloaded. A failed load
leaves the previous model loaded. Runs are registered per owner (the browser session
that started them), so Stop ends only that owner's run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from engine.backend import Backend
from engine.errors import ContextOverflowError, NoModelLoadedError
from engine.gguf import model_info, read_header
from engine.prompts import FittedPrompt, PromptParts, Rewrite, fit_prompt
from engine.run import Run, Worker
from engine.tokens import TokenCounter
from engine.types import GenerationRequest, LoadOptions, ModelInfo
from presets.samplers import SamplerParams

if TYPE_CHECKING:  # engine.remote.base imports httpx, which only remote engines need
    from engine.remote import RemoteSpec

log = logging.getLogger(__name__)

BackendFactory = Callable[[Path, LoadOptions], Backend]
Progress = Callable[[float, str], None]


def llama_factory(path: Path, options: LoadOptions) -> Backend:
    """Load a GGUF file with llama.cpp (imported only when a model is loaded)."""
    from engine.llama import LlamaCppBackend

    return LlamaCppBackend(path, options)


class ModelManager:
    """Holds at most one loaded model and serialises the runs that use it."""

    def __init__(self, factory: BackendFactory = llama_factory) -> None:
        self._factory = factory
        self._backend: Backend | None = None
        self._worker: Worker | None = None
        self._counter: TokenCounter | None = None
        self._swap_lock = threading.Lock()
        self._runs: dict[str, Run] = {}
        self._runs_lock = threading.Lock()
        self.options: LoadOptions | None = None

    # -- the model ---------------------------------------------------------------

    @property
    def backend(self) -> Backend:
        """The loaded backend. Raises NoModelLoadedError if there is none."""
        backend = self._backend
        if backend is None:
            raise NoModelLoadedError("No model is loaded. Load one in the Models tab.")
        return backend

    @property
    def loaded(self) -> bool:
        return self._backend is not None

    @property
    def info(self) -> ModelInfo | None:
        return self._backend.info if self._backend else None

    def load(self, path: Path, options: LoadOptions, progress: Progress | None = None) -> ModelInfo:
        """Load `path`, replacing the current model only once the new one is ready.

        Raises:
            ModelLoadError (and subclasses): the previous model stays loaded.
        """
        report = progress or (lambda _f, _m: None)
        backend = self.build(path, options, report)
        report(0.9, "Swapping in the new model")
        self.attach(backend, options)
        report(1.0, f"Loaded {backend.info.name}")
        return backend.info

    def build(self, path: Path, options: LoadOptions, progress: Progress | None = None) -> Backend:
        """A backend for `path`, checked and loaded but not attached: the caller attaches
        it (`attach`) once whatever must come first (its prompt format) is ready.

        Raises:
            ModelLoadError (and subclasses).
        """
        report = progress or (lambda _f, _m: None)
        report(0.05, "Reading the model's metadata")
        info = model_info(path, read_header(path))
        report(0.2, f"Loading {info.name} ({info.quant}, {info.file_size / 2**20:,.0f} MiB)")
        return self._factory(path, options)

    def connect_remote(self, spec: RemoteSpec, progress: Progress | None = None) -> ModelInfo:
        """Connect to a model another program serves, and make it the loaded model.

        Raises:
            RemoteConnectError, RemoteAuthError: the previous model stays loaded.
        """
        from engine.remote import connect  # here, not at the top: see the TYPE_CHECKING import

        report = progress or (lambda _f, _m: None)
        report(0.1, f"Connecting to {spec.base_url}")
        backend = connect(spec)
        report(0.9, f"Connected: {backend.info.name} on {backend.info.architecture}")
        self.attach(backend, LoadOptions(n_ctx=backend.n_ctx))
        report(1.0, f"Using {backend.info.name}")
        return backend.info

    def attach(self, backend: Backend, options: LoadOptions | None = None) -> None:
        """Make `backend` the loaded model; the old one closes after its queued runs."""
        with self._swap_lock:
            old, old_worker = self._backend, self._worker
            self._backend = backend
            self._worker = Worker(name=f"generate-{backend.info.name}")
            self._counter = TokenCounter(backend.tokenize)
            self.options = options
        self._retire(old, old_worker)

    def unload(self) -> None:
        with self._swap_lock:
            old, old_worker = self._backend, self._worker
            self._backend, self._worker, self._counter = None, None, None
        self._retire(old, old_worker)

    @staticmethod
    def _retire(backend: Backend | None, worker: Worker | None) -> None:
        if worker is not None:
            worker.close()  # runs already queued on the old model finish first
        if backend is not None:
            with backend.lock:
                backend.close()

    # -- prompts -----------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        self.backend  # noqa: B018 - raises NoModelLoadedError with a plain message
        assert self._counter is not None
        return self._counter(text)

    def fit(
        self,
        parts: PromptParts,
        params: SamplerParams,
        *,
        anchor: int | None = None,
        rewrite: Rewrite | None = None,
    ) -> FittedPrompt:
        """Fit `parts` into the context, leaving room for `params.max_new_tokens`; `rewrite`
        turns the text into what the model reads (its own chat template).

        Raises:
            NoModelLoadedError, ContextOverflowError.
        """
        backend = self.backend
        budget = backend.n_ctx - params.max_new_tokens - (1 if backend.adds_bos else 0)
        if budget < 16:
            raise ContextOverflowError(
                f"Max new tokens ({params.max_new_tokens}) leaves no room for the prompt in a "
                f"{backend.n_ctx}-token context. Lower it, or load the model with a larger context."
            )
        return fit_prompt(parts, budget, self.count_tokens, anchor=anchor, rewrite=rewrite)

    # -- runs --------------------------------------------------------------------

    def start(self, request: GenerationRequest, owner: str) -> Run:
        """Start a generation for `owner`. It waits its turn behind other runs."""
        with self._swap_lock:
            backend, worker = self.backend, self._worker
        run = Run(backend, request, owner=owner)
        with self._runs_lock:
            previous = self._runs.get(owner)
            if previous is not None and not previous.done:
                previous.stop()
            self._runs[owner] = run
        run.on_done(self._forget)
        return run.start(worker)

    def stop(self, owner: str) -> bool:
        """Stop `owner`'s run, if it has one. Other owners' runs continue."""
        with self._runs_lock:
            run = self._runs.get(owner)
        if run is None or run.done:
            return False
        run.stop()
        return True

    def stop_and_wait(self, owner: str, timeout: float = 60.0) -> Run | None:
        """Stop `owner`'s run and wait until it has ended and its callbacks (saving what
        it wrote) have run. Returns that run, or None when there was none.

        Raises:
            GenerationError: the run did not end within `timeout` seconds.
        """
        run = self.active_run(owner)
        self.stop(owner)
        if run is not None:
            run.wait(timeout=timeout)
        return run

    def active_run(self, owner: str) -> Run | None:
        with self._runs_lock:
            return self._runs.get(owner)

    def _forget(self, run: Run) -> None:
        with self._runs_lock:
            if self._runs.get(run.owner) is run:
                del self._runs[run.owner]
