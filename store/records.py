"""Stored shapes: the dataclasses the app uses and the exact dicts written to disk.

Every stored dict carries `schema`, the record schema it was written with. Reading
accepts only known fields and fills defaults, so an older record loads unchanged.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypedDict

from store.errors import NotFoundError, StoreCorruptError

RECORD_SCHEMA = 1
Role = Literal["user", "assistant", "system"]
_ID = re.compile(r"[0-9a-f]{32}")


def new_id() -> str:
    """A fresh record id: 32 lowercase hex digits, safe to use as a file name."""
    return uuid.uuid4().hex


def check_id(value: str) -> str:
    """Return `value` if it is a well-formed record id.

    Ids become folder names, so anything else (say, from a crafted request) is
    rejected before it can reach the filesystem.

    Raises:
        NotFoundError: `value` is not an id Hearth could have made.
    """
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise NotFoundError("That item does not exist (its id is not valid).")
    return value


class MessageDict(TypedDict):
    schema: int
    seq: int
    role: Role
    text: str
    created: float
    name: str
    swipes: list[str]
    swipe_index: int
    hidden: bool
    meta: dict[str, Any]


@dataclass(frozen=True)
class Message:
    """One chat message. `swipes` holds alternative texts; `text` is the selected one."""

    role: Role
    text: str
    seq: int = -1  # position in the session, assigned when stored
    created: float = field(default_factory=time.time)
    name: str = ""
    swipes: tuple[str, ...] = ()
    swipe_index: int = 0
    hidden: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> MessageDict:
        return {
            "schema": RECORD_SCHEMA,
            "seq": self.seq,
            "role": self.role,
            "text": self.text,
            "created": self.created,
            "name": self.name,
            "swipes": list(self.swipes),
            "swipe_index": self.swipe_index,
            "hidden": self.hidden,
            "meta": dict(self.meta),
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Message:
        try:
            role = raw["role"]
            if role not in ("user", "assistant", "system"):
                raise ValueError(f"unknown role {role!r}")
            return cls(
                role=role,
                text=str(raw["text"]),
                seq=int(raw["seq"]),
                created=float(raw.get("created", 0.0)),
                name=str(raw.get("name", "")),
                swipes=tuple(str(s) for s in raw.get("swipes", ())),
                swipe_index=int(raw.get("swipe_index", 0)),
                hidden=bool(raw.get("hidden", False)),
                meta=dict(raw.get("meta", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreCorruptError(f"A stored message is damaged: {exc}.") from exc

    def with_seq(self, seq: int) -> Message:
        return replace(self, seq=seq)


class SessionDict(TypedDict):
    schema: int
    id: str
    title: str
    created: float
    updated: float
    format_id: str
    sampler: dict[str, Any]
    system_prompt: str
    character_id: str | None
    extra: dict[str, Any]


@dataclass(frozen=True)
class Session:
    """A chat's metadata: the messages live in their own pages."""

    id: str
    title: str
    created: float
    updated: float
    format_id: str = ""
    sampler: dict[str, Any] = field(default_factory=dict)  # {"preset": name, "params": {...}}
    system_prompt: str = ""
    character_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> SessionDict:
        return {
            "schema": RECORD_SCHEMA,
            "id": self.id,
            "title": self.title,
            "created": self.created,
            "updated": self.updated,
            "format_id": self.format_id,
            "sampler": dict(self.sampler),
            "system_prompt": self.system_prompt,
            "character_id": self.character_id,
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Session:
        try:
            return cls(
                id=check_id(str(raw["id"])),
                title=str(raw.get("title", "")),
                created=float(raw["created"]),
                updated=float(raw.get("updated", raw["created"])),
                format_id=str(raw.get("format_id", "")),
                sampler=dict(raw.get("sampler", {})),
                system_prompt=str(raw.get("system_prompt", "")),
                character_id=raw.get("character_id"),
                extra=dict(raw.get("extra", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreCorruptError(f"A stored chat is damaged: {exc}.") from exc
