"""Process-wide resources, gathered in one object that every tab receives.

Nothing here is per-user: per-user state lives in `gr.State`. `AppContext` replaces
the module-level globals a Gradio app is tempted to grow.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from catalog import bundled_model_path
from engine import LoadOptions, ModelManager, llama_factory
from engine.manager import BackendFactory
from presets import (
    PLAIN_FORMAT_ID,
    PromptFormat,
    SamplerPreset,
    load_builtin_formats,
    load_builtin_presets,
)
from presets.detect import Detection, detect_format
from presets.errors import HearthError
from store import Store

log = logging.getLogger(__name__)

DATA_DIR_ENV = "HEARTH_DATA_DIR"
DEFAULT_DATA_DIR = Path("user_data")


@dataclass(frozen=True)
class Settings:
    """What the command line asked for."""

    model: Path | None = None  # None: the bundled model
    port: int = 7860
    listen: bool = False
    auth: tuple[str, str] | None = None
    n_ctx: int = 4096
    threads: int = 2
    n_gpu_layers: int = 0
    data_dir: Path = DEFAULT_DATA_DIR
    load_model: bool = True  # tests and tools may start without one

    @property
    def host(self) -> str:
        return "0.0.0.0" if self.listen else "127.0.0.1"

    @property
    def load_options(self) -> LoadOptions:
        return LoadOptions(n_ctx=self.n_ctx, threads=self.threads, n_gpu_layers=self.n_gpu_layers)


def default_data_dir() -> Path:
    return Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR)


@dataclass
class AppContext:
    """Settings, the store, the model manager, formats and presets."""

    settings: Settings
    store: Store
    models: ModelManager
    formats: dict[str, PromptFormat]
    builtin_presets: dict[str, SamplerPreset]
    startup_error: str = ""
    _ready: threading.Event = field(default_factory=threading.Event)

    def presets(self) -> dict[str, SamplerPreset]:
        """Built-in sampler presets, then the user's (a user preset may not shadow a built-in)."""
        merged = dict(self.builtin_presets)
        for name, preset in self.store.user_presets().items():
            merged.setdefault(name, preset)
        return merged

    def detected_format(self) -> Detection:
        """The format that suits the loaded model."""
        info = self.models.info
        if info is None:
            return Detection(PLAIN_FORMAT_ID, "no model loaded")
        return detect_format(self.formats, info.chat_template, f"{info.name} {Path(info.path).name}")

    def wait_ready(self, timeout: float = 120.0) -> bool:
        """Wait for the start-up model load to finish (successfully or not)."""
        return self._ready.wait(timeout)

    def load_startup_model(self) -> None:
        """Load the model named on the command line, or the bundled one."""
        try:
            path = self.settings.model or bundled_model_path()
            self.models.load(path, self.settings.load_options)
            self.store.set_setting("last_model", str(path))
        except HearthError as exc:
            self.startup_error = str(exc)
            log.error("could not load the start-up model: %s", exc)
        finally:
            self._ready.set()


def create_context(settings: Settings, factory: BackendFactory = llama_factory) -> AppContext:
    """Open the data folder and load formats and presets. The model loads separately."""
    ctx = AppContext(
        settings=settings,
        store=Store(settings.data_dir),
        models=ModelManager(factory),
        formats=load_builtin_formats(),
        builtin_presets=load_builtin_presets(),
    )
    if not settings.load_model:
        ctx._ready.set()
    return ctx
