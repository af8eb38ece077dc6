"""The prompt inspector: each part of a prompt sent to the model, with token counts that
add up exactly to the prompt's count, in Chat, Story and Adventure.

The exact-sum tests run on the bundled Gemma's real tokenizer; that counting each part
on its own does not add up in general is shown with a counter that merges across seams
on purpose; the rest run on the fake backend.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

import app
from api.deps import ApiSettings
from api.server import create_api_app, root_app, serve_in_thread
from catalog.bundled import bundled_model_path
from engine.fake import FakeBackend
from engine.prompts import Block, Label, PromptParts, Span, fit_prompt, itemize
from engine.prompts.parts import Injection
from engine.prompts.story import StorySteering, part_tokens, story_parts
from engine.run import Run
from engine.types import FinishReason, LoadOptions
from presets.samplers import SamplerParams
from services.chat import inspector as chat_inspector
from services.chat import logic
from services.chat import reply as chat_reply
from services.chat.characters import lock_persona
from services.chat.logic import ChatSettings, ChatView
from services.context import AppContext, Settings, create_context
from services.prompt_report import NEXT, KeptPrompt, PartRow, PromptLog, PromptReport
from services.story import inspector as story_inspector
from services.story import logic as story_logic
from services.story.logic import StoryView
from store.cards import import_card
from store.stories import Story, WorldInfoEntry

GREEDY = SamplerParams(temperature=0.0, top_k=1, repeat_penalty=1.0, max_new_tokens=3)


def words(text: str) -> int:
    """A counter that merges across seams: "ab" + "cd" is one word, not two."""
    return len(text.split())


# -- the engine: spans and exact counts ---------------------------------------------------


def test_spans_cover_the_text_and_name_each_part() -> None:
    parts = PromptParts(
        head="<sys>SYSTEM\nDESC\nPERSONA</sys>",
        head_labels=(Label("system", "SYSTEM"), Label("description", "DESC"), Label("persona", "PERSONA")),
        optional=[Block("EX1|", part="examples"), Block("EX2|", part="examples")],
        body=[Block(f"m{i}|", part="history") for i in range(4)],
        injections=[
            Injection(
                Block(
                    "[LORE-A\nLORE-B]",
                    part="lore",
                    labels=(Label("lore", "LORE-A", "A"), Label("lore", "LORE-B", "B")),
                ),
                depth=2,
                label="lore",
            ),
            Injection(Block("[NOTE]"), depth=0, label="post_history"),
        ],
        tail=Block("BOT:"),
    )
    fitted = fit_prompt(parts, 1000, len)
    assert "".join(fitted.text[s.start : s.end] for s in fitted.spans) == fitted.text
    assert all(a.end == b.start for a, b in zip(fitted.spans, fitted.spans[1:], strict=False))
    named = [(s.part, s.name, fitted.text[s.start : s.end]) for s in fitted.spans]
    assert named == [
        ("system", "", "<sys>SYSTEM\n"),  # the wrap before the first label joins it
        ("description", "", "DESC\n"),
        ("persona", "", "PERSONA</sys>"),  # what follows a label joins it
        ("examples", "", "EX1|EX2|"),  # neighbours of one part are one span
        ("history", "", "m0|m1|"),
        ("lore", "A", "[LORE-A\n"),
        ("lore", "B", "LORE-B]"),
        ("history", "", "m2|m3|"),
        ("post_history", "", "[NOTE]"),  # an unlabelled injection is named by its label
        ("tail", "", "BOT:"),
    ]


def test_parts_add_up_exactly_where_separate_counts_do_not() -> None:
    text = "alpha beta gamma delta"
    spans = [Span(0, 8, "a"), Span(8, 13, "b"), Span(13, len(text), "c")]  # "alpha be|ta ga|mma delta"
    itemized = itemize(text, spans, words)
    separately = sum(words(text[s.start : s.end]) for s in spans)
    assert separately != words(text)  # the seams split words: separate counts overshoot
    assert sum(p.tokens for p in itemized.parts) == itemized.total == words(text) == 4
    # A word cut by a seam counts where it starts: "be|ta" in a, "ga|mma" in b.
    assert [(p.part, p.tokens) for p in itemized.parts] == [("a", 2), ("b", 1), ("c", 1)]
    with_bos = itemize(text, spans, words, bos=True)
    assert with_bos.parts[0].part == "bos" and with_bos.total == 5 == sum(p.tokens for p in with_bos.parts)


def test_a_gap_in_the_spans_becomes_a_prompt_part() -> None:
    itemized = itemize("one two three", [Span(4, 7, "mid")], words)
    assert [(s.part, s.start, s.end) for s in itemized.segments] == [
        ("prompt", 0, 4),
        ("mid", 4, 7),
        ("prompt", 7, 13),
    ]
    assert sum(p.tokens for p in itemized.parts) == 3


def test_the_story_token_line_adds_up_where_lines_merge() -> None:
    steering = StorySteering(
        memory="Memory",
        authors_note="N",
        authors_note_depth=1,
        authors_note_unit="lines",
        world_info=(WorldInfoEntry(keys=("x",), content="lore", constant=True),),
        wi_placement="before_authors_note",
    )
    prompt = story_parts("one two\nthree four\nfive", steering, budget=100, count=words)
    fitted = fit_prompt(prompt.parts, 100, words)
    counts = part_tokens(prompt, fitted, words, words)
    assert counts.memory + counts.world_info + counts.authors_note + counts.story == counts.total
    assert counts.total == words(fitted.text)
    assert counts.story_total == counts.story and counts.lines_dropped == 0


# -- the services, on the fake backend ----------------------------------------------------


def card_file(**extra: Any) -> bytes:
    """A V2 card with every part a prompt can have: system prompt, description, personality,
    scenario, examples, a depth note, post-history instructions and a lorebook."""
    data = {
        "name": "Mira", "description": "Mira keeps the lighthouse.", "personality": "calm, dry",
        "scenario": "A stormy night.", "first_mes": "*Mira waves.*",
        "mes_example": "<START>\n{{user}}: Is the lamp lit?\n{{char}}: Always.\n"
        "<START>\n{{user}}: Cold?\n{{char}}: Very.",
        "creator_notes": "", "system_prompt": "You play {{char}}.",
        "post_history_instructions": "Keep it short.", "alternate_greetings": [], "tags": [],
        "creator": "", "character_version": "1",
        "extensions": {"depth_prompt": {"prompt": "Mira hides a secret.", "depth": 2, "role": "system"}},
        "character_book": {"extensions": {}, "entries": [
            {"keys": ["lamp"], "content": "The lamp was lit in 1890.", "extensions": {}, "enabled": True,
             "insertion_order": 10, "id": 0, "name": "Lamp lore", "position": "before_char"},
            {"keys": ["storm"], "content": "Storms come from the west.",
             "extensions": {"position": 4, "depth": 1},
             "enabled": True, "insertion_order": 20, "id": 1, "name": "Storm lore"},
        ]},
        **extra,
    }  # fmt: skip
    return json.dumps({"spec": "chara_card_v2", "spec_version": "2.0", "data": data}).encode()


def character_chat(ctx: AppContext, settings: ChatSettings) -> ChatView:
    character = ctx.store.characters.create(import_card(card_file(), "mira.json"))
    ann = ctx.store.personas.create("Ann", "Ann is a sailor.")
    view = logic.new_chat(ctx, settings, character_id=character.id)
    lock_persona(ctx, view.session_id, ann.id)
    return view


def reply(ctx: AppContext, view: ChatView, text: str, settings: ChatSettings) -> Run:
    view = logic.send(ctx, view, text, settings)
    run = chat_reply.start(ctx, view, "tester")
    assert run.wait(120).reason in (FinishReason.STOP, FinishReason.LENGTH)
    return run


def report_of(ctx: AppContext, view: ChatView) -> PromptReport:
    last = ctx.store.sessions.messages(view.session_id)[-1]
    report = PromptReport.from_meta(last.meta["prompt"])
    assert report is not None
    return report


def test_a_reply_keeps_its_report_and_the_text_of_the_newest(
    fake_ctx: AppContext, fake_backend: FakeBackend
) -> None:
    settings = ChatSettings(params=SamplerParams(max_new_tokens=8))
    view = character_chat(fake_ctx, settings)
    run = reply(fake_ctx, view, "Is the lamp lit in the storm?", settings)
    report = report_of(fake_ctx, view)
    assert report.key == run.id and report.total == run.finish.usage.prompt_tokens  # type: ignore[union-attr]
    assert (report.reused or 0) + (report.evaluated or 0) == report.total
    kept = fake_ctx.prompts.get(report.key)
    assert kept is not None and kept.text == fake_backend.calls[-1].prompt  # the exact text sent
    found = chat_inspector.inspect(fake_ctx, view)
    assert found.text == kept.text and found.selected is not None
    assert found.rows[-1] == ["Total", f"{report.total:,}", "100%"]
    labels = [row[0] for row in found.rows]
    assert "Lore: Lamp lore" in labels and "Lore: Storm lore" in labels
    assert any(label.startswith("Chat history (") for label in labels)

    upcoming = chat_inspector.inspect(fake_ctx, view, NEXT)  # the next prompt, not sent yet
    assert upcoming.selected == NEXT and "not sent yet" in upcoming.summary
    assert sum(int(row[1].replace(",", "")) for row in upcoming.rows[:-1]) == int(upcoming.rows[-1][1])


def test_only_the_newest_texts_are_kept_and_older_reports_stay() -> None:
    log = PromptLog(capacity=2)
    report = PromptReport(rows=(), total=0)
    for key in ("a", "b", "c"):
        log.put(key, KeptPrompt(key, report))
    assert log.get("a") is None and log.get("b") is not None and log.get("c") is not None


def test_a_report_survives_its_trip_through_meta_and_refuses_junk() -> None:
    report = PromptReport(
        rows=(PartRow("lore", "Moon", "Lore: Moon", 12), PartRow("tail", "", "Reply prefix", -1)),
        total=11,
        dropped=("3 older messages",),
        reused=5,
        evaluated=6,
        key="k",
    )
    assert PromptReport.from_meta(json.loads(json.dumps(report.to_meta()))) == report
    for junk in (
        None,
        [],
        {"parts": "x", "total": 1},
        {"parts": [["a", "b", 3]], "total": 3},
        {"parts": [], "total": -1},
    ):
        assert PromptReport.from_meta(junk) is None


def test_what_was_left_out_is_said(tmp_path: Path) -> None:
    backend = FakeBackend(n_ctx=256)
    ctx = create_context(
        Settings(data_dir=tmp_path / "data", load_model=False), factory=lambda _p, _o: backend
    )
    ctx.models.attach(backend, LoadOptions(n_ctx=256))
    try:
        settings = ChatSettings(params=SamplerParams(max_new_tokens=16))
        view = character_chat(ctx, settings)
        for i in range(12):
            reply(ctx, view, f"Message number {i} about nothing in particular at all.", settings)
        report = report_of(ctx, view)
        assert any(d.endswith("older messages") for d in report.dropped)
        assert any("example dialogue blocks" in d for d in report.dropped)
        assert sum(row.tokens for row in report.rows) == report.total
    finally:
        ctx.models.unload()
        ctx.store.close()


# -- exact counts on a real tokenizer (the bundled Gemma) ---------------------------------


@pytest.fixture(scope="module")
def gemma_ctx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppContext]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("inspect-data"), n_ctx=1024, load_model=False)
    ctx = create_context(settings)
    ctx.models.load(bundled_model_path(), LoadOptions(n_ctx=1024, threads=2))
    yield ctx
    ctx.models.unload()
    ctx.store.close()


def assert_adds_up(ctx: AppContext, run: Run, report: PromptReport) -> str:
    """The parts sum to the prompt's tokens as the model evaluated them; the text is the one sent."""
    backend = ctx.models.backend
    kept = ctx.prompts.get(report.key)
    assert kept is not None and kept.text == run.request.prompt
    assert run.finish is not None
    exact = len(backend.tokenize(kept.text)) + (1 if backend.adds_bos else 0)
    assert sum(row.tokens for row in report.rows) == report.total == exact == run.finish.usage.prompt_tokens
    assert report.reused is not None and report.evaluated is not None
    assert report.reused + report.evaluated == report.total
    return kept.text


@pytest.mark.gemma
def test_a_character_chat_adds_up_exactly_with_lore_by_name(gemma_ctx: AppContext) -> None:
    settings = ChatSettings(params=GREEDY)
    view = character_chat(gemma_ctx, settings)
    reply(gemma_ctx, view, "Hello there.", settings)
    run = reply(gemma_ctx, view, "Is the lamp lit in this storm?", settings)
    report = report_of(gemma_ctx, view)
    text = assert_adds_up(gemma_ctx, run, report)
    parts = [row.part for row in report.rows]
    for part in ("system", "description", "personality", "scenario", "persona", "examples", "history"):
        assert part in parts
    for part in ("depth_note", "post_history", "tail"):
        assert part in parts
    lore = {row.name: row.tokens for row in report.rows if row.part == "lore"}
    assert set(lore) == {"Lamp lore", "Storm lore"} and all(tokens > 0 for tokens in lore.values())
    # The spans behind the rows: in order they spell the prompt, and each names its text.
    prepared = chat_reply.build_prompt(gemma_ctx, view)
    spans = prepared.fitted.spans
    assert "".join(prepared.fitted.text[s.start : s.end] for s in spans) == prepared.fitted.text
    by_part = {(s.part, s.name): prepared.fitted.text[s.start : s.end] for s in spans}
    assert "The lamp was lit in 1890." in by_part[("lore", "Lamp lore")]
    assert "Storms come from the west." in by_part[("lore", "Storm lore")]
    assert "Mira hides a secret." in by_part[("depth_note", "")]
    assert "Keep it short." in by_part[("post_history", "")]
    assert "Ann is a sailor." in by_part[("persona", "")]
    assert "Hello there." in text


def story_with_steering(mode: str, placement: str) -> Story:
    cards = (
        WorldInfoEntry(keys=("castle",), content="The castle is old.", comment="Castle"),
        WorldInfoEntry(keys=("gate",), content="The gate never closes."),
    )
    return Story(
        memory="A gothic tale.",
        authors_note="dread",
        authors_note_depth=1,
        authors_note_unit="lines",
        world_info=cards,
        wi_placement=placement,  # type: ignore[arg-type]
        mode=mode,  # type: ignore[arg-type]
    ).append("We came to the castle.\nThe gate was open.\nInside, it was dark", "prompt")


@pytest.mark.gemma
@pytest.mark.parametrize(
    ("mode", "placement"), [("story", "before_authors_note"), ("adventure", "after_memory")]
)
def test_story_and_adventure_prompts_add_up_exactly(gemma_ctx: AppContext, mode: str, placement: str) -> None:
    story = story_with_steering(mode, placement)
    view = StoryView(story_logic.stories(gemma_ctx).create(story).id)
    _view, run = story_logic.start(gemma_ctx, view, mode, GREEDY, "tester", "generate")  # type: ignore[arg-type]
    run.wait(120)
    kept = gemma_ctx.prompts.get(story_logic.prompt_key(view.story_id or ""))
    assert kept is not None
    text = assert_adds_up(gemma_ctx, run, kept.report)
    rows = {(row.part, row.name): row for row in kept.report.rows}
    card = "Story card" if mode == "adventure" else "World info"
    assert rows[("world_info", "Castle")].label == f"{card}: Castle"
    assert rows[("world_info", "gate")].label == f"{card}: gate"  # no comment: named by its keys
    for part in ("memory", "authors_note", "story"):
        assert any(row.part == part and row.tokens > 0 for row in kept.report.rows)
    assert text.startswith("A gothic tale.\n")

    found = story_inspector.inspect(gemma_ctx, view, mode, GREEDY)  # type: ignore[arg-type]
    assert found.text == text and found.rows[-1][1] == f"{kept.report.total:,}"


@pytest.mark.gemma
def test_the_story_token_line_adds_up_exactly(gemma_ctx: AppContext) -> None:
    story = story_with_steering("story", "before_authors_note")
    line, _anchor = story_logic.token_summary(gemma_ctx, story, GREEDY, None)
    found = re.search(
        r"Memory (\d+) · World info (\d+) · Author's note (\d+) · Story (\d+) of \d+.* · Prompt (\d+) /", line
    )
    assert found is not None, line
    memory, world_info, note, text, total = (int(n) for n in found.groups())
    assert memory + world_info + note + text == total
    assert f"Story {text} of {text} ·" in line  # nothing was left out
    prepared = story_logic.prepare(gemma_ctx, story, GREEDY, anchor=None)
    assert total == len(gemma_ctx.models.backend.tokenize(prepared.fitted.text))


# -- the API: "hearth_itemize": true ------------------------------------------------------


@contextmanager
def api_url(ctx: AppContext) -> Iterator[str]:
    api_app = create_api_app(app.api_deps(ctx), ApiSettings(), host="127.0.0.1")
    server = serve_in_thread(root_app(api_app), "127.0.0.1", 0)
    try:
        yield f"{server.url}/v1"
    finally:
        server.stop()


def test_the_api_itemizes_a_chat_request_when_asked(fake_ctx: AppContext, fake_backend: FakeBackend) -> None:
    body = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Name a river."},
            {"role": "assistant", "content": "The Nile."},
            {"role": "system", "content": "Answer in French."},
            {"role": "user", "content": "Another?"},
        ],
        "max_tokens": 8,
    }
    with api_url(fake_ctx) as base:
        plain = httpx.post(f"{base}/chat/completions", json=body, timeout=30).json()
        asked = httpx.post(
            f"{base}/chat/completions", json={**body, "hearth_itemize": True}, timeout=30
        ).json()
        streamed = httpx.post(
            f"{base}/completions",
            json={"prompt": "Once upon a time", "max_tokens": 4, "stream": True, "hearth_itemize": True},
            timeout=30,
        ).text
    assert "hearth" not in plain
    hearth = asked["hearth"]
    assert hearth["prompt"] == fake_backend.calls[1].prompt
    assert sum(p["tokens"] for p in hearth["prompt_parts"]) == hearth["prompt_tokens"]
    assert (
        hearth["prompt_tokens"]
        == asked["usage"]["prompt_tokens"]
        == len(fake_backend.tokenize(hearth["prompt"]))
    )
    assert hearth["prompt_reused"] + hearth["prompt_evaluated"] == hearth["prompt_tokens"]
    assert hearth["prompt_reused"] > 0  # the same chat again: its start was in the cache
    parts = [p["part"] for p in hearth["prompt_parts"]]
    assert parts[0] == "system" and "history" in parts and "note" in parts and parts[-1] == "tail"
    events = [json.loads(line[6:]) for line in streamed.splitlines() if line.startswith("data: {")]
    [last] = [e for e in events if "hearth" in e]
    assert last["choices"] == [] and last["hearth"]["prompt"] == "Once upon a time"
    assert [p["part"] for p in last["hearth"]["prompt_parts"]] == ["prompt"]
    assert last["hearth"]["prompt_parts"][0]["tokens"] == last["hearth"]["prompt_tokens"] == 4
