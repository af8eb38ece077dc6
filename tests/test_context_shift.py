"""Context shift in the llama.cpp backend: exact token accounting, the same output as a
fresh evaluation, the fallback when a cache cannot shift, and all three modes.

Most checks run on a one-layer tiny model. With one layer, the keys and values cached
for a token depend only on that token and its position, so a correct shift (drop a
span, move the rest left, re-rotate the keys) leaves exactly the cache a fresh
evaluation builds, up to the f16 rounding of the re-rotated keys. With more layers a
moved token keeps values computed while the dropped text was still in view: that is the
approximation KoboldCpp's ContextShift makes, and why the Gemma check compares the top
token within a tolerance instead of demanding equal logits.

The tiny vocabulary is bytes only (its four word tokens are never reached), so every
ASCII character is one token and a space three: text-level expectations are exact.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tiny_model
from catalog.bundled import bundled_model_path
from engine.kvcache import MIN_SHIFTED, KVCacheView, ShiftPlan, common_prefix, plan_shift
from engine.llama import LlamaCppBackend
from engine.prompts.adventure import InputKind, player_input
from engine.prompts.character import CharacterSheet, ChatLine, DepthNote, PersonaSheet, build_character_prompt
from engine.prompts.chat import Turn, chat_parts
from engine.prompts.parts import Block, FittedPrompt, PromptParts, fit_prompt
from engine.prompts.story import StorySteering, story_parts
from engine.tokens import TokenCounter
from engine.types import Chunk, Finish, GenerationRequest, LoadOptions, Usage
from presets.formats import Speakers, load_builtin_formats
from presets.samplers import SamplerParams

FORMATS = load_builtin_formats()
GREEDY = SamplerParams(temperature=0.0, top_k=1, repeat_penalty=1.0, max_new_tokens=8, seed=11)
# One new token: the prompt is evaluated and sampled once, so afterwards the cache holds
# the prompt (and, rarely, a few sampled bytes that finish a character).
ONE = replace(GREEDY, max_new_tokens=1)
N_CTX = 1024
# f16 keys re-rotated once: measured differences are about 0.002 on logits spread over
# about 9; a segment left one position off moves them by more than 0.5.
LOGIT_TOLERANCE = 0.02
PROBE = 48  # characters that locate the first kept block in the previous prompt


# -- the kv-cache plan, on token ids -----------------------------------------------------------


def span(start: int, length: int) -> list[int]:
    return list(range(start, start + length))


def test_plan_drops_the_span_after_the_head_and_keeps_the_rest() -> None:
    head, dropped, kept, stale, new = span(0, 10), span(100, 40), span(200, 50), span(300, 5), span(400, 7)
    plan = plan_shift(head + dropped + kept + stale, head + kept + new)
    assert plan == ShiftPlan(keep=10, segment_start=50, segment_length=50)
    assert (plan.dropped, plan.delta, plan.reused) == (40, -40, 60)
    view = KVCacheView(head + dropped + kept + stale)
    view.apply_shift(plan)
    assert view.tokens == head + kept
    assert view.plan(head + kept + new).reused == 60


def test_no_shift_when_the_cache_is_a_plain_prefix() -> None:
    cached = span(0, 200)
    assert plan_shift(cached, cached + span(500, 30)) is None
    assert plan_shift(cached, cached[:150] + span(500, 30)) is None  # nothing after the cut reappears


def test_no_shift_for_a_run_shorter_than_the_minimum() -> None:
    head, dropped, kept = span(0, 10), span(100, 40), span(200, MIN_SHIFTED - 1)
    assert plan_shift(head + dropped + kept, head + kept + span(400, 20)) is None
    longer = span(200, MIN_SHIFTED)
    assert plan_shift(head + dropped + longer, head + longer + span(400, 20)) is not None


def test_the_longest_matching_run_wins() -> None:
    head, kept = span(0, 10), span(200, 60)
    # The start of the kept run also appears earlier, followed by something else.
    decoy = kept[:40] + span(900, 5)
    cached = head + span(100, 20) + decoy + span(120, 10) + kept
    plan = plan_shift(cached, head + kept + span(400, 5))
    assert plan is not None
    assert plan.segment_start == len(cached) - len(kept) and plan.segment_length == len(kept)


@given(
    st.integers(1, 40),
    st.integers(1, 60),
    st.integers(MIN_SHIFTED, 200),
    st.integers(0, 30),
    st.integers(9, 30),
)
def test_a_shift_reuses_head_and_kept_run_exactly(h: int, d: int, s: int, z: int, y: int) -> None:
    head, dropped, kept, stale, new = span(0, h), span(1000, d), span(2000, s), span(3000, z), span(4000, y)
    prompt = head + kept + new
    view = KVCacheView(head + dropped + kept + stale)
    plan = view.plan_shift(prompt)
    assert plan is not None
    view.apply_shift(plan)
    assert view.tokens == head + kept
    assert view.plan(prompt).evaluated == y


# -- helpers for the real backend --------------------------------------------------------------


@pytest.fixture(scope="module")
def one_layer_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # tiny_model has no layer-count argument; its writer reads the module constant.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tiny_model, "N_LAYER", 1)
        return tiny_model.write_tiny_llama(tmp_path_factory.mktemp("models") / "tiny-1-layer.gguf", seed=3)


def load(path: Path, n_ctx: int = N_CTX) -> LlamaCppBackend:
    return LlamaCppBackend(path, LoadOptions(n_ctx=n_ctx, threads=2))


@pytest.fixture
def backends(one_layer_gguf: Path) -> Iterator[Callable[[], LlamaCppBackend]]:
    opened: list[LlamaCppBackend] = []

    def open_one() -> LlamaCppBackend:
        opened.append(load(one_layer_gguf))
        return opened[-1]

    yield open_one
    for backend in opened:
        backend.close()


def generate(backend: LlamaCppBackend, prompt: str, params: SamplerParams = ONE) -> tuple[str, Usage]:
    text, usage = "", None
    for item in backend.generate(GenerationRequest(prompt, params), threading.Event()):
        if isinstance(item, Chunk):
            text += item.text
        elif isinstance(item, Finish):
            usage = item.usage
    assert usage is not None
    return text, usage


def prompt_logits(backend: LlamaCppBackend, prompt: str) -> np.ndarray:
    """The logits after the last token of `prompt`, which the latest run left in the cache.

    The run may have evaluated a few sampled tokens after the prompt (llama-cpp-python
    samples on while a byte token leaves a character unfinished), so the prompt's last
    token is evaluated again, in place.
    """
    llm = backend._llm
    tokens = backend.prompt_tokens(prompt)
    assert llm.input_ids[: len(tokens)].tolist() == tokens
    llm.n_tokens = len(tokens) - 1
    llm.eval(tokens[-1:])  # first drops every cached position from n_tokens on
    return np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(llm.n_vocab(),)).copy()


@dataclass(frozen=True)
class Step:
    n: int  # the argument `parts_for` was called with
    fitted: FittedPrompt
    usage: Usage


def run_until_a_drop(
    backend: LlamaCppBackend, parts_for: Callable[[int], PromptParts], first: int | None = None
) -> tuple[Step, Step]:
    """Run turn after turn, each prompt one step longer, with the anchor carried over
    as the chat does, until the assembler drops old blocks. Returns the turn before
    and the turn that dropped. Without `first`, the run starts two turns before the drop."""
    count = TokenCounter(backend.tokenize)
    budget = backend.n_ctx - ONE.max_new_tokens - 1
    if first is None:
        first = next(n for n in range(1, 400) if fit_prompt(parts_for(n), budget, count).start > 0) - 2
    previous: Step | None = None
    for n in range(first, first + 400):
        anchor = previous.fitted.start if previous else None
        fitted = fit_prompt(parts_for(n), budget, count, anchor=anchor)
        step = Step(n, fitted, generate(backend, fitted.text)[1])
        if previous is not None and fitted.start > previous.fitted.start:
            return previous, step
        previous = step
    raise AssertionError("the prompt never outgrew the context")


def carried_over(previous: FittedPrompt, fitted: FittedPrompt) -> str:
    """The start of the new prompt that the old cache still holds once the dropped text
    is cut out: the head, then the old prompt from the first kept block on, as far as
    the two agree."""
    probe = fitted.text[len(fitted.head) :][:PROBE]
    at = previous.text.find(probe, len(previous.head) + 1)
    assert at > 0 and previous.text.find(probe, at + 1) < 0, "the probe must find one place"
    return os.path.commonprefix([previous.head + previous.text[at:], fitted.text])


def assert_only_new_tokens_evaluated(backend: LlamaCppBackend, previous: Step, step: Step) -> None:
    tokens = backend.prompt_tokens(step.fitted.text)
    kept = backend.prompt_tokens(carried_over(previous.fitted, step.fitted))
    assert tokens[: len(kept)] == kept
    plain_prefix = common_prefix(backend.prompt_tokens(previous.fitted.text), tokens)
    assert step.usage.prompt_tokens == len(tokens)
    assert step.usage.prompt_reused == len(kept)
    assert step.usage.prompt_evaluated == len(tokens) - len(kept)
    assert step.usage.prompt_shifted == len(kept) - plain_prefix > 0


def assert_continues_like_a_fresh_evaluation(
    shifted: LlamaCppBackend, fresh: LlamaCppBackend, prompt: str, steps: int = 8
) -> None:
    """Decode greedily from the shifted cache and from a fresh evaluation of `prompt`.

    At every step the logits must agree within rounding, and so must the chosen token,
    except where the two best tokens are closer than rounding can tell apart: random
    weights do produce such near-ties, and there either token is right. Both caches
    then continue with the fresh choice, so later steps still compare like with like.
    """
    generate(fresh, prompt)
    shifted_logits, fresh_logits = prompt_logits(shifted, prompt), prompt_logits(fresh, prompt)
    decided = 0
    for _ in range(steps):
        assert np.abs(shifted_logits - fresh_logits).max() < LOGIT_TOLERANCE
        second, best = np.sort(fresh_logits)[-2:]
        choice = int(fresh_logits.argmax())
        if best - second > 2 * LOGIT_TOLERANCE:
            assert int(shifted_logits.argmax()) == choice
            decided += 1
        shifted_logits, fresh_logits = feed(shifted, choice), feed(fresh, choice)
    assert decided >= steps // 2


def feed(backend: LlamaCppBackend, token: int) -> np.ndarray:
    """Evaluate one more token after what the cache holds; return the next logits."""
    llm = backend._llm
    llm.eval([token])
    return np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(llm.n_vocab(),)).copy()


# -- a plain overflow with exact numbers ------------------------------------------------------------

HEAD = "System: a short chat about boats and tides.\n"
BLOCKS = [f"[{i:02d}] Mira asks about tides near port {i}, and Oskar answers at length.\n" for i in range(60)]


def numbered_parts(n: int) -> PromptParts:
    return PromptParts(head=HEAD, body=[Block(b) for b in BLOCKS[:n]], tail=Block(">>"))


def test_an_overflow_evaluates_only_the_new_block(backends: Callable[[], LlamaCppBackend]) -> None:
    backend = backends()
    assert backend.can_shift  # llama.cpp says a plain transformer's cache can shift
    previous, step = run_until_a_drop(backend, numbered_parts)
    start, newest = step.fitted.start, step.n - 1
    assert step.fitted.text == HEAD + "".join(BLOCKS[start : newest + 1]) + ">>"
    kept = backend.prompt_tokens(HEAD + "".join(BLOCKS[start:newest]))
    # Only the newest block and the tail are read (one token per ASCII character, three
    # per space); the head stayed and the kept blocks were moved.
    newest_tokens = len(BLOCKS[newest]) + 2 * BLOCKS[newest].count(" ") + len(">>")
    assert step.usage.prompt_evaluated == newest_tokens
    assert step.usage.prompt_reused == len(kept) == step.usage.prompt_tokens - newest_tokens
    assert_only_new_tokens_evaluated(backend, previous, step)
    # The next turn is a plain prefix hit again: no shift, only its new block read.
    count = TokenCounter(backend.tokenize)
    after = fit_prompt(numbered_parts(step.n + 1), N_CTX - 2, count, anchor=start)
    assert after.start == start
    usage = generate(backend, after.text)[1]
    assert usage.prompt_shifted == 0
    assert usage.prompt_evaluated == len(BLOCKS[newest + 1]) + 2 * BLOCKS[newest + 1].count(" ") + 2


def test_a_shifted_cache_continues_like_a_fresh_one(backends: Callable[[], LlamaCppBackend]) -> None:
    shifted = backends()
    _previous, step = run_until_a_drop(shifted, numbered_parts)
    assert step.usage.prompt_shifted > 0
    assert_continues_like_a_fresh_evaluation(shifted, backends(), step.fitted.text)


def test_the_comparison_catches_a_segment_moved_to_the_wrong_place(
    backends: Callable[[], LlamaCppBackend], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A check that passes for a broken shift proves nothing: move the segment one
    # position too far and the logits must fall outside the tolerance.
    shifted = backends()
    ctx = shifted._llm._ctx
    move = ctx.kv_cache_seq_shift
    monkeypatch.setattr(ctx, "kv_cache_seq_shift", lambda seq, p0, p1, delta: move(seq, p0, p1, delta + 1))
    _previous, step = run_until_a_drop(shifted, numbered_parts)
    fresh = backends()
    generate(fresh, step.fitted.text)
    misplaced = prompt_logits(shifted, step.fitted.text) - prompt_logits(fresh, step.fitted.text)
    assert np.abs(misplaced).max() > 10 * LOGIT_TOLERANCE


# -- when the cache cannot shift -------------------------------------------------------------------------


def test_a_cache_that_cannot_shift_reads_the_rest_and_says_so(
    backends: Callable[[], LlamaCppBackend], caplog: pytest.LogCaptureFixture
) -> None:
    backend = backends()
    backend.can_shift = False
    with caplog.at_level(logging.INFO, logger="engine.llama"):
        previous, step = run_until_a_drop(backend, numbered_parts)
    tokens = backend.prompt_tokens(step.fitted.text)
    prefix = common_prefix(backend.prompt_tokens(previous.fitted.text), tokens)
    assert step.usage.prompt_shifted == 0
    assert step.usage.prompt_evaluated == len(tokens) - prefix
    assert prefix < len(backend.prompt_tokens(HEAD)) + 5  # only the head (and a bracket) is reused
    assert any("cannot shift its KV cache" in r.getMessage() for r in caplog.records)
    assert not any("context shift:" in r.getMessage() for r in caplog.records)


def test_a_cache_that_refuses_to_drop_a_span_starts_clean(
    backends: Callable[[], LlamaCppBackend], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = backends()
    ctx = backend._llm._ctx
    remove = ctx.kv_cache_seq_rm
    # Our shift asks for sequence 0; llama-cpp-python's own prefix trimming asks for -1.
    monkeypatch.setattr(
        ctx, "kv_cache_seq_rm", lambda seq, p0, p1: False if seq == 0 else remove(seq, p0, p1)
    )
    with caplog.at_level(logging.INFO, logger="engine.llama"):
        _previous, step = run_until_a_drop(backend, numbered_parts)
    assert step.usage.prompt_shifted == 0
    assert step.usage.prompt_evaluated == len(backend.prompt_tokens(step.fitted.text))
    assert any("could not remove a span" in r.getMessage() for r in caplog.records)


def test_the_shift_toggle(backends: Callable[[], LlamaCppBackend], caplog: pytest.LogCaptureFixture) -> None:
    backend = backends()
    backend.shift_enabled = False
    with caplog.at_level(logging.INFO, logger="engine.llama"):
        previous, step = run_until_a_drop(backend, numbered_parts)
    tokens = backend.prompt_tokens(step.fitted.text)
    prefix = common_prefix(backend.prompt_tokens(previous.fitted.text), tokens)
    assert (step.usage.prompt_shifted, step.usage.prompt_evaluated) == (0, len(tokens) - prefix)
    assert not caplog.records  # turned off on purpose: nothing to report
    # Turned back on, the next overflow shifts.
    backend.shift_enabled = True
    previous, step = run_until_a_drop(backend, numbered_parts, first=step.n + 1)
    assert step.usage.prompt_shifted > 0
    assert_only_new_tokens_evaluated(backend, previous, step)


# -- the three modes, through their real prompt builders -----------------------------------------------

QUESTIONS = [f"Question {i}: which harbour has a lighthouse with {i} lamps?" for i in range(200)]
ANSWERS = [f"Answer {i}: port {i % 7} has it, beside a stone pier and a fish market." for i in range(200)]


def chat_turns(n: int) -> list[Turn]:
    turns: list[Turn] = []
    for i in range(n):
        turns += [Turn("user", QUESTIONS[i]), Turn("assistant", ANSWERS[i])]
    return [*turns, Turn("user", QUESTIONS[n])]


def check_mode(backends: Callable[[], LlamaCppBackend], parts_for: Callable[[int], PromptParts]) -> None:
    shifted = backends()
    previous, step = run_until_a_drop(shifted, parts_for)
    assert_only_new_tokens_evaluated(shifted, previous, step)
    assert_continues_like_a_fresh_evaluation(shifted, backends(), step.fitted.text)


def test_chat_mode(backends: Callable[[], LlamaCppBackend]) -> None:
    # Gemma's format folds the system prompt into the first user turn, which is pinned
    # into the head: the cut must still leave the text after it byte-identical.
    fmt = FORMATS["gemma"]
    speakers = Speakers("User", "Assistant")
    check_mode(backends, lambda n: chat_parts(fmt, "Be brief and kind.", chat_turns(n), speakers))


def test_character_chat_mode(backends: Callable[[], LlamaCppBackend]) -> None:
    sheet = CharacterSheet(
        name="Luna",
        description="{{char}} is a harbour pilot.",
        personality="calm, precise",
        scenario="{{user}} meets {{char}} on a pier.",
        post_history_instructions="Stay in character as {{char}}.",
        mes_example="<START>\n{{user}}: Which way?\n{{char}}: North, by a buoy.",
        depth_prompt=DepthNote("{{char}} is tired.", depth=4),
    )
    count = TokenCounter(lambda text: list(text.encode()))

    def parts(n: int) -> PromptParts:
        lines = [ChatLine(t.role, t.text) for t in chat_turns(n)]
        built = build_character_prompt(
            FORMATS["chatml"], sheet, PersonaSheet("Ada"), lines, count_tokens=count
        )
        return built.parts

    check_mode(backends, parts)


def story_text(n: int, adventure: bool) -> str:
    text = "Mira rowed out at dawn.\n"
    for i in range(n):
        if adventure:
            text += player_input(InputKind.DO, f"look at buoy {i}", preceding=text).text
        text += f"Buoy {i} rocked in a grey swell, its bell ringing {i} times, and gulls circled it.\n"
    return text


@pytest.mark.parametrize("adventure", [False, True], ids=["story", "adventure"])
def test_story_and_adventure_modes(backends: Callable[[], LlamaCppBackend], adventure: bool) -> None:
    steering = StorySteering(
        memory="Mira is a harbour pilot in a cold northern port.",
        authors_note="Keep a calm tone.",
        authors_note_depth=2,
        authors_note_unit="lines",
    )
    count = TokenCounter(lambda text: list(text.encode()))

    def parts(n: int) -> PromptParts:
        built = story_parts(story_text(n, adventure), steering, budget=N_CTX, count=count)
        assert any(i.label == "author's note" and i.depth == 2 for i in built.parts.injections)
        return built.parts

    shifted = backends()
    previous, step = run_until_a_drop(shifted, parts)
    # Before any overflow the note already moved down each turn: its old copy was cut
    # out of the cache and the line after it moved up, instead of being read again.
    assert previous.fitted.start == 0 and previous.usage.prompt_shifted > 0
    assert_only_new_tokens_evaluated(shifted, previous, step)
    assert_continues_like_a_fresh_evaluation(shifted, backends(), step.fitted.text)


def test_clear_cache_makes_the_next_prompt_read_in_full(backends: Callable[[], LlamaCppBackend]) -> None:
    backend = backends()
    prompt = HEAD + "".join(BLOCKS[:3])
    generate(backend, prompt)
    assert generate(backend, prompt + BLOCKS[3])[1].prompt_reused > 0
    backend.clear_cache()
    usage = generate(backend, prompt + BLOCKS[3])[1]
    assert (usage.prompt_reused, usage.prompt_evaluated) == (0, usage.prompt_tokens)


# -- Gemma -----------------------------------------------------------------------------------------------


@pytest.mark.gemma
def test_gemma_shifted_top_token_matches_a_fresh_evaluation() -> None:
    n_ctx = 1024
    shifted, fresh = load(bundled_model_path(), n_ctx), load(bundled_model_path(), n_ctx)
    try:
        fmt = FORMATS["gemma"]
        speakers = Speakers("User", "Assistant")
        previous, step = run_until_a_drop(shifted, lambda n: chat_parts(fmt, "", chat_turns(n), speakers))
        tokens = shifted.prompt_tokens(step.fitted.text)
        kept = shifted.prompt_tokens(carried_over(previous.fitted, step.fitted))
        assert step.usage.prompt_shifted > 0
        assert step.usage.prompt_evaluated == len(tokens) - len(kept) < len(tokens) // 10
        shifted_logits = prompt_logits(shifted, step.fitted.text)
        generate(fresh, step.fitted.text)
        fresh_logits = prompt_logits(fresh, step.fitted.text)
        # Moved tokens keep values computed with the dropped messages in view, so the two
        # distributions differ a little (measured here: the top token's log-probability
        # by about 1e-5): the same top token, with its probability within a tolerance.
        top = int(fresh_logits.argmax())
        assert int(shifted_logits.argmax()) == top
        assert abs(log_softmax(shifted_logits)[top] - log_softmax(fresh_logits)[top]) < 0.1
    finally:
        shifted.close()
        fresh.close()


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max()
    return shifted - np.log(np.exp(shifted).sum())
