"""Every event the app names, called with nulls for all its inputs, as an API caller (or a
cleared field) can send them: each gets an answer or a plain refusal, never a bug."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from browser import hearth_server

BUG = "Something went wrong inside Hearth"


def outcome(url: str, api_name: str, inputs: int) -> str:
    """What the event stream of one call of `api_name` with only nulls says, all of it."""
    started = httpx.post(f"{url}gradio_api/call/{api_name}", json={"data": [None] * inputs}, timeout=30)
    assert started.status_code == 200, (api_name, started.text)
    event = started.json()["event_id"]
    with httpx.stream("GET", f"{url}gradio_api/call/{api_name}/{event}", timeout=120) as stream:
        return "".join(stream.iter_text())


@pytest.mark.slow
def test_no_event_meets_a_null_with_a_bug(tmp_path: Path, tiny_gguf: Path) -> None:
    with hearth_server(tmp_path / "data", "--model", str(tiny_gguf)) as url:
        config = httpx.get(f"{url}config", timeout=30).json()
        named = [d for d in config["dependencies"] if d.get("api_name")]
        events = [d for d in named if d.get("api_visibility") != "private"]
        assert len(events) > 100  # the whole page, not a part of it
        answers = {e["api_name"]: outcome(url, e["api_name"], len(e["inputs"])) for e in events}
        assert [name for name, text in answers.items() if BUG in text] == []
        assert any("event: complete" in text for text in answers.values())
