"""`app.py --api` end to end: the real app, the tiny real model, the API on the UI's port."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import openai
import pytest

from browser import hearth_server

pytestmark = pytest.mark.slow


def wait_for_model(api: openai.OpenAI) -> None:
    """The page is served before the model has loaded; wait until the API lists it."""
    deadline = time.monotonic() + 60
    while not [m.id for m in api.models.list()]:
        assert time.monotonic() < deadline, "the model did not load"
        time.sleep(0.2)
    assert [m.id for m in api.models.list()] == ["tiny-llama"]


def test_app_serves_the_api_beside_the_ui(tiny_gguf: Path, tmp_path: Path) -> None:
    with hearth_server(tmp_path / "data", "--api", "--model", str(tiny_gguf)) as url:
        api = openai.OpenAI(base_url=f"{url}v1", api_key="unused", max_retries=0, timeout=60)
        wait_for_model(api)
        reply = api.chat.completions.create(
            model="tiny-llama",
            messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}],
            max_tokens=5,
            temperature=0,
        )
        assert reply.model == "tiny-llama"
        assert reply.choices[0].finish_reason == "length"
        usage = reply.usage
        assert usage is not None and usage.prompt_tokens > 5 and usage.completion_tokens >= 5
        assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens

        chunks = list(api.completions.create(model="m", prompt="hello world", max_tokens=4, stream=True))
        assert chunks[-1].choices[0].finish_reason == "length"

        page = httpx.get(url)
        assert page.status_code == 200 and "gradio" in page.text.lower()
        # Gradio answers CORS for local origins on its own routes; the API never does.
        models = httpx.get(f"{url}v1/models", headers={"Origin": "http://localhost:3000"})
        assert models.status_code == 200
        assert "access-control-allow-origin" not in models.headers
