"""Chat files: SillyTavern JSONL and text-generation-webui JSON import, JSONL and text export."""

from __future__ import annotations

import html
import json
import re
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from store.chats import files as chat_files
from store.chats import sillytavern as chat_sillytavern
from store.chats.files import (
    ChatFormatError,
    ChatTooLargeError,
    ImportedChat,
    export_jsonl,
    export_text,
    import_chat,
)
from store.chats.parts import MAX_FILE_BYTES, MAX_TEXT_CHARS, parse_st_date, st_display_date
from store.chats.sessions import SessionStore
from store.errors import StoreError
from store.records import Message, Session

DISPLAY_DATE = re.compile(r"[A-Z][a-z]+ \d{1,2}, \d{4} \d{1,2}:\d{2}[ap]m")


def local(*parts: int) -> float:
    """Epoch seconds of a local wall-clock time (SillyTavern's dates carry no zone)."""
    return datetime(*parts).timestamp()


def chat_path(third_party: Path, name: str) -> Path:
    return third_party / "chats" / name


def lines_of(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.decode("utf-8").split("\n")]


def session_for(chat: ImportedChat) -> Session:
    return Session(
        id="0" * 32, title=chat.title, created=chat.created, updated=chat.created, extra=chat.session_extra
    )


def reexport(chat: ImportedChat) -> bytes:
    return export_jsonl(
        session_for(chat), chat.messages, user_name=chat.user_name, character_name=chat.character_name
    )


def essentials(messages: list[Message]) -> list[tuple[Any, ...]]:
    return [(m.role, m.name, m.text, m.swipes, m.swipe_index, m.hidden) for m in messages]


# ----- the real SillyTavern files -----


def test_megumin_chat_imports_header_names_roles_texts_and_string_dates(third_party: Path) -> None:
    path = chat_path(third_party, "1673323621108.jsonl")
    chat = import_chat(path.read_bytes(), path.name)

    assert chat.source == "sillytavern"
    assert (chat.user_name, chat.character_name) == ("You", "Megumin")
    assert [(m.role, m.name) for m in chat.messages] == [
        ("assistant", "Megumin"),
        ("user", "You"),
        ("assistant", "Megumin"),
    ]
    assert chat.messages[0].text.startswith("*It was day, the weather was sunny")
    assert (
        chat.messages[1].text
        == "I am here to go on an adventure with you Megumin. I happen to be a mage too!"
    )
    assert (
        chat.messages[2].text
        == "smiles excitedly You have come just right now! Are you ready for this test!?"
    )
    assert [m.created for m in chat.messages] == pytest.approx(
        [
            local(2023, 4, 21, 20, 2, 47, 124000),
            local(2023, 4, 21, 20, 3, 6, 446000),
            local(2023, 4, 21, 20, 3, 13, 567000),
        ]
    )
    assert not any(m.hidden or m.swipes or m.seq != -1 for m in chat.messages)
    assert chat.created == pytest.approx(1674559900.991)  # the header's create_date, epoch ms
    assert chat.session_extra["sillytavern"]["chat_metadata"] == {
        "note_prompt": "",
        "note_interval": 1,
        "note_position": 1,
        "note_depth": 4,
    }
    assert chat.messages[2].meta["sillytavern"]["is_name"] is False
    assert chat.title.startswith("Megumin - ")  # the file is named by a number: no title in it
    assert chat.warnings == []


def test_aqua_chat_with_numeric_date_and_no_extra_imports(third_party: Path) -> None:
    path = chat_path(third_party, "1673181146000.jsonl")
    chat = import_chat(path.read_bytes(), path.name)

    assert (chat.user_name, chat.character_name) == ("You", "Aqua")
    [greeting] = chat.messages
    assert (greeting.role, greeting.name, greeting.hidden) == ("assistant", "Aqua", False)
    assert greeting.text.startswith('*I am in the town square at a city named "Axel".')
    assert greeting.created == pytest.approx(1674563371.558)
    assert "extra" not in greeting.meta["sillytavern"]
    assert "chat_metadata" not in chat.session_extra["sillytavern"]


@pytest.mark.parametrize("name", ["1673323621108.jsonl", "1673181146000.jsonl"])
def test_reexported_fixture_keeps_its_header_metadata_and_every_message_key(
    third_party: Path, name: str
) -> None:
    original_bytes = chat_path(third_party, name).read_bytes()
    original = [json.loads(line) for line in original_bytes.decode().splitlines()]
    chat = import_chat(original_bytes, name)

    exported = lines_of(reexport(chat))

    assert len(exported) == len(original)
    assert exported[0]["chat_metadata"] == original[0].get("chat_metadata", {})
    assert exported[0]["create_date"] == original[0]["create_date"]
    for before, after in zip(original, exported, strict=True):
        for key, value in before.items():
            if key != "chat_metadata" or value:
                assert after[key] == value, (key, before)
    assert essentials(import_chat(reexport(chat), name).messages) == essentials(chat.messages)


def test_an_imported_chat_survives_the_store_and_exports_the_same(third_party: Path, tmp_path: Path) -> None:
    path = chat_path(third_party, "1673323621108.jsonl")
    chat = import_chat(path.read_bytes(), path.name)
    sessions = SessionStore(tmp_path / "sessions")
    session = sessions.restore(session_for(chat), chat.messages)

    stored = sessions.messages(session.id)

    assert export_jsonl(
        sessions.get(session.id), stored, user_name="You", character_name="Megumin"
    ) == reexport(chat)


# ----- a chat built in Hearth -----


def built_chat() -> list[Message]:
    now = time.time()
    return [
        Message(
            "assistant",
            "Welcome to the inn.",
            created=now - 600,
            swipes=("Welcome to the inn.", "The fire crackles. «Bonjour», she says.", "Greeting three"),
            swipe_index=0,
        ),
        Message("user", "Héllo! 你好 🙂\nSecond line\u2028same paragraph?", created=now - 500),
        Message("assistant", "An aside kept out of the prompt.", created=now - 400, hidden=True),
        Message("system", "The narrator notes the time.", created=now - 300),
        Message(
            "assistant",
            "Reply B",
            created=now - 200,
            swipes=("Reply A", "Reply B"),
            swipe_index=1,
            meta={"model": "tiny-llama", "anchor": 0},
        ),
        Message("user", "A hidden user line", created=now - 100, hidden=True, name="Traveller"),
    ]


def test_a_built_chat_round_trips_through_jsonl() -> None:
    messages = built_chat()
    session = Session(id="1" * 32, title="Inn", created=time.time() - 700, updated=time.time())

    data = export_jsonl(session, messages, user_name="Ana", character_name="Mira")
    chat = import_chat(data, "Inn.jsonl")

    assert chat.title == "Inn"
    assert (chat.user_name, chat.character_name) == ("Ana", "Mira")
    named = ["Mira", "Ana", "Mira", "System", "Mira", "Traveller"]
    assert essentials(chat.messages) == [
        (m.role, name, m.text, m.swipes, m.swipe_index, m.hidden)
        for m, name in zip(messages, named, strict=True)
    ]
    for before, after in zip(messages, chat.messages, strict=True):
        assert before.created - 60 < after.created <= before.created  # SillyTavern keeps minutes
    # a second trip changes nothing, byte for byte
    assert reexport(chat) == data


def test_jsonl_export_writes_sillytavern_lines() -> None:
    messages = built_chat()
    session = Session(id="1" * 32, title="Inn", created=local(2024, 7, 12, 1, 31, 37), updated=0.0)

    data = export_jsonl(session, messages, user_name="Ana", character_name="Mira")

    assert "你好 🙂".encode() in data  # UTF-8, not \\u escapes
    assert not data.endswith(b"\n")
    header, *lines = lines_of(data)
    assert header == {
        "user_name": "Ana",
        "character_name": "Mira",
        "create_date": "2024-07-12@01h31m37s",
        "chat_metadata": {},
    }
    assert [(x["name"], x["is_user"], x["is_system"]) for x in lines] == [
        ("Mira", False, False),
        ("Ana", True, False),
        ("Mira", False, True),
        ("System", False, False),
        ("Mira", False, False),
        ("Traveller", True, True),
    ]
    assert all(DISPLAY_DATE.fullmatch(x["send_date"]) for x in lines)
    greeting, reply = lines[0], lines[4]
    assert greeting["swipes"] == list(messages[0].swipes) and greeting["swipe_id"] == 0
    assert reply["mes"] == "Reply B" and reply["swipes"] == ["Reply A", "Reply B"] and reply["swipe_id"] == 1
    assert len(reply["swipe_info"]) == 2
    assert reply["extra"] == {"model": "tiny-llama"}  # Hearth's own meta stays home
    assert lines[3]["extra"] == {"type": "narrator"}
    assert "swipes" not in lines[1]


def test_display_dates_match_sillytavern() -> None:
    assert st_display_date(local(2024, 9, 28, 1, 2)) == "September 28, 2024 1:02am"
    assert st_display_date(local(2024, 9, 28, 12, 5)) == "September 28, 2024 12:05pm"
    assert st_display_date(local(2024, 9, 28, 0, 7)) == "September 28, 2024 12:07am"


def test_edits_after_import_are_exported_and_kept_data_follows() -> None:
    line = {
        "name": "Mira",
        "is_user": False,
        "send_date": "June 19, 2023 2:20pm",
        "mes": "one",
        "swipes": ["one", "two"],
        "swipe_id": 0,
        "swipe_info": [{"send_date": "June 19, 2023 2:20pm", "extra": {"api": "koboldcpp"}}, {"extra": {}}],
        "extra": {"api": "koboldcpp", "token_count": 3},
        "gen_started": "2023-06-19T14:20:00.000Z",
    }
    chat = import_chat(json.dumps(line).encode(), "x.jsonl")
    [message] = chat.messages
    swiped = replace(
        message,
        text="three",
        swipes=(*message.swipes, "three"),
        swipe_index=2,
        created=message.created + 3600,
    )

    [out] = lines_of(export_jsonl(session_for(chat), [swiped], user_name="A", character_name="Mira"))[1:]

    assert out["send_date"] == "June 19, 2023 3:20pm"  # the date changed, so it is written anew
    assert out["swipes"] == ["one", "two", "three"] and out["swipe_id"] == 2 and out["mes"] == "three"
    assert out["swipe_info"][:2] == line["swipe_info"] and len(out["swipe_info"]) == 3
    assert out["extra"] == line["extra"] and out["gen_started"] == line["gen_started"]


# ----- import details -----


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1674563371558, 1674563371.558),
        ("1674563371558", 1674563371.558),
        ("2023-4-21 @20h 02m 47s 124ms", local(2023, 4, 21, 20, 2, 47, 124000)),
        ("2024-07-12@01h31m37s123ms", local(2024, 7, 12, 1, 31, 37, 123000)),
        ("2024-7-12@01h31m37s", local(2024, 7, 12, 1, 31, 37)),
        ("June 19, 2023 2:20pm", local(2023, 6, 19, 14, 20)),
        ("September 28, 2024 12:05am", local(2024, 9, 28, 0, 5)),
        ("2024-09-28T01:02:03.000Z", 1727485323.0),
        ("yesterday-ish", None),
        (True, None),
        (-5, None),
    ],
)
def test_send_date_spellings(value: Any, expected: float | None) -> None:
    assert parse_st_date(value) == (pytest.approx(expected) if expected is not None else None)


def test_unreadable_dates_get_the_import_time_with_one_warning() -> None:
    lines = [{"name": "A", "is_user": True, "send_date": "someday", "mes": f"m{i}"} for i in range(3)]
    before = time.time()

    chat = import_chat("\n".join(json.dumps(x) for x in lines).encode(), "c.jsonl")

    assert all(before <= m.created <= time.time() for m in chat.messages)
    assert chat.warnings == [
        "Line 1: the date could not be read, so the import time was used. (2 more like it)"
    ]


def test_swipes_hidden_narrator_chub_and_headerless_lines() -> None:
    lines = [
        {"name": "Mira", "is_user": False, "mes": "B", "swipes": ["A", "B"], "swipe_id": 1, "send_date": 0},
        {"name": "Ana", "is_user": True, "is_system": True, "mes": "hidden", "send_date": 0},
        {"name": "System", "is_user": False, "mes": "Night falls.", "extra": {"type": "narrator"}},
        {"name": "Mira", "is_user": False, "mes": {"message": "chub"}, "swipes": [{"message": "chub"}, "x"]},
        {"name": "Mira", "is_user": False, "mes": "edited", "swipes": ["old", "other"], "swipe_id": 0},
        {"name": "Mira", "is_user": False, "mes": "new", "swipes": ["p", "q"], "swipe_id": 9},
    ]
    chat = import_chat("\r\n".join(json.dumps(x) for x in lines).encode(), "c.jsonl")

    assert [(m.role, m.text, m.swipes, m.swipe_index, m.hidden) for m in chat.messages] == [
        ("assistant", "B", ("A", "B"), 1, False),
        ("user", "hidden", (), 0, True),
        ("system", "Night falls.", (), 0, False),
        ("assistant", "chub", ("chub", "x"), 0, False),
        ("assistant", "edited", ("edited", "other"), 0, False),  # `mes` wins, as in SillyTavern
        ("assistant", "new", ("p", "q", "new"), 2, False),
    ]
    assert (chat.user_name, chat.character_name) == ("Ana", "Mira")  # no header: from the messages
    assert any("Line 6" in w and "swipe" in w for w in chat.warnings)


def test_placeholder_header_names_and_a_header_only_chat() -> None:
    header = {"chat_metadata": {}, "user_name": "unused", "character_name": "unused"}
    lines = [
        header,
        {"name": "Ana", "is_user": True, "mes": "hi"},
        {"name": "Mira", "is_user": False, "mes": "yo"},
    ]
    chat = import_chat("\n".join(json.dumps(x) for x in lines).encode(), "c.jsonl")
    assert (chat.user_name, chat.character_name) == ("Ana", "Mira")

    empty = import_chat(json.dumps({"user_name": "Ana", "character_name": "Mira"}).encode(), "e.jsonl")
    assert (empty.messages, empty.character_name, empty.warnings) == (
        [],
        "Mira",
        ["The chat has no messages."],
    )


def test_a_lone_surrogate_becomes_a_replacement_character_so_the_chat_can_be_saved(tmp_path: Path) -> None:
    data = (
        b'{"name": "A", "is_user": true, "mes": "half \\ud800 pair", "extra": {"k\\udc00": "\\ud83d\\ude42"}}'
    )

    chat = import_chat(data, "s.jsonl")

    [message] = chat.messages
    assert message.text == "half \ufffd pair"
    assert message.meta["sillytavern"]["extra"] == {"k\ufffd": "\U0001f642"}  # a whole pair is kept
    sessions = SessionStore(tmp_path / "sessions")
    stored = sessions.restore(session_for(chat), chat.messages)
    assert sessions.messages(stored.id)[0].text == "half \ufffd pair"
    # one made some other way is exported as its JSON escape, and the file stays UTF-8
    exported = export_jsonl(
        session_for(chat), [Message("user", "a\ud800")], user_name="A", character_name="B"
    )
    assert json.loads(exported.decode("utf-8").split("\n")[1])["mes"] == "a\ud800"


# ----- text export -----


def test_plain_text_export_leaves_out_hidden_messages() -> None:
    messages = [
        Message("assistant", "Hello."),
        Message("user", "Hi!\r\nHow are you?"),
        Message("assistant", "Secret", hidden=True),
        Message("system", "Time passes."),
        Message("assistant", "", name="Empty"),
        Message("assistant", "Fine, 谢谢.", name="Mira the Bard"),
    ]

    data = export_text(messages, user_name="Ana", character_name="Mira")

    assert data.decode("utf-8") == (
        "Mira: Hello.\n\nAna: Hi!\nHow are you?\n\nSystem: Time passes.\n\nMira the Bard: Fine, 谢谢.\n\n"
    )


# ----- text-generation-webui -----


def textgen_history() -> dict[str, Any]:
    greeting = '*Chiharu waves.* Hey <you>! Ready for "game night" & snacks?'
    user_1 = "Sure! I'll bring <b>chips</b> & dip."
    reply_1 = "Great, 5 > 3 bags is plenty."
    reply_1_old = "Okay."
    user_2 = "Where's the controller?"
    return {
        "internal": [
            ["<|BEGIN-VISIBLE-CHAT|>", greeting],
            [user_1, reply_1],
            ["", "Dummy reply without a question."],
            [user_2, ""],
        ],
        "visible": [
            ["", html.escape(greeting)],
            [html.escape(user_1), html.escape(reply_1) + '<audio src="file/tts/1.wav" controls></audio>'],
            ["", html.escape("Dummy reply without a question.")],
            [html.escape(user_2), ""],
        ],
        "metadata": {
            "assistant_0": {"timestamp": "Jun 05, 2025 14:30"},
            "user_1": {"timestamp": "Jun 05, 2025 14:31"},
            "assistant_1": {
                "timestamp": "Jun 05, 2025 14:32",
                "model_name": "Qwen3-8B-Q4_K_M.gguf",
                "versions": [
                    {
                        "content": reply_1_old,
                        "visible_content": reply_1_old,
                        "timestamp": "Jun 05, 2025 14:31",
                    },
                    {
                        "content": reply_1,
                        "visible_content": html.escape(reply_1),
                        "timestamp": "Jun 05, 2025 14:32",
                    },
                ],
                "current_version_index": 1,
            },
            "user_3": {"timestamp": ""},
        },
    }


def test_textgen_history_imports_greeting_pairs_versions_and_times() -> None:
    doc = textgen_history()

    chat = import_chat(json.dumps(doc, indent=4).encode(), "20250605-14-30-00.json")

    assert chat.source == "textgen"
    assert chat.title == "20250605-14-30-00"
    assert (chat.user_name, chat.character_name) == ("", "")
    assert [(m.role, m.text) for m in chat.messages] == [
        ("assistant", doc["internal"][0][1]),  # the greeting: the character spoke first
        ("user", "Sure! I'll bring <b>chips</b> & dip."),
        ("assistant", "Great, 5 > 3 bags is plenty."),
        ("assistant", "Dummy reply without a question."),
        ("user", "Where's the controller?"),
    ]
    greeting, _, reply, _, last = chat.messages
    assert greeting.created == pytest.approx(local(2025, 6, 5, 14, 30))
    assert reply.created == pytest.approx(local(2025, 6, 5, 14, 32))
    assert (reply.swipes, reply.swipe_index) == (("Okay.", "Great, 5 > 3 bags is plenty."), 1)
    assert reply.meta["textgen"]["metadata"]["model_name"] == "Qwen3-8B-Q4_K_M.gguf"
    # visible is kept only where an extension changed it
    assert reply.meta["textgen"]["visible"].endswith("</audio>")
    assert "visible" not in greeting.meta.get("textgen", {})
    assert last.created <= time.time()
    assert chat.warnings == []


def test_textgen_pair_text_wins_over_a_stale_current_version() -> None:
    versions = [{"content": "first"}, {"content": "stale"}, {"content": "third"}]
    doc = {
        "internal": [["q", "edited"]],
        "visible": [["q", "edited"]],
        "metadata": {"assistant_0": {"versions": versions, "current_version_index": 1}},
    }

    [_, reply] = import_chat(json.dumps(doc).encode(), "x.json").messages

    assert (reply.text, reply.swipes, reply.swipe_index) == ("edited", ("first", "edited", "third"), 1)


def test_legacy_visible_only_history_is_unescaped() -> None:
    doc = {"data_visible": [["", "Hi &amp; welcome"], ["I&#x27;m &lt;here&gt;", "Good &quot;news&quot;"]]}

    chat = import_chat(json.dumps(doc).encode(), "old.json")

    assert [(m.role, m.text) for m in chat.messages] == [
        ("assistant", "Hi & welcome"),
        ("user", "I'm <here>"),
        ("assistant", 'Good "news"'),
    ]


def test_textgen_pair_of_the_wrong_shape_is_named() -> None:
    doc = {"internal": [["hi", "hello"], "not a pair"], "visible": [["hi", "hello"], ["a", "b"]]}
    with pytest.raises(ChatFormatError, match=r'Pair 2 of "internal"'):
        import_chat(json.dumps(doc).encode(), "x.json")
    doc = {"internal": [["hi", 5]], "visible": [["hi", "5"]]}
    with pytest.raises(ChatFormatError, match=r'Pair 1 of "internal": the reply should be text'):
        import_chat(json.dumps(doc).encode(), "x.json")


# ----- bad files -----


def good_line(i: int) -> str:
    return json.dumps({"name": "A", "is_user": True, "send_date": 0, "mes": f"m{i}"})


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        (f'{good_line(1)}\n{good_line(2)}\n{{"name": "A", "mes": oops}}\n', r"^Line 3 is not valid JSON"),
        (f"{good_line(1)}\n{good_line(2)}\n{good_line(3)}\n[1, 2]", r"^Line 4 should be a JSON object"),
        (
            f'{good_line(1)}\n{{"name": "A", "mes": 42}}',
            r'^Line 2: the message text \("mes"\) should be text',
        ),
        (
            f'{good_line(1)}\n{{"name": "A", "is_user": "yes", "mes": "x"}}',
            r'^Line 2: "is_user" should be true',
        ),
        (f'{good_line(1)}\n{{"mes": "x", "swipes": "x"}}', r'^Line 2: "swipes" should be a list'),
        (f'{good_line(1)}\n{{"mes": "x", "extra": []}}', r'^Line 2: "extra" should be an object'),
        (f'{{"user_name": "A", "chat_metadata": 3}}\n{good_line(1)}', r'^Line 1: "chat_metadata" should be'),
        (f'{good_line(1)}\n\n{{"name": "A", "is_user": true}}', r"^Line 3 is not a chat message"),
        (f'{good_line(1)}\n{{"mes": NaN}}', r"^Line 2 is not valid JSON"),
        (f'{good_line(1)}\n{{"mes": "x", "extra": {"[" * 100}{"]" * 100}}}', r"^Line 2 .*nested"),
        ('{\n  "internal": [\n    ["a", "b"],\n  ]\n}', r"^Line 4 is not valid JSON"),
        ("", r"empty"),
        ("  \n\n ", r"empty"),
        ("Ana: hello\n\nMira: hi\n", r"^Line 1 is not JSON"),
        ('{"something": "else"}', r"not a chat Hearth can read"),
        ('["a", "b"]', r"not a chat Hearth can read"),
    ],
)
def test_malformed_files_name_the_line(text: str, pattern: str) -> None:
    with pytest.raises(ChatFormatError, match=pattern):
        import_chat(text.encode("utf-8"), "bad.jsonl")


def test_a_character_card_given_by_mistake_is_refused(third_party: Path) -> None:
    png = third_party / "cards" / "default_Seraphina.png"
    with pytest.raises(ChatFormatError, match=r"PNG image .*character"):
        import_chat(png.read_bytes(), png.name)
    for name in ("Aqua.json", "Example.json"):  # TavernAI V1 and the old Pygmalion shape
        card = third_party / "cards" / name
        with pytest.raises(ChatFormatError, match=r"character card"):
            import_chat(card.read_bytes(), card.name)
    textgen_character = {"name": "Chiharu", "greeting": "Hi!", "context": "Chiharu is a gamer."}
    with pytest.raises(ChatFormatError, match=r"character card"):
        import_chat(json.dumps(textgen_character).encode(), "Chiharu.json")


def test_bytes_that_are_not_utf8_are_refused_with_their_line() -> None:
    data = (good_line(1) + "\n").encode() + b'{"mes": "\xff\xfe"}'
    with pytest.raises(ChatFormatError, match=r"^Line 2 is not UTF-8"):
        import_chat(data, "bad.jsonl")


def test_chat_errors_are_store_errors() -> None:
    assert issubclass(ChatFormatError, StoreError)
    assert issubclass(ChatTooLargeError, ChatFormatError)


# ----- limits -----


def test_a_file_over_the_size_limit_is_refused_before_parsing() -> None:
    data = b"{" + b" " * MAX_FILE_BYTES
    with pytest.raises(ChatTooLargeError, match=r"over 64 MB"):
        import_chat(data, "huge.jsonl")


def test_a_message_over_the_text_limit_is_refused() -> None:
    long = json.dumps({"name": "A", "mes": "x" * (MAX_TEXT_CHARS + 1)})
    with pytest.raises(ChatTooLargeError, match=r"^Line 2: the message text"):
        import_chat(f"{good_line(1)}\n{long}".encode(), "long.jsonl")
    swipe = json.dumps({"name": "A", "mes": "x", "swipes": ["x", "y" * (MAX_TEXT_CHARS + 1)]})
    with pytest.raises(ChatTooLargeError, match=r"^Line 1: swipe 2"):
        import_chat(swipe.encode(), "long.jsonl")


def test_message_count_and_line_length_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chat_sillytavern, "MAX_MESSAGES", 3)
    four = "\n".join(good_line(i) for i in range(4))
    with pytest.raises(ChatTooLargeError, match=r"^Line 4: the chat has more than 3 messages"):
        import_chat(four.encode(), "many.jsonl")
    assert len(import_chat("\n".join(good_line(i) for i in range(3)).encode(), "ok.jsonl").messages) == 3

    monkeypatch.setattr(chat_sillytavern, "MAX_LINE_CHARS", 100)
    with pytest.raises(ChatTooLargeError, match=r"^Line 2 is longer than 100 characters"):
        import_chat(f"{good_line(1)}\n{json.dumps({'mes': 'z' * 200})}".encode(), "wide.jsonl")


def test_textgen_message_count_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chat_files.chat_textgen, "MAX_MESSAGES", 3)
    doc = {"internal": [["a", "b"], ["c", "d"]], "visible": [["a", "b"], ["c", "d"]]}
    with pytest.raises(ChatTooLargeError, match=r"^Pair 2: the chat has more than 3 messages"):
        import_chat(json.dumps(doc).encode(), "many.json")
