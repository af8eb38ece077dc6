"""Building the API's ASGI app and serving it.

`create_api_app` builds the API (mounted at `/v1` by `root_app`). On the UI's port,
`app.py` mounts the Gradio app at `/` on the same root (`gr.mount_gradio_app`), so
each keeps its own middleware: Gradio's CORS rules never reach `/v1`, and the API's
key check and CORS never reach the UI. On a port of its own, `serve_in_thread` runs
the root on a uvicorn server beside Gradio's.

The guard in front of every `/v1` request:

- with a key, a request without `Authorization: Bearer KEY` gets 401;
- without a key (loopback only: `app.py` refuses to listen wider without one), a
  request must name a loopback host, so a web page that rebinds its own domain to
  127.0.0.1 cannot reach the API;
- CORS headers are sent only for the origins named with `--api-cors-origin`.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import threading
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from api.deps import ApiDeps, ApiSettings
from api.errors import ApiServerError, ErrorReply, ForbiddenHostError, UnauthorizedError, error_reply
from api.routes import build_router
from presets.errors import HearthError

log = logging.getLogger(__name__)

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
SHUTDOWN_GRACE = 5  # seconds open streams get to finish when the server stops


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS


def create_api_app(deps: ApiDeps, settings: ApiSettings, *, host: str) -> FastAPI:
    """The API as an app of its own, to be mounted at `/v1` (see `root_app`).

    Raises:
        ApiServerError: `host` is beyond loopback and no key is set.
    """
    if settings.key is None and not is_loopback(host):
        raise ApiServerError(f"The API would listen on {host}, beyond this computer, so it needs a key.")
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.include_router(build_router(deps))
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(HearthError, _hearth_error)
    app.add_exception_handler(Exception, _any_error)  # Starlette logs these with their traceback
    # Added first, so it sits inside CORS: preflight requests carry no key.
    app.add_middleware(Guard, key=settings.key, hosts=None if settings.key else LOOPBACK_HOSTS)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    return app


def root_app(api_app: FastAPI) -> FastAPI:
    """An app with the API mounted at `/v1` (and room for the UI at `/`)."""
    root = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    root.mount("/v1", api_app)
    return root


class Guard:
    """Checks the API key, or on loopback without a key the Host header."""

    def __init__(self, app: ASGIApp, key: str | None, hosts: frozenset[str] | None) -> None:
        self.app = app
        self.key = key
        self.hosts = hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            request = Request(scope)
            try:
                self.check(request)
            except (UnauthorizedError, ForbiddenHostError) as exc:
                reply = error_reply(exc)
                headers = {"WWW-Authenticate": "Bearer"} if reply.status == 401 else None
                await JSONResponse(reply.body(), reply.status, headers=headers)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def check(self, request: Request) -> None:
        if self.key is not None:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                token.strip().encode(), self.key.encode()
            ):
                raise UnauthorizedError("This API needs a key: send it as 'Authorization: Bearer KEY'.")
        if self.hosts is not None and _host_name(request.headers.get("host", "")) not in self.hosts:
            raise ForbiddenHostError(
                "Without an API key, Hearth's API answers only requests made to 127.0.0.1 or localhost."
            )


def _host_name(host: str) -> str:
    if host.startswith("["):  # [::1]:7860
        return host[1 : host.find("]")]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


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
