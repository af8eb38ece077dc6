"""Streaming speed in a long chat against a short one, end to end in Chromium (part 3 of
`bench/context.py`): two app servers on pre-seeded data folders, Regenerate pressed in
each in turn, the "N tokens/s" of the context line read after each reply."""

from __future__ import annotations

import re
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.settings import DETERMINISTIC, N_CTX, THREADS, TOPICS
from browser import chat_texts, chromium, hearth_server, open_app
from presets.samplers import SamplerParams
from services.chat import logic
from services.chat import reply as chat_reply
from services.context import AppContext, Settings, create_context
from store.db import Store
from store.records import Message, Session, new_id

STREAM_REPLY = 160  # tokens per reply when streaming speed is measured


STORY = (
    "Once upon a time, a small boat left the harbour of {topic} at dawn. The keeper of the lighthouse "
    "watched it go, and the gulls followed it past the breakwater. By noon the wind had turned, and the "
    "sailor reefed the sail, singing an old song about {topic} that her grandmother had taught her. "
)


def story_chat(size: int, repeat: int) -> list[Message]:
    """`size` messages: a request for a story, and a story `repeat` paragraphs long."""
    chat = []
    for i in range(size // 2):
        topic = TOPICS[i % len(TOPICS)]
        chat.append(Message("user", f"Tell me a story about {topic}. ({i})"))
        chat.append(Message("assistant", (STORY * repeat).format(topic=topic)))
    return chat


def seed_chat(
    data_dir: Path,
    messages: list[Message],
    preset: str = "Deterministic",
    params: SamplerParams | None = None,
) -> None:
    """A chat of `messages` in a new data folder, sampled with `preset` (and `params`, by
    default the Deterministic preset at this benchmark's reply length)."""
    store = Store(data_dir)
    now = time.time()
    params = params or replace(DETERMINISTIC, max_new_tokens=STREAM_REPLY)
    session = Session(
        id=new_id(),
        title=f"{len(messages)} messages",
        created=now,
        updated=now,
        sampler={"preset": preset, "params": params.to_dict()},
    )
    store.sessions.restore(session, messages)
    store.close()


def regenerate_prompt_size(ctx: AppContext, data_dir: Path) -> int:
    """Tokens of the prompt that regenerating the last reply of the chat in `data_dir` sends."""
    side = create_context(Settings(data_dir=data_dir, n_ctx=N_CTX, load_model=False))
    side.models.attach(ctx.models.backend)
    side.model_format = ctx.model_format
    size = chat_reply.build_prompt(side, logic.ensure_session(side, None), "swipe").fitted.n_tokens
    side.store.close()
    return size


def seed_chats(ctx: AppContext, folder: Path) -> tuple[dict[str, Path], dict[str, int]]:
    """A 1,000-message chat, and a 10-message one with longer stories chosen so that
    regenerating in either sends a prompt of about the same size: the model then does
    the same work in both, and only the history differs."""
    dirs = {"long": folder / "long" / "data"}
    seed_chat(dirs["long"], story_chat(1000, 3))
    sizes = {"long": regenerate_prompt_size(ctx, dirs["long"])}
    best: tuple[int, Path] | None = None
    for repeat in range(1, 20):
        candidate = folder / f"short-{repeat}" / "data"
        seed_chat(candidate, story_chat(10, repeat))
        size = regenerate_prompt_size(ctx, candidate)
        if best is None or abs(size - sizes["long"]) < abs(best[0] - sizes["long"]):
            best = (size, candidate)
        if size > sizes["long"]:
            break
    assert best is not None
    sizes["short"], dirs["short"] = best
    return dirs, sizes


TOKENS_PER_S = re.compile(r"([\d.]+) tokens/s")
DONE = """([label, status]) => {
    const now = document.querySelector('#swipe-label')?.innerText || '';
    const line = document.querySelector('#context-status')?.innerText || '';
    return now !== label && line !== status && line.includes('tokens/s');
}"""


def stream_speeds(pages: dict[str, Any], trials: int) -> dict[str, list[float]]:
    """Regenerate the last reply in each chat in turn; the first run warms the cache."""
    speeds: dict[str, list[float]] = {name: [] for name in pages}
    for trial in range(trials + 1):
        for name, page in pages.items():
            before = [page.inner_text("#swipe-label"), page.inner_text("#context-status")]
            page.click("#regenerate")
            page.wait_for_function(DONE, arg=before, timeout=300_000)
            match = TOKENS_PER_S.search(page.inner_text("#context-status"))
            assert match is not None
            if trial:
                speeds[name].append(float(match.group(1)))
    return speeds


def measure_streaming(ctx: AppContext, trials: int, shot: Path | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        dirs, sizes = seed_chats(ctx, Path(tmp))
        flags = ("--n-ctx", str(N_CTX), "--threads", str(THREADS))
        with (
            hearth_server(dirs["long"], *flags) as long_url,
            hearth_server(dirs["short"], *flags) as short_url,
        ):
            with chromium() as browser:
                pages = {"short": open_app(browser, short_url), "long": open_app(browser, long_url)}
                speeds = stream_speeds(pages, trials)
                shown = len(chat_texts(pages["long"]))
                if shot is not None:
                    pages["long"].screenshot(path=str(shot), full_page=True)
    short, long = statistics.median(speeds["short"]), statistics.median(speeds["long"])
    return {
        "ratio": long / short,
        "short": short,
        "long": long,
        "sizes": sizes,
        "shown": shown,
        "speeds": speeds,
    }
