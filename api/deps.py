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
from presets.template_budget import TemplateOptions


def _never_loading() -> bool:
    return False


def _as_it_is(fmt: PromptFormat, _switches: TemplateOptions) -> tuple[PromptFormat, Rewrite | None]:
    return fmt, None


@dataclass(frozen=True)
class ApiDeps:
    """The app's model manager and the few facts the API asks it for."""

    models: ModelManager  # shared with the UI: one queue of runs per loaded model
    prompt_format: Callable[[], PromptFormat]  # the format detected for the loaded model
    default_params: Callable[[], SamplerParams]  # sampler values a request leaves out
    loading: Callable[[], bool] = _never_loading  # True while the start-up model loads
    # For that format and a request's template switches: the format to assemble the prompt
    # in, and what renders it with the model's own template (None when nothing does).
    prompt_for: Callable[[PromptFormat, TemplateOptions], tuple[PromptFormat, Rewrite | None]] = _as_it_is


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
