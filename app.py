"""Hearth: a local, offline home for open LLMs.

    python app.py                 # the bundled Gemma 3 270M at http://127.0.0.1:7860
    python app.py --help          # every flag

Flags become `Settings`, settings become an `AppContext`, the context becomes the UI.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path

# Before gradio and huggingface_hub are imported (they read these once): Hearth sends no
# telemetry, neither the Hub's nor gradio's usage analytics.
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
from filelock import FileLock, Timeout  # noqa: E402

from api.deps import ApiDeps, ApiSettings
from api.errors import ApiServerError
from api.guard import PrivateFolder, allowed_host_name, host_policy
from api.live import live_route
from api.prelude import PagePrelude
from api.server import create_api_app, root_app, serve, serve_in_thread
from presets.samplers import DEFAULT_PRESET
from services.cli import add_model_flags, model_settings, users
from services.context import DATA_DIR_ENV, AppContext, Settings, create_context, default_data_dir  # noqa: E402
from store.characters import AVATAR_FILE
from ui.live import PRELUDE, signed_in_check  # noqa: E402
from ui.page import CSS, HEAD, THEME, build  # noqa: E402

log = logging.getLogger("hearth")
API_KEY_ENV = "HEARTH_API_KEY"
ORIGIN = re.compile(r"https?://[^/\s]+")
LOCK_FILE = "hearth.lock"


def parse_args(argv: Sequence[str] | None = None) -> Settings:
    """Turn command-line flags into `Settings`. Exits with a message on bad flags."""
    return parse_flags(argv)[0]


def parse_flags(argv: Sequence[str] | None = None) -> tuple[Settings, ApiSettings | None]:
    """Turn command-line flags into `Settings`, and `ApiSettings` when --api is on."""
    parser = argparse.ArgumentParser(
        prog="app.py",
        description="Hearth: chat, roleplay, co-write and play with local LLMs in your browser.",
    )
    parser.add_argument(
        "--model",
        type=Path,
        metavar="PATH",
        help="GGUF model to load at start (default: the bundled Gemma 3 270M)",
    )
    parser.add_argument(
        "--port",
        "--listen-port",
        type=int,
        default=7860,
        metavar="N",
        help="port to serve on (default: 7860)",
    )
    parser.add_argument(
        "--listen",
        action="store_true",
        help="serve on every network interface (0.0.0.0) instead of 127.0.0.1; requires --auth",
    )
    parser.add_argument(
        "--host",
        "--listen-host",
        metavar="ADDR",
        help="the address to serve on: 127.0.0.1 or localhost (the default) keep Hearth on this "
        "computer; 0.0.0.0 or another address serves your network, as --listen does, and needs --auth",
    )
    parser.add_argument(
        "--auth",
        "--gradio-auth",
        action="append",
        default=[],
        metavar="USER:PASS",
        help="require a user name and password to open the app (and, without --api-key, the API: "
        "the first user's); repeatable, or several at once as u1:p1,u2:p2",
    )
    parser.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="answer requests addressed to this host name too (a reverse proxy's, a DNS name "
        "for this computer); repeatable. Loopback names always pass, and with --listen so do "
        "this computer's name and IP addresses",
    )
    add_model_flags(parser)
    parser.add_argument(
        "--data-dir",
        "--user-data-dir",
        type=Path,
        metavar="DIR",
        help=f"where chats, settings and models live (default: ${DATA_DIR_ENV} or ./user_data)",
    )
    _add_api_flags(parser)
    args = parser.parse_args(argv)
    auth = users(parser, args.auth)
    listen, bind = _where_to_listen(parser, args.listen, args.host)
    if listen and not auth:
        flag = "--listen" if args.host is None else f"--host {args.host}"
        parser.error(f"{flag} exposes Hearth to your network, so it needs --auth USER:PASS as well.")
    allowed_hosts: list[str] = []
    for value in args.allowed_host:
        name = allowed_host_name(value)
        if name is None:
            parser.error(f"--allowed-host {value!r} must be a host name or address, without scheme or port.")
        allowed_hosts.append(name)
    if args.port < 1:
        parser.error("--port must be at least 1.")
    settings = Settings(
        model=args.model,
        port=args.port,
        listen=listen,
        bind=bind,
        auth=auth,
        allowed_hosts=tuple(allowed_hosts),
        data_dir=args.data_dir or default_data_dir(),
        **model_settings(parser, args),
    )
    return settings, _api_settings(parser, args, settings.auth)


def _where_to_listen(
    parser: argparse.ArgumentParser, listen: bool, host: str | None
) -> tuple[bool, str | None]:
    """(listen, address) from --listen and --host: a loopback --host keeps Hearth on this
    computer; any other address serves the network, as --listen does."""
    if host is None:
        return listen, None
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        name = "127.0.0.1"
    try:
        loopback = ipaddress.ip_address(name).is_loopback
    except ValueError:
        if allowed_host_name(name) is None:
            parser.error(f"--host {host!r} must be an address or a host name, without scheme or port.")
        loopback = False
    if loopback and listen:
        parser.error(f"--listen serves every interface, but --host {host} says this computer only: pick one.")
    return not loopback, name


def _add_api_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--api",
        action="store_true",
        help="serve an OpenAI-compatible API at /v1 (on --port unless --api-port)",
    )
    parser.add_argument("--api-port", type=int, metavar="N", help="serve the API on this port instead")
    parser.add_argument(
        "--api-key",
        metavar="KEY",
        help=f"require 'Authorization: Bearer KEY' on every API request (default: ${API_KEY_ENV}); "
        "needed with --listen",
    )
    parser.add_argument(
        "--api-cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="let web pages from this origin (e.g. http://localhost:3000) call the API; repeatable",
    )


def _api_settings(
    parser: argparse.ArgumentParser, args: argparse.Namespace, auth: tuple[tuple[str, str], ...]
) -> ApiSettings | None:
    if not args.api:
        for flag, value in (("--api-port", args.api_port), ("--api-key", args.api_key)):
            if value is not None:
                parser.error(f"{flag} only applies to the API: add --api.")
        if args.api_cors_origin:
            parser.error("--api-cors-origin only applies to the API: add --api.")
        return None
    key = args.api_key if args.api_key is not None else os.environ.get(API_KEY_ENV) or None
    if key is not None and (not key or any(c.isspace() for c in key)):
        parser.error("--api-key must be non-empty and without spaces.")
    if args.api_port is not None and (args.api_port == args.port or not 1 <= args.api_port <= 65535):
        parser.error("--api-port must be a port number other than --port.")
    for origin in args.api_cors_origin:
        if not ORIGIN.fullmatch(origin):
            parser.error(f"--api-cors-origin {origin!r} must be an origin like http://localhost:3000.")
    return ApiSettings(
        port=args.api_port,
        key=key,
        cors_origins=tuple(args.api_cors_origin),
        logins=auth if key is None else (),  # --auth covers the API unless it has a key of its own
    )


def api_deps(ctx: AppContext) -> ApiDeps:
    """What the API needs from the app: the model manager, its detected format, default sampling."""
    return ApiDeps(
        models=ctx.models,
        prompt_format=lambda: ctx.detected_format().format,
        default_params=lambda: ctx.presets()[DEFAULT_PRESET].params,
        loading=lambda: not ctx.wait_ready(0),
        prompt_for=ctx.prompt_for,
    )


def avatar_pictures(ctx: AppContext) -> PrivateFolder:
    """The data folder as the file routes see it: private, but for the avatar pictures.

    Avatars are `characters/<id>/avatar.png` and `personas/<id>.png`; the records,
    chats, cards' assets and models beside them are never served.
    """
    characters = ctx.store.characters.root.name.lower()
    personas = ctx.store.personas.avatars_dir.name.lower()

    def public(parts: tuple[str, ...]) -> bool:
        if len(parts) == 3:
            folder, character_id, name = parts
            return folder == characters and not character_id.startswith(".") and name == AVATAR_FILE
        if len(parts) == 2:
            folder, name = parts
            return folder == personas and not name.startswith(".") and name.endswith(".png")
        return False

    return PrivateFolder(ctx.settings.data_dir, public)


def lock_data_dir(data_dir: Path) -> FileLock:
    """Hold the data folder's lock for as long as this process runs.

    Two Hearths writing one folder would overwrite each other's chats and settings, so
    a second one is refused. The system lets go of the lock when the process ends, even
    if it crashes.
    """
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SystemExit(
            f"Hearth could not start: cannot create the data folder {data_dir}: {exc.strerror}."
        ) from exc
    lock = FileLock(data_dir / LOCK_FILE, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise SystemExit(
            f"Hearth could not start: another Hearth is already using the data folder {data_dir}. "
            "Close it first, or start this one with another --data-dir."
        ) from None
    return lock


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings, api = parse_flags(argv)
    lock = lock_data_dir(settings.data_dir)
    ctx = create_context(settings)
    # The page is served at once; the model loads beside it and the UI waits for it.
    threading.Thread(target=ctx.load_startup_model, name="startup-load", daemon=True).start()
    demo = build(ctx)
    demo.queue(default_concurrency_limit=8)
    # Everything is served through guarded roots (api.guard): foreign hosts and origins are
    # refused, and of the data folder only avatar pictures are ever served.
    policy = host_policy(
        listen=settings.listen,
        allowed_hosts=settings.allowed_hosts,
        api_origins=api.cors_origins if api else (),
    )
    private = [avatar_pictures(ctx)]
    api_app = create_api_app(api_deps(ctx), api, host=settings.host) if api else None
    root = root_app(api_app if api and api.port is None else None, policy, private)
    # Replies stream to the page over a route of their own (services.live), before Gradio's.
    root.router.routes.append(live_route(ctx.live, signed_in_check(root)))
    root.add_middleware(PagePrelude, script=PRELUDE)
    if api is not None:
        log.info("The OpenAI-compatible API is at http://%s:%d/v1", settings.host, api.port or settings.port)
    if api is not None and api.port is not None:
        try:
            serve_in_thread(root_app(api_app, policy, private), settings.host, api.port)
        except ApiServerError as exc:
            raise SystemExit(f"Hearth could not start: {exc}") from exc
    gr.mount_gradio_app(
        root,
        demo,
        "/",
        server_name=settings.host,
        server_port=settings.port,
        auth=list(settings.auth) or None,
        theme=THEME,
        css=CSS,
        head=HEAD,
        show_error=True,
        footer_links=[],
        # The avatars' folders, so Gradio may show them; the guard serves nothing else there.
        allowed_paths=[str(ctx.store.characters.root), str(ctx.store.personas.avatars_dir)],
    )
    # As launch() would: Gradio then checks that files a handler returns are allowed ones.
    demo.has_launched = True
    log.info("Hearth is starting on http://%s:%d", settings.host, settings.port)
    try:
        serve(root, settings.host, settings.port)
    finally:
        lock.release()


if __name__ == "__main__":
    main()
