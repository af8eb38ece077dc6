"""Personas: there is always a default one, deleted ones resolve to it, avatars use generated names."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from store.cards import plain_png
from store.cards.png import text_chunk, with_text_chunks
from store.errors import CardFormatError, NotFoundError, StoreCorruptError, StoreError
from store.personas import DEFAULT_PERSONA_NAME, MAX_NAME_CHARS, Persona, PersonaStore


@pytest.fixture
def personas(tmp_path: Path) -> PersonaStore:
    return PersonaStore(tmp_path)


def test_a_fresh_folder_has_one_default_user(tmp_path: Path, personas: PersonaStore) -> None:
    (only,) = personas.list()
    assert (only.name, only.description, only.has_avatar) == (DEFAULT_PERSONA_NAME, "", False)
    assert personas.default_id() == only.id and personas.default() == only
    personas.close()
    assert PersonaStore(tmp_path).list() == [only]  # reopening does not add a second "User"


def test_create_list_get_update(tmp_path: Path, personas: PersonaStore) -> None:
    zed = personas.create("  Zed  ", "A tall traveller.")
    amy = personas.create("amy")
    assert zed == Persona(id=zed.id, name="Zed", description="A tall traveller.")
    assert [p.name for p in personas.list()] == ["amy", "User", "Zed"]  # by name, ignoring case
    assert personas.get(zed.id) == zed
    renamed = personas.save(zed.id, name="Zed the Wise")
    assert (renamed.name, renamed.description) == ("Zed the Wise", "A tall traveller.")
    described = personas.save(amy.id, description="Likes tea.")
    assert (described.name, described.description) == ("amy", "Likes tea.")
    personas.close()
    reopened = PersonaStore(tmp_path)
    assert reopened.get(zed.id) == renamed and reopened.get(amy.id) == described


def test_names_and_descriptions_are_checked(personas: PersonaStore) -> None:
    with pytest.raises(StoreError, match="needs a name"):
        personas.create("   ")
    with pytest.raises(StoreError, match=f"at most {MAX_NAME_CHARS} characters"):
        personas.create("x" * (MAX_NAME_CHARS + 1))
    with pytest.raises(StoreError, match="description can be at most"):
        personas.create("Long", "x" * 200_000)
    user = personas.default()
    with pytest.raises(StoreError, match="needs a name"):
        personas.save(user.id, name="")
    assert personas.list() == [user]


def test_the_only_persona_cannot_be_deleted(personas: PersonaStore) -> None:
    user = personas.default()
    with pytest.raises(StoreError, match="User is your only persona, so it cannot be deleted"):
        personas.delete(user.id)
    assert personas.list() == [user]


def test_deleting_the_default_moves_the_default(tmp_path: Path, personas: PersonaStore) -> None:
    user = personas.default()
    bob = personas.create("Bob")
    cleo = personas.create("Cleo")
    personas.set_default(cleo.id)
    assert personas.default_id() == cleo.id
    personas.delete(cleo.id)
    assert personas.default_id() == bob.id  # the first remaining by name
    personas.delete(user.id)
    assert personas.list() == [bob] and personas.default() == bob
    with pytest.raises(NotFoundError):
        personas.get(cleo.id)
    with pytest.raises(NotFoundError):
        personas.set_default(cleo.id)
    personas.close()
    assert PersonaStore(tmp_path).default_id() == bob.id


def test_resolve_falls_back_to_the_default(personas: PersonaStore) -> None:
    user = personas.default()
    ghost = personas.create("Ghost")
    personas.delete(ghost.id)
    assert personas.resolve(None) == user
    assert personas.resolve(ghost.id) == user  # a chat locked to a deleted persona
    assert personas.resolve("../../etc/passwd") == user
    kim = personas.create("Kim")
    assert personas.resolve(kim.id) == kim


def test_avatars_use_generated_names(tmp_path: Path, personas: PersonaStore) -> None:
    kim = personas.create("../../Kim")
    picture = plain_png(6, 6)
    with_text = with_text_chunks(picture, [text_chunk("chara", base64.b64encode(b"{}"))])
    updated = personas.set_avatar(kim.id, with_text)
    path = tmp_path / "personas" / f"{kim.id}.png"
    assert updated.has_avatar and personas.avatar_path(kim.id) == path
    assert path.read_bytes() == picture  # text chunks stripped
    assert {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()} == {
        "personas.json",
        f"personas/{kim.id}.png",
    }
    with pytest.raises(CardFormatError, match="cannot be the avatar"):
        personas.set_avatar(kim.id, b"GIF89a")
    assert path.read_bytes() == picture
    assert not personas.set_avatar(kim.id, None).has_avatar and not path.exists()
    assert personas.avatar_path(kim.id) is None
    personas.set_avatar(kim.id, picture)
    personas.delete(kim.id)
    assert not path.exists()


def test_a_damaged_record_is_skipped(tmp_path: Path, personas: PersonaStore) -> None:
    good = personas.create("Good")
    personas.close()
    raw = json.loads((tmp_path / "personas.json").read_text())
    raw["personas"]["99"] = {"schema": 1, "id": "f" * 32, "name": 5}
    (tmp_path / "personas.json").write_text(json.dumps(raw))
    reopened = PersonaStore(tmp_path)
    assert good in reopened.list() and len(reopened.list()) == 2
    with pytest.raises(StoreCorruptError):
        reopened.get("f" * 32)
    assert reopened.resolve("f" * 32) == reopened.default()
