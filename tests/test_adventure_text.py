"""Adventure input: Do / Say / Story rewriting, stop strings and reply trimming."""

from __future__ import annotations

import pytest

from engine.errors import EngineError
from engine.prompts.adventure import (
    ADVENTURE_STOPS,
    EmptyActionError,
    InputKind,
    PlayerInput,
    do_line,
    player_input,
    say_line,
    second_person,
    trim_reply,
)
from engine.stops import StopFilter


@pytest.mark.parametrize(
    ("typed", "line"),
    [
        ("open the door", "You open the door."),
        ("Open the door", "You open the door."),
        ("I open the door", "You open the door."),
        ("i open the door", "You open the door."),
        ("> open the door", "You open the door."),
        (">> I open the door", "You open the door."),
        ("  open   the\ndoor  ", "You open the door."),
        ("You open the door", "You open the door."),
        ("you open the door", "You open the door."),
        ("I open my bag and take out my sword", "You open your bag and take out your sword."),
        ("look at myself in the mirror", "You look at yourself in the mirror."),
        ("ask her to follow me", "You ask her to follow you."),
        ("say that the key is mine", "You say that the key is yours."),
        ("explore the old mine", "You explore the old mine."),
        ("I am tired", "You are tired."),
        ("I was wrong", "You were wrong."),
        ("I'm ready", "You're ready."),
        ("I’m ready", "You’re ready."),
        ("I've got it", "You've got it."),
        ("I'll wait", "You'll wait."),
        ("I'd rather run", "You'd rather run."),
        ("my hands shake", "Your hands shake."),
        ("wonder where am I", "You wonder where are you."),
        ("draw NASA badge", "You draw NASA badge."),
        ("MY SWORD IS GONE", "YOUR SWORD IS GONE."),
    ],
)
def test_do_rewrites_to_second_person(typed: str, line: str) -> None:
    assert do_line(typed) == line


@pytest.mark.parametrize(
    ("typed", "line"),
    [
        ("run!", "You run!"),
        ("run?", "You run?"),
        ("run...", "You run..."),
        ("run,", "You run."),
        ("run;", "You run."),
        ('shout "Help!"', 'You shout "Help!"'),
        ('shout "help"', 'You shout "help".'),
    ],
)
def test_do_ends_with_one_sentence_mark(typed: str, line: str) -> None:
    assert do_line(typed) == line


def test_do_leaves_text_inside_quotes_alone() -> None:
    assert do_line('I shout "I am here and my name is Bo!"') == 'You shout "I am here and my name is Bo!"'
    assert do_line("I whisper “I know my way”") == "You whisper “I know my way”."
    assert do_line('"Stay back," I warn') == '"Stay back," you warn.'


def test_do_rewrites_every_sentence_of_a_longer_action() -> None:
    assert (
        do_line("I open the door. I look inside. Then I step in")
        == "You open the door. You look inside. Then you step in."
    )


def test_second_person_keeps_verbs_and_only_changes_pronouns() -> None:
    assert second_person("I walk and I talk") == "You walk and you talk"
    assert second_person('she said "I am me"') == 'she said "I am me"'
    assert second_person("Give me my hat") == "Give you your hat"


@pytest.mark.parametrize(
    ("typed", "line"),
    [
        ("hello", 'You say "Hello."'),
        ("hello!", 'You say "Hello!"'),
        ("is anyone there?", 'You say "Is anyone there?"'),
        ("hello,", 'You say "Hello."'),
        ('"hello"', 'You say "Hello."'),
        ("“hello”", 'You say "Hello."'),
        ("you say hello", 'You say "Hello."'),
        ('You say, "Stop!"', 'You say "Stop!"'),
        ("I say hi", 'You say "Hi."'),
        ("> hi there", 'You say "Hi there."'),
        ("I am lost", 'You say "I am lost."'),
        ("see\nyou", 'You say "See you."'),
    ],
)
def test_say_quotes_and_capitalises(typed: str, line: str) -> None:
    assert say_line(typed) == line


def test_player_input_frames_do_and_say_as_one_action_line() -> None:
    result = player_input(InputKind.DO, "open the door", preceding="A hall.")
    assert result == PlayerInput(InputKind.DO, "You open the door.", "\n\n> You open the door.\n\n")
    said = player_input(InputKind.SAY, "hi", preceding="A hall.\n")
    assert said.kind is InputKind.SAY and said.text == '\n> You say "Hi."\n\n'
    assert player_input(InputKind.DO, "wait", preceding="A hall.\n\n").text == "> You wait.\n\n"
    assert player_input(InputKind.DO, "wait").text == "> You wait.\n\n"


def test_story_input_is_kept_as_typed() -> None:
    result = player_input(InputKind.STORY, " The wind howls, and i shiver.\n")
    assert result.kind is InputKind.STORY
    assert result.text == " The wind howls, and i shiver.\n"
    assert result.line == "The wind howls, and i shiver."


@pytest.mark.parametrize("kind", list(InputKind))
@pytest.mark.parametrize("typed", ["", "   ", "\n\t"])
def test_empty_input_is_refused(kind: InputKind, typed: str) -> None:
    with pytest.raises(EmptyActionError) as caught:
        player_input(kind, typed)
    assert isinstance(caught.value, EngineError)
    assert "first" in str(caught.value)


def test_action_marks_or_say_prefix_alone_are_empty() -> None:
    with pytest.raises(EmptyActionError):
        do_line(">>> ")
    with pytest.raises(EmptyActionError):
        say_line("you say")
    with pytest.raises(EmptyActionError):
        say_line('""')


def test_stop_strings_catch_the_next_action() -> None:
    assert "\n>" in ADVENTURE_STOPS and "\n> " in ADVENTURE_STOPS
    for reply in ("It is dark.\n> You light", "It is dark.\n>You light"):
        stops = StopFilter(ADVENTURE_STOPS)
        assert stops.feed(reply) + stops.flush() == "It is dark."


@pytest.mark.parametrize(
    ("reply", "kept"),
    [
        ("The door creaks open.", "The door creaks open."),
        ("The door creaks open.\n\n> You step in.", "The door creaks open."),
        ("The door opens.\n  > You step in.\nMore.", "The door opens."),
        ("> You step in.", ""),
        ("\n\n> You step in.", ""),
        ("Text with > inside stays.", "Text with > inside stays."),
        ("Ends with space. ", "Ends with space. "),
        ("\n\n  \n", ""),  # only whitespace: nothing to add (a retry must not blank the reply)
    ],
)
def test_trim_reply_cuts_at_the_next_action(reply: str, kept: str) -> None:
    assert trim_reply(reply) == kept
