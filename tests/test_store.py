"""The store: atomic writes, sharded sessions, migrations, crashes and full disks."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from tinydb import TinyDB

from presets.samplers import SamplerParams, SamplerPreset
from store.atomic import AtomicJSONStorage, atomic_write_bytes
from store.chats.sessions import PAGE_SIZE
from store.db import Store
from store.errors import NotFoundError, SchemaTooNewError, StoreCorruptError, StoreFullError
from store.migrations import SCHEMA_VERSION
from store.records import Message

ROOT = Path(__file__).resolve().parent.parent


def test_create_list_rename_delete(tmp_path: Path) -> None:
    store = Store(tmp_path)
    first = store.sessions.create(title="First")
    time.sleep(0.01)
    second = store.sessions.create(title="Second", format_id="chatml", system_prompt="Be brief.")
    assert [s.title for s in store.sessions.list()] == ["Second", "First"]
    store.sessions.rename(first.id, "  Renamed   chat ")
    assert store.sessions.get(first.id).title == "Renamed chat"
    assert store.sessions.list()[0].id == first.id  # renaming counts as an update
    store.sessions.delete(second.id)
    with pytest.raises(NotFoundError):
        store.sessions.get(second.id)
    assert [s.id for s in store.sessions.list()] == [first.id]


def test_messages_span_pages_and_keep_order(tmp_path: Path) -> None:
    store = Store(tmp_path)
    session = store.sessions.create()
    for i in range(PAGE_SIZE * 2 + 5):
        role = "user" if i % 2 == 0 else "assistant"
        stored = store.sessions.append(session.id, Message(role, f"message {i}"))
        assert stored.seq == i
    assert store.sessions.count(session.id) == PAGE_SIZE * 2 + 5
    assert len(list((tmp_path / "sessions" / session.id).glob("messages-*.json"))) == 3
    last = store.sessions.messages(session.id, last=3)
    assert [m.text for m in last] == [f"message {i}" for i in range(PAGE_SIZE * 2 + 2, PAGE_SIZE * 2 + 5)]
    every = store.sessions.messages(session.id)
    assert [m.seq for m in every] == list(range(PAGE_SIZE * 2 + 5))
    reopened = Store(tmp_path)  # counts are rebuilt from disk
    assert reopened.sessions.count(session.id) == PAGE_SIZE * 2 + 5


def test_truncate_and_update(tmp_path: Path) -> None:
    store = Store(tmp_path)
    session = store.sessions.create()
    for i in range(PAGE_SIZE + 10):
        store.sessions.append(session.id, Message("user", str(i)))
    store.sessions.truncate(session.id, PAGE_SIZE - 1)
    assert store.sessions.count(session.id) == PAGE_SIZE - 1
    assert Store(tmp_path).sessions.count(session.id) == PAGE_SIZE - 1
    edited = store.sessions.message(session.id, 5)
    store.sessions.update_message(session.id, Message("user", "edited", seq=5, created=edited.created))
    assert store.sessions.message(session.id, 5).text == "edited"
    assert store.sessions.append(session.id, Message("assistant", "next")).seq == PAGE_SIZE - 1


def test_ids_from_input_never_reach_the_filesystem(tmp_path: Path) -> None:
    store = Store(tmp_path)
    (tmp_path / "outside").mkdir()
    for bad in ["../outside", "/etc", "..", "a" * 32 + "/../..", "ABCDEF0123456789ABCDEF0123456789"]:
        with pytest.raises(NotFoundError):
            store.sessions.get(bad)
        with pytest.raises(NotFoundError):
            store.sessions.delete(bad)
    assert (tmp_path / "outside").is_dir()


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "data.json"
    atomic_write_bytes(target, b'{"a": 1}')
    atomic_write_bytes(target, b'{"a": 2}')
    assert json.loads(target.read_text()) == {"a": 2}
    assert list(tmp_path.iterdir()) == [target]  # no temp files left behind


def test_full_disk_keeps_the_old_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path)
    session = store.sessions.create()
    store.sessions.append(session.id, Message("user", "saved before the disk filled"))

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(StoreFullError, match="disk .* is full"):
        store.sessions.append(session.id, Message("assistant", "lost reply"))
    monkeypatch.undo()
    reopened = Store(tmp_path)
    assert [m.text for m in reopened.sessions.messages(session.id)] == ["saved before the disk filled"]
    assert not list(tmp_path.rglob("*.tmp"))


def test_damaged_file_is_a_named_error(tmp_path: Path) -> None:
    store = Store(tmp_path)
    session = store.sessions.create()
    (tmp_path / "sessions" / session.id / "session.json").write_text("{broken")
    with pytest.raises(StoreCorruptError, match="damaged"):
        store.sessions.get(session.id)
    assert store.sessions.list() == []  # a damaged chat is skipped, the rest still list


def test_settings_and_user_presets(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.set_setting("last_model", "/models/a.gguf")
    store.save_preset(SamplerPreset("Mine", "", SamplerParams(temperature=0.5), builtin=False))
    store.save_preset(SamplerPreset("Mine", "", SamplerParams(temperature=0.6), builtin=False))
    reopened = Store(tmp_path)
    assert reopened.get_setting("last_model") == "/models/a.gguf"
    assert list(reopened.user_presets()) == ["Mine"]
    assert reopened.user_presets()["Mine"].params.temperature == 0.6
    reopened.delete_preset("Mine")
    assert reopened.user_presets() == {}


# -- migrations ------------------------------------------------------------------------------


def write_version_1(data_dir: Path) -> None:
    """The data layout of schema version 1: every chat inline in hearth.json."""
    data_dir.mkdir(parents=True)
    with TinyDB(data_dir / "hearth.json", storage=AtomicJSONStorage) as db:
        db.table("meta").insert({"schema_version": 1})
        db.table("sessions").insert(
            {
                "id": "0123456789abcdef0123456789abcdef",
                "title": "Old chat",
                "created": 1_700_000_000.0,
                "updated": 1_700_000_500.0,
                "format": "alpaca",
                "sampler": {"preset": "Precise"},
                "system_prompt": "You are terse.",
                "messages": [
                    {"role": "user", "text": "Hi", "time": 1_700_000_100.0},
                    {"role": "assistant", "text": "Hello.", "time": 1_700_000_200.0},
                ]
                + [{"role": "user", "text": f"n{i}", "time": 1_700_000_300.0} for i in range(PAGE_SIZE)],
            }
        )


def test_migration_from_version_1(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    write_version_1(data_dir)
    store = Store(data_dir)
    assert store.migrations_applied == ["m002_shard_sessions"]
    session = store.sessions.get("0123456789abcdef0123456789abcdef")
    assert (session.title, session.format_id, session.system_prompt) == (
        "Old chat",
        "alpaca",
        "You are terse.",
    )
    assert session.updated == 1_700_000_500.0
    messages = store.sessions.messages(session.id)
    assert [m.text for m in messages[:2]] == ["Hi", "Hello."]
    assert messages[1].created == 1_700_000_200.0
    assert len(messages) == PAGE_SIZE + 2
    assert "sessions" not in json.loads((data_dir / "hearth.json").read_text())
    assert Store(data_dir).migrations_applied == []  # nothing left to do


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    Store(tmp_path)
    raw = json.loads((tmp_path / "hearth.json").read_text())
    raw["meta"]["1"]["schema_version"] = SCHEMA_VERSION + 1
    (tmp_path / "hearth.json").write_text(json.dumps(raw))
    with pytest.raises(SchemaTooNewError, match="newer Hearth"):
        Store(tmp_path)


# -- crash safety ----------------------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {root!r})
    from pathlib import Path
    from store.db import Store
    from store.records import Message
    store = Store(Path({data!r}))
    session = store.sessions.create()
    print("session", session.id, flush=True)
    i = 0
    while True:
        store.sessions.append(session.id, Message("user", "message %d " % i + "x" * 200))
        print("ack", i, flush=True)
        i += 1
    """
)


@pytest.mark.parametrize("delay", [0.7, 1.1, 1.6])
def test_sigkill_during_writes_loses_no_acknowledged_message(tmp_path: Path, delay: float) -> None:
    data = tmp_path / "data"
    script = WRITER.format(root=str(ROOT), data=str(data))
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    assert first.startswith("session "), f"the writer failed to start: {first!r} {proc.stderr.read()}"
    session_id = first.split()[1]
    time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    acknowledged = [
        int(line.split()[1]) for line in proc.stdout.read().splitlines() if line.startswith("ack")
    ]
    proc.wait()
    assert len(acknowledged) > 20, "the writer barely started before it was killed"
    print(f"killed after {len(acknowledged)} acknowledged messages")
    store = Store(data)  # loads cleanly after the crash
    texts = [m.text.split()[1] for m in store.sessions.messages(session_id)]
    assert len(texts) >= len(acknowledged)  # at most one more: written but not yet acknowledged
    assert texts[: len(acknowledged)] == [str(i) for i in acknowledged]
    assert not list(data.rglob("*.tmp"))
