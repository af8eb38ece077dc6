"""Context shift and long chats, measured side by side in one run, written to docs/benchmarks.md.

    .venv/bin/python bench/context.py          # about five minutes on two cores

1. The overflow turn: a chat on the bundled Gemma grows through the real chat pipeline
   (`chat_reply.start`) until its prompt no longer fits n_ctx and the assembler drops
   old messages. That turn is then replayed three ways on copies of the chat: Hearth's
   context shift; plain truncation (the same prompt, shift turned off, so the cache
   only matches up to the head); full re-evaluation (cache cleared). Each reports the
   prompt tokens evaluated divided by the tokens that are new that turn.
2. Time to first token at turns 10 and 100 and on the overflow turn, for each way.
3. Streaming tokens/s in a 1,000-message chat divided by the same in a 10-message one,
   end to end: two app servers on pre-seeded data folders, driven by Chromium (Regenerate),
   reading "N tokens/s" from the context line after each reply.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from bench.long_chat import STREAM_REPLY, measure_streaming
from bench.report import update_section
from bench.settings import DETERMINISTIC, N_CTX, THREADS, TOPICS
from catalog.bundled import bundled_model_path
from engine.llama import LlamaCppBackend
from engine.types import Chunk, GenerationRequest, LoadOptions, Usage
from services.chat import logic
from services.chat import reply as chat_reply
from services.chat.logic import ChatSettings, ChatView
from services.context import AppContext, Settings, create_context
from store.records import new_id

SHORT_REPLY = 8  # tokens per reply while the chat grows: the prompt is what is measured
MEASURED_TURNS = (10, 100)
STRATEGIES = ("shift", "truncate", "full")
HEADING = "## Context shift and long chats (issue 6)"


def user_text(turn: int) -> str:
    return f"Turn {turn}: tell me one more short fact about {TOPICS[turn % len(TOPICS)]}, please."


# -- timing the first token --------------------------------------------------------------------


class FirstTokenClock:
    """Notes when the backend yields its first text, by wrapping its `generate`."""

    def __init__(self, backend: LlamaCppBackend) -> None:
        self.first = 0.0
        original = backend.generate

        def timed(request: GenerationRequest, cancel: Any) -> Iterator[Any]:
            self.first = 0.0
            for item in original(request, cancel):
                if isinstance(item, Chunk) and not self.first:
                    self.first = time.perf_counter()
                yield item

        # Patched on this one instance only; the bench owns the backend.
        backend.generate = timed  # type: ignore[method-assign]


@dataclass(frozen=True)
class TurnResult:
    turn: int
    prompt: str
    usage: Usage
    first_token_s: float


def reply(ctx: AppContext, clock: FirstTokenClock, session_id: str, turn: int) -> TurnResult:
    """Run one reply through the chat pipeline, from building the prompt to saving it."""
    began = time.perf_counter()
    run = chat_reply.start(ctx, ChatView(session_id=session_id), "bench")
    finish = run.wait(600)
    return TurnResult(turn, run.request.prompt, finish.usage, clock.first - began)


def new_tokens(backend: LlamaCppBackend, previous: str, prompt: str) -> int:
    """Tokens of `prompt` whose text the previous prompt did not have: the previous
    reply, the new message and the reply prefix. When old messages were dropped, the
    old prompt's text from the first kept message on counts as not new: of every place
    the text after the shared start occurs in the old prompt, the longest match wins."""
    keep = len(os.path.commonprefix([previous, prompt]))
    cut = prompt.rfind("\n", 0, keep) + 1  # a line start: the probe is never a message's tail
    probe, carried = prompt[cut : cut + 32], prompt[:keep]
    at = previous.find(probe, cut + 1) if probe else -1
    while at > 0:
        candidate = os.path.commonprefix([prompt[:cut] + previous[at:], prompt])
        carried = max(carried, candidate, key=len)
        at = previous.find(probe, at + 1)
    return len(backend.prompt_tokens(prompt)) - len(backend.prompt_tokens(carried))


# -- 1 and 2: the growing chat and its replays ---------------------------------------------------


def grow_chat(ctx: AppContext, clock: FirstTokenClock, turns: int) -> tuple[str, list[TurnResult]]:
    """A chat of `turns` real turns with short greedy replies; returns its id and turns."""
    settings = ChatSettings(params=replace(DETERMINISTIC, max_new_tokens=SHORT_REPLY))
    view = logic.new_chat(ctx, settings)
    results = []
    for turn in range(1, turns + 1):
        view = logic.send(ctx, view, user_text(turn), settings)
        results.append(reply(ctx, clock, view.session_id, turn))
    return view.session_id, results


def copy_until(ctx: AppContext, session_id: str, turn: int) -> str:
    """A new chat holding the messages of `session_id` up to its `turn`-th user message."""
    messages = ctx.store.sessions.messages(session_id)
    users = [i for i, m in enumerate(messages) if m.role == "user"]
    kept = [replace(m, seq=-1) for m in messages[: users[turn - 1] + 1]]
    source = ctx.store.sessions.get(session_id)
    copy = replace(source, id=new_id(), title=f"replay of turn {turn}")
    return ctx.store.sessions.restore(copy, kept).id


def replay(
    ctx: AppContext, clock: FirstTokenClock, chat: list[TurnResult], session_id: str, turn: int, strategy: str
) -> TurnResult:
    """Turn `turn` again on a copy of the chat, with the cache as `strategy` leaves it."""
    backend = ctx.models.backend
    assert isinstance(backend, LlamaCppBackend)
    copy = copy_until(ctx, session_id, turn)
    backend.clear_cache()
    backend.shift_enabled = strategy == "shift"
    try:
        if strategy != "full":  # the previous turn's prompt (and reply) sit in the cache
            warm = GenerationRequest(
                chat[turn - 2].prompt, replace(DETERMINISTIC, max_new_tokens=SHORT_REPLY)
            )
            ctx.models.start(warm, "bench").wait(600)
        return reply(ctx, clock, copy, turn)
    finally:
        backend.shift_enabled = True


@dataclass(frozen=True)
class Measured:
    turn: int
    label: str
    new: int
    evaluated: dict[str, int]
    first_token_ms: dict[str, float]


def measure_turns(
    ctx: AppContext, clock: FirstTokenClock, repeats: int
) -> tuple[list[Measured], dict[str, Any]]:
    backend = ctx.models.backend
    assert isinstance(backend, LlamaCppBackend)
    session_id, chat = grow_chat(ctx, clock, max(MEASURED_TURNS) + 5)
    drops = [
        r.turn
        for prev, r in zip(chat, chat[1:], strict=False)
        if r.usage.prompt_tokens < prev.usage.prompt_tokens
    ]
    if not drops:
        raise RuntimeError("the chat never outgrew the context; raise the number of turns")
    in_chat = [
        chat[t - 1].usage.prompt_evaluated / new_tokens(backend, chat[t - 2].prompt, chat[t - 1].prompt)
        for t in drops
    ]
    targets = sorted({*MEASURED_TURNS, drops[0]})
    measured = []
    for turn in targets:
        runs = {
            s: [replay(ctx, clock, chat, session_id, turn, s) for _ in range(repeats)] for s in STRATEGIES
        }
        new = new_tokens(backend, chat[turn - 2].prompt, chat[turn - 1].prompt)
        label = f"turn {turn}" + (" (first overflow)" if turn == drops[0] else "")
        if turn in drops and turn != drops[0]:
            label += " (an overflow turn)"
        measured.append(
            Measured(
                turn,
                label,
                new,
                {s: runs[s][-1].usage.prompt_evaluated for s in STRATEGIES},
                {s: 1000 * statistics.median(r.first_token_s for r in runs[s]) for s in STRATEGIES},
            )
        )
    facts = {
        "drops": drops,
        "worst_in_chat": max(in_chat),
        "turns": len(chat),
        "can_shift": backend.can_shift,
    }
    return measured, facts


# -- the report ----------------------------------------------------------------------------------------


NAMES = {"shift": "Context shift (Hearth)", "truncate": "Plain truncation", "full": "Full re-evaluation"}


def write_report(
    measured: list[Measured], facts: dict[str, Any], stream: dict[str, Any], repeats: int
) -> str:
    first = next(m for m in measured if m.turn == facts["drops"][0])
    header = " | ".join(f"TTFT {m.label}" for m in measured)
    rows = "\n".join(
        f"| {NAMES[s]} | **{first.evaluated[s] / first.new:.2f}** ({first.evaluated[s]} / {first.new}) | "
        + " | ".join(f"{m.first_token_ms[s]:.0f} ms" for m in measured)
        + " |"
        for s in STRATEGIES
    )
    later = ", ".join(map(str, facts["drops"][1:])) or "none"
    return f"""{HEADING}

Measured on {time.strftime("%Y-%m-%d")}, 2 cores, bundled Gemma 3 270M Q4_K_M, {THREADS} threads,
n_ctx {N_CTX}, Gemma format, greedy. Reproduce with `.venv/bin/python bench/context.py`.

A chat grew through the real chat pipeline (`services.chat.reply`) for {facts["turns"]} turns of
synthetic user messages and {SHORT_REPLY}-token greedy replies. Its prompt first overflowed
on turn {facts["drops"][0]}, and again on turns {later}. Each measured turn was replayed on a
copy of the chat three ways, each with the previous turn's prompt and reply in the cache
(nothing, for full re-evaluation). Time to first token (TTFT) is the median of {repeats}
replays, from `chat_reply.start` (which builds the prompt) to the model's first text.
"New tokens" are the tokens of prompt text the previous prompt did not have: the
previous reply, the new message and the reply prefix.

| Strategy | Evaluated ÷ new tokens, overflow turn (goal ≤ 2) | {header} |
|---|---|{"---|" * len(measured)}
{rows}

Over every overflow in the grown chat, the context shift's worst ratio was
**{facts["worst_in_chat"]:.2f}**.

| Streaming, end to end in Chromium | Result | Goal |
|---|---|---|
| Tokens/s in a 1,000-message chat ÷ in a 10-message chat | **{stream["ratio"]:.3f}** \
({stream["long"]:.1f} vs {stream["short"]:.1f} tokens/s) | ≥ 0.9 |

Two app servers ran at once on pre-seeded data folders, one chat each, and Chromium
pressed Regenerate in each in turn, {len(stream["speeds"]["long"]) + 1} times (the first only
warms the cache), for a {STREAM_REPLY}-token greedy reply. The rate is the one the
context line shows: reply tokens ÷ the run's wall time. The 10-message chat has longer
stories, so both prompts are about the same size ({stream["sizes"]["long"]} and
{stream["sizes"]["short"]} tokens) and the model does the same work: only the history the
server and the page carry differs. The long chat's page showed {stream["shown"]} messages
(the window).
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--screenshot", type=Path, help="save the 1,000-message chat's page here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ctx = create_context(Settings(data_dir=Path(tmp) / "data", n_ctx=N_CTX, load_model=False))
        ctx.load_model(bundled_model_path(), LoadOptions(n_ctx=N_CTX, threads=THREADS))
        backend = ctx.models.backend
        assert isinstance(backend, LlamaCppBackend)
        clock = FirstTokenClock(backend)
        measured, facts = measure_turns(ctx, clock, args.repeats)
        stream = measure_streaming(ctx, args.trials, args.screenshot)
        ctx.models.unload()
        ctx.store.close()
    section = write_report(measured, facts, stream, args.repeats)
    update_section(args.out, HEADING, section)
    print(section)


if __name__ == "__main__":
    main()
