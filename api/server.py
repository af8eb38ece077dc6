"""Building the API's ASGI app and serving it.

`create_api_app` builds the API (mounted at `/v1` by `root_app`). Everything Hearth
serves goes through a root app from `root_app`: `app.py` mounts the Gradio app at
`/` on it (`gr.mount_gradio_app`), beside the API or alone, and with `--api-port` the
API gets a root of its own. Each root sits behind `api.guard.ServeGuard`, which
refuses foreign hosts and origins (DNS rebinding) and private files before any route
runs. Under it the UI and the API keep their own middleware: Gradio's CORS rules
never reach `/v1`, and the API's credential check and CORS never reach the UI.

The API's own check, in front of every `/v1` request:

- with a key, a request without `Authorization: Bearer KEY` gets 401;
- without a key but with the UI's `--auth`, a request must carry that user name and
  password, as HTTP basic auth or as `Authorization: Bearer USER:PASS`;
- CORS headers are sent only for the origins named with `--api-cors-origin`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from api.deps import ApiDeps, ApiSettings
from api.errors import ApiServerError, ErrorReply, UnauthorizedError, error_reply
from api.guard import LOOPBACK_NAMES, HostPolicy, PrivateFolder, ServeGuard
from api.routes import build_router
from presets.errors import HearthError

log = logging.getLogger(__name__)

SHUTDOWN_GRACE = 5  # seconds open streams get to finish when the server stops


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_NAMES


def create_api_app(deps: ApiDeps, settings: ApiSettings, *, host: str) -> FastAPI:
    """The API as an app of its own, to be mounted at `/v1` (see `root_app`).

    Raises:
        ApiServerError: `host` is beyond loopback and neither a key nor a login is set.
    """
    if settings.key is None and not settings.logins and not is_loopback(host):
        raise ApiServerError(
            f"The API would listen on {host}, beyond this computer, so it needs a key or --auth."
        )
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.include_router(build_router(deps))
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(HearthError, _hearth_error)
    app.add_exception_handler(Exception, _any_error)  # Starlette logs these with their traceback
    # Added first, so it sits inside CORS: preflight requests carry no key.
    app.add_middleware(Guard, key=settings.key, logins=() if settings.key else settings.logins)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    return app


def root_app(
    api_app: FastAPI | None = None,
    policy: HostPolicy | None = None,
    private: Sequence[PrivateFolder] = (),
) -> FastAPI:
    """A root behind `ServeGuard`, with the API (if given) at `/v1` and room for the UI at `/`.

    `policy` defaults to loopback names only; `private` lists folders whose files no
    route may serve, but for the ones each names as public.
    """
    root = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    root.add_middleware(ServeGuard, policy=policy or HostPolicy(), private=tuple(private))
    if api_app is not None:
        root.mount("/v1", api_app)
    return root


class Guard:
    """Checks the API key, or without one the UI's `--auth` user name and password."""

    def __init__(self, app: ASGIApp, key: str | None, logins: tuple[tuple[str, str], ...] = ()) -> None:
        self.app = app
        self.key = key
        self.logins = logins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            request = Request(scope)
            try:
                self.check(request)
            except UnauthorizedError as exc:
                reply = error_reply(exc)
                challenge = "Bearer" if self.key is not None else 'Basic realm="Hearth"'
                headers = {"WWW-Authenticate": challenge}
                await JSONResponse(reply.body(), reply.status, headers=headers)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def check(self, request: Request) -> None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        scheme, token = scheme.lower(), token.strip()
        if self.key is not None:
            if scheme != "bearer" or not _same(token, self.key):
                raise UnauthorizedError("This API needs a key: send it as 'Authorization: Bearer KEY'.")
        elif self.logins:
            if scheme == "basic":
                token = _basic_credentials(token)
            # Every pair is compared, so the time taken says nothing about which user matched.
            matches = [_same(token, f"{user}:{password}") for user, password in self.logins]
            if scheme not in ("basic", "bearer") or not any(matches):
                raise UnauthorizedError(
                    "This API needs Hearth's user name and password (--auth): send them as HTTP "
                    "basic auth, or as 'Authorization: Bearer USER:PASS'."
                )


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _basic_credentials(token: str) -> str:
    """`USER:PASS` from a basic-auth token, or '' when it is not valid base64 of UTF-8."""
    try:
        return base64.b64decode(token, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return ""


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    message = "No such endpoint." if status == 404 else str(getattr(exc, "detail", exc))
    reply = ErrorReply(status, message, "invalid_request_error")
    return JSONResponse(reply.body(), status)


async def _hearth_error(_request: Request, exc: Exception) -> JSONResponse:
    reply = error_reply(exc)
    if reply.status >= 500:
        log.error("API request failed: %s", exc)
    return JSONResponse(reply.body(), reply.status)


async def _any_error(_request: Request, exc: Exception) -> JSONResponse:
    reply = error_reply(exc)
    return JSONResponse(reply.body(), reply.status)


@dataclass
class RunningServer:
    """A uvicorn server on a thread of its own."""

    server: uvicorn.Server
    thread: threading.Thread
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(SHUTDOWN_GRACE + 5)


def server_config(app: ASGIApp, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=SHUTDOWN_GRACE
    )


def serve(app: ASGIApp, host: str, port: int) -> None:
    """Serve `app` until the process is told to stop (Ctrl+C or SIGTERM)."""
    uvicorn.Server(server_config(app, host, port)).run()


def serve_in_thread(app: ASGIApp, host: str, port: int) -> RunningServer:
    """Start serving `app` on a thread; return once it listens. Port 0 picks a free one.

    Raises:
        ApiServerError: it could not listen (usually: the port is taken).
    """
    server = uvicorn.Server(server_config(app, host, port))
    thread = threading.Thread(target=_run, args=(server,), name=f"api-server-{port}", daemon=True)
    thread.start()
    while not server.started:
        thread.join(0.02)
        if not thread.is_alive():
            raise ApiServerError(f"The API could not listen on {host}:{port}. Is the port taken?")
    bound = server.servers[0].sockets[0].getsockname()[1] if server.servers else port
    return RunningServer(server, thread, host, int(bound))


def _run(server: uvicorn.Server) -> None:
    # uvicorn exits when it cannot bind; serve_in_thread sees the thread end and says why.
    with contextlib.suppress(SystemExit):
        server.run()
