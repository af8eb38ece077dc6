"""The store: atomic writes, sharded sessions, migrations, crashes and full disks."""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from tinydb import TinyDB

import crash_child
from presets.samplers import SamplerParams, SamplerPreset
from store import atomic
from store.atomic import AtomicJSONStorage, atomic_write_bytes, is_temp_name
from store.chats.sessions import DELETED_DIR, PAGE_SIZE, PENDING_FILE
from store.db import OWN_FOLDERS, Store
from store.errors import NotFoundError, SchemaTooNewError, StoreCorruptError, StoreError, StoreFullError
from store.migrations import SCHEMA_VERSION
from store.records import Message


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


def test_start_up_removes_only_hearths_own_temp_files(tmp_path: Path) -> None:
    store = Store(tmp_path)
    session = store.sessions.create()
    store.sessions.append(session.id, Message("user", "hi"))
    store.characters.create_blank("Ann")
    store.close()
    # Every folder the stores write into is one the sweep may enter, and only those.
    assert {p.name for p in tmp_path.iterdir() if p.is_dir()} - {"models"} <= set(OWN_FOLDERS)
    chat = tmp_path / "sessions" / session.id
    hearths = [
        tmp_path / ".hearth.json.0a1b2c3d.tmp",
        chat / ".messages-00000.json.deadbeef.tmp",
        tmp_path / "characters" / ".unfinished.x.12345678.tmp",
        tmp_path / "personas" / ".p.png.abcdef01.tmp",
    ]
    others = [
        tmp_path / "models" / ".llama.gguf.0a1b2c3d.tmp",  # a Hearth-like name, but in models/
        tmp_path / "models" / "owner" / "repo" / "m.gguf.part",
        tmp_path / "models" / "owner" / "repo" / ".m.gguf.tmp",
        tmp_path / "models" / "converted" / ".m.gguf.1234abcd.converting",
        tmp_path / ".notes.tmp",  # the user's own file: not Hearth's temp-file name
        tmp_path / ".notes.txt.0a1b2c3.tmp",
        tmp_path / ".notes.txt.0A1B2C3D.tmp",
        tmp_path / "backup" / ".hearth.json.0a1b2c3d.tmp",  # not a folder of Hearth's
        chat / ".messages-00000.json.deadbeef.tmp.keep",
    ]
    for path in hearths + others:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    Store(tmp_path)
    assert [p for p in hearths if p.exists()] == []
    assert [p for p in others if not p.exists()] == []


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
# A child process (tests/crash_child.py) does seeded operations and acknowledges each; it is
# killed with SIGKILL part-way, and the reopened folder must hold what was acknowledged,
# plus the operation cut short whole or not at all. HEARTH_RELIABILITY_ROUNDS=N runs N
# rounds of each kind instead of the few CI runs; HEARTH_RELIABILITY_SEED picks others.

CHILD = Path(__file__).resolve().parent / "crash_child.py"
LONG_ROUNDS = int(os.environ.get("HEARTH_RELIABILITY_ROUNDS") or 0)
BASE_SEED = int(os.environ.get("HEARTH_RELIABILITY_SEED") or 20_260_801)
MAX_KILL_AT = 400  # file-system changes before the kill; each round dies within its plan


def crash_round(data: Path, scenario: str, seed: int, kill_at: int, rng: random.Random) -> int:
    """Run the child until it dies; return how many operations it acknowledged.

    kill_at > 0: it kills itself just before that change to the file system. 0: this
    process kills it at a random moment after a random number of acknowledgements.
    """
    errors_path = data.parent / f"{data.name}-child-errors.txt"
    with open(errors_path, "w") as errors:
        proc = subprocess.Popen(
            [sys.executable, str(CHILD), str(data), scenario, str(seed), str(kill_at)],
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
    hung = threading.Event()
    watchdog = threading.Timer(300, lambda: (hung.set(), proc.kill()))  # fails the round, not the run
    watchdog.start()
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        if kill_at == 0:
            wanted = crash_child.SETUP[scenario] + rng.randrange(1, 40)
            while sum(line.startswith("ack") for line in lines) < wanted:
                line = proc.stdout.readline()
                assert line, f"the child ended early: {errors_path.read_text()}"
                lines.append(line)
            time.sleep(rng.random() * 0.02)
            proc.send_signal(signal.SIGKILL)
        lines += proc.stdout.read().splitlines()  # the same reader: nothing it buffered is lost
        proc.wait()
    finally:
        watchdog.cancel()
    assert not hung.is_set(), "the child hung"
    died = proc.returncode == -signal.SIGKILL
    assert died or (lines and lines[-1].strip() == "done"), errors_path.read_text()
    return sum(line.startswith("ack") for line in lines)


def check_reopened(data: Path, scenario: str, seed: int, acknowledged: int, where: str) -> None:
    ops = crash_child.plan(scenario, seed)
    states = crash_child.replay(ops)
    assert acknowledged >= crash_child.SETUP[scenario], f"{where}: died in its set-up"
    store = Store(data)  # opens cleanly, whatever the kill left
    seen = crash_child.observe(store)  # every record reads, none twice, no message numbered twice
    before, after = states[acknowledged], states[min(acknowledged + 1, len(ops))]
    cut_short = ops[acknowledged : acknowledged + 1]
    diff = crash_child.difference(seen, before)
    assert seen in (before, after), f"{where}: {acknowledged} done, not before or after {cut_short}: {diff}"
    assert not [p for p in data.rglob("*") if is_temp_name(p.name) or p.name in (PENDING_FILE, DELETED_DIR)]
    store.close()


def crash_cases(count: int, long_count: int) -> list[int]:
    return list(range(long_count or count))


@pytest.mark.parametrize("round_no", crash_cases(16, LONG_ROUNDS))
@pytest.mark.parametrize("scenario", ["deletes", "mixed"])
def test_sigkill_at_any_step_loses_nothing_acknowledged_and_doubles_nothing(
    tmp_path: Path, scenario: str, round_no: int
) -> None:
    rng = random.Random(f"{BASE_SEED}-{scenario}-{round_no}")
    seed, kill_at = rng.randrange(2**32), rng.randrange(1, MAX_KILL_AT)
    data = tmp_path / "data"
    acknowledged = crash_round(data, scenario, seed, kill_at, rng)
    where = f"{scenario} seed={seed} kill_at={kill_at}"
    check_reopened(data, scenario, seed, acknowledged, where)


@pytest.mark.parametrize("round_no", crash_cases(3, LONG_ROUNDS))
@pytest.mark.parametrize("scenario", ["deletes", "mixed"])
def test_sigkill_from_outside_at_a_random_moment(tmp_path: Path, scenario: str, round_no: int) -> None:
    rng = random.Random(f"{BASE_SEED}-{scenario}-outside-{round_no}")
    seed = rng.randrange(2**32)
    data = tmp_path / "data"
    acknowledged = crash_round(data, scenario, seed, 0, rng)
    check_reopened(data, scenario, seed, acknowledged, f"{scenario} seed={seed} killed from outside")


def test_a_delete_cut_short_is_finished_by_the_next_read(tmp_path: Path) -> None:
    store = Store(tmp_path)
    session = store.sessions.create()
    store.sessions.restore(session, [Message("user", str(i)) for i in range(PAGE_SIZE * 2 + 10)])
    pages_written = 0
    real_write = store.sessions._write_page

    def crash_after_one_page(path: Path, page: list[Message]) -> None:
        nonlocal pages_written
        if pages_written == 1:
            raise KeyboardInterrupt  # stands for the process dying here
        pages_written += 1
        real_write(path, page)

    store.sessions._write_page = crash_after_one_page  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        store.sessions.delete_message(session.id, 5)
    assert (tmp_path / "sessions" / session.id / PENDING_FILE).is_file()
    expected = [str(i) for i in range(PAGE_SIZE * 2 + 10) if i != 5]
    for reader in (Store(tmp_path).sessions, store.sessions):  # a restart, or the same process
        store.sessions._write_page = real_write  # type: ignore[method-assign]
        assert [m.text for m in reader.messages(session.id)] == expected
        assert reader.count(session.id) == len(expected)
    assert not (tmp_path / "sessions" / session.id / PENDING_FILE).exists()


def test_truncate_and_delete_keep_pages_whole(tmp_path: Path) -> None:
    store = Store(tmp_path)
    session = store.sessions.create()
    store.sessions.restore(session, [Message("user", str(i)) for i in range(PAGE_SIZE * 3 + 1)])
    store.sessions.delete_message(session.id, PAGE_SIZE * 3)  # the only message of the last page
    assert len(list((tmp_path / "sessions" / session.id).glob("messages-*.json"))) == 3
    store.sessions.delete_message(session.id, 0)
    store.sessions.truncate(session.id, PAGE_SIZE + 3)
    reopened = Store(tmp_path).sessions
    assert [m.text for m in reopened.messages(session.id)] == [str(i) for i in range(1, PAGE_SIZE + 4)]
    assert len(list((tmp_path / "sessions" / session.id).glob("messages-*.json"))) == 2
    store.sessions.truncate(session.id, PAGE_SIZE)
    assert len(list((tmp_path / "sessions" / session.id).glob("messages-*.json"))) == 1
    assert Store(tmp_path).sessions.count(session.id) == PAGE_SIZE


def test_insert_puts_a_deleted_message_back_across_pages(tmp_path: Path) -> None:
    store = Store(tmp_path)
    session = store.sessions.create()
    store.sessions.restore(session, [Message("user", str(i)) for i in range(PAGE_SIZE * 2)])
    for seq in (PAGE_SIZE - 1, 0, PAGE_SIZE * 2 - 2):  # a page's last, the first, the chat's last
        gone = store.sessions.message(session.id, seq)
        store.sessions.delete_message(session.id, seq)
        assert store.sessions.insert_message(session.id, seq, gone).seq == seq
    reopened = Store(tmp_path).sessions
    assert [m.text for m in reopened.messages(session.id)] == [str(i) for i in range(PAGE_SIZE * 2)]
    assert [m.seq for m in reopened.messages(session.id)] == list(range(PAGE_SIZE * 2))
    store.sessions.insert_message(session.id, PAGE_SIZE * 2, Message("assistant", "at the end"))
    assert Store(tmp_path).sessions.messages(session.id, last=1)[0].text == "at the end"
    assert len(list((tmp_path / "sessions" / session.id).glob("messages-*.json"))) == 3
    with pytest.raises(StoreError):
        store.sessions.insert_message(session.id, PAGE_SIZE * 2 + 2, Message("user", "past the end"))


def test_a_chat_deleted_part_way_is_gone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path)
    gone, kept = store.sessions.create(title="gone"), store.sessions.create(title="kept")
    for session in (gone, kept):
        store.sessions.restore(session, [Message("user", str(i)) for i in range(PAGE_SIZE * 2)])

    def dies(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt  # the process dies while removing the files

    monkeypatch.setattr(shutil, "rmtree", dies)
    with pytest.raises(KeyboardInterrupt):
        store.sessions.delete(gone.id)
    monkeypatch.undo()
    assert [s.title for s in Store(tmp_path).sessions.list()] == ["kept"]
    assert not (tmp_path / "sessions" / DELETED_DIR).exists()  # emptied at start


def test_a_save_whose_folder_cannot_be_synced_is_still_a_save(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """After the file is in place, a failed sync of its folder is logged, not reported
    as a failed save (which would tell the user the old file was kept)."""
    path = tmp_path / "chat.json"
    atomic_write_bytes(path, b"old")

    def broken(_directory: Path) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(atomic, "fsync_dir", broken)
    atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new"
    assert "could not be synced" in caplog.text
