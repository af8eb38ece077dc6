"""Process-wide resources, gathered in one object that every tab receives.

Nothing here is per-user: per-user state lives in `gr.State`. `AppContext` replaces
the module-level globals a Gradio app is tempted to grow.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from catalog.bundled import bundled_model_path
from catalog.detect import FormatDetection, detect_model_format
from catalog.download import Downloader
from catalog.entries import Catalog, load_catalog
from catalog.ggml import remove_interrupted
from catalog.hub import HubClient
from catalog.library import Library, projector_beside
from catalog.plan import LoadPlan, fewer
from engine.backend import Backend
from engine.errors import ModelMemoryError, ProjectorError
from engine.manager import BackendFactory, ModelManager, llama_factory
from engine.prompts import Rewrite, through_template
from engine.resources import physical_cores
from engine.types import FlashAttention, LoadOptions, ModelInfo
from presets.errors import HearthError
from presets.formats import PLAIN_FORMAT_ID, PromptFormat, load_builtin_formats
from presets.samplers import SamplerPreset, load_builtin_presets
from presets.template_budget import TemplateOptions
from presets.template_format import is_rendered
from services.chat.busy import BusyChats
from services.live import LiveRuns
from services.models.plan import plan_file
from services.prompt_report import PromptLog
from store.db import Store

log = logging.getLogger(__name__)

DATA_DIR_ENV = "HEARTH_DATA_DIR"
DEFAULT_DATA_DIR = Path("user_data")
Progress = Callable[[float, str], None]
MAX_LOAD_TRIES = 8  # a load that runs out of memory is retried smaller, this many times at most


@dataclass(frozen=True)
class Settings:
    """What the command line asked for. `None` for `n_ctx` or `n_gpu_layers` is "auto"."""

    model: Path | None = None  # None: the bundled model
    port: int = 7860
    listen: bool = False
    auth: tuple[tuple[str, str], ...] = ()  # the users who may log in (--auth, --gradio-auth)
    allowed_hosts: tuple[str, ...] = ()  # host names served beside loopback (--allowed-host)
    bind: str | None = None  # the address to serve on (--host); None: loopback, or all with --listen
    n_ctx: int | None = None
    threads: int = field(default_factory=physical_cores)
    threads_batch: int | None = None  # None: as many as `threads`
    n_gpu_layers: int | None = None
    flash_attn: FlashAttention = "auto"
    cache_type_k: str = "f16"
    cache_type_v: str = "f16"
    use_mmap: bool = True
    use_mlock: bool = False
    n_batch: int = 512
    n_ubatch: int = 512
    data_dir: Path = DEFAULT_DATA_DIR
    model_dirs: tuple[Path, ...] = ()  # folders of models listed where they are (--model-dir)
    load_model: bool = True  # tests and tools may start without one
    hub_endpoint: str | None = None  # None: $HF_ENDPOINT, else huggingface.co

    @property
    def host(self) -> str:
        return self.bind or ("0.0.0.0" if self.listen else "127.0.0.1")

    @property
    def load_options(self) -> LoadOptions:
        return LoadOptions(
            n_ctx=self.n_ctx,
            threads=self.threads,
            n_gpu_layers=self.n_gpu_layers,
            threads_batch=self.threads_batch,
            flash_attn=self.flash_attn,
            cache_type_k=self.cache_type_k,
            cache_type_v=self.cache_type_v,
            use_mmap=self.use_mmap,
            use_mlock=self.use_mlock,
            n_batch=self.n_batch,
            n_ubatch=self.n_ubatch,
        )


@dataclass(frozen=True)
class LoadOutcome:
    """A finished load: the model, the settings it got, its plan, and what Hearth decided."""

    info: ModelInfo
    options: LoadOptions  # as loaded: "auto" decided, and smaller if memory ran out
    plan: LoadPlan | None  # None when the file does not say its shape
    notes: tuple[str, ...] = ()  # decisions and retries, in words, for the status line


def default_data_dir() -> Path:
    return Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR)


@dataclass
class AppContext:
    """Settings, the store, the model manager, the catalog, the Hub, formats and presets."""

    settings: Settings
    store: Store
    models: ModelManager
    formats: dict[str, PromptFormat]
    builtin_presets: dict[str, SamplerPreset]
    catalog: Catalog
    hub: HubClient
    downloader: Downloader
    library: Library
    startup_error: str = ""
    model_format: FormatDetection | None = None
    prompts: PromptLog = field(default_factory=PromptLog)  # the newest prompts' texts, for the inspector
    busy_chats: BusyChats = field(default_factory=BusyChats)  # chats the model is writing for
    live: LiveRuns = field(default_factory=LiveRuns)  # replies the page follows (services.live)
    _ready: threading.Event = field(default_factory=threading.Event)
    # Held while a new model and its format go in together, so two loads never cross.
    _swap_lock: threading.Lock = field(default_factory=threading.Lock)
    _warn_lock: threading.Lock = field(default_factory=threading.Lock)
    _warned: set[str] = field(default_factory=set)
    _unshown: list[str] = field(default_factory=list)

    def presets(self) -> dict[str, SamplerPreset]:
        """Built-in sampler presets, then the user's (a user preset may not shadow a built-in)."""
        merged = dict(self.builtin_presets)
        for name, preset in self.store.user_presets().items():
            merged.setdefault(name, preset)
        return merged

    def detected_format(self) -> FormatDetection:
        """The format that suits the loaded model (the plain transcript when none is).

        `use_backend` sets it just before it attaches the model it belongs to, so it never
        names the format of a model that has already been replaced.
        """
        if self.model_format is not None and self.models.loaded:
            return self.model_format
        return FormatDetection(PLAIN_FORMAT_ID, self.formats[PLAIN_FORMAT_ID], "no model loaded")

    def format_rewrite(self, fmt: PromptFormat, options: TemplateOptions = ()) -> Rewrite | None:
        """What renders a prompt assembled in `fmt` with the model's own template: something
        only for the marked format, when the loaded model has a template. `options` are the
        switches the template reads (`enable_thinking`, `reasoning_effort`), beyond its defaults."""
        template = self.detected_format().template
        if template is None or not is_rendered(fmt):
            return None
        with_options = replace(template, options=(*template.options, *options)) if options else template
        return through_template(with_options.render_marked)

    def prompt_for(self, fmt: PromptFormat, switches: TemplateOptions) -> tuple[PromptFormat, Rewrite | None]:
        """The format to assemble a prompt in and what renders it with the model's template,
        for `fmt` and the template switches a request sets (the API's)."""
        chosen = self.detected_format().with_switches(fmt, switches)
        return chosen, self.format_rewrite(chosen, switches)

    def load_model(self, path: Path, options: LoadOptions, progress: Progress | None = None) -> ModelInfo:
        """Load a model, pick its prompt format, swap both in, and remember it for next time.

        Raises:
            ModelLoadError: the previous model stays loaded, with its format.
        """
        return self.load_planned(path, options, progress).info

    def load_planned(self, path: Path, options: LoadOptions, progress: Progress | None = None) -> LoadOutcome:
        """`load_model`, saying how: the "auto" settings are planned for this machine
        (`catalog.plan`), and a load that runs out of memory is tried again with fewer GPU
        layers, then a shorter context; the outcome's notes say what changed.

        Raises:
            ModelLoadError: the previous model stays loaded, with its format.
        """
        report = progress or _quiet
        plan = plan_file(path, options)
        attempt = plan.options if plan is not None else options
        notes = list(plan.notes) if plan is not None else []
        paired = not attempt.mmproj and (found := projector_beside(path)) is not None
        if paired:
            attempt = replace(attempt, mmproj=str(found))
        for note in notes:
            self.warn_once(note)
        # A projector that does not fit costs a try of its own.
        for tries_left in range(MAX_LOAD_TRIES + paired, 0, -1):
            try:
                backend = self.models.build(path, attempt, report)
                break
            except ProjectorError as exc:
                if not paired:
                    raise
                notes.append(f"{exc} The model was loaded without it, so it cannot see pictures.")
                attempt, paired = replace(attempt, mmproj=""), False
            except ModelMemoryError as exc:
                smaller = fewer(attempt, plan.estimate.n_layers if plan else 0) if tries_left > 1 else None
                if smaller is None:
                    raise
                change = _change_words(attempt, smaller)
                log.warning("%s Trying again with %s.", exc, change)
                notes.append(f"llama.cpp ran out of memory, so Hearth tried again with {change}.")
                report(0.2, f"Out of memory: trying {change}")
                attempt = smaller
        self.use_backend(backend, attempt, file_name=str(path), progress=report)
        if attempt.mmproj:
            projector = Path(attempt.mmproj).name
            notes.append(f"Loaded with its vision projector {projector}: it can see pictures.")
        self.store.set_setting("last_model", str(path))
        report(1.0, f"Loaded {backend.info.name}")
        return LoadOutcome(backend.info, attempt, plan, tuple(notes))

    def warn_once(self, words: str) -> None:
        """Log a warning the first time it is given in this process, and keep it for the
        UI's next page load (`take_warnings`)."""
        with self._warn_lock:
            if words in self._warned:
                return
            self._warned.add(words)
            self._unshown.append(words)
        log.warning("%s", words)

    def take_warnings(self) -> list[str]:
        """Warnings not yet shown in the UI; each is handed out once."""
        with self._warn_lock:
            taken, self._unshown = self._unshown, []
        return taken

    def use_backend(
        self, backend: Backend, options: LoadOptions, *, file_name: str, progress: Progress | None = None
    ) -> FormatDetection:
        """Pick the prompt format of a model that is ready, then make it the loaded model.

        The format comes first: its chat template runs on a budget (`presets.template_budget`),
        and until the model is attached the previous model keeps serving with its own
        format, so no reply ever pairs the new model with the old format. A template that
        fails its budget leaves the new model with the format its name suggests.
        """
        report = progress or _quiet
        report(0.85, "Reading the model's chat template")
        try:
            bos, eos = backend.special_tokens()
            detection = detect_model_format(
                self.formats,
                catalog=self.catalog,
                file_name=file_name,
                model_name=backend.info.name,
                chat_template=backend.info.chat_template,
                bos_token=bos,
                eos_token=eos,
            )
        except BaseException:
            with backend.lock:  # never attached: nothing else holds it
                backend.close()
            raise
        report(0.95, "Swapping in the new model")
        with self._swap_lock:
            self.model_format = detection
            self.models.attach(backend, options)
        return detection

    def wait_ready(self, timeout: float = 120.0) -> bool:
        """Wait for the start-up model load to finish (successfully or not)."""
        return self._ready.wait(timeout)

    def load_startup_model(self) -> None:
        """Load the model named on the command line, or the bundled one."""
        try:
            self.load_model(self.settings.model or bundled_model_path(), self.settings.load_options)
        except HearthError as exc:
            self.startup_error = str(exc)
            log.error("could not load the start-up model: %s", exc)
        finally:
            self._ready.set()


def _quiet(_fraction: float, _message: str) -> None:
    pass


def _change_words(before: LoadOptions, after: LoadOptions) -> str:
    """What a retry changed, e.g. "30 GPU layers instead of 40"."""
    if after.n_gpu_layers != before.n_gpu_layers:
        return f"{after.n_gpu_layers} GPU layers instead of {before.n_gpu_layers}"
    return f"a {after.n_ctx or 0:,}-token context instead of {before.n_ctx or 0:,}"


def create_context(settings: Settings, factory: BackendFactory = llama_factory) -> AppContext:
    """Open the data folder and load formats, presets and the catalog. The model loads separately."""
    store = Store(settings.data_dir)
    formats = load_builtin_formats()
    catalog = load_catalog(format_ids=set(formats))
    hub = HubClient(endpoint=settings.hub_endpoint or os.environ.get("HF_ENDPOINT") or None)
    ctx = AppContext(
        settings=settings,
        store=store,
        models=ModelManager(factory),
        formats=formats,
        builtin_presets=load_builtin_presets(),
        catalog=catalog,
        hub=hub,
        downloader=Downloader(hub, store.models_dir),
        library=Library(
            store.models_dir, store.data_dir / "library.json", catalog=catalog, folders=settings.model_dirs
        ),
    )
    for leftover in remove_interrupted(ctx.library.converted_dir):
        log.info("removed %s, left by a conversion that was cut short", leftover.name)
    if not settings.load_model:
        ctx._ready.set()
    return ctx
