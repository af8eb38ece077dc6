"""A model's format is picked before the model is swapped in, and a runaway template cannot
stall the swap: the new model then gets the format its name suggests, never the previous
model's. The same holds for a remote engine whose `/props` carries the template."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from catalog.detect import FormatDetection
from engine.fake import FakeBackend
from engine.gguf import model_info
from engine.remote import RemoteSpec, connect
from engine.types import FinishReason, GenerationRequest, LoadOptions
from hang_guard import returns
from services import context as context_module
from services.context import AppContext, Settings, create_context
from services.models import logic
from services.models import remote as remote_logic
from stand_in import Replies, StandIn
from tiny_model import write_tiny_llama

NESTED_LOOPS = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
ZEPHYR = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + eos_token + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)
OPTIONS = LoadOptions(n_ctx=512, threads=1)


@pytest.fixture
def built() -> list[FakeBackend]:
    return []


@pytest.fixture
def ctx(tmp_path: Path, built: list[FakeBackend]) -> Iterator[AppContext]:
    """A context whose models are fake backends over real GGUF headers, with House A loaded."""

    def factory(path: Path, _options: LoadOptions) -> FakeBackend:
        built.append(FakeBackend(n_ctx=512, info=model_info(path)))
        return built[-1]

    context = create_context(Settings(data_dir=tmp_path / "data", load_model=False), factory=factory)
    context.load_model(
        write_tiny_llama(tmp_path / "house-a.gguf", chat_template=CHATML, name="House A"), OPTIONS
    )
    assert (context.models.info.name, context.detected_format().format_id) == ("House A", "chatml")
    yield context
    context.models.unload()
    context.store.close()


@pytest.fixture
def seen_while_detecting(ctx: AppContext, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """(loaded model, its format) at the moment each detection starts."""
    seen: list[tuple[str, str]] = []
    real = context_module.detect_model_format

    def spy(*args: Any, **kwargs: Any) -> FormatDetection:
        info = ctx.models.info
        seen.append((info.name if info else "", ctx.detected_format().format_id))
        return real(*args, **kwargs)

    monkeypatch.setattr(context_module, "detect_model_format", spy)
    return seen


def test_a_runaway_template_leaves_the_new_model_with_its_name_format(
    ctx: AppContext, seen_while_detecting: list[tuple[str, str]], tmp_path: Path
) -> None:
    path = write_tiny_llama(tmp_path / "vicuna-13b.gguf", chat_template=NESTED_LOOPS, name="vicuna-13b")
    info = returns(lambda: ctx.load_model(path, OPTIONS))
    # While the template ran, House A still served, with its own format.
    assert seen_while_detecting == [("House A", "chatml")]
    detected = ctx.detected_format()
    assert (ctx.models.info.name, detected.format_id) == ("vicuna-13b", "vicuna-1.1")
    assert "could not be used" in detected.reason and "steps of work" in detected.reason
    assert detected.reason in logic.facts_markdown(ctx, info).replace("\\", "")  # the Models tab says why
    # The new model answers, and the next load derives its template as usual.
    finish = ctx.models.start(GenerationRequest("Hello"), "me").wait(60)
    assert finish.reason in (FinishReason.STOP, FinishReason.LENGTH)
    ctx.load_model(write_tiny_llama(tmp_path / "zephyr.gguf", chat_template=ZEPHYR, name="Zephyr"), OPTIONS)
    assert seen_while_detecting[-1] == ("vicuna-13b", "vicuna-1.1")
    assert ctx.detected_format().derived and ctx.models.info.name == "Zephyr"


def test_a_failure_while_picking_the_format_keeps_the_previous_model_and_format(
    ctx: AppContext, built: list[FakeBackend], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def broken(*_args: Any, **_kwargs: Any) -> FormatDetection:
        raise RuntimeError("detection broke")

    monkeypatch.setattr(context_module, "detect_model_format", broken)
    path = write_tiny_llama(tmp_path / "vicuna-13b.gguf", chat_template=NESTED_LOOPS, name="vicuna-13b")
    with pytest.raises(RuntimeError, match="detection broke"):
        ctx.load_model(path, OPTIONS)
    assert (ctx.models.info.name, ctx.detected_format().format_id) == ("House A", "chatml")
    assert built[-1].info.name == "vicuna-13b" and built[-1].closed  # the new one was let go
    assert not built[0].closed


# -- a remote engine ---------------------------------------------------------------------------


class PropsServer(StandIn):
    """Just enough of llama.cpp's server to connect: one model, and `/props` with a template."""

    def __init__(self, model_id: str, template: Any) -> None:
        answers = {
            "/v1/models": {"object": "list", "data": [{"id": model_id}]},
            "/props": {"default_generation_settings": {"n_ctx": 2048}, "chat_template": template},
        }
        missing = {"error": {"message": "File Not Found"}}

        class Handler(Replies):
            def do_GET(self) -> None:
                self.send_json(answers.get(self.path, missing), 200 if self.path in answers else 404)

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_json(missing, 404)

        super().__init__(Handler)


@pytest.fixture
def runaway_server() -> Iterator[PropsServer]:
    server = PropsServer("vicuna-13b.gguf", NESTED_LOOPS)
    yield server
    server.stop()


def test_a_remote_template_runs_on_the_same_budget(
    ctx: AppContext, seen_while_detecting: list[tuple[str, str]], runaway_server: PropsServer
) -> None:
    info = returns(lambda: remote_logic.connect(ctx, RemoteSpec("openai", runaway_server.url)))
    assert seen_while_detecting == [("House A", "chatml")]
    detected = ctx.detected_format()
    assert info.remote and ctx.models.info == info and detected.format_id == "vicuna-1.1"
    assert "could not be used" in detected.reason and "steps of work" in detected.reason
    assert "steps of work" in remote_logic.remote_status(ctx)


def test_a_props_template_that_is_not_text_is_no_template() -> None:
    server = PropsServer("house-model.gguf", ["{{ messages }}"])
    try:
        backend = connect(RemoteSpec("openai", server.url))
        assert backend.info.chat_template == ""
        backend.close()
    finally:
        server.stop()
