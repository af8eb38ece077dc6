"""The Chat tab's prompt inspector: the prompt of a reply, or of the next one.

Each reply keeps its prompt's report in `meta["prompt"]` (services/prompt_report.py);
the newest prompts' texts are in `AppContext.prompts`. The next prompt is built and
counted on request, as the reply would build it.
"""

from __future__ import annotations

from engine.errors import ContextOverflowError
from services.chat import reply
from services.chat.logic import ChatView
from services.context import AppContext
from services.prompt_report import (
    META_KEY,
    NEXT,
    NEXT_LABEL,
    Inspection,
    KeptPrompt,
    PromptReport,
    inspection,
    measure,
    preview,
)
from store.errors import StoreError
from store.records import Message

RECENT = 100
"""Messages whose replies the inspector lists (the newest)."""


def inspect(ctx: AppContext, view: ChatView | None, choice: str | None = None) -> Inspection:
    """The inspector for the reply whose seq is `choice`, the next prompt (`NEXT`), or by
    default the newest reply that has a report (else the next prompt)."""
    if view is None or not view.session_id:
        return inspection([], None, None, None)
    replies = _replies(ctx, view.session_id)
    choices = [(f"Reply {m.seq + 1}: {preview(m.text)}", str(m.seq)) for m, _ in replies]
    choices.append((NEXT_LABEL, NEXT))
    if choice != NEXT:
        for message, report in replies:
            if choice in (None, str(message.seq)):
                return inspection(choices, str(message.seq), ctx.prompts.get(report.key), report)
    kept = next_prompt(ctx, view)
    if kept is None:
        return inspection(choices, NEXT, None, None)
    return inspection(choices, NEXT, kept, kept.report)


def next_prompt(ctx: AppContext, view: ChatView) -> KeptPrompt | None:
    """The prompt the next reply would get, counted; None when there is none to build yet."""
    if not ctx.models.loaded:
        return None
    try:
        prepared = reply.build_prompt(ctx, view)
    except (StoreError, ContextOverflowError):
        return None
    backend = ctx.models.backend
    report = measure(
        prepared.outline, backend.count_tokens, bos=backend.adds_bos, estimate=backend.token_count_is_estimate
    )
    return KeptPrompt(prepared.fitted.text, report)


def _replies(ctx: AppContext, session_id: str) -> list[tuple[Message, PromptReport]]:
    """The newest replies that kept a report, newest first."""
    found = []
    for message in reversed(ctx.store.sessions.messages(session_id, last=RECENT)):
        report = PromptReport.from_meta(message.meta.get(META_KEY)) if message.role == "assistant" else None
        if report is not None:
            found.append((message, report))
    return found
