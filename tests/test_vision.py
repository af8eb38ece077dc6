"""Pictures in a chat, through llama.cpp's multimodal library and a tiny projector the
tests build (`tiny_projector.py`): the engine takes a picture into the context, the chat
stores it with the message and hands it over, and a model without a projector refuses it."""

from __future__ import annotations

import io
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from engine.errors import GenerationError, ProjectorError
from engine.fake import FakeBackend
from engine.llama import LlamaCppBackend
from engine.types import IMAGE_MARKER, Chunk, Finish, GenerationRequest, LoadOptions
from presets.samplers import SamplerParams
from services.chat import actions as chat_actions
from services.chat import logic
from services.chat import reply as chat_reply
from services.chat.logic import ChatSettings
from services.chat.pictures import check_picture
from services.context import AppContext, Settings, create_context
from store.errors import InvalidInputError
from tiny_model import write_tiny_llama
from tiny_projector import write_tiny_projector

PARAMS = SamplerParams(max_new_tokens=6, temperature=0.0, seed=1)
SETTINGS = ChatSettings(params=SamplerParams(max_new_tokens=16))


def picture(colour: tuple[int, int, int] = (200, 40, 40), size: tuple[int, int] = (48, 40)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


def claiming(width: int, height: int) -> bytes:
    """A 1x1 PNG whose header claims another size (its checksum made to match)."""
    png = bytearray(picture(size=(1, 1)))
    png[16:24] = struct.pack(">II", width, height)  # IHDR's width and height
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(png[12:29])))
    return bytes(png)


@pytest.fixture(scope="module")
def seeing(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("vision")
    return write_tiny_llama(folder / "tiny-llava.gguf"), write_tiny_projector(folder / "mmproj-tiny.gguf")


def run(backend: LlamaCppBackend, request: GenerationRequest) -> tuple[str, Finish]:
    items = list(backend.generate(request, threading.Event()))
    text = "".join(item.text for item in items if isinstance(item, Chunk))
    finish = items[-1]
    assert isinstance(finish, Finish)
    return text, finish


def test_a_model_with_its_projector_takes_a_picture_into_the_context(seeing: tuple[Path, Path]) -> None:
    model, projector = seeing
    backend = LlamaCppBackend(model, LoadOptions(n_ctx=512, mmproj=str(projector)))
    try:
        assert backend.sees_images
        prompt = f"USER: {IMAGE_MARKER}\nhello world\nASSISTANT:"
        text_only = len(backend.prompt_tokens(prompt.replace(IMAGE_MARKER, "")))
        _, finish = run(backend, GenerationRequest(prompt, PARAMS, images=(picture(),)))
        # The picture took the projector's 16 positions beside the text.
        assert finish.usage.prompt_tokens > text_only + 10
        assert finish.usage.completion_tokens > 0
        # The same chat again: its text before the picture comes from the cache.
        _, again = run(backend, GenerationRequest(prompt, PARAMS, images=(picture((10, 200, 10)),)))
        assert again.usage.prompt_reused > 0 and again.usage.prompt_evaluated < again.usage.prompt_tokens
        # Afterwards the cache ends before the picture: a prompt without it is plain text again.
        plain, after = run(backend, GenerationRequest("USER: hello world\nASSISTANT:", PARAMS))
        assert after.usage.prompt_tokens == len(backend.prompt_tokens("USER: hello world\nASSISTANT:"))
    finally:
        backend.close()


def test_pictures_and_markers_must_match_and_be_pictures(seeing: tuple[Path, Path]) -> None:
    model, projector = seeing
    backend = LlamaCppBackend(model, LoadOptions(n_ctx=512, mmproj=str(projector)))
    try:
        with pytest.raises(GenerationError, match="could not be read"):
            run(backend, GenerationRequest(f"{IMAGE_MARKER} hi", PARAMS, images=(b"not a picture",)))
        with pytest.raises(GenerationError, match="do not match"):
            run(backend, GenerationRequest("no marker here", PARAMS, images=(picture(),)))
        text, _ = run(backend, GenerationRequest(f"{IMAGE_MARKER} hello", PARAMS, images=(picture(),)))
        assert isinstance(text, str)  # still usable after refusing
    finally:
        backend.close()


def test_a_model_without_a_projector_cannot_see(seeing: tuple[Path, Path]) -> None:
    model, _ = seeing
    backend = LlamaCppBackend(model, LoadOptions(n_ctx=512))
    try:
        assert not backend.sees_images
        with pytest.raises(GenerationError, match="without a vision projector"):
            run(backend, GenerationRequest(f"{IMAGE_MARKER} hi", PARAMS, images=(picture(),)))
    finally:
        backend.close()


def test_a_file_that_is_no_projector_is_refused_before_llama_cpp_sees_it(
    seeing: tuple[Path, Path], tmp_path: Path
) -> None:
    model, _ = seeing
    with pytest.raises(ProjectorError, match="not a vision projector"):
        LlamaCppBackend(model, LoadOptions(n_ctx=512, mmproj=str(model)))
    broken = write_tiny_projector(tmp_path / "mmproj-broken.gguf", without=("mm.2.weight",))
    with pytest.raises(ProjectorError, match="mm.2.weight"):
        LlamaCppBackend(model, LoadOptions(n_ctx=512, mmproj=str(broken)))


# -- pictures in a chat (services), over the fake backend ---------------------------------


@pytest.fixture
def seeing_ctx(tmp_path: Path) -> Iterator[tuple[AppContext, FakeBackend]]:
    backend = FakeBackend(n_ctx=2048, sees_images=True)
    ctx = create_context(Settings(data_dir=tmp_path / "data", load_model=False))
    ctx.models.attach(backend, LoadOptions(n_ctx=2048))
    yield ctx, backend
    ctx.models.unload()
    ctx.store.close()


def test_a_picture_goes_with_its_message_into_the_prompt(seeing_ctx: tuple[AppContext, FakeBackend]) -> None:
    ctx, backend = seeing_ctx
    view = logic.send(ctx, logic.new_chat(ctx, SETTINGS), "What is this? <__media__>", SETTINGS, [picture()])
    [message] = ctx.store.sessions.messages(view.session_id)
    [name] = message.meta["images"]
    stored = ctx.store.sessions.images.read(view.session_id, name)
    assert Image.open(io.BytesIO(stored)).size == (48, 40)  # a fresh PNG of the pixels
    prepared = chat_reply.build_prompt(ctx, view)
    # One marker, for the picture: the one typed in the message is taken out.
    assert prepared.request.prompt.count(IMAGE_MARKER) == 1
    assert f"{IMAGE_MARKER}\nWhat is this?" in prepared.request.prompt
    assert prepared.request.images == (stored,)
    chat_reply.start(ctx, view, "me").wait(10)
    assert backend.calls[-1].images == (stored,)
    history, _, _ = logic.visible_history(ctx, view)
    assert '<img class="hearth-picture" src="data:image/png;base64,' in history[0]["content"]


def test_a_picture_alone_is_a_message_and_the_next_turn_keeps_it(
    seeing_ctx: tuple[AppContext, FakeBackend],
) -> None:
    ctx, _ = seeing_ctx
    view = logic.send(ctx, logic.new_chat(ctx, SETTINGS), "", SETTINGS, [picture()])
    assert ctx.store.sessions.get(view.session_id).title == "A picture"
    chat_reply.start(ctx, view, "me").wait(10)
    view = logic.send(ctx, view, "And the colour?", SETTINGS)
    prepared = chat_reply.build_prompt(ctx, view)
    assert len(prepared.request.images) == 1 and prepared.request.prompt.count(IMAGE_MARKER) == 1


def test_what_is_not_a_picture_or_is_too_big_is_refused(
    seeing_ctx: tuple[AppContext, FakeBackend], tmp_path: Path
) -> None:
    ctx, _ = seeing_ctx
    for bad in (b"GIF89a but not really", b"", picture()[:40]):
        with pytest.raises(InvalidInputError, match="not a picture"):
            logic.send(ctx, None, "look", SETTINGS, [bad])
    # Decompression bombs: tiny files that claim 60,000 x 60,000 and 9,000 x 9,000 pixels.
    for side in (60_000, 9_000):
        with pytest.raises(InvalidInputError, match="too many pixels"):
            logic.send(ctx, None, "look", SETTINGS, [claiming(side, side)])
    assert all(ctx.store.sessions.count(s.id) == 0 for s in ctx.store.sessions.list())
    path = tmp_path / "fine.png"
    path.write_bytes(picture())
    check_picture(ctx, path)  # what the Picture button checks before the message is typed


def test_a_model_that_cannot_see_says_so(fake_ctx: AppContext) -> None:
    with pytest.raises(InvalidInputError, match="cannot see pictures"):
        logic.send(fake_ctx, None, "look", SETTINGS, [picture()])


def test_a_model_loads_with_the_projector_beside_it_or_without_one_that_does_not_fit(tmp_path: Path) -> None:
    folder = tmp_path / "models" / "llava"
    folder.mkdir(parents=True)
    model = write_tiny_llama(folder / "tiny-llava-Q8_0.gguf")
    write_tiny_projector(folder / "mmproj-tiny-f16.gguf")
    ctx = create_context(Settings(data_dir=tmp_path / "data", load_model=False))
    try:
        outcome = ctx.load_planned(model, LoadOptions(n_ctx=512))
        assert ctx.models.backend.sees_images and outcome.options.mmproj.endswith("mmproj-tiny-f16.gguf")
        assert any("vision projector mmproj-tiny-f16.gguf" in note for note in outcome.notes)
        # A projector made for another model: the model loads without it, and says why.
        (folder / "mmproj-tiny-f16.gguf").unlink()
        write_tiny_projector(folder / "mmproj-other-f16.gguf", without=("mm.2.weight",))
        outcome = ctx.load_planned(model, LoadOptions(n_ctx=512))
        assert not ctx.models.backend.sees_images and not outcome.options.mmproj
        assert any("cannot see pictures" in note for note in outcome.notes)
    finally:
        ctx.models.unload()
        ctx.store.close()


def test_a_branch_keeps_its_pictures_and_a_lost_one_is_left_out(
    seeing_ctx: tuple[AppContext, FakeBackend],
) -> None:
    ctx, _ = seeing_ctx
    view = logic.send(ctx, logic.new_chat(ctx, SETTINGS), "Look", SETTINGS, [picture()])
    chat_reply.start(ctx, view, "me").wait(10)
    branch = chat_actions.branch(ctx, view.session_id, 1)
    branched = replace(view, session_id=branch.id)
    view = logic.send(ctx, branched, "Again?", SETTINGS)
    assert len(chat_reply.build_prompt(ctx, view).request.images) == 1
    history, _, _ = logic.visible_history(ctx, view)
    assert "hearth-picture" in history[0]["content"]
    # The picture's file removed by hand: the chat goes on without it.
    for path in (ctx.store.sessions.root / branch.id / "images").iterdir():
        path.unlink()
    prepared = chat_reply.build_prompt(ctx, view)
    assert prepared.request.images == () and IMAGE_MARKER not in prepared.request.prompt


def test_a_run_with_a_picture_that_fails_leaves_no_picture_in_the_cache(seeing: tuple[Path, Path]) -> None:
    """A grammar llama.cpp refuses stops the run after the picture went in: the cache is
    cut back before it all the same, so the next plain prompt is text from end to end."""
    model, projector = seeing
    backend = LlamaCppBackend(model, LoadOptions(n_ctx=512, mmproj=str(projector)))
    try:
        text_prompt = "USER: hello world\nASSISTANT:"
        run(backend, GenerationRequest(text_prompt, PARAMS))  # the text is in the cache first
        prompt = f"USER: {IMAGE_MARKER}\nhello world\nASSISTANT:"
        with pytest.raises(GenerationError, match="grammar"):
            run(backend, GenerationRequest(prompt, PARAMS, images=(picture(),), grammar="root ::= ( oops"))
        # Where the picture went, llama-cpp-python's token list still holds the earlier text:
        # only the cut keeps the next prompt from matching it and reusing the picture's cells.
        _, after = run(backend, GenerationRequest(text_prompt, PARAMS))
        assert after.usage.prompt_evaluated >= len(backend.prompt_tokens(text_prompt)) - len(
            backend.prompt_tokens("USER: ")
        )
    finally:
        backend.close()
