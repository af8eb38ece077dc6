"""The chats the model is writing for, so that nothing is stored between a message and
its reply.

A reply is saved when its run ends. A message sent to the same chat meanwhile would be
stored first, before the reply to the message above it, and would itself never be
answered. So `services.chat.logic.send` refuses a message while the chat is busy, as
SillyTavern disables Send while it generates; and should anything get in anyway (another
window, a program), the reply is put right after the message it answers.
"""

from __future__ import annotations

import threading

from engine.run import Run


class BusyChats:
    """Chat session id → the run writing for it, until that run has ended and saved."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[str, Run] = {}

    def hold(self, session_id: str, run: Run) -> None:
        """Mark the chat busy until `run` ends (after the run's earlier callbacks saved it)."""
        with self._lock:
            self._runs[session_id] = run
        run.on_done(lambda finished: self._release(session_id, finished))

    def busy(self, session_id: str) -> bool:
        with self._lock:
            run = self._runs.get(session_id)
        return run is not None and not run.done

    def _release(self, session_id: str, run: Run) -> None:
        with self._lock:
            if self._runs.get(session_id) is run:  # a newer run for the chat keeps it busy
                del self._runs[session_id]
