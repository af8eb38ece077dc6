"""The local model library: listing, adding by path, deleting, and refusing hostile ids."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from catalog.entries import load_catalog
from catalog.errors import BundledModelError, LibraryError, UnsafeNameError
from catalog.library import BUNDLED_ID, Library
from tiny_model import CONTEXT, write_tiny_llama

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


@pytest.fixture
def models(tmp_path: Path) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    return folder


def library(models: Path, catalog=None, bundled=None) -> Library:
    return Library(models, models.parent / "added-models.json", catalog=catalog, bundled=bundled)


def write(path: Path, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_tiny_llama(path, **kwargs)


def write_split(folder: Path, stem: str, total: int, present: range | None = None) -> list[Path]:
    return [
        write(folder / f"{stem}-{i:05d}-of-{total:05d}.gguf", seed=i)
        for i in (present or range(1, total + 1))
    ]


def by_name(items, file_name: str):
    return next(i for i in items if i.path.name == file_name)


def test_lists_downloads_with_metadata_and_catalog_match(models: Path, catalog) -> None:
    write(models / "TheBloke" / "MythoMax-L2-13B-GGUF" / "mythomax-l2-13b.Q4_K_M.gguf")
    write(models / "chatty.gguf", chat_template=CHATML, name="Chatty")
    items = library(models, catalog).items()
    assert len(items) == 2
    mytho = by_name(items, "mythomax-l2-13b.Q4_K_M.gguf")
    assert mytho.source == "downloaded" and mytho.usable
    assert mytho.catalog_id == "mythomax-l2-13b" and mytho.name == "MythoMax L2 13B"
    assert (mytho.architecture, mytho.quant, mytho.context_length) == ("llama", "F32", CONTEXT)
    assert mytho.size == mytho.path.stat().st_size and not mytho.has_chat_template
    chatty = by_name(items, "chatty.gguf")
    assert chatty.has_chat_template and chatty.name == "Chatty" and chatty.catalog_id is None
    assert chatty.info is not None and chatty.info.chat_template == CHATML


def test_split_models_are_listed_once_with_all_parts(models: Path) -> None:
    parts = write_split(models / "big", "airoboros-l2-70b-gpt4-1.4.1.Q6_K", 3)
    items = library(models).items()
    assert len(items) == 1
    item = items[0]
    assert item.path == parts[0] and item.parts == tuple(parts)
    assert item.size == sum(p.stat().st_size for p in parts)
    assert item.usable


def test_incomplete_split_is_listed_with_its_problem(models: Path) -> None:
    write_split(models, "half", 3, present=range(1, 3))
    write_split(models, "headless", 2, present=range(2, 3))
    items = library(models).items()
    assert "Only 2 of 3 parts" in by_name(items, "half-00001-of-00003.gguf").error
    assert "Part 1 of 2" in by_name(items, "headless-00002-of-00002.gguf").error


def test_damaged_files_are_listed_with_their_error(models: Path, tiny_gguf: Path) -> None:
    data = tiny_gguf.read_bytes()
    (models / "truncated.gguf").write_bytes(data[: len(data) // 2])
    (models / "garbage.gguf").write_bytes(b"GGUF" + struct.pack("<I", 3) + b"\xff" * 64)
    (models / "notamodel.gguf").write_bytes(b"hello, world")
    write(models / "fine.gguf")
    items = library(models).items()
    assert by_name(items, "fine.gguf").usable
    assert "truncated" in by_name(items, "truncated.gguf").error
    assert "damaged" in by_name(items, "garbage.gguf").error
    assert "not a GGUF model file" in by_name(items, "notamodel.gguf").error
    assert not by_name(items, "truncated.gguf").usable


def test_leftovers_and_hidden_folders_are_not_listed(models: Path) -> None:
    (models / "half.gguf.part").write_bytes(b"x")
    (models / "half.gguf.part.json").write_text("{}")
    write(models / ".cache" / "huggingface" / "secret.gguf")
    assert library(models).items() == []


def test_bundled_model_is_listed_first_and_cannot_be_deleted(models: Path, tiny_gguf: Path) -> None:
    write(models / "other.gguf")
    lib = library(models, bundled=lambda: tiny_gguf)
    items = lib.items()
    assert [i.id for i in items][0] == BUNDLED_ID and items[0].source == "bundled" and items[0].usable
    with pytest.raises(LibraryError, match="cannot be deleted"):
        lib.delete(BUNDLED_ID)
    assert tiny_gguf.is_file()


def test_missing_bundled_package_is_listed_with_its_error(models: Path) -> None:
    def broken() -> Path:
        raise BundledModelError("The bundled model package is not installed.")

    (item,) = library(models, bundled=broken).items()
    assert item.id == BUNDLED_ID and "not installed" in item.error


def test_add_registers_the_file_where_it_is(models: Path, tmp_path: Path, catalog) -> None:
    elsewhere = write(tmp_path / "elsewhere" / "zarablend-l2-7b.Q4_K_M.gguf")
    lib = library(models, catalog)
    item = lib.add(elsewhere)
    assert item.source == "added" and item.path == elsewhere.resolve()
    assert item.catalog_id == "zarablend-l2-7b"
    assert list(models.iterdir()) == []  # nothing was copied
    registry = json.loads(lib.registry.read_text())
    assert registry == {"schema": 1, "added": [str(elsewhere.resolve())]}
    lib.add(elsewhere)  # adding twice keeps one entry
    assert len(json.loads(lib.registry.read_text())["added"]) == 1
    # A fresh library over the same registry sees it, with the same id.
    again = library(models, catalog).items()
    assert [i.id for i in again] == [item.id]


def test_add_refuses_what_is_not_a_model(models: Path, tmp_path: Path) -> None:
    lib = library(models)
    with pytest.raises(LibraryError, match="There is no file"):
        lib.add(tmp_path / "nowhere.gguf")
    notes = tmp_path / "notes.txt"
    notes.write_text("hi")
    with pytest.raises(LibraryError, match="not a model file"):
        lib.add(notes)
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"not a model at all")
    with pytest.raises(LibraryError, match="not a GGUF model file"):
        lib.add(fake)
    projector = write(tmp_path / "mmproj-model-f16.gguf")
    with pytest.raises(LibraryError, match="vision projector, not a model"):
        lib.add(projector)
    assert not lib.registry.exists()


def test_add_accepts_a_legacy_ggml_file_marked_for_conversion(models: Path, tmp_path: Path, catalog) -> None:
    legacy = tmp_path / "mythomax-l2-13b.ggmlv3.q4_K_M.bin"
    legacy.write_bytes(b"tjgg" + struct.pack("<I", 3) + b"\0" * 64)
    item = library(models, catalog).add(legacy)
    assert item.needs_conversion and not item.usable
    assert item.architecture == "legacy GGJT v3"
    assert item.catalog_id == "mythomax-l2-13b"


def test_add_of_a_split_part_registers_the_first_part(models: Path, tmp_path: Path) -> None:
    parts = write_split(tmp_path / "outside", "big", 2)
    item = library(models).add(parts[1])
    assert item.path == parts[0].resolve()


def test_add_inside_the_models_folder_does_not_register(models: Path) -> None:
    path = write(models / "here.gguf")
    lib = library(models)
    item = lib.add(path)
    assert item.source == "downloaded" and not lib.registry.exists()
    assert [i.id for i in lib.items()] == [item.id]
    legacy = models / "old.bin"
    legacy.write_bytes(b"lmgg" + b"\0" * 64)
    assert lib.add(legacy).source == "added"  # the scan lists only .gguf, so a .bin is remembered


def test_delete_removes_a_download_with_its_leftovers_and_empty_folders(models: Path) -> None:
    folder = models / "TheBloke" / "Some-GGUF"
    path = write(folder / "some.Q4_K_M.gguf")
    (folder / "some.Q4_K_M.gguf.part").write_bytes(b"x")
    (folder / "some.Q4_K_M.gguf.part.json").write_text("{}")
    keep = write(models / "keep.gguf")
    lib = library(models)
    item = next(i for i in lib.items() if i.path == path)
    assert lib.delete(item.id).path == path
    assert not path.exists() and not (folder / "some.Q4_K_M.gguf.part").exists()
    assert not (folder / "some.Q4_K_M.gguf.part.json").exists()
    assert not (models / "TheBloke").exists() and keep.exists() and models.is_dir()
    assert [i.path for i in lib.items()] == [keep]


def test_delete_removes_every_part_of_a_split_model(models: Path) -> None:
    parts = write_split(models, "big", 3)
    (models / "big-00003-of-00003.gguf.part").write_bytes(b"x")
    lib = library(models)
    lib.delete(lib.items()[0].id)
    assert not any(p.exists() for p in parts) and list(models.iterdir()) == []


def test_delete_only_forgets_added_files(models: Path, tmp_path: Path) -> None:
    outside = write(tmp_path / "mine" / "precious.gguf")
    lib = library(models)
    item = lib.add(outside)
    lib.delete(item.id)
    assert outside.is_file()  # never deleted
    assert lib.items() == []
    assert json.loads(lib.registry.read_text())["added"] == []


def test_added_file_that_moved_away_is_listed_and_can_be_forgotten(models: Path, tmp_path: Path) -> None:
    outside = write(tmp_path / "moving.gguf")
    lib = library(models)
    item = lib.add(outside)
    outside.unlink()
    (listed,) = lib.items()
    assert listed.id == item.id and "no longer at" in listed.error
    lib.delete(item.id)
    assert lib.items() == []


@pytest.mark.parametrize(
    "hostile",
    [
        "../../etc/passwd",
        "",
        "/etc/passwd",
        "bundled/../x",
        "0123456789ABCDEF",
        "0123456789abcdef0",
        "a" * 500,
    ],
)
def test_hostile_ids_are_rejected(models: Path, hostile: str) -> None:
    lib = library(models)
    with pytest.raises(UnsafeNameError):
        lib.delete(hostile)
    with pytest.raises(UnsafeNameError):
        lib.get(hostile)


def test_unknown_but_wellformed_id_is_a_plain_error(models: Path) -> None:
    with pytest.raises(LibraryError, match="no longer in the library"):
        library(models).delete("0123456789abcdef")


def test_damaged_registry_is_reported_in_words(models: Path) -> None:
    lib = library(models)
    lib.registry.write_text("{oops")
    with pytest.raises(LibraryError, match="damaged"):
        lib.items()
    lib.registry.write_text(json.dumps({"schema": 1, "added": [1, 2]}))
    with pytest.raises(LibraryError, match="Delete that file"):
        lib.items()


def test_ids_are_stable_and_not_paths(models: Path) -> None:
    write(models / "a.gguf")
    first = library(models).items()[0].id
    assert first == library(models).items()[0].id
    assert "/" not in first and len(first) == 16


def test_model_folders_are_listed_in_place_and_never_touched(tmp_path: Path, models: Path) -> None:
    # LM Studio keeps publisher/repo/file.gguf; text-generation-webui keeps files at the top.
    other = tmp_path / "lmstudio-models"
    lm = write(other / "bartowski" / "Some-Model-GGUF" / "some-model-Q4_K_M.gguf", name="Some Model")
    top = write(other / "loose.gguf", name="Loose")
    write(other / "bartowski" / "Some-Model-GGUF" / "mmproj-some-model-f16.gguf")  # an image encoder
    write(other / ".cache" / "hidden.gguf")
    parts = write_split(other / "big", "big-model", 2)
    lib = Library(models, models.parent / "added.json", bundled=None, folders=[other])
    items = lib.items()
    assert sorted(i.path.name for i in items) == ["big-model-00001-of-00002.gguf", "loose.gguf", lm.name]
    assert {i.source for i in items} == {"folder"}
    assert by_name(items, "big-model-00001-of-00002.gguf").parts == tuple(parts)
    assert by_name(items, lm.name).context_length == CONTEXT and by_name(items, top.name).usable
    # The projector beside a model is paired with it, and with nothing in another folder.
    assert by_name(items, lm.name).projector == lm.parent / "mmproj-some-model-f16.gguf"
    assert by_name(items, top.name).projector is None
    assert lib.get(by_name(items, lm.name).id).path == lm  # ids come back to the same file
    with pytest.raises(LibraryError, match="--model-dir"):
        lib.delete(by_name(items, lm.name).id)
    assert lm.is_file() and top.is_file()
    assert not (models.parent / "added.json").exists()  # nothing was registered or copied
