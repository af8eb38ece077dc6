"""Hearth: a local, offline home for open LLMs.

    python app.py                 # the bundled Gemma 3 270M at http://127.0.0.1:7860
    python app.py --help          # every flag

Flags become `Settings`, settings become an `AppContext`, the context becomes the UI.
"""

from __future__ import annotations

import argparse
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path

# Before huggingface_hub is imported (it reads this once): Hearth sends no telemetry.
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from ui import CSS, THEME, build  # noqa: E402
from ui.context import DATA_DIR_ENV, Settings, create_context, default_data_dir  # noqa: E402

log = logging.getLogger("hearth")


def parse_args(argv: Sequence[str] | None = None) -> Settings:
    """Turn command-line flags into `Settings`. Exits with a message on bad flags."""
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
    parser.add_argument("--port", type=int, default=7860, help="port to serve on (default: 7860)")
    parser.add_argument(
        "--listen",
        action="store_true",
        help="serve on every network interface (0.0.0.0) instead of 127.0.0.1; requires --auth",
    )
    parser.add_argument(
        "--auth", metavar="USER:PASS", help="require this user name and password to open the app"
    )
    parser.add_argument(
        "--n-ctx",
        type=int,
        default=4096,
        metavar="N",
        help="context size in tokens for the model loaded at start (default: 4096)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=2,
        metavar="N",
        help="CPU threads for generation and prompt processing (default: 2)",
    )
    parser.add_argument(
        "--n-gpu-layers",
        type=int,
        default=0,
        metavar="N",
        help="layers to offload to a GPU; -1 for all (default: 0, CPU only)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help=f"where chats, settings and models live (default: ${DATA_DIR_ENV} or ./user_data)",
    )
    args = parser.parse_args(argv)
    if args.listen and not args.auth:
        parser.error("--listen exposes Hearth to your network, so it needs --auth USER:PASS as well.")
    auth = None
    if args.auth is not None:
        user, sep, password = args.auth.partition(":")
        if not sep or not user or not password:
            parser.error("--auth must look like USER:PASS, with both parts non-empty.")
        auth = (user, password)
    for flag, value, low in (
        ("--port", args.port, 1),
        ("--n-ctx", args.n_ctx, 256),
        ("--threads", args.threads, 1),
    ):
        if value < low:
            parser.error(f"{flag} must be at least {low}.")
    return Settings(
        model=args.model,
        port=args.port,
        listen=args.listen,
        auth=auth,
        n_ctx=args.n_ctx,
        threads=args.threads,
        n_gpu_layers=args.n_gpu_layers,
        data_dir=args.data_dir or default_data_dir(),
    )


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = parse_args(argv)
    ctx = create_context(settings)
    # The page is served at once; the model loads beside it and the UI waits for it.
    threading.Thread(target=ctx.load_startup_model, name="startup-load", daemon=True).start()
    demo = build(ctx)
    demo.queue(default_concurrency_limit=8)
    log.info("Hearth is starting on http://%s:%d", settings.host, settings.port)
    demo.launch(
        server_name=settings.host,
        server_port=settings.port,
        auth=settings.auth,
        theme=THEME,
        css=CSS,
        show_error=True,
        footer_links=[],
        # Avatars are shown straight from the data folder; nothing else in it is served.
        allowed_paths=[str(settings.data_dir / "characters"), str(settings.data_dir / "personas")],
    )


if __name__ == "__main__":
    main()
