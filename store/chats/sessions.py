"""Chat sessions, sharded so that saving one message costs the same in any chat.

Layout under the sessions folder (ids are generated, never taken from input):

    <session id>/session.json          the Session record (TinyDB, one document)
    <session id>/messages-00000.json   messages 0..PAGE_SIZE-1 (TinyDB)
    <session id>/messages-00001.json   the next page, and so on
    <session id>/pending.json          a change to several pages, while it is being made
    <session id>/images/               pictures attached to its messages (`store.chats.images`)
    .deleted/                          chats being deleted; emptied at start

Appending a message rewrites only the last page (at most PAGE_SIZE messages) and the
small session record, so the cost stays flat as a chat grows to thousands of messages.

Every page is written atomically, but deleting (or inserting) a message moves every
later message, and so rewrites every page from its own to the last. Such a change is first
written whole to `pending.json` (atomically), then made page by page, then the file
is removed. A crash part-way leaves the file, and the next read of the chat makes the
change again from it before reading anything, so a delete is seen whole or not at all:
never a message twice, never one lost. A chat is deleted by renaming its folder into
`.deleted/` (one atomic step) before removing its files.
"""

from __future__ import annotations

import builtins
import json
import os
import shutil
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from tinydb import Query

from store.atomic import AtomicJSONStorage, atomic_write_bytes, fsync_dir, open_db, read_json
from store.chats.images import ChatImages
from store.errors import InvalidInputError, NotFoundError, StoreCorruptError, StoreError
from store.records import Message, Session, check_id, new_id

PAGE_SIZE = 100
DEFAULT_TITLE = "New chat"
_SESSION_TABLE = "session"
_MESSAGE_TABLE = "messages"
PENDING_FILE = "pending.json"
DELETED_DIR = ".deleted"
_PENDING_SCHEMA = 1


class SessionStore:
    """Create, list, rename and delete chats, and append or edit their messages."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._counts: dict[str, int] = {}
        self.images = ChatImages(root)
        shutil.rmtree(self.root / DELETED_DIR, ignore_errors=True)  # what a crash left half deleted

    # -- sessions ----------------------------------------------------------------

    def create(
        self,
        *,
        title: str = DEFAULT_TITLE,
        format_id: str = "",
        sampler: dict[str, Any] | None = None,
        system_prompt: str = "",
        character_id: str | None = None,
    ) -> Session:
        now = time.time()
        session = Session(
            id=new_id(),
            title=title,
            created=now,
            updated=now,
            format_id=format_id,
            sampler=dict(sampler or {}),
            system_prompt=system_prompt,
            character_id=character_id,
        )
        with self._lock:
            self._dir(session.id).mkdir(parents=True)
            self._write_session(session)
            self._counts[session.id] = 0
        return session

    def get(self, session_id: str) -> Session:
        """Raises NotFoundError if there is no such chat."""
        path = self._dir(session_id) / "session.json"
        if not path.is_file():
            raise NotFoundError("That chat no longer exists.")
        with open_db(path) as db:
            docs = db.table(_SESSION_TABLE).all()
        if not docs:
            raise NotFoundError("That chat no longer exists.")
        return Session.from_dict(dict(docs[0]))

    def list(self) -> builtins.list[Session]:
        """Every chat, most recently updated first. Damaged chats are skipped."""
        sessions = []
        for folder in self.root.iterdir():
            if not folder.is_dir() or not (folder / "session.json").is_file():
                continue
            try:
                sessions.append(self.get(folder.name))
            except StoreError:
                continue
        return sorted(sessions, key=lambda s: s.updated, reverse=True)

    def save(self, session: Session) -> Session:
        """Write a changed session record (title, format, sampler, system prompt)."""
        with self._lock:
            self.get(session.id)
            updated = replace(session, updated=time.time())
            self._write_session(updated)
        return updated

    def rename(self, session_id: str, title: str) -> Session:
        title = " ".join(title.split())[:120]
        if not title:
            raise InvalidInputError("A chat title cannot be empty.")
        return self.save(replace(self.get(session_id), title=title))

    def restore(self, session: Session, messages: builtins.list[Message]) -> Session:
        """Write a whole chat under the session's own id, replacing any chat with that id.

        Used by migrations and imports; the record keeps its original times.
        """
        with self._lock:
            folder = self._dir(session.id)
            if folder.exists():
                shutil.rmtree(folder)
            folder.mkdir(parents=True)
            for first in range(0, len(messages), PAGE_SIZE):
                page = [
                    m.with_seq(first + i).to_dict() for i, m in enumerate(messages[first : first + PAGE_SIZE])
                ]
                with open_db(self._page_path(session.id, first // PAGE_SIZE)) as db:
                    db.table(_MESSAGE_TABLE).insert_multiple(dict(d) for d in page)
            self._counts[session.id] = len(messages)
            self._write_session(session)
        return session

    def delete(self, session_id: str) -> None:
        """Delete a chat: gone in one step, so a crash never leaves part of it."""
        with self._lock:
            folder = self._dir(session_id)
            if not folder.is_dir():
                raise NotFoundError("That chat no longer exists.")
            trash = self.root / DELETED_DIR
            try:
                trash.mkdir(exist_ok=True)
                os.rename(folder, trash / f"{session_id}-{new_id()}")
                fsync_dir(self.root)
            except OSError as exc:
                raise StoreError(f"Could not delete the chat: {exc.strerror or exc}.") from exc
            self._counts.pop(session_id, None)
            shutil.rmtree(trash, ignore_errors=True)

    # -- messages ----------------------------------------------------------------

    def count(self, session_id: str) -> int:
        with self._lock:
            if session_id not in self._counts:
                self._finish_pending(session_id)
                pages = self._pages(session_id)
                if not pages:
                    self._counts[session_id] = 0
                else:
                    with open_db(pages[-1]) as db:
                        last = len(db.table(_MESSAGE_TABLE))
                    self._counts[session_id] = (len(pages) - 1) * PAGE_SIZE + last
            return self._counts[session_id]

    def append(self, session_id: str, message: Message) -> Message:
        """Store a message at the end of the chat; return it with its `seq`.

        When this returns, the message is on disk.
        """
        with self._lock:
            session = self.get(session_id)
            seq = self.count(session_id)
            stored = message.with_seq(seq)
            with open_db(self._page_path(session_id, seq // PAGE_SIZE)) as db:
                db.table(_MESSAGE_TABLE).insert(stored.to_dict())
            self._counts[session_id] = seq + 1
            self._write_session(replace(session, updated=time.time()))
        return stored

    def update_message(self, session_id: str, message: Message) -> None:
        """Replace the stored message that has the same `seq`."""
        with self._lock:
            self._check_seq(session_id, message.seq)
            with open_db(self._page_path(session_id, message.seq // PAGE_SIZE)) as db:
                db.table(_MESSAGE_TABLE).update(message.to_dict(), Query().seq == message.seq)

    def truncate(self, session_id: str, keep: int) -> None:
        """Delete every message from position `keep` on (all of them or none, whatever happens)."""
        with self._lock:
            total = self.count(session_id)
            if not 0 <= keep <= total:
                raise StoreError(f"Cannot keep {keep} of {total} messages.")
            first_page = keep // PAGE_SIZE
            kept = self.messages(session_id, last=total - first_page * PAGE_SIZE)[: keep % PAGE_SIZE]
            self._change_pages(session_id, first_page, kept, total, keep)

    def delete_message(self, session_id: str, seq: int) -> None:
        """Delete one message; the ones after it move up by one.

        Every page from the message's to the last is rewritten, as one change (see the
        module docstring): a crash part-way leaves the chat as it was before or after.
        """
        with self._lock:
            self._check_seq(session_id, seq)
            total = self.count(session_id)
            first_page = seq // PAGE_SIZE
            kept = [m for m in self.messages(session_id, last=total - first_page * PAGE_SIZE) if m.seq != seq]
            self._change_pages(session_id, first_page, kept, total, total - 1)

    def insert_message(self, session_id: str, seq: int, message: Message) -> Message:
        """Store a message at position `seq`; the ones from there on move down by one.

        It undoes `delete_message`, and puts a reply right after the message it answers
        when something was added meanwhile. Made as one change, like a delete.
        """
        with self._lock:
            session = self.get(session_id)
            total = self.count(session_id)
            if not 0 <= seq <= total:
                raise StoreError(f"Cannot put a message at position {seq} of {total}.")
            first_page = seq // PAGE_SIZE
            tail = self.messages(session_id, last=total - first_page * PAGE_SIZE)
            tail.insert(seq - first_page * PAGE_SIZE, message)
            self._change_pages(session_id, first_page, tail, total, total + 1)
            self._write_session(replace(session, updated=time.time()))
        return message.with_seq(seq)

    def _change_pages(
        self, session_id: str, first_page: int, tail: builtins.list[Message], total: int, new_total: int
    ) -> None:
        """Make `tail` the messages from page `first_page` on, renumbered, as one change."""
        renumbered = [m.with_seq(first_page * PAGE_SIZE + i).to_dict() for i, m in enumerate(tail)]
        pages = {
            str(first_page + i): renumbered[i * PAGE_SIZE : (i + 1) * PAGE_SIZE]
            for i in range((len(renumbered) + PAGE_SIZE - 1) // PAGE_SIZE)
        }
        last_page = (total - 1) // PAGE_SIZE
        pending = {
            "schema": _PENDING_SCHEMA,
            "pages": pages,
            # Later pages go first, so pages stay numbered without gaps at every step.
            "remove": [n for n in range(last_page, first_page - 1, -1) if str(n) not in pages],
        }
        path = self._dir(session_id) / PENDING_FILE
        atomic_write_bytes(path, json.dumps(pending, ensure_ascii=False, separators=(",", ":")).encode())
        self._counts.pop(session_id, None)  # if this fails part-way, the next read finishes it
        self._apply_pending(session_id, pending)
        self._counts[session_id] = new_total

    def _finish_pending(self, session_id: str) -> None:
        """Make a change a crash cut short (see the module docstring), before anything is read."""
        path = self._dir(session_id) / PENDING_FILE
        if not path.is_file():
            return
        try:
            pending = read_json(path)
        except StoreCorruptError:
            pending = None
        valid = (
            isinstance(pending, dict)
            and pending.get("schema") == _PENDING_SCHEMA
            and isinstance(pending.get("pages"), dict)
            and isinstance(pending.get("remove"), list)
        )
        if not valid:
            raise StoreCorruptError(f"A chat is damaged (its unfinished change in {path} cannot be read).")
        self._apply_pending(session_id, pending)

    def _apply_pending(self, session_id: str, pending: dict[str, Any]) -> None:
        for page_no, docs in pending["pages"].items():
            self._write_page(self._page_path(session_id, int(page_no)), [Message.from_dict(d) for d in docs])
        for page_no in pending["remove"]:
            self._page_path(session_id, int(page_no)).unlink(missing_ok=True)
        (self._dir(session_id) / PENDING_FILE).unlink()
        fsync_dir(self._dir(session_id))

    def _write_page(self, path: Path, page: builtins.list[Message]) -> None:
        """Replace a whole page in one atomic write (TinyDB's own layout)."""
        table = {str(i + 1): m.to_dict() for i, m in enumerate(page)}
        AtomicJSONStorage(path).write({_MESSAGE_TABLE: dict(table)})

    def messages(self, session_id: str, *, last: int | None = None) -> builtins.list[Message]:
        """The chat's messages in order; only the newest `last` if given.

        Only the pages that hold the requested messages are read.
        """
        with self._lock:
            self.get(session_id)
            total = self.count(session_id)
            first = 0 if last is None else max(0, total - last)
            found: builtins.list[Message] = []
            for page_no in range(first // PAGE_SIZE, (total + PAGE_SIZE - 1) // PAGE_SIZE):
                with open_db(self._page_path(session_id, page_no)) as db:
                    docs = db.table(_MESSAGE_TABLE).all()
                found.extend(Message.from_dict(dict(d)) for d in docs)
        found.sort(key=lambda m: m.seq)
        return [m for m in found if m.seq >= first]

    def message(self, session_id: str, seq: int) -> Message:
        with self._lock:
            self._check_seq(session_id, seq)
            with open_db(self._page_path(session_id, seq // PAGE_SIZE)) as db:
                doc = db.table(_MESSAGE_TABLE).get(Query().seq == seq)
        if doc is None or isinstance(doc, list):
            raise NotFoundError(f"Message {seq} does not exist.")
        return Message.from_dict(dict(doc))

    # -- internals ---------------------------------------------------------------

    def _dir(self, session_id: str) -> Path:
        return self.root / check_id(session_id)

    def _page_path(self, session_id: str, page: int) -> Path:
        return self._dir(session_id) / f"messages-{page:05d}.json"

    def _pages(self, session_id: str) -> builtins.list[Path]:
        return sorted(self._dir(session_id).glob("messages-[0-9][0-9][0-9][0-9][0-9].json"))

    def _check_seq(self, session_id: str, seq: int) -> None:
        if not 0 <= seq < self.count(session_id):
            raise NotFoundError(f"Message {seq} does not exist.")

    def _write_session(self, session: Session) -> None:
        with open_db(self._dir(session.id) / "session.json") as db:
            # One upsert is one atomic write; truncate-then-insert would be two.
            db.table(_SESSION_TABLE).upsert(dict(session.to_dict()), Query().id == session.id)
