"""What the API takes from the app, and what the command line asked of it.

The API never sees the UI's `AppContext`: `app.py` hands it these few things, so
`api/` depends only on the engine and presets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from engine.manager import ModelManager
from engine.prompts import Rewrite
from presets.formats import PromptFormat
from presets.samplers import SamplerParams


def _never_loading() -> bool:
    return False


def _no_rewrite(_fmt: PromptFormat) -> Rewrite | None:
    return None


@dataclass(frozen=True)
class ApiDeps:
    """The app's model manager and the few facts the API asks it for."""

    models: ModelManager  # shared with the UI: one queue of runs per loaded model
    prompt_format: Callable[[], PromptFormat]  # the format detected for the loaded model
    default_params: Callable[[], SamplerParams]  # sampler values a request leaves out
    loading: Callable[[], bool] = _never_loading  # True while the start-up model loads
    # What turns a prompt in that format into the model's own template, when it is rendered in full.
    prompt_rewrite: Callable[[PromptFormat], Rewrite | None] = _no_rewrite


@dataclass(frozen=True)
class ApiSettings:
    """The `--api*` flags.

    `port` None serves the API on the UI's port. `key`, when set, must come with
    every request as `Authorization: Bearer KEY`. Without a key, `login` (the UI's
    `--auth` users and passwords; any of them) must come instead, as HTTP basic auth or as
    `Authorization: Bearer USER:PASS`. `cors_origins` are the only web origins
    allowed to call the API from a browser; none by default.
    """

    port: int | None = None
    key: str | None = None
    cors_origins: tuple[str, ...] = ()
    logins: tuple[tuple[str, str], ...] = ()
