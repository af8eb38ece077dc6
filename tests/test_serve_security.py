"""What an attacker can reach of the running app: `app.py` in a subprocess, raw HTTP requests.

- DNS rebinding: a page on evil.example whose name now points at 127.0.0.1 reaches
  nothing, neither the UI, its API and file routes, nor `/v1`.
- Of the data folder, only avatar pictures are served.
- `--auth` covers the API; Gradio's own login still works with the UI mounted.
- One Hearth per data folder.
- Errors reach gradio_client callers as plain text and Gradio's page escaped.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError
from PIL import Image

import app
from browser import free_port, hearth_server
from store.db import Store

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
EVIL = "evil.example"
MARKUP_PATH = "/nowhere/<b>Tom's</b> & co.gguf"
PLAIN_ERROR = f"There is no file at {MARKUP_PATH}."


@dataclass(frozen=True)
class Served:
    """The running app, its data folder, and the stored files the tests ask for."""

    url: str
    port: int
    data: Path
    character_avatar: Path
    persona_avatar: Path
    character_record: Path


def picture(colour: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 4), colour).save(out, "PNG")
    return out.getvalue()


def file_url(served: Served, path: Path | str) -> str:
    return f"{served.url}gradio_api/file={quote(str(path))}"


@pytest.fixture(scope="module")
def served(tiny_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    data = tmp_path_factory.mktemp("served") / "data"
    store = Store(data)
    character = store.characters.create_blank("Ann")
    store.characters.set_avatar(character.id, picture("red"))
    persona = store.personas.default()
    store.personas.set_avatar(persona.id, picture("blue"))
    character_avatar = store.characters.get(character.id).avatar_path
    persona_avatar = store.personas.avatar_path(persona.id)
    store.close()
    assert character_avatar is not None and persona_avatar is not None
    port = free_port()
    with hearth_server(data, "--api", "--model", str(tiny_gguf), port=port) as url:
        yield Served(
            url, port, data, character_avatar, persona_avatar, character_avatar.parent / "character.json"
        )


def requests_made(served: Served, headers: dict[str, str]) -> dict[str, int]:
    """The status of each kind of request an attacker's page would make, with `headers`."""
    get = {
        "page": served.url,
        "config": f"{served.url}config",
        "info": f"{served.url}gradio_api/info",
        "file": file_url(served, served.character_avatar),
        "api": f"{served.url}v1/models",
    }
    statuses = {name: httpx.get(url, headers=headers, timeout=30).status_code for name, url in get.items()}
    for api_name in ("export_chat", "rename"):
        call = httpx.post(
            f"{served.url}gradio_api/call/{api_name}", json={"data": [None, "x"]}, headers=headers, timeout=30
        )
        statuses[api_name] = call.status_code
    return statuses


def test_a_rebound_host_reaches_nothing(served: Served) -> None:
    rebound = {"Host": f"{EVIL}:{served.port}", "Origin": f"http://{EVIL}:{served.port}"}
    assert set(requests_made(served, rebound).values()) == {403}
    assert set(requests_made(served, {"Host": EVIL}).values()) == {403}


def test_a_foreign_origin_reaches_nothing(served: Served) -> None:
    foreign = {"Host": f"127.0.0.1:{served.port}", "Origin": f"http://{EVIL}"}
    assert set(requests_made(served, foreign).values()) == {403}


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "localhost", "127.0.0.1"])
def test_loopback_names_are_served(served: Served, host: str) -> None:
    host = host.format(port=served.port)
    statuses = requests_made(served, {"Host": host, "Origin": f"http://{host}"})
    assert statuses == dict.fromkeys(statuses, 200)


def test_only_avatar_pictures_are_served_from_the_data_folder(served: Served) -> None:
    for avatar, colour in ((served.character_avatar, "red"), (served.persona_avatar, "blue")):
        response = httpx.get(file_url(served, avatar), timeout=30)
        assert response.status_code == 200, avatar
        assert Image.open(io.BytesIO(response.content)).getpixel((0, 0)) == Image.new(
            "RGB", (1, 1), colour
        ).getpixel((0, 0))
    private = [
        served.character_record,
        served.data / "personas.json",
        served.data / "hearth.json",
        f"{served.character_avatar.parent}/../../hearth.json",
        str(served.character_record).replace("character.json", "CHARACTER.json"),
    ]
    for path in private:
        assert httpx.get(file_url(served, path), timeout=30).status_code == 403, path
    deprecated = f"{served.url}gradio_api/file/{quote(str(served.character_record))}"
    assert httpx.get(deprecated, timeout=30).status_code == 403


def test_api_clients_get_plain_error_text_and_the_page_gets_it_escaped(served: Served) -> None:
    client = Client(served.url, verbose=False, analytics_enabled=False)
    with pytest.raises(AppError) as caught:
        client.predict(MARKUP_PATH, api_name="/add_model")
    assert caught.value.message == PLAIN_ERROR

    # Gradio's page sends `x-gradio-user: app` and renders the toast as HTML.
    config = httpx.get(f"{served.url}config", timeout=30).json()
    add_model = next(d for d in config["dependencies"] if d.get("api_name") == "add_model")
    body = {"data": [MARKUP_PATH, None], "fn_index": add_model["id"], "session_hash": "escaping-test"}
    joined = httpx.post(
        f"{served.url}gradio_api/queue/join", json=body, headers={"x-gradio-user": "app"}, timeout=30
    )
    assert joined.status_code == 200
    with httpx.stream(
        "GET", f"{served.url}gradio_api/queue/data", params={"session_hash": "escaping-test"}, timeout=60
    ) as stream:
        messages = (json.loads(line[5:]) for line in stream.iter_lines() if line.startswith("data:"))
        completed = next(m for m in messages if m.get("msg") == "process_completed")
    assert completed["output"]["error"] == (
        "There is no file at /nowhere/&lt;b&gt;Tom&#x27;s&lt;/b&gt; &amp; co.gguf."
    )


def test_a_second_hearth_on_the_same_folder_refuses_to_start(served: Served) -> None:
    second = subprocess.run(
        [sys.executable, "app.py", "--port", str(free_port()), "--data-dir", str(served.data)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert second.returncode == 1
    assert f"another Hearth is already using the data folder {served.data}" in second.stderr
    assert httpx.get(served.url, timeout=30).status_code == 200  # the first one runs on


def test_the_lock_goes_with_a_crashed_process(tmp_path: Path) -> None:
    data = tmp_path / "data"
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import app, time; held = app.lock_data_dir(app.Path({str(data)!r})); "
         "print('locked', flush=True); time.sleep(120)"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(SystemExit, match="another Hearth is already using"):
            app.lock_data_dir(data)
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    app.lock_data_dir(data).release()


def test_auth_covers_the_api_on_its_own_port(tiny_gguf: Path, tmp_path: Path) -> None:
    api_port = free_port()
    extra = ("--auth", "alice:s3cret", "--api", "--api-port", str(api_port), "--model", str(tiny_gguf))
    with hearth_server(tmp_path / "data", *extra) as url:
        api = f"http://127.0.0.1:{api_port}/v1"
        assert httpx.get(f"{api}/models").status_code == 401
        completion = httpx.post(f"{api}/completions", json={"prompt": "hello", "max_tokens": 1})
        assert completion.status_code == 401
        assert httpx.get(f"{api}/models", auth=("alice", "s3cret")).status_code == 200
        assert httpx.get(f"{api}/models", headers={"Authorization": "Bearer alice:s3cret"}).status_code == 200
        assert httpx.get(f"{api}/models", auth=("alice", "wrong")).status_code == 401
        # The API's own port is guarded like the UI's.
        rebound = {"Host": f"{EVIL}:{api_port}", "Authorization": "Bearer alice:s3cret"}
        assert httpx.get(f"{api}/models", headers=rebound).status_code == 403

        # Gradio's own login still guards the mounted UI, and the replies' own route.
        assert httpx.get(f"{url}config").status_code == 401
        assert httpx.get(f"{url}hearth/live/some-token").status_code == 401
        with httpx.Client(base_url=url) as browser:
            assert browser.post("login", data={"username": "alice", "password": "wrong"}).status_code == 400
            assert browser.get("hearth/live/some-token").status_code == 401
            assert browser.post("login", data={"username": "alice", "password": "s3cret"}).status_code == 200
            assert browser.get("config").status_code == 200
            assert browser.get("hearth/live/some-token").status_code == 404  # signed in: no such run
            page = browser.get("").text
            # The prelude runs before Gradio's scripts, which take the frame function it sets.
            assert page.index("/statustracker-") < page.index('<script type="module"')
        assert httpx.get(url, headers={"Host": EVIL}).status_code == 403
