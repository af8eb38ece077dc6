"""Card macros: names, legacy tags, {{original}}, layout, random/pick/roll, safety."""

from __future__ import annotations

import random

import pytest

from engine.prompts.macros import MAX_EXPANDED_CHARS, MacroContext, expand_macros


def ctx(**fields: object) -> MacroContext:
    base: dict[str, object] = {"user": "Ann", "char": "Seraphina", "rng": random.Random(7)}
    base.update(fields)
    return MacroContext(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{user}} meets {{char}}", "Ann meets Seraphina"),
        ("{{USER}} meets {{Char}}", "Ann meets Seraphina"),
        ("<USER> and <BOT> and <char>", "Ann and Seraphina and Seraphina"),
        ("<user>/<Bot>/<CHAR>", "Ann/Seraphina/Seraphina"),
        ("{{charIfNotGroup}} <GROUP>", "Seraphina Seraphina"),
    ],
)
def test_names_and_legacy_tags_any_case(text: str, expected: str) -> None:
    assert expand_macros(text, ctx()) == expected


def test_the_nickname_replaces_the_name_for_char_and_bot() -> None:
    nick = ctx(char_nickname="Sera")
    assert expand_macros("{{char}} <char> <BOT> {{user}}", nick) == "Sera Sera Sera Ann"
    assert nick.char_display == "Sera"


def test_group_names_replace_group_macros() -> None:
    assert expand_macros("{{group}} / <CHARIFNOTGROUP>", ctx(group="Ann, Bo")) == "Ann, Bo / Ann, Bo"


def test_original_is_substituted_once() -> None:
    assert expand_macros("{{original}} Stay in character. {{original}}", ctx(original="Be kind.")) == (
        "Be kind. Stay in character. "
    )


def test_original_is_left_alone_when_there_is_none() -> None:
    assert expand_macros("{{original}}", ctx()) == "{{original}}"


def test_macros_inside_the_original_are_expanded_after_it_is_inserted() -> None:
    assert expand_macros("{{original}}!", ctx(original="Write as {{char}}.")) == "Write as Seraphina.!"


def test_card_fields_expand_first_so_names_inside_them_resolve() -> None:
    fields = {"description": "{{char}} guards <USER>.", "Scenario": "A glade."}
    assert (
        expand_macros("{{description}} {{scenario}}", ctx(fields=fields)) == "Seraphina guards Ann. A glade."
    )


def test_card_fields_cannot_grow_text_without_bound() -> None:
    big = "x" * (MAX_EXPANDED_CHARS // 2 + 1)
    out = expand_macros("{{description}}{{description}}", ctx(fields={"description": big}))
    assert out == big + "{{description}}"


def test_comments_are_removed() -> None:
    assert expand_macros("a{{// a note for {{user}} }}b", ctx()) == "ab"
    assert expand_macros("a{{comment: shown to the user}}b{{hidden_key: dragon}}c", ctx()) == "abc"


def test_newline_noop_and_trim() -> None:
    assert expand_macros("a{{newline}}b{{noop}}", ctx()) == "a\nb"
    assert expand_macros("top\n\n{{trim}}\n\nbottom", ctx()) == "topbottom"
    assert expand_macros("a\r\n{{TRIM}}b", ctx()) == "ab"


def test_reverse() -> None:
    assert expand_macros("{{reverse:abc}}", ctx()) == "cba"


def test_random_uses_the_given_rng_and_escaped_commas() -> None:
    picks = {expand_macros("{{random:a\\,b, c ,d}}", ctx(rng=random.Random(seed))) for seed in range(40)}
    assert picks == {"a,b", "c", "d"}
    first = expand_macros("{{random:x,y,z}}", ctx(rng=random.Random(3)))
    assert first == expand_macros("{{random:x,y,z}}", ctx(rng=random.Random(3)))


def test_random_with_double_colons_keeps_commas() -> None:
    picks = {expand_macros("{{random::a, b::c}}", ctx(rng=random.Random(seed))) for seed in range(40)}
    assert picks == {"a, b", "c"}


def test_random_may_use_names_inside_its_options() -> None:
    picks = {expand_macros("{{random:{{user}},{{char}}}}", ctx(rng=random.Random(s))) for s in range(40)}
    assert picks == {"Ann", "Seraphina"}


def test_pick_is_stable_for_the_same_seed_and_text() -> None:
    text = "{{pick:red,green,blue,amber,violet,teal}}"
    same = {expand_macros(text, ctx(pick_seed="chat-1", rng=random.Random(s))) for s in range(10)}
    assert len(same) == 1
    across_chats = {expand_macros(text, ctx(pick_seed=f"chat-{n}")) for n in range(40)}
    assert len(across_chats) > 1


def test_two_picks_in_one_text_are_independent() -> None:
    text = "{{pick:a,b,c,d,e,f,g,h}}" * 2
    outcomes = {expand_macros(text, ctx(pick_seed=f"c{n}")) for n in range(40)}
    assert any(o[0] != o[1] for o in outcomes)


def test_roll_uses_the_given_rng() -> None:
    rolls = [int(expand_macros("{{roll:d6}}", ctx(rng=random.Random(s)))) for s in range(60)]
    assert set(rolls) == {1, 2, 3, 4, 5, 6}
    assert expand_macros("{{roll:20}}", ctx(rng=random.Random(1))) == str(random.Random(1).randint(1, 20))
    total = int(expand_macros("{{roll 2d6+3}}", ctx()))
    assert 5 <= total <= 15


def test_a_roll_that_cannot_be_rolled_is_empty() -> None:
    assert expand_macros("[{{roll:banana}}][{{roll:1000d6}}][{{roll:0d6}}]", ctx()) == "[][][]"


def test_unknown_macros_are_left_untouched() -> None:
    text = "{{weather}} {{rollercoaster}} {{random}} {{user }} <NARRATOR>"
    assert expand_macros(text, ctx()) == text


def test_triple_braces_expand_the_inner_macro() -> None:
    assert expand_macros("{{{user}}}", ctx()) == "{Ann}"


def test_inserted_text_is_not_expanded_again() -> None:
    sneaky = ctx(user="{{char}}", char="{{user}}")
    assert expand_macros("{{user}}/{{char}}", sneaky) == "{{char}}/{{user}}"
    looping = ctx(original="{{original}}{{original}}")
    assert expand_macros("{{original}}", looping) == "{{original}}{{original}}"


@pytest.mark.parametrize(
    "hostile",
    [
        "{{" * 200_000,
        "{{//" * 100_000,
        "{{random:" * 100_000,
        "{{" + "{" * 200_000 + "}}",
        "}}" * 200_000,
        "<" * 200_000,
    ],
)
def test_hostile_input_expands_without_blowing_up(hostile: str) -> None:
    assert expand_macros(hostile, ctx()) == hostile


def test_many_macros_expand_in_one_pass() -> None:
    assert expand_macros("{{user}}" * 50_000, ctx(user="A")) == "A" * 50_000
