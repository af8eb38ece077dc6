"""`GET /hearth/live/<token>`: a reply as the page shows it, as a server-sent event stream.

See `services.live` for why the page follows replies here and not through Gradio. Each
event's data is JSON: `{"text": …}`, the whole text to show, or `{"append": …}`, what
to add to the plain text shown (a story's box: a long story then costs the page only
what grew); an `end` event closes the stream. The
route is behind the same guard as the page (host, origin) and, with `--auth`, asks for
the page's sign-in as well as the token.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from services.live import LIVE_PATH, Followed, LiveRuns, shown_texts

SignedIn = Callable[[Request], bool]


def live_route(runs: LiveRuns, signed_in: SignedIn) -> Route:
    """The route, for the root app; `signed_in` says whether a request comes from a
    page that has signed in (always true without `--auth`)."""

    async def follow(request: Request) -> Response:
        if not signed_in(request):
            return PlainTextResponse("Sign in to Hearth first.", 401)
        followed = runs.get(request.path_params["token"])
        if followed is None:
            return PlainTextResponse("No such reply: it ended a while ago, or never began.", 404)
        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(events(followed), media_type="text/event-stream", headers=headers)

    return Route(f"/{LIVE_PATH}{{token}}", follow, methods=["GET"])


async def events(followed: Followed) -> AsyncIterator[str]:
    before: str | None = None
    async for shown in shown_texts(followed):
        grown = followed.plain and before is not None and shown.startswith(before)
        update = {"append": shown[len(before) :]} if grown and before else {"text": shown}
        before = shown
        yield f"data: {json.dumps(update)}\n\n"
    yield "event: end\ndata: \n\n"
