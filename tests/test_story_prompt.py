"""Story and Adventure prompt assembly, byte for byte."""

from __future__ import annotations

import pytest

from engine.lore.worldinfo import StoryCard
from engine.prompts.parts import fit_prompt
from engine.prompts.story import (
    StorySteering,
    note_depth_in_lines,
    part_tokens,
    render_note,
    story_lines,
    story_parts,
)


def chars(text: str) -> int:
    """One token per character: budgets in these tests are easy to reason about."""
    return len(text)


STORY = "Line one.\nLine two.\nLine three.\nLine four.\nThe end is nigh"
CASTLE = StoryCard(keys=("castle",), content="The castle is haunted.")
ALWAYS = StoryCard(constant=True, content="It is winter.")


def build(text: str, steering: StorySteering, budget: int = 10_000, anchor: int | None = None) -> str:
    prompt = story_parts(text, steering, budget=budget, count=chars, roll=lambda: 1)
    return fit_prompt(prompt.parts, budget, chars, anchor=anchor).text


def test_memory_then_story_then_the_note_two_lines_from_the_end() -> None:
    steering = StorySteering(
        memory="A tale of two cities.", authors_note="gloomy", authors_note_depth=2, authors_note_unit="lines"
    )
    assert build(STORY, steering) == (
        "A tale of two cities.\n"
        "Line one.\nLine two.\nLine three.\n"
        "[Author's note: gloomy]\n"
        "Line four.\nThe end is nigh"
    )


def test_a_depth_in_characters_snaps_back_to_the_start_of_a_line() -> None:
    # 20 characters from the end falls inside "Line four.\n" (the last line has 15).
    steering = StorySteering(authors_note="tense", authors_note_depth=20, authors_note_unit="characters")
    assert build(STORY, steering) == (
        "Line one.\nLine two.\nLine three.\n[Author's note: tense]\nLine four.\nThe end is nigh"
    )
    assert note_depth_in_lines(story_lines(STORY), 15, "characters") == 1
    assert note_depth_in_lines(story_lines(STORY), 16, "characters") == 2
    assert note_depth_in_lines(story_lines(STORY), 10_000, "characters") == 5
    assert note_depth_in_lines(story_lines(STORY), 0, "lines") == 1  # the last line is unfinished
    assert note_depth_in_lines(story_lines("Done.\n"), 0, "lines") == 0


def words(text: str) -> int:
    """One token per word: unlike characters, so a test can tell which counter was used."""
    return len(text.split())


def test_a_depth_in_tokens_counts_with_the_models_tokenizer() -> None:
    lines = story_lines(STORY)  # from the end: 4 words, then 2, then 2
    assert note_depth_in_lines(lines, 4, "tokens", words) == 1
    assert note_depth_in_lines(lines, 5, "tokens", words) == 2
    assert note_depth_in_lines(lines, 6, "tokens", words) == 2
    assert note_depth_in_lines(lines, 7, "tokens", words) == 3
    steering = StorySteering(authors_note="grim", authors_note_depth=5, authors_note_unit="tokens")
    prompt = story_parts(STORY, steering, budget=10_000, count=words, roll=lambda: 1)
    assert fit_prompt(prompt.parts, 10_000, words).text == (
        "Line one.\nLine two.\nLine three.\n[Author's note: grim]\nLine four.\nThe end is nigh"
    )


def test_a_note_at_depth_zero_never_splits_the_writers_line() -> None:
    steering = StorySteering(authors_note="now", authors_note_depth=0, authors_note_template="[<|>]")
    # The model goes on with an unfinished sentence, so the note goes before its line.
    assert build("Night fell.\nIt was dark", steering) == "Night fell.\n[now]\nIt was dark"
    assert build("It was dark", steering) == "[now]\nIt was dark"
    assert build("It was dark\n", steering) == "It was dark\n[now]\n"


def test_an_empty_note_adds_nothing_and_a_template_without_a_slot_still_works() -> None:
    assert build(STORY, StorySteering(authors_note="   ")) == STORY
    assert render_note("Style: ", "terse") == "Style: terse"
    assert render_note("[Note: <|>]", "  terse ") == "[Note: terse]"


def test_world_info_after_memory_and_before_the_note() -> None:
    text = "We reached the castle.\nIt was cold.\n"
    after = StorySteering(
        memory="M",
        world_info=(CASTLE, ALWAYS),
        authors_note="N",
        authors_note_depth=1,
        authors_note_unit="lines",
    )
    assert build(text, after) == (
        "M\nThe castle is haunted.\nIt is winter.\nWe reached the castle.\n[Author's note: N]\nIt was cold.\n"
    )
    before = StorySteering(
        memory="M",
        world_info=(CASTLE,),
        wi_placement="before_authors_note",
        authors_note="N",
        authors_note_depth=1,
        authors_note_unit="lines",
    )
    assert build(text, before) == (
        "M\nWe reached the castle.\nThe castle is haunted.\n[Author's note: N]\nIt was cold.\n"
    )


def test_world_info_only_fires_on_its_keys_within_the_search_depth() -> None:
    text = "The castle loomed.\n" + "x" * 50 + "\n"
    assert "haunted" in build(text, StorySteering(world_info=(CASTLE,)))
    assert "haunted" not in build(text, StorySteering(world_info=(CASTLE,), wi_search_depth=30))
    assert "haunted" not in build("A quiet field.\n", StorySteering(world_info=(CASTLE,)))


def test_world_info_over_its_budget_drops_the_last_entries() -> None:
    cards = (ALWAYS, StoryCard(constant=True, content="y" * 200))
    # The share of a 400-token budget is 100: the second card does not fit.
    prompt = story_parts("Hello\n", StorySteering(world_info=cards), budget=400, count=chars, roll=lambda: 1)
    assert [a.entry for a in prompt.scan.active] == [ALWAYS]
    assert [a.entry for a in prompt.scan.dropped] == [cards[1]]


def test_trimming_drops_the_oldest_lines_and_keeps_memory_note_and_lore() -> None:
    lines = [f"Line number {i:02d}.\n" for i in range(40)]  # 16 characters each
    steering = StorySteering(
        memory="MEMORY\n",
        world_info=(ALWAYS,),
        authors_note="N",
        authors_note_depth=2,
        authors_note_unit="lines",
    )
    text = "".join(lines)
    prompt = story_parts(text, steering, budget=300, count=chars, roll=lambda: 1)
    fitted = fit_prompt(prompt.parts, 300, chars)
    assert fitted.text.startswith("MEMORY\nIt is winter.\n")
    assert fitted.text.endswith("[Author's note: N]\nLine number 38.\nLine number 39.\n")
    kept = fitted.text.count("Line number")
    assert fitted.start == 40 - kept and fitted.start > 0
    assert f"Line number {fitted.start:02d}." in fitted.text
    assert f"Line number {fitted.start - 1:02d}." not in fitted.text
    assert fitted.n_tokens <= 300
    counts = part_tokens(prompt, fitted, chars, chars)
    assert counts.memory == 7 and counts.world_info == len("It is winter.\n")
    assert counts.authors_note == len("[Author's note: N]\n")  # its line ends in the prompt too
    assert counts.story == 16 * kept and counts.story_total == 16 * 40
    assert counts.lines_dropped == fitted.start and counts.total == fitted.n_tokens
    assert counts.memory + counts.world_info + counts.authors_note + counts.story == counts.total


def test_the_head_stays_byte_stable_as_the_story_grows() -> None:
    steering = StorySteering(
        memory="Memory stays first.", authors_note="N", authors_note_depth=1, authors_note_unit="lines"
    )
    text = "".join(f"Line {i}.\n" for i in range(30))
    first = fit_prompt(story_parts(text, steering, budget=200, count=chars).parts, 200, chars)
    text += "A new line.\n"
    second = fit_prompt(
        story_parts(text, steering, budget=200, count=chars).parts, 200, chars, anchor=first.start
    )
    assert first.head == second.head == "Memory stays first.\n"
    assert second.text.startswith(first.text.split("[Author's note")[0][: len(first.head) + 20])
    # Anchored: the same first kept line, so everything up to the note is a shared prefix.
    assert second.start == first.start


def test_an_empty_story_is_just_memory() -> None:
    assert build("", StorySteering(memory="Only memory")) == "Only memory\n"


@pytest.mark.parametrize("text", ["", "a", "a\n", "a\nb", "a\r\nb\n\n"])
def test_lines_join_back_to_the_text(text: str) -> None:
    assert "".join(story_lines(text)) == text
