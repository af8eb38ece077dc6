"""The gate in front of everything Hearth serves: the UI, its file routes and the API.

`ServeGuard` is plain ASGI middleware on the root app (`api.server.root_app`), so it
runs before any route, Gradio's or the API's. It refuses with a 403:

- a request whose `Host` is not one Hearth answers for. A web page that points its
  own domain at this computer (DNS rebinding) still sends its own name as the Host,
  so it is refused, while `127.0.0.1:7860` or `localhost` pass;
- a request with an `Origin` from elsewhere: pages on other sites cannot make the
  browser act for them, even with a Host that passes;
- a request to a Gradio file route (`/gradio_api/file=PATH`) for a file inside the
  data folder that the folder's policy does not name as public (only avatar
  pictures), whatever Gradio's own allowed paths say.

Which hosts pass is a `HostPolicy`: the loopback names, plus with `--listen` this
computer's name and any IP address (an address cannot be rebound: a page only ever
sends an address as its Host when it was itself loaded from that address), plus every
`--allowed-host`.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import ForbiddenHostError, error_reply

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
API_PREFIX = "/v1"
# DNS labels, plus "_" (container and compose service names use it).
HOST_NAME = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*")
_FILE_ROUTE = re.compile(r"/file[=/]")  # Gradio's /gradio_api/file=PATH and its older /file/PATH
_PORT = re.compile(r"[0-9]{1,5}")


@dataclass(frozen=True)
class HostPolicy:
    """The hosts a request may be addressed to, and the origins it may come from.

    `names` are host names without a port, in lower case. `any_address` lets any IP
    address through as well (with `--listen`). `api_origins` are whole origins
    (`--api-cors-origin`) allowed to call the API beside those of `names`.
    """

    names: frozenset[str] = LOOPBACK_NAMES
    any_address: bool = False
    api_origins: frozenset[str] = frozenset()

    def allows_host(self, authority: str) -> bool:
        """True when `authority` (a Host header: a name or address, maybe with a port) may be served."""
        host = host_of(authority)
        if host is None:
            return False
        return host in self.names or (self.any_address and is_address(host))

    def allows_origin(self, origin: str, authority: str, path: str) -> bool:
        """True when a request sent from `origin` to `authority` (an allowed Host) may be served."""
        try:
            parts = urlsplit(origin.strip().lower())
        except ValueError:
            return False
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return False  # "null" (sandboxed pages, files) and anything odd
        if parts.netloc == authority.strip().lower():
            return True  # the page came from Hearth itself
        if parts.hostname in self.names:
            return True
        return is_api_path(path) and origin.strip().lower().rstrip("/") in self.api_origins


def host_policy(
    *, listen: bool, allowed_hosts: Iterable[str] = (), api_origins: Iterable[str] = ()
) -> HostPolicy:
    """The policy for the command line's `--listen`, `--allowed-host` and `--api-cors-origin`."""
    names = set(LOOPBACK_NAMES) | {name.lower() for name in allowed_hosts}
    if listen:
        names |= machine_names()
    return HostPolicy(
        names=frozenset(names),
        any_address=listen,
        api_origins=frozenset(origin.lower().rstrip("/") for origin in api_origins),
    )


def machine_names() -> frozenset[str]:
    """This computer's own name, short and long, and its `.local` (mDNS) name."""
    full = socket.gethostname().lower()
    if not full:
        return frozenset()
    short = full.split(".")[0]
    return frozenset({full, short, f"{short}.local"})


def allowed_host_name(value: str) -> str | None:
    """`value` as an `--allowed-host` entry (lower case), or None when it is not a bare host name."""
    name = value.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if is_address(name) or (len(name) <= 253 and HOST_NAME.fullmatch(name)):
        return name
    return None


def host_of(authority: str) -> str | None:
    """The host of a Host header (`name`, `name:port`, `[v6]:port`), lower case; None if malformed."""
    value = authority.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        host, rest = value[1:end], value[end + 1 :]
        if not is_address(host) or (rest and not (rest[0] == ":" and _PORT.fullmatch(rest[1:]))):
            return None
        return host
    host, sep, port = value.partition(":")
    if sep and not _PORT.fullmatch(port):
        return None
    return host or None


def is_address(host: str) -> bool:
    """True for an IP address (v4, or v6 without brackets)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def is_api_path(path: str) -> bool:
    return path == API_PREFIX or path.startswith(API_PREFIX + "/")


@dataclass(frozen=True)
class PrivateFolder:
    """A folder none of whose files are served, except those `public` names.

    `public` gets a file's path relative to `folder` as lower-case parts.
    """

    folder: Path
    public: Callable[[tuple[str, ...]], bool]

    def refuses(self, path: str) -> bool:
        """True when `path` (as a file route names it) is in the folder and not public.

        The path is read as Gradio reads it (made absolute against the working folder)
        and also with its links followed; case is ignored, so a case-insensitive disk
        cannot be used to step around the rule.
        """
        bases = {os.path.abspath(self.folder).lower(), os.path.realpath(self.folder).lower()}
        try:
            candidates = {os.path.abspath(path), os.path.realpath(path)}
        except (ValueError, OSError):  # a NUL byte, say: no route serves it either
            return True
        for candidate in candidates:
            for base in bases:
                inside = _relative_parts(candidate.lower(), base)
                if inside is not None and not self.public(inside):
                    return True
        return False


def _relative_parts(path: str, base: str) -> tuple[str, ...] | None:
    if path == base:
        return ()
    prefix = base if base.endswith(os.sep) else base + os.sep
    if not path.startswith(prefix):
        return None
    return tuple(part for part in path[len(prefix) :].split(os.sep) if part)


class ServeGuard:
    """ASGI middleware that refuses foreign hosts and origins, and private files (see the module)."""

    def __init__(self, app: ASGIApp, policy: HostPolicy, private: Sequence[PrivateFolder] = ()) -> None:
        self.app = app
        self.policy = policy
        self.private = tuple(private)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            reason = self.refusal(scope.get("path", ""), Headers(scope=scope))
            if reason is not None:
                await self._refuse(reason, scope, receive, send)
                return
        await self.app(scope, receive, send)

    def refusal(self, path: str, headers: Headers) -> str | None:
        """Why a request to `path` with `headers` is refused, or None when it may go on."""
        authority = headers.get("host", "")
        if not self.policy.allows_host(authority):
            return (
                "Hearth answers only requests addressed to this computer by a name it knows "
                "(127.0.0.1 or localhost; see --allowed-host)."
            )
        origin = headers.get("origin")
        if origin is not None and not self.policy.allows_origin(origin, authority, path):
            return "Hearth does not answer requests that web pages on other sites send."
        for match in _FILE_ROUTE.finditer(path):
            if any(folder.refuses(path[match.end() :]) for folder in self.private):
                return "That file is not served."
        return None

    async def _refuse(self, reason: str, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # uvicorn answers 403
            return
        response: Response
        if is_api_path(scope.get("path", "")):
            reply = error_reply(ForbiddenHostError(reason))
            response = JSONResponse(reply.body(), reply.status)
        else:
            response = PlainTextResponse(reason, 403)
        await response(scope, receive, send)
