"""The prompt assembler: budgets, byte-stable heads, dropping oldest first, anchors."""

from __future__ import annotations

import pytest

from engine.errors import ContextOverflowError
from engine.prompts.parts import Block, Injection, PromptParts, fit_prompt


def count(text: str) -> int:
    """One token per character keeps the arithmetic in these tests obvious."""
    return len(text)


def body(*texts: str) -> list[Block]:
    return [Block(t) for t in texts]


def test_everything_fits_in_order() -> None:
    parts = PromptParts(head="H|", body=body("a1|", "b2|", "c3|"), tail=Block("T"))
    fitted = fit_prompt(parts, 100, count)
    assert fitted.text == "H|a1|b2|c3|T"
    assert fitted.start == 0
    assert fitted.n_tokens == len(fitted.text)
    assert fitted.part_tokens == {"head": 2, "optional": 0, "body": 9, "injections": 0, "tail": 1}


def test_oldest_blocks_drop_first_and_head_stays() -> None:
    parts = PromptParts(head="HEAD|", body=body(*[f"m{i:02d}|" for i in range(20)]), tail=Block("T"))
    fitted = fit_prompt(parts, 5 + 1 + 4 * 10, count, headroom=0.0)
    assert fitted.text.startswith("HEAD|m10|")
    assert fitted.text.endswith("m19|T")
    assert fitted.dropped == 10
    assert fitted.n_tokens <= fitted.budget


def test_never_exceeds_budget_and_keeps_newest() -> None:
    parts = PromptParts(head="H", body=body(*["x" * 7 for _ in range(50)]), tail=Block("T"))
    for budget in range(20, 200, 13):
        fitted = fit_prompt(parts, budget, count)
        assert fitted.n_tokens <= budget
        assert fitted.start <= 49


def test_dropping_frees_headroom_so_the_start_stays_put() -> None:
    """After an overflow, the next turns keep the same first block (and KV prefix)."""
    blocks = [f"m{i:02d}|" for i in range(40)]
    budget = 1 + 4 * 20  # room for 20 blocks plus the head
    first = fit_prompt(PromptParts(head="H", body=body(*blocks[:21])), budget, count, headroom=0.25)
    assert first.start == 6  # dropped 1 needed + 5 more (25% of 80 tokens / 4 per block)
    starts = [first.start]
    anchor = first.start
    for n in range(22, 27):
        fitted = fit_prompt(PromptParts(head="H", body=body(*blocks[:n])), budget, count, anchor=anchor)
        starts.append(fitted.start)
        anchor = fitted.start
    assert starts == [6, 6, 6, 6, 6, 6]


def test_stale_anchor_is_ignored_when_everything_fits() -> None:
    fitted = fit_prompt(PromptParts(head="H", body=body("a", "b")), 100, count, anchor=1)
    assert fitted.start == 0


def test_anchor_that_no_longer_fits_moves_forward() -> None:
    parts = PromptParts(head="H", body=body(*["abcd"] * 30))
    fitted = fit_prompt(parts, 41, count, anchor=2, headroom=0.0)
    assert fitted.start == 20


def test_lead_text_is_used_for_the_first_block_after_the_head() -> None:
    parts = PromptParts(
        head="[SYS]",
        body=[Block("<u>one</u>", lead="one</u>"), Block("<u>two</u>", lead="two</u>")],
        tail=Block("<a>", lead="</u><a>"),
    )
    assert fit_prompt(parts, 1000, count).text == "[SYS]one</u><u>two</u><a>"
    dropped = fit_prompt(parts, len("[SYS]two</u><a>"), count, headroom=0.0)
    assert dropped.text == "[SYS]two</u><a>"
    only_tail = PromptParts(head="[SYS]", body=[], tail=Block("<a>", lead="</u><a>"))
    assert fit_prompt(only_tail, 100, count).text == "[SYS]</u><a>"


def test_injection_sits_at_its_depth() -> None:
    parts = PromptParts(
        body=body("1|", "2|", "3|", "4|"),
        injections=[Injection(Block("[note]"), depth=2), Injection(Block("[end]"), depth=0)],
    )
    assert fit_prompt(parts, 100, count).text == "1|2|[note]3|4|[end]"


def test_injection_deeper_than_the_body_goes_to_its_top() -> None:
    parts = PromptParts(head="H", body=body("1|", "2|"), injections=[Injection(Block("[n]"), depth=9)])
    assert fit_prompt(parts, 100, count).text == "H[n]1|2|"


def test_optional_blocks_fill_spare_room_and_go_first() -> None:
    parts = PromptParts(head="H|", optional=body("e1|", "e2|"), body=body("c1|", "c2|"))
    assert fit_prompt(parts, 100, count).text == "H|e1|e2|c1|c2|"
    squeezed = fit_prompt(parts, len("H|e2|c1|c2|"), count)
    assert squeezed.text == "H|e2|c1|c2|"  # the oldest example is pushed out first
    assert fit_prompt(parts, len("H|c1|c2|"), count).text == "H|c1|c2|"


def test_pinned_blocks_that_cannot_fit_raise_a_plain_error() -> None:
    parts = PromptParts(head="H" * 50, body=body("question"), tail=Block("T"))
    with pytest.raises(ContextOverflowError, match="only 40 fit"):
        fit_prompt(parts, 40, count)


def test_exact_count_is_enforced_even_when_pieces_undercount() -> None:
    """Seams can cost tokens that per-piece counts miss; the exact count decides."""

    def seam_count(text: str) -> int:
        return len(text) + text.count("|")  # every separator costs one extra token

    parts = PromptParts(head="H", body=body(*["ab|"] * 10))
    fitted = fit_prompt(parts, 20, lambda t: len(t) if t.count("|") <= 1 else seam_count(t))
    assert seam_count(fitted.text) <= 20
