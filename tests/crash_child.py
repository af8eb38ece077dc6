"""The child process of the crash tests: seeded store operations, each acknowledged once
done, killed with SIGKILL part-way through one of them.

    python tests/crash_child.py DATA_DIR SCENARIO SEED KILL_AT

`plan(scenario, seed)` lists the operations. The child does them in order on a `Store`
over DATA_DIR and prints "ack N" once operation N has returned. With KILL_AT > 0 it
sends itself SIGKILL just before its KILL_AT-th change to the file system (a replace,
rename, unlink, rmdir or fsync, counted from the end of the set-up operations), so
every step inside an operation is a place it can die, and the same seed and KILL_AT
die at the same step. With KILL_AT 0 it runs on until the parent kills it. After the
last operation it prints "done".

`replay(ops)` runs the same operations on plain values: its state N is what the data
folder must hold after N operations. A folder reopened after the kill must show state
N or N + 1, N being the acknowledged count: the operation cut short is there whole
or not at all, and nothing acknowledged is lost or doubled.
"""

from __future__ import annotations

import copy
import os
import random
import signal
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from store.db import Store  # noqa: E402
from store.records import Message, Session  # noqa: E402
from store.stories import Story  # noqa: E402

Op = tuple[Any, ...]
# chats: label → (title, messages); stories: label → (title, text); characters: name → description
State = dict[str, dict[str, Any]]
SETUP = {"deletes": 2, "mixed": 0}  # operations before the kill switch is armed
FILL = 250  # messages the delete scenario starts with: three pages


def plan(scenario: str, seed: int, length: int = 80) -> list[Op]:
    """The operations of one round: valid at each step, chosen by the seeded generator."""
    rng = random.Random(seed)
    state: State = {"chats": {}, "stories": {}, "characters": {}}
    ops: list[Op] = []

    def add(op: Op) -> None:
        nonlocal state
        ops.append(op)
        state = apply(state, op)

    if scenario == "deletes":
        add(("chat", "c0"))
        add(("fill", "c0", FILL))
        while len(ops) < length:
            messages = state["chats"]["c0"][1]
            if rng.random() < 0.15 or len(messages) < 120:
                add(("say", "c0", f"m{len(ops)}"))
            else:  # mostly early messages, so a delete rewrites every page after
                add(("unsay", "c0", rng.choice([rng.randrange(len(messages)), rng.randrange(100)])))
        return ops
    while len(ops) < length:
        add(_mixed_op(rng, state, len(ops)))
    return ops


def _mixed_op(rng: random.Random, state: State, n: int) -> Op:
    chats, stories, characters = state["chats"], state["stories"], state["characters"]
    choices: list[Op] = [("chat", f"c{n}"), ("story", f"s{n}", f"Once {n}. "), ("character", f"p{n}")]
    if chats:
        label = rng.choice(sorted(chats))
        choices += [("say", label, f"m{n}")] * 4 + [("retitle", label, f"{label} v{n}")]
        if chats[label][1]:
            choices.append(("unsay", label, rng.randrange(len(chats[label][1]))))
        choices.append(("drop_chat", label))
    if stories:
        label = rng.choice(sorted(stories))
        choices += [("story_add", label, f"Then {n}. ")] * 2 + [("story_title", label, f"{label} v{n}")]
        choices.append(("drop_story", label))
    if characters:
        label = rng.choice(sorted(characters))
        choices += [("describe", label, f"d{n}"), ("drop_character", label)]
    return rng.choice(choices)


def apply(state: State, op: Op) -> State:
    """The state after `op`, on plain values."""
    new = copy.deepcopy(state)
    chats, stories, characters = new["chats"], new["stories"], new["characters"]
    kind, label, *args = op
    if kind == "chat":
        chats[label] = (label, [])
    elif kind == "fill":
        chats[label] = (chats[label][0], [f"f{i}" for i in range(args[0])])
    elif kind == "say":
        chats[label][1].append(args[0])
    elif kind == "unsay":
        del chats[label][1][args[0]]
    elif kind == "retitle":
        chats[label] = (args[0], chats[label][1])
    elif kind == "drop_chat":
        del chats[label]
    elif kind == "story":
        stories[label] = (label, args[0])
    elif kind == "story_add":
        stories[label] = (stories[label][0], stories[label][1] + args[0])
    elif kind == "story_title":
        stories[label] = (args[0], stories[label][1])
    elif kind == "drop_story":
        del stories[label]
    elif kind == "character":
        characters[label] = ""
    elif kind == "describe":
        characters[label] = args[0]
    elif kind == "drop_character":
        del characters[label]
    else:
        raise ValueError(f"unknown operation {op!r}")
    return new


def replay(ops: list[Op]) -> list[State]:
    """State N: the data after the first N operations."""
    states: list[State] = [{"chats": {}, "stories": {}, "characters": {}}]
    for op in ops:
        states.append(apply(states[-1], op))
    return states


def perform(store: Store, ids: dict[str, str], op: Op) -> None:
    """Do `op` on the store; `ids` maps labels to the ids the store gave them."""
    kind, label, *args = op
    if kind == "chat":
        ids[label] = store.sessions.create(title=label).id
    elif kind == "fill":
        session = store.sessions.get(ids[label])
        store.sessions.restore(session, [Message("user", f"f{i}") for i in range(args[0])])
    elif kind == "say":
        store.sessions.append(ids[label], Message("user", args[0]))
    elif kind == "unsay":
        store.sessions.delete_message(ids[label], args[0])
    elif kind == "retitle":
        store.sessions.rename(ids[label], args[0])
    elif kind == "drop_chat":
        store.sessions.delete(ids[label])
    elif kind == "story":
        ids[label] = store.stories.create(Story(title=label).append(args[0])).id
    elif kind == "story_add":
        store.stories.update(ids[label], lambda story: story.append(args[0], "ai"))
    elif kind == "story_title":
        store.stories.rename(ids[label], args[0])
    elif kind == "drop_story":
        store.stories.delete(ids[label])
    elif kind == "character":
        ids[label] = store.characters.create_blank(label).id
    elif kind == "describe":
        card = store.characters.get(ids[label]).card
        store.characters.save(ids[label], replace(card, description=args[0]))
    elif kind == "drop_character":
        store.characters.delete(ids[label])
    else:
        raise ValueError(f"unknown operation {op!r}")


def observe(store: Store) -> State:
    """What a reopened data folder holds, in `replay`'s terms. Every chat, story and
    character is read whole, so a damaged one fails here."""
    state: State = {"chats": {}, "stories": {}, "characters": {}}

    def put(kind: str, label: str, value: Any) -> None:
        assert label not in state[kind], f"{kind} {label} is there twice"
        state[kind][label] = value

    for session in store.sessions.list():
        messages = store.sessions.messages(session.id)
        assert [m.seq for m in messages] == list(range(len(messages))), "message numbers have gaps"
        assert store.sessions.count(session.id) == len(messages)
        put("chats", _label(session), (session.title, [m.text for m in messages]))
    for summary in store.stories.list():
        story = store.stories.get(summary.id).story
        put("stories", summary.title.split()[0], (summary.title, story.full_text()))
    for character in store.characters.list():
        put("characters", character.name, store.characters.get(character.id).card.description)
    return state


def difference(seen: State, expected: State) -> str:
    """Where two states differ, in a few words (the states themselves can be long)."""
    notes = []
    for kind in ("chats", "stories", "characters"):
        for label in sorted(set(seen[kind]) | set(expected[kind])):
            mine, theirs = seen[kind].get(label), expected[kind].get(label)
            if mine == theirs:
                continue
            if kind == "chats" and mine is not None and theirs is not None:
                pairs = enumerate(zip(mine[1], theirs[1], strict=False))
                at = next((i for i, (a, b) in pairs if a != b), None)
                mine = f"{mine[0]!r}, {len(mine[1])} messages, first difference at {at}"
                theirs = f"{theirs[0]!r}, {len(theirs[1])} messages"
            notes.append(f"{kind} {label}: {mine} instead of {theirs}")
    return "; ".join(notes)


def _label(session: Session) -> str:
    return session.title.split()[0]


def arm_kill_switch(kill_at: int) -> None:
    """SIGKILL this process just before its `kill_at`-th change to the file system."""
    count = 0

    def counted(change: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            nonlocal count
            count += 1
            if count == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return change(*args, **kwargs)

        return call

    for name in ("replace", "rename", "unlink", "remove", "rmdir", "fsync"):
        setattr(os, name, counted(getattr(os, name)))


def _no_fsync(_fd: int) -> None:
    """What a SIGKILL leaves is what the kernel has, synced or not (these tests are not
    about power loss), so the child skips the slow part and keeps fsync as a kill point."""


def main(data_dir: str, scenario: str, seed: str, kill_at: str) -> None:
    os.fsync = _no_fsync
    store = Store(Path(data_dir))
    ids: dict[str, str] = {}
    for n, op in enumerate(plan(scenario, int(seed))):
        if n == SETUP[scenario] and int(kill_at) > 0:
            arm_kill_switch(int(kill_at))
        perform(store, ids, op)
        print("ack", n, flush=True)
    print("done", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
