"""Each toast says what kind of news it is: a user's mistake is a warning, something that
failed is an error (issue 14: "Type a message first." was titled "Error")."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import gradio as gr
import pytest
from gradio.context import LocalContext

from engine.errors import NoModelLoadedError
from presets.errors import HearthError, InputError
from store.errors import InvalidInputError, StoreFullError
from ui.errors import as_gradio_error, notify, warn

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def toasts(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, str]]]:
    """The (kind, text) of each warning and information toast, inside a queued event."""
    shown: list[tuple[str, str]] = []
    monkeypatch.setattr(gr, "Warning", lambda message, *_a, **_k: shown.append(("warning", message)))
    monkeypatch.setattr(gr, "Info", lambda message, *_a, **_k: shown.append(("info", message)))
    token = LocalContext.event_id.set("an-event")
    try:
        yield shown
    finally:
        LocalContext.event_id.reset(token)


def test_a_mistake_is_a_warning_and_stops_the_event_without_an_error_toast(
    toasts: list[tuple[str, str]],
) -> None:
    for mistake in (InvalidInputError("Type a message first."), NoModelLoadedError("Load a model first.")):
        raised = as_gradio_error(mistake)
        assert toasts.pop() == ("warning", str(mistake))
        assert isinstance(raised, gr.Error) and not raised.visible  # stops what would follow
        assert raised.message == str(mistake)  # an API caller still gets the words


def test_a_failure_is_an_error(toasts: list[tuple[str, str]]) -> None:
    raised = as_gradio_error(StoreFullError("The disk is full."))
    assert (raised.visible, raised.title, raised.message) == (True, "Error", "The disk is full.")
    assert not toasts


def test_news_is_escaped_for_the_page(toasts: list[tuple[str, str]]) -> None:
    warn("Imported <b>Ann</b>.")
    notify("Saved <b>Ann</b>.")
    as_gradio_error(InvalidInputError("No <i>file</i>."))
    assert toasts == [
        ("warning", "Imported &lt;b&gt;Ann&lt;/b&gt;."),
        ("info", "Saved &lt;b&gt;Ann&lt;/b&gt;."),
        ("warning", "No &lt;i&gt;file&lt;/i&gt;."),
    ]


def test_where_no_toast_can_show_a_mistake_is_an_error_titled_warning() -> None:
    # An unqueued event: Gradio would print a warning (and its text) to the log instead.
    raised = as_gradio_error(InvalidInputError("The note depth must be a whole number."))
    assert (raised.visible, raised.title) == (True, "Warning")
    warn("never printed")  # nothing to show it in; and never the log


def test_the_tabs_raise_hearth_errors_not_gradio_ones() -> None:
    # `ui.errors` alone decides a toast's kind: a tab raises an InputError for a mistake,
    # or the error of what failed, never gr.Error (which is always titled "Error").
    raised = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / "ui").rglob("*.py"))
        if path.name != "errors.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\bgr\.Error\(", line)
    ]
    assert raised == []
    assert issubclass(InvalidInputError, InputError) and issubclass(InputError, HearthError)
