"""Shared fixtures: a tiny real GGUF, fake-backed app contexts, and artifact folders."""

from __future__ import annotations

import os
import sys

# huggingface_hub reads these when first imported: no daily "agent harness" lookup.
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine.fake import FakeBackend
from engine.types import LoadOptions
from services.context import AppContext, Settings, create_context
from tiny_model import write_tiny_llama

ARTIFACTS = ROOT / "test-artifacts"


def _shared_dir() -> Path:
    """The shared reference folder: beside the checkout, or where HEARTH_SHARED_DIR says."""
    candidates = [os.environ.get("HEARTH_SHARED_DIR", ""), str(ROOT.parent / "shared"), "/work/shared"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "fixtures" / "third_party").is_dir():
            return Path(candidate)
    return ROOT.parent / "shared"


THIRD_PARTY = _shared_dir() / "fixtures" / "third_party"


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 0.4 MB random-weight Llama GGUF that llama.cpp loads in milliseconds."""
    return write_tiny_llama(tmp_path_factory.mktemp("models") / "tiny-llama.gguf")


@pytest.fixture
def fake_backend() -> FakeBackend:
    return FakeBackend(n_ctx=2048)


@pytest.fixture
def fake_ctx(tmp_path: Path, fake_backend: FakeBackend) -> Iterator[AppContext]:
    """An app context over a fresh data folder, with the fake backend loaded."""
    settings = Settings(data_dir=tmp_path / "data", load_model=False)
    ctx = create_context(settings, factory=lambda _p, _o: fake_backend)
    ctx.models.attach(fake_backend, LoadOptions(n_ctx=fake_backend.n_ctx))
    yield ctx
    ctx.models.unload()  # stops the generation worker thread
    ctx.store.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def third_party() -> Path:
    if not THIRD_PARTY.is_dir():
        pytest.fail(f"The shared third-party fixtures are missing: {THIRD_PARTY}")
    return THIRD_PARTY
