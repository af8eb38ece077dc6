"""Pictures in a chat, through llama.cpp's multimodal library and a tiny projector the
tests build (`tiny_projector.py`): the engine takes a picture into the context, the chat
stores it with the message and hands it over, and a model without a projector refuses it."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest
from PIL import Image

from engine.errors import GenerationError, ProjectorError
from engine.llama import LlamaCppBackend
from engine.types import IMAGE_MARKER, Chunk, Finish, GenerationRequest, LoadOptions
from presets.samplers import SamplerParams
from tiny_model import write_tiny_llama
from tiny_projector import write_tiny_projector

PARAMS = SamplerParams(max_new_tokens=6, temperature=0.0, seed=1)


def picture(colour: tuple[int, int, int] = (200, 40, 40), size: tuple[int, int] = (48, 40)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


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
