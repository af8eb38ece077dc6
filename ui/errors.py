"""The one place where Hearth's errors become Gradio messages.

Handlers are wrapped with `shown_errors`. Each toast says what kind of news it is:

- a user's mistake (`InputError`: an empty message, nothing picked yet) is a warning,
  and the event stops there, so no reply follows an empty message;
- something that failed (any other `HearthError`, plain words by design) is an error;
- anything else is a bug: it is logged with its traceback and shown briefly;
- a success is `notify` (information); `warn` is for news that is neither.

A handler's text never reaches the log: Gradio would print the message of an
`InputError` raised where no toast can show (an unqueued event), so that one becomes
an error toast titled "Warning" instead.

Gradio's page renders a toast's text as HTML, so the text is escaped for it: names
from cards and files stay text. Programs calling the app's API (gradio_client, which
sends `x-gradio-user: api`, and the `/call/` routes) render no HTML, so they get the
words as they are (`for_caller`).
"""

from __future__ import annotations

import functools
import html
import inspect
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import gradio as gr
from gradio.context import LocalContext

from presets.errors import HearthError, InputError

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


def for_caller(text: str) -> str:
    """`text` for whoever made the current request: escaped for Gradio's page, plain for a program."""
    return text if _api_caller() else html.escape(text)


def _api_caller() -> bool:
    """True when the request being handled comes from an API client rather than the page."""
    current = LocalContext.request.get(None)
    if isinstance(current, list):  # a batch: one request per event
        current = current[0] if current else None
    request = getattr(current, "request", None)  # gr.Request wraps Starlette's
    if request is None:
        return False  # unknown: escaping is the safe side
    if request.headers.get("x-gradio-user") == "api":
        return True
    return "/call/" in request.url.path


def as_gradio_error(exc: Exception) -> gr.Error:
    if isinstance(exc, gr.Error):
        text = for_caller(str(exc.message))
        return gr.Error(text, title=exc.title, visible=exc.visible, print_exception=False)
    if isinstance(exc, InputError):
        return _refusal(for_caller(str(exc)))
    if isinstance(exc, HearthError):
        return gr.Error(for_caller(str(exc)), print_exception=False)
    log.exception("unexpected error in a handler", exc_info=exc)
    return gr.Error(
        f"Something went wrong inside Hearth ({type(exc).__name__}). The app is still running.",
        print_exception=False,  # logged just above
    )


def _refusal(text: str) -> gr.Error:
    """A warning toast, and an error that shows nothing but stops the event (and what
    would follow it). API callers still get the words with the error."""
    if not _queued():
        return gr.Error(text, title="Warning", print_exception=False)
    gr.Warning(text)
    return gr.Error(text, visible=False, print_exception=False)


def _queued() -> bool:
    """Whether the current event runs on Gradio's queue, the only place a warning or
    information toast can reach the page (elsewhere Gradio prints it to the log)."""
    return LocalContext.event_id.get(None) is not None


def _text_params(fn: Callable[..., Any]) -> tuple[frozenset[int], frozenset[str]]:
    """The places and names of `fn`'s parameters declared as text (`str`)."""
    params = list(inspect.signature(fn).parameters.values())
    texts = [(i, p.name) for i, p in enumerate(params) if p.annotation in (str, "str")]
    return frozenset(i for i, _ in texts), frozenset(name for _, name in texts)


def _blank_nulls(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn`, taking a null for a text parameter as empty text. The page sends text from a
    text box, but an API caller (or a cleared dropdown) can send null."""
    places, names = _text_params(fn)
    if not places:
        return fn

    @functools.wraps(fn)
    def blanked(*args: Any, **kwargs: Any) -> Any:
        args = tuple("" if a is None and i in places else a for i, a in enumerate(args))
        kwargs = {k: "" if v is None and k in names else v for k, v in kwargs.items()}
        return fn(*args, **kwargs)

    return blanked


def shown_errors(fn: F) -> F:
    """Turn errors raised by a handler (plain, generator or async generator) into `gr.Error`.
    A null sent for a text parameter arrives as empty text."""
    call = _blank_nulls(fn)
    if inspect.isasyncgenfunction(fn):

        @functools.wraps(fn)
        async def async_gen_wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                async for item in call(*args, **kwargs):
                    yield item
            except Exception as exc:
                raise as_gradio_error(exc) from exc

        return async_gen_wrapper  # type: ignore[return-value]

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                yield from call(*args, **kwargs)
            except Exception as exc:
                raise as_gradio_error(exc) from exc

        return gen_wrapper  # type: ignore[return-value]

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return call(*args, **kwargs)
        except Exception as exc:
            raise as_gradio_error(exc) from exc

    return wrapper  # type: ignore[return-value]


def warn(message: str) -> None:
    """A non-fatal warning toast; the text is shown as text, never as HTML."""
    if _queued():
        gr.Warning(for_caller(message))


def notify(message: str) -> None:
    """An information toast; the text is shown as text, never as HTML."""
    if _queued():
        gr.Info(for_caller(message))
