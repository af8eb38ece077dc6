"""KoboldAI / Kobold Lite story saves: import, lossless round trips, export, bad files."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from store.errors import StoryFormatError
from store.stories import (
    Story,
    WorldInfoEntry,
    dumps_story,
    export_story,
    fields,
    import_story,
    kobold,
    load_story_file,
    story_from_text,
    to_plain_text,
)


def sample_path(third_party: Path) -> Path:
    return third_party / "stories" / "sample_story.json"


def assert_keeps(original: dict[str, Any], exported: dict[str, Any]) -> None:
    """Every key of the original comes back with the same value."""
    for key, value in original.items():
        assert key in exported, key
        assert exported[key] == value, key


# ----- shapes written for these tests -----


def koboldai_v1() -> dict[str, Any]:
    """A KoboldAI 1.x save: comma-joined keys, numeric folders, filled metadata."""
    return {
        "gamestarted": True,
        "prompt": "You wake in a cave.",
        "memory": "You are a knight.",
        "authorsnote": "Keep it tense.",
        "anotetemplate": "[Author's note: <|>]",
        "actions": ["\n\n> You light a torch.\n", " The walls glitter."],
        "actions_metadata": {
            "0": {"Selected Text": "\n\n> You light a torch.\n", "Alternative Text": []},
            "1": {
                "Selected Text": " The walls glitter.",
                "Alternative Text": [
                    {
                        "Text": " A bat flies out.",
                        "Pinned": False,
                        "Previous Selection": True,
                        "Edited": False,
                    }
                ],
            },
        },
        "worldinfo": [
            {
                "key": "cave, cavern",
                "keysecondary": "",
                "content": "The cave is old.",
                "comment": "Place",
                "folder": 1,
                "selective": False,
                "constant": False,
                "num": 0,
                "init": True,
                "uid": 12345,
            }
        ],
        "wifolders_d": {"1": {"name": "Places", "collapsed": False}},
        "wifolders_l": [1],
    }


def lite_with_extras() -> dict[str, Any]:
    """A Kobold Lite save with its extras, string-valued settings, and a key nobody knows."""
    return {
        "gamestarted": True,
        "prompt": "The ship groans.",
        "memory": "[Captain Vex commands the Gull.]",
        "authorsnote": "Salt and storm.",
        "anotetemplate": "[Style: <|>]",
        "actions": [" Waves crash.", "\n\n> You grab the wheel.\n\n", " The wheel spins."],
        "actions_metadata": {
            "0": {"Selected Text": "", "Alternative Text": []},
            "1": {"Selected Text": "", "Alternative Text": []},
            "2": {"Selected Text": "", "Alternative Text": []},
        },
        "worldinfo": [
            {
                "key": "Vex,captain",
                "keysecondary": "storm",
                "keyanti": "calm",
                "content": "Vex is fearless.",
                "comment": "",
                "folder": None,
                "selective": True,
                "constant": False,
                "probability": "50",
                "wigroup": "People",
                "widisabled": False,
            },
            {
                "key": "",
                "keysecondary": "",
                "keyanti": "",
                "content": "The sea is cold.",
                "comment": "always",
                "folder": None,
                "selective": False,
                "constant": True,
                "probability": 100,
                "wigroup": "",
                "widisabled": True,
            },
        ],
        "wifolders_d": {},
        "wifolders_l": [],
        "anotestr": 160,
        "wisearchdepth": "1024",
        "wiinsertlocation": "1",
        "personal_notes": "remember the map",
        "newlineaftermemory": True,
        "documentdb_provider": 0,
        "documentdb_searchhistory": 0,
        "documentdb_numresults": 3,
        "documentdb_searchrange": 300,
        "documentdb_chunksize": 800,
        "documentdb_data": "",
        "altbranches": [["The ship sinks."]],
        "completed_imgs_meta": {"abc": {"prompt": "a ship"}},
        "savedsettings": {"opmode": 2, "adventure_switch_mode": 1, "temperature": 0.8, "chatname": "User"},
        "savedaestheticsettings": {"bubbleColor": "#fff"},
        "some_future_field": {"nested": [1, 2, {"x": None}]},
    }


def united_v2() -> dict[str, Any]:
    """A KoboldAI United save (`file_version: 2`), with multi-key entries and folders."""
    return {
        "file_version": 2,
        "story_name": "Dragon Pass",
        "prompt": "The pass is snowed in.",
        "memory": "A dragon sleeps nearby.",
        "authornote": "Mood: cold.",
        "authornotetemplate": "[A/N: <|>]",
        "andepth": 3,
        "adventure": True,
        "actions": {
            "action_count": 1,
            "actions": {
                "0": {
                    "Selected Text": " Snow falls.",
                    "Options": [
                        {"text": " Ice cracks.", "Pinned": False, "Previous Selection": True, "Edited": False}
                    ],
                    "Time": 1700000000,
                    "Original Text": " Snow falls.",
                    "audio_gen": 0,
                    "image_gen": False,
                },
                "1": {"Selected Text": "\n> You dig.\n", "Options": [], "Time": 1700000001},
            },
        },
        "worldinfo_v2": {
            "folders": {"root": [0, 1], "Beasts": []},
            "entries": {
                "0": {
                    "uid": 0,
                    "title": "Dragon",
                    "key": ["dragon", "wyrm", "drake"],
                    "keysecondary": ["sleep", "cave"],
                    "folder": "root",
                    "constant": False,
                    "manual_text": "The dragon is ancient.",
                    "content": "The dragon is ancient.",
                    "comment": "big",
                    "type": "wi",
                    "token_length": 6,
                    "selective": True,
                    "used_in_game": False,
                    "wpp": {"name": "", "type": "", "format": "W++", "attributes": {}},
                    "use_wpp": False,
                    "v1_uid": None,
                    "object_type": None,
                },
                "1": {
                    "uid": 1,
                    "title": "Pass",
                    "key": ["pass"],
                    "keysecondary": [],
                    "folder": "root",
                    "constant": True,
                    "content": "The pass is high.",
                    "comment": "",
                    "type": "constant",
                    "selective": False,
                },
            },
        },
        "worldinfo": [{"key": "dragon,wyrm,drake", "content": "The dragon is ancient."}],
        "notes": "my notes",
        "biases": {"snow": [1.0, 10]},
    }


# ----- the third-party save -----


def test_imports_the_koboldai_sample_story(third_party: Path) -> None:
    story = load_story_file(sample_path(third_party).read_bytes(), title="Niko")
    original = json.loads(sample_path(third_party).read_text())
    assert story.title == "Niko" and story.mode == "story"
    assert story.prompt.startswith("Niko the kobold stalked carefully down the alley")
    assert [c.text for c in story.chunks[1:]] == original["actions"]
    assert [c.origin for c in story.chunks] == ["prompt", "ai", "ai", "ai"]
    assert story.memory.startswith("Niko is a small red kobold.")
    assert story.authors_note == "Things are about to get crazy for poor Niko."
    assert story.authors_note_template == "[Author's note: <|>]"
    assert story.world_info == ()
    assert to_plain_text(story) == original["prompt"] + "".join(original["actions"])


def test_the_sample_story_round_trips(third_party: Path) -> None:
    original = json.loads(sample_path(third_party).read_text())
    exported = export_story(load_story_file(sample_path(third_party).read_text()))
    assert_keeps(original, exported)
    assert exported["savedsettings"]["opmode"] == 1
    assert load_story_file(json.dumps(exported)).full_text() == original["prompt"] + "".join(
        original["actions"]
    )


# ----- round trips -----


def test_koboldai_v1_round_trip_keeps_every_field() -> None:
    original = koboldai_v1()
    story = import_story(copy.deepcopy(original))
    assert story.chunks[1].origin == "user" and story.chunks[2].origin == "ai"
    assert story.chunks[2].alternatives == (" A bat flies out.",)
    entry = story.world_info[0]
    assert entry.keys == ("cave", "cavern") and entry.comment == "Place" and entry.extra["folder"] == 1
    assert_keeps(original, export_story(story))


def test_lite_save_with_extras_round_trips_exactly() -> None:
    original = lite_with_extras()
    story = import_story(copy.deepcopy(original))
    assert story.mode == "adventure"
    assert story.authors_note_depth == 160 and story.wi_search_depth == 1024
    assert story.wi_placement == "before_authors_note"
    vex, sea = story.world_info
    assert vex.keys == ("Vex", "captain") and vex.secondary_keys == ("storm",) and vex.anti_keys == ("calm",)
    assert vex.selective and vex.probability == 50 and vex.group == "People" and vex.enabled
    assert sea.constant and not sea.enabled and sea.keys == ()
    assert export_story(story) == original
    assert json.loads(dumps_story(story)) == original


def test_changed_values_are_written_in_the_new_form_and_the_rest_kept() -> None:
    story = import_story(lite_with_extras())
    vex = replace(story.world_info[0], probability=70, keys=("Vex", "skipper"))
    changed = replace(story, world_info=(vex, *story.world_info[1:]), wi_search_depth=0, mode="story")
    exported = export_story(changed.append(" More.", "ai"))
    assert exported["worldinfo"][0]["probability"] == 70
    assert exported["worldinfo"][0]["key"] == "Vex,skipper"
    assert exported["worldinfo"][0]["wigroup"] == "People"
    assert exported["wisearchdepth"] == 0
    assert exported["savedsettings"]["opmode"] == 1
    assert exported["savedsettings"]["temperature"] == 0.8
    assert exported["actions"][-1] == " More." and "3" in exported["actions_metadata"]
    assert exported["some_future_field"] == {"nested": [1, 2, {"x": None}]}


def test_united_v2_round_trips_with_every_key() -> None:
    original = united_v2()
    story = import_story(copy.deepcopy(original))
    assert story.title == "Dragon Pass" and story.mode == "adventure" and story.kobold_shape == "united"
    assert story.authors_note == "Mood: cold." and story.authors_note_template == "[A/N: <|>]"
    assert [c.text for c in story.chunks] == ["The pass is snowed in.", " Snow falls.", "\n> You dig.\n"]
    assert story.chunks[1].alternatives == (" Ice cracks.",)
    dragon, pass_ = story.world_info
    assert dragon.keys == ("dragon", "wyrm", "drake")  # all keys, not just the first
    assert dragon.secondary_keys == ("sleep", "cave") and dragon.selective
    assert pass_.constant
    assert export_story(story) == original


def test_united_edits_keep_manual_text_in_step_and_add_uids() -> None:
    story = import_story(united_v2())
    dragon = replace(story.world_info[0], content="The dragon is awake.")
    new = WorldInfoEntry(keys=("yeti",), content="A yeti roams.")
    story = replace(story, world_info=(dragon, story.world_info[1], new))
    exported = export_story(story.append(" Y", "ai").retry(" X"))
    entries = exported["worldinfo_v2"]["entries"]
    assert entries["0"]["manual_text"] == entries["0"]["content"] == "The dragon is awake."
    assert entries["2"]["uid"] == 2 and entries["2"]["key"] == ["yeti"] and entries["2"]["title"] == "yeti"
    assert exported["actions"]["action_count"] == 2
    assert exported["actions"]["actions"]["2"]["Selected Text"] == " X"
    options = exported["actions"]["actions"]["2"]["Options"]
    assert options == [{"text": " Y", "Pinned": False, "Previous Selection": True, "Edited": False}]


def test_united_story_exported_for_lite_is_a_clean_v1_save() -> None:
    story = import_story(united_v2())
    exported = export_story(story, "lite")
    assert "file_version" not in exported and "worldinfo_v2" not in exported
    assert exported["worldinfo"][0]["key"] == "dragon,wyrm,drake"
    assert exported["worldinfo"][0]["keysecondary"] == "sleep,cave"
    assert exported["worldinfo"][0]["folder"] is None
    assert exported["anotetemplate"] == "[A/N: <|>]"
    assert exported["savedsettings"]["opmode"] == 2
    again = import_story(exported)
    assert again.full_text() == story.full_text() and again.world_info[0].keys == ("dragon", "wyrm", "drake")


def test_compact_share_shape_imports() -> None:
    share = {
        "ga": ["It begins.", " It goes on."],
        "cm": "Memory here.",
        "ca": "Note.",
        "ct": "[N: <|>]",
        "cwi": [{"key": "begin", "content": "A start.", "selective": False, "constant": False}],
        "ess": "###",
    }
    story = import_story(share)
    assert [c.text for c in story.chunks] == ["It begins.", " It goes on."]
    assert story.memory == "Memory here." and story.authors_note == "Note."
    assert story.authors_note_template == "[N: <|>]"
    assert story.world_info[0].keys == ("begin",)
    exported = export_story(story)
    assert exported["prompt"] == "It begins." and exported["actions"] == [" It goes on."]
    assert exported["extrastopseq"] == "###"  # where a v1 save keeps Lite's stop sequences


def test_a_hearth_story_exports_to_a_save_lite_and_koboldai_read() -> None:
    story = (
        Story(title="Mine", mode="adventure", memory="m", authors_note="a")
        .append("Start.", "prompt")
        .append("\n\n> You look.\n\n", "user")
        .append(" Dark.", "ai")
        .retry(" Light.")
    )
    story = replace(story, world_info=(WorldInfoEntry(keys=("dark", "night"), content="Night falls."),))
    exported = export_story(story)
    for key in ("gamestarted", "prompt", "memory", "authorsnote", "anotetemplate", "actions", "worldinfo"):
        assert key in exported
    assert exported["wifolders_d"] == {} and exported["wifolders_l"] == []
    assert exported["savedsettings"]["opmode"] == 2
    assert exported["worldinfo"][0]["key"] == "dark,night" and exported["worldinfo"][0]["probability"] == 100
    assert exported["actions_metadata"]["1"]["Alternative Text"][0]["Text"] == " Dark."
    again = load_story_file(dumps_story(story).encode())
    assert again.full_text() == story.full_text() and again.mode == "adventure" and again.title == "Mine"
    assert again.chunks[2].alternatives == (" Dark.",)
    assert [c.origin for c in again.chunks] == ["prompt", "user", "ai"]
    assert again.world_info[0].keys == ("dark", "night")
    assert export_story(replace(story, mode="story"))["savedsettings"]["opmode"] == 1


def test_plain_text_export_drops_lite_image_markers() -> None:
    story = story_from_text("A cat.[<|p|img1|p|>] It sleeps.[<|h|abc123|h|>]", title="Cat")
    assert story.chunks[0].origin == "prompt" and story.title == "Cat"
    assert to_plain_text(story) == "A cat. It sleeps."


# ----- bad files -----


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe\x00bad", "not UTF-8"),
        (b"[1, 2]", "JSON object"),
        (b'{"prompt": NaN}', "not valid JSON"),
        (b"{}", "no prompt or actions"),
        (b'{"prompt": "x", "actions": "y"}', '"actions" should be a list'),
        (b'{"prompt": "x", "actions": ["ok", 5]}', "action 2 should be text"),
        (b'{"prompt": ["x"]}', '"prompt" should be text'),
        (b'{"prompt": "x", "memory": 3}', '"memory" should be text'),
        (b'{"prompt": "x", "worldinfo": [{"key": 5}]}', "world-info entry 1 key"),
        (b'{"prompt": "x", "worldinfo": [{"key": "a", "probability": "lots"}]}', "probability"),
        (b'{"prompt": "x", "worldinfo": [{"key": "a", "selective": "maybe"}]}', "selective"),
        (b'{"prompt": "x", "worldinfo": "none"}', "worldinfo"),
        (b'{"prompt": "x", "wiinsertlocation": 7}', "wiinsertlocation"),
        (b'{"prompt": "x", "anotestr": -4}', "anotestr"),
        (b'{"prompt": "x", "actions_metadata": {"0": 3}, "actions": ["a"]}', "actions_metadata entry 0"),
        (b'{"file_version": 3, "prompt": "x"}', "file_version 3"),
        (b'{"file_version": 2, "prompt": "x", "actions": {"actions": {"a": {}}}}', "action number"),
        (b'{"file_version": 2, "actions": {"actions": {"0": {"Selected Text": 1}}}}', "Selected Text"),
        (b'{"file_version": 2, "worldinfo_v2": {"entries": {"0": {"key": [1]}}}}', "key"),
        (b'{"scenarioVersion": 3, "prompt": "x"}', "NovelAI"),
        (b'{"spec": "chara_card_v2", "data": {}}', "character card"),
        (b'{"ga": "not a list"}', '"ga"'),
    ],
)
def test_invalid_saves_raise_story_format_error(data: bytes, message: str) -> None:
    with pytest.raises(StoryFormatError, match=message):
        load_story_file(data)


def test_deep_nesting_is_refused() -> None:
    with pytest.raises(StoryFormatError, match="nested too deeply"):
        load_story_file('{"prompt": "x", "extra": ' + "[" * 100 + "]" * 100 + "}")
    with pytest.raises(StoryFormatError, match="nested too deeply"):
        load_story_file("[" * 100_000 + "]" * 100_000)


def test_size_limits_are_enforced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fields, "MAX_FILE_BYTES", 100)
    with pytest.raises(StoryFormatError, match="not imported"):
        load_story_file(json.dumps({"prompt": "x" * 200}))
    monkeypatch.undo()
    monkeypatch.setattr(fields, "MAX_JSON_NODES", 50)
    with pytest.raises(StoryFormatError, match="too many values"):
        load_story_file(json.dumps({"prompt": "x", "junk": list(range(100))}))
    monkeypatch.undo()
    monkeypatch.setattr(kobold, "MAX_CHUNKS", 3)
    with pytest.raises(StoryFormatError, match="more than 3"):
        load_story_file(json.dumps({"prompt": "x", "actions": ["a"] * 4}))
    monkeypatch.setattr(fields, "MAX_TEXT_CHARS", 10)
    with pytest.raises(StoryFormatError, match="longer than"):
        load_story_file(json.dumps({"prompt": "x" * 11}))


def test_an_error_late_in_the_file_returns_no_story() -> None:
    bad = lite_with_extras()
    bad["worldinfo"][1]["constant"] = "perhaps"
    with pytest.raises(StoryFormatError, match="world-info entry 2 constant"):
        import_story(bad)
