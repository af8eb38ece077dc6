"""A script that runs before Gradio's own, put at the top of every HTML page served.

Gradio adds a Blocks' `head` to the page from its own scripts, after they have loaded;
a fix that must be in place before they load goes here (`ui.live.PRELUDE`).
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEAD_TAG = b"<head>"


class PagePrelude:
    """ASGI middleware: inserts `script` right after `<head>` in HTML responses."""

    def __init__(self, app: ASGIApp, script: str) -> None:
        self.app = app
        self.script = script.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "GET":
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        body: list[bytes] = []

        async def rewrite(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                html = headers.get("content-type", "").startswith("text/html")
                if html and "content-encoding" not in headers:
                    start = message  # held until the whole page is in
                    return
                await send(message)
            elif start is not None and message["type"] == "http.response.body":
                body.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                page = b"".join(body).replace(HEAD_TAG, HEAD_TAG + self.script, 1)
                MutableHeaders(scope=start)["content-length"] = str(len(page))
                await send(start)
                await send({"type": "http.response.body", "body": page})
            else:
                await send(message)

        await self.app(scope, receive, rewrite)
