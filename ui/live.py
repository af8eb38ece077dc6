"""The page follows replies over `/hearth/live/<token>`, not Gradio's event stream.

See `services.live` for why; `bench/browser_stream.py` measures it. Streaming handlers
give Gradio one update carrying a marker (`services.live.marker`) and one with the
final text. This module holds the page's side (`HEAD`: a script that follows each
marker that appears and writes what it receives into place), a fix for a Gradio clock
that would keep the page drawing (`PRELUDE`), and the route's sign-in check.
"""

from __future__ import annotations

from collections.abc import Callable

from gradio.routes import App
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Mount

from services.live import LIVE_PATH

# Runs before Gradio's scripts load (api.prelude), so that they take this frame function.
PRELUDE = """<script>
(() => {
  // Gradio 6.31 leaves a clock running once the page has loaded: the tracker of the
  // page's own loading is removed while its clock still asks for every animation frame,
  // so the browser draws 60 frames a second for as long as the page is open: a tenth of
  // a core on a machine the model keeps busy. Status trackers' clocks tick once a second.
  const frame = window.requestAnimationFrame.bind(window);
  window.requestAnimationFrame = (callback) =>
    (new Error().stack || "").includes("/statustracker-")
      ? setTimeout(() => frame(callback), 1000)
      : frame(callback);
})();
</script>"""

HEAD = """<script>
(() => {
  // An element whose classes name a run ("hearth-run-<token>") shows the run's text as
  // it grows: as its own HTML, or in the text box inside the element "hearth-into-<id>"
  // names. Each event's data is {text}: the whole text to show, or for a box, {append}:
  // what to add to it (api/live.py).
  const RUN = "hearth-run-", INTO = "hearth-into-", PATH = "PATH_TO_LIVE";
  const followed = new Set();
  const named = (el, prefix) => {
    const name = [...el.classList].find((c) => c.startsWith(prefix));
    return name ? name.slice(prefix.length) : null;
  };
  const follow = (el) => {
    const token = named(el, RUN);
    if (!token || followed.has(token)) return;
    followed.add(token);
    const into = named(el, INTO);
    const box = into ? document.querySelector(`#${CSS.escape(into)} textarea`) : null;
    const source = new EventSource(new URL(PATH + token, document.baseURI));
    const stop = () => source.close();
    source.onmessage = (event) => {
      // Gradio replaces the marker with the final text when the run ends: from then on
      // it has the last word.
      if (!el.isConnected) return stop();
      const update = JSON.parse(event.data);
      if (box) {
        const atEnd = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
        if (update.append === undefined) box.value = update.text;
        else box.setRangeText(update.append, box.value.length, box.value.length, "preserve");
        if (atEnd) box.scrollTop = box.scrollHeight;
      } else {
        el.innerHTML = update.text;  // HTML the server rendered inert (services.render)
      }
    };
    source.addEventListener("end", stop);
    source.onerror = stop;
  };
  const scan = (node) => {
    if (!(node instanceof Element)) return;
    if (node.className && String(node.className).includes(RUN)) follow(node);
    node.querySelectorAll(`[class*="${RUN}"]`).forEach(follow);
  };
  new MutationObserver((records) => {
    for (const record of records) record.addedNodes.forEach(scan);
  }).observe(document.documentElement, { childList: true, subtree: true });
})();
</script>""".replace("PATH_TO_LIVE", LIVE_PATH)


def signed_in_check(root: Starlette) -> Callable[[Request], bool]:
    """Whether a request comes from a page signed in to the Gradio app mounted on `root`
    (always, without `--auth`).

    Gradio keeps its sign-ins in its app (`access-token-<id>` cookies, 6.31). The check
    finds that app at request time: it is mounted after the route is added.
    """

    def signed_in(request: Request) -> bool:
        app = next((r.app for r in root.routes if isinstance(r, Mount) and isinstance(r.app, App)), None)
        if app is None:
            return False
        if not app.auth and app.auth_dependency is None:
            return True
        if app.auth_dependency is not None:
            return False  # not used by Hearth: refuse rather than guess
        for name in (f"access-token-{app.cookie_id}", f"access-token-unsecure-{app.cookie_id}"):
            token = request.cookies.get(name)
            if token is not None and app.tokens.get(token) is not None:
                return True
        return False

    return signed_in
