"""The wire side of remote engines: an HTTP client whose failures are plain words,
server-sent events, and Stop.

Stop must work even while a server is silent (evaluating a long prompt, say), so
`StreamAbort` watches the cancel event from a thread of its own and shuts the
stream's socket down: the blocked reader wakes at once, and llama.cpp-style servers
see their client leave and stop generating.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from engine.errors import EngineError, RemoteAuthError, RemoteConnectError, RemoteEngineError
from engine.types import FinishReason

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0  # seconds to open a connection
READ_TIMEOUT = 600.0  # seconds of silence allowed: a long prompt on a slow machine takes minutes
_POLL = 0.1  # how often the Stop watcher checks that its stream has ended


class RemoteHTTP:
    """One server's HTTP client: JSON in and out, failures in plain words.

    Until `connected` is set, failures raise RemoteConnectError, so a failed connect
    leaves the previous model loaded; afterwards they raise RemoteEngineError.
    """

    def __init__(self, base_url: str, api_key: str = "", *, api: str) -> None:
        self.base_url = base_url
        self.api = api
        self.connected = False
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        timeout = httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT)
        self.client = httpx.Client(base_url=base_url, headers=headers, timeout=timeout)

    def get(self, path: str, *, optional: bool = False) -> Any:
        """The JSON answer to GET `path`; None if `optional` and the server has no such endpoint."""
        return self._json("GET", path, None, optional)

    def post(self, path: str, body: Any, *, optional: bool = False, timeout: float | None = None) -> Any:
        """The JSON answer to POST `path`; None if `optional` and the endpoint failed or is absent."""
        return self._json("POST", path, body, optional, timeout)

    @contextlib.contextmanager
    def stream(self, path: str, body: Any) -> Iterator[httpx.Response]:
        """POST `path` and yield the response unread, for streaming.

        The connection is not kept for reuse: a stream that was cut off, or that the
        server ended abruptly, would leave a pooled connection that fails the next request.
        """
        headers = {"Connection": "close"}
        with self._failures(), self.client.stream("POST", path, json=body, headers=headers) as response:
            if response.is_error:
                response.read()
                self._check(response, path)
            yield response

    def close(self) -> None:
        """Close the client's connections."""
        self.client.close()

    def _json(self, method: str, path: str, body: Any, optional: bool, timeout: float | None = None) -> Any:
        with self._failures():
            limit = httpx.USE_CLIENT_DEFAULT if timeout is None else timeout
            response = self.client.request(method, path, json=body, timeout=limit)
        if optional and response.is_error and response.status_code not in (401, 403):
            return None
        self._check(response, path)
        try:
            return response.json()
        except ValueError:
            if optional:
                return None
            raise self.error(
                f"{self.base_url}{path} did not answer in JSON. Check the address, and that the "
                f"server speaks the {self.api} API."
            ) from None

    @contextlib.contextmanager
    def _failures(self) -> Iterator[None]:
        where = self.base_url
        try:
            yield
        except httpx.ConnectTimeout as exc:
            raise self.error(
                f"{where} did not answer within {CONNECT_TIMEOUT:g} seconds. "
                "Check the address, and that no firewall is in the way."
            ) from exc
        except httpx.ConnectError as exc:
            raise self.error(
                f"Nothing answered at {where}. Check that the server is running and that the "
                "address and port are right."
            ) from exc
        except httpx.TimeoutException as exc:
            raise self.error(f"{where} stopped answering (nothing for {READ_TIMEOUT:g} seconds).") from exc
        except httpx.HTTPError as exc:
            raise self.error(f"The connection to {where} failed: {str(exc).rstrip('.')}.") from exc

    def _check(self, response: httpx.Response, path: str) -> None:
        if not response.is_error:
            return
        code, detail = response.status_code, server_message(response)
        if code in (401, 403):
            raise self.error(
                f"{self.base_url} refused the request (HTTP {code}): it needs an API key, or a "
                f"different one. {detail}".rstrip(),
                auth=True,
            )
        if code == 404:
            raise self.error(
                f"{self.base_url} has no {path} (HTTP 404). Check the address, and that the server "
                f"speaks the {self.api} API."
            )
        raise self.error(f"{self.base_url}{path} answered HTTP {code}: {detail or response.reason_phrase}")

    def error(self, message: str, *, auth: bool = False) -> EngineError:
        """The error to raise for `message`: a connect error until connected, then an engine error."""
        if self.connected:
            return RemoteEngineError(message)
        return RemoteAuthError(message) if auth else RemoteConnectError(message)


def server_message(response: httpx.Response) -> str:
    """The human part of an error answer: OpenAI's error.message, FastAPI's detail, or the text."""
    try:
        data = response.json()
    except ValueError:
        return response.text.strip()[:300]
    for key in ("error", "detail", "message", "msg"):
        value = data.get(key) if isinstance(data, dict) else None
        if isinstance(value, dict):
            value = value.get("message") or value.get("msg")
        if isinstance(value, str) and value:
            return value[:300]
    return str(data)[:300]


# -- streaming and Stop --------------------------------------------------------------------


def sse_events(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """The JSON payloads of a server-sent event stream, up to `[DONE]`.

    Raises:
        RemoteEngineError: the server sent an error event or a line that is not JSON.
    """
    for line in response.iter_lines():
        if not line.startswith("data:"):
            continue  # event names, keep-alive comments, blank separators
        payload = line[5:].strip()
        if payload == "[DONE]":
            return
        try:
            event = json.loads(payload)
        except ValueError:
            raise RemoteEngineError(
                f"The server sent something that is not JSON: {payload[:80]!r}."
            ) from None
        if isinstance(event, dict) and event.get("error"):
            error = event["error"]
            text = error.get("message", error) if isinstance(error, dict) else error
            raise RemoteEngineError(f"The server failed while generating: {text}")
        if isinstance(event, dict):
            yield event


def reason_of(value: Any) -> FinishReason | None:
    """A server's finish reason; None while it has not given one (KoboldCpp sends "null")."""
    if value in (None, "", "null"):
        return None
    return FinishReason.LENGTH if value == "length" else FinishReason.STOP


class StreamAbort:
    """Ends a streaming response from a watcher thread once `cancel` is set.

    Reading a stream blocks until the server sends something, which takes long while
    it evaluates a big prompt. Shutting the socket down wakes the reader at once, and
    the server sees its client leave. `also` (KoboldCpp's abort call) runs first.
    """

    def __init__(
        self, cancel: threading.Event, response: httpx.Response, also: Callable[[], object] | None = None
    ) -> None:
        self._cancel = cancel
        self._response = response
        self._also = also
        self._fired = False
        self._done = threading.Event()
        self._lock = threading.Lock()

    def __enter__(self) -> StreamAbort:
        threading.Thread(target=self._watch, name="remote-stop", daemon=True).start()
        return self

    def __exit__(self, *_exc: object) -> None:
        with self._lock:  # from here on the watcher leaves the socket alone
            self._done.set()

    def fire(self) -> None:
        """Stop now: the `also` call, then the socket shut down. Runs once, and never after exit."""
        with self._lock:
            if self._fired or self._done.is_set():
                return
            self._fired = True
        if self._also is not None:
            try:
                self._also()
            except EngineError as exc:  # closing the stream below still stops most servers
                log.warning("could not ask the server to stop: %s", exc)
        with self._lock:
            if not self._done.is_set():
                shut_down(self._response)

    def _watch(self) -> None:
        while not self._cancel.wait(_POLL):
            if self._done.is_set():
                return
        self.fire()


def shut_down(response: httpx.Response) -> None:
    """Shut a response's socket down, waking any thread blocked reading it."""
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
