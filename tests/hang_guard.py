"""Calling something that must come back, without letting a test hang when it does not."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

# Not a speed check: a call that has not come back by then never will.
HANG_GUARD_S = 300


def returns(work: Callable[[], T]) -> T:
    """What `work()` returns (or raises), run on a thread; fails the test if it never comes back."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(work())
        except BaseException as exc:  # re-raised on the test's thread below
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(HANG_GUARD_S)
    assert not thread.is_alive(), "the call never came back"
    if failure:
        raise failure[0]
    return outcome[0]
