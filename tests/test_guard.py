"""The serving guard (api/guard.py), --allowed-host, and --auth covering the API, in-process.

The end-to-end checks against the running app are in tests/test_serve_security.py.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from starlette.types import Message, Receive, Scope, Send

import app
from api.deps import ApiSettings
from api.guard import HostPolicy, ServeGuard, host_policy, machine_names
from api.server import create_api_app, root_app, serve_in_thread
from services.context import AppContext

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def serving(ctx: AppContext, settings: ApiSettings, policy: HostPolicy | None = None) -> Iterator[str]:
    api_app = create_api_app(app.api_deps(ctx), settings, host="127.0.0.1")
    server = serve_in_thread(root_app(api_app, policy), "127.0.0.1", 0)
    try:
        yield server.url
    finally:
        server.stop()


# -- hosts and origins -------------------------------------------------------------------


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.0.0.1:7860", "localhost", "LOCALHOST:7860", "[::1]", "[::1]:7860"]
)
def test_loopback_names_pass_with_or_without_a_port(host: str) -> None:
    assert HostPolicy().allows_host(host)


@pytest.mark.parametrize(
    "host",
    ["evil.example", "evil.example:7860", "", "127.0.0.1:port", "[::1", "::1", "192.168.1.5:7860",
     "localhost.evil.example", "127.0.0.1.nip.io"],
)  # fmt: skip
def test_other_hosts_are_refused_on_loopback(host: str) -> None:
    assert not HostPolicy().allows_host(host)


def test_listen_adds_this_computers_name_and_addresses_but_no_other_names() -> None:
    policy = host_policy(listen=True)
    for host in ("192.168.1.5:7860", "10.0.0.2", "[fe80::1]:7860", *machine_names(), "localhost"):
        assert policy.allows_host(host), host
    assert not policy.allows_host("evil.example:7860")


def test_allowed_hosts_pass_too() -> None:
    policy = host_policy(listen=False, allowed_hosts=["hearth.example", "10.1.2.3"])
    assert policy.allows_host("hearth.example:443") and policy.allows_host("HEARTH.example")
    assert policy.allows_host("10.1.2.3:7860")
    assert not policy.allows_host("10.1.2.4:7860")  # without --listen, only the addresses named
    assert not policy.allows_host("other.example")


def test_origins_must_be_hearth_itself_or_a_known_name() -> None:
    policy = host_policy(listen=True, allowed_hosts=["hearth.example"], api_origins=["http://a.example:3000"])
    assert policy.allows_origin("http://127.0.0.1:7860", "127.0.0.1:7860", "/")
    assert policy.allows_origin("http://localhost:3000", "127.0.0.1:7860", "/gradio_api/info")
    assert policy.allows_origin("https://hearth.example", "127.0.0.1:7860", "/")
    # A page loaded from this computer's address may call it; a page from another address may not.
    assert policy.allows_origin("http://192.168.1.5:7860", "192.168.1.5:7860", "/")
    assert not policy.allows_origin("http://192.168.1.9", "192.168.1.5:7860", "/")
    for origin in ("http://evil.example", "http://evil.example:7860", "null", "file://", "http://[::1"):
        assert not policy.allows_origin(origin, "127.0.0.1:7860", "/"), origin
    # --api-cors-origin opens the API, and only the API, to its origins.
    assert policy.allows_origin("http://a.example:3000", "127.0.0.1:7860", "/v1/models")
    assert not policy.allows_origin("http://a.example:3000", "127.0.0.1:7860", "/gradio_api/info")
    assert not policy.allows_origin("http://a.example:4000", "127.0.0.1:7860", "/v1/models")


def test_the_root_refuses_a_rebound_host_and_a_foreign_origin(fake_ctx: AppContext) -> None:
    with serving(fake_ctx, ApiSettings()) as base:
        port = base.rsplit(":", 1)[1]
        assert httpx.get(f"{base}/v1/models").status_code == 200
        for headers in (
            {"Host": f"evil.example:{port}"},
            {"Host": "evil.example", "Origin": "http://evil.example"},
            {"Origin": f"http://evil.example:{port}"},
        ):
            refused = httpx.get(f"{base}/v1/models", headers=headers)
            assert refused.status_code == 403
            assert refused.json()["error"]["code"] == "forbidden_host"
            # Even a path no route serves is refused first.
            assert httpx.get(f"{base}/nowhere", headers=headers).status_code == 403


def test_an_allowed_host_reaches_the_api(fake_ctx: AppContext) -> None:
    policy = host_policy(listen=False, allowed_hosts=["hearth.example"])
    with serving(fake_ctx, ApiSettings(), policy) as base:
        assert httpx.get(f"{base}/v1/models", headers={"Host": "hearth.example"}).status_code == 200
        assert httpx.get(f"{base}/v1/models", headers={"Host": "evil.example"}).status_code == 403


def test_a_websocket_from_a_rebound_host_is_closed_before_the_app() -> None:
    async def never(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("the request reached the app")

    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {"type": "websocket", "path": "/", "headers": [(b"host", b"evil.example:7860")]}
    asyncio.run(ServeGuard(never, HostPolicy())(scope, receive, send))
    assert sent == [{"type": "websocket.close", "code": 1008}]


# -- data-folder files -------------------------------------------------------------------


def test_only_avatar_pictures_of_the_data_folder_are_servable(fake_ctx: AppContext, tmp_path: Path) -> None:
    data = fake_ctx.settings.data_dir
    folder = app.avatar_pictures(fake_ctx)
    served = [
        data / "characters" / "c0ffee" / "avatar.png",
        data / "personas" / "p1.png",
        tmp_path / "elsewhere" / "character.json",  # outside the folder: Gradio's own rules apply
    ]
    refused = [
        data / "characters" / "c0ffee" / "character.json",
        data / "characters" / "c0ffee" / "assets" / "asset-001.png",
        data / "characters" / ".unfinished" / "x" / "avatar.png",
        data / "personas.json",
        data / "hearth.json",
        data / "models" / "m.gguf",
        data / "personas" / "p1.json",
        data,
    ]
    for path in served:
        assert not folder.refuses(str(path)), path
    for path in refused:
        assert folder.refuses(str(path)), path
    # Spellings that lead to the same files are refused too.
    avatar_dir = data / "characters" / "c0ffee"
    assert folder.refuses(f"{avatar_dir}/../../hearth.json")
    assert folder.refuses(f"{avatar_dir}//character.json")
    assert folder.refuses(str(avatar_dir / "CHARACTER.JSON"))
    assert folder.refuses(str(data).upper() + "/HEARTH.JSON")
    assert folder.refuses(f"{data}/hearth.json\x00")
    link = tmp_path / "link"
    link.symlink_to(data, target_is_directory=True)
    assert folder.refuses(str(link / "hearth.json"))


# -- flags -------------------------------------------------------------------------------


def test_allowed_host_is_repeatable_and_normalised() -> None:
    settings = app.parse_args(["--allowed-host", "Hearth.Example", "--allowed-host", "10.0.0.2"])
    assert settings.allowed_hosts == ("hearth.example", "10.0.0.2")
    assert app.parse_args(["--allowed-host", "[::1]"]).allowed_hosts == ("::1",)
    assert app.parse_args(["--allowed-host", "hearth_web"]).allowed_hosts == ("hearth_web",)
    assert app.parse_args([]).allowed_hosts == ()


@pytest.mark.parametrize(
    "value", ["http://hearth.example", "hearth.example:8080", "two words", "*", "", "a/b"]
)
def test_bad_allowed_hosts_refuse_to_start(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        app.parse_args(["--allowed-host", value])
    assert exit_info.value.code == 2
    assert "--allowed-host" in capsys.readouterr().err


def test_help_documents_allowed_host() -> None:
    result = subprocess.run(
        [sys.executable, "app.py", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert "--allowed-host NAME" in result.stdout


def test_auth_becomes_the_api_login_unless_there_is_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(app.API_KEY_ENV, raising=False)
    alice = (("alice", "s3cret"),)
    assert app.parse_flags(["--auth", "alice:s3cret", "--api"])[1] == ApiSettings(logins=alice)
    assert app.parse_flags(["--auth", "alice:s3cret", "--api", "--api-key", "k"])[1] == ApiSettings(key="k")
    assert app.parse_flags(["--api"])[1] == ApiSettings()


# -- --auth on the API -------------------------------------------------------------------


def test_the_api_asks_for_the_login(fake_ctx: AppContext) -> None:
    with serving(fake_ctx, ApiSettings(logins=(("alice", "s3cret"),))) as base:
        bare = httpx.get(f"{base}/v1/models")
        assert bare.status_code == 401
        assert bare.headers["www-authenticate"].startswith("Basic")
        assert bare.json()["error"]["code"] == "invalid_api_key"
        assert httpx.get(f"{base}/v1/models", auth=("alice", "s3cret")).status_code == 200
        bearer = {"Authorization": "Bearer alice:s3cret"}
        assert httpx.get(f"{base}/v1/models", headers=bearer).status_code == 200
        for wrong in (
            httpx.BasicAuth("alice", "wrong"),
            httpx.BasicAuth("bob", "s3cret"),
        ):
            assert httpx.get(f"{base}/v1/models", auth=wrong).status_code == 401
        for header in ("Bearer alice:wrong", "Bearer alice", "Basic !!!", "Digest alice:s3cret"):
            response = httpx.get(f"{base}/v1/models", headers={"Authorization": header})
            assert response.status_code == 401, header
        completion = httpx.post(f"{base}/v1/completions", json={"prompt": "x", "max_tokens": 1})
        assert completion.status_code == 401


def test_a_key_replaces_the_login(fake_ctx: AppContext) -> None:
    with serving(fake_ctx, ApiSettings(key="k", logins=(("alice", "s3cret"),))) as base:
        assert httpx.get(f"{base}/v1/models", auth=("alice", "s3cret")).status_code == 401
        login = {"Authorization": "Bearer alice:s3cret"}
        assert httpx.get(f"{base}/v1/models", headers=login).status_code == 401
        assert httpx.get(f"{base}/v1/models", headers={"Authorization": "Bearer k"}).status_code == 200


def test_every_auth_user_opens_the_api(fake_ctx: AppContext) -> None:
    users = (("alice", "s3cret"), ("bob", "hunter2"))
    with serving(fake_ctx, ApiSettings(logins=users)) as base:
        for user, password in users:
            assert httpx.get(f"{base}/v1/models", auth=(user, password)).status_code == 200
        assert httpx.get(f"{base}/v1/models", auth=("alice", "hunter2")).status_code == 401
