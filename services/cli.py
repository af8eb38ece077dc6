"""The command line's model flags: context, threads, GPU layers, performance settings
and model folders, in Hearth's spelling and in the ones users bring from llama.cpp
(`--ctx-size`, `-ngl`, `--cache-type-k`), KoboldCpp (`--contextsize`, `--gpulayers`,
`--quantkv`, `--flashattention`) and text-generation-webui (`--gradio-auth`).
`app.py` adds them to its parser and turns them into `Settings` fields.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.resources import physical_cores
from engine.types import CACHE_TYPES, FLASH_ATTENTION

QUANT_KV = {0: "f16", 1: "q8_0", 2: "q4_0"}  # KoboldCpp's --quantkv
V_NEEDS_FLASH = "; a quantized V cache turns flash attention on)"


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    """How the model loads: context, threads, GPU layers and performance settings. Other
    apps' spellings are accepted too (llama.cpp's, KoboldCpp's, text-generation-webui's)."""
    parser.add_argument(
        "--n-ctx",
        "--ctx-size",
        "-c",
        "--contextsize",
        type=count_type(),
        metavar="N|auto",
        help="context size in tokens; auto (the default): the model's trained context, up to 8192, "
        "less if memory is short",
    )
    parser.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="CPU threads for generation, and for prompt processing unless --threads-batch "
        "(default: the physical cores)",
    )
    parser.add_argument(
        "--threads-batch",
        "--blasthreads",
        type=int,
        metavar="N",
        help="CPU threads for prompt processing (default: as many as --threads)",
    )
    parser.add_argument(
        "--n-gpu-layers",
        "--gpu-layers",
        "--gpulayers",
        "-ngl",
        type=count_type(all_word=True),
        metavar="N|auto|all",
        help="layers to put on the GPU; all (or -1) for every one; auto (the default): as many as "
        "fit with the context",
    )
    parser.add_argument(
        "--flash-attn",
        "--flashattention",
        "-fa",
        nargs="?",
        const="on",
        default="auto",
        choices=FLASH_ATTENTION,
        help="flash attention: on, off or auto (the default: on with GPU layers); alone, it means on",
    )
    for part in ("k", "v"):
        parser.add_argument(
            f"--cache-type-{part}",
            f"-ct{part}",
            choices=CACHE_TYPES,
            help=f"KV cache type for {part.upper()} (default: f16; q8_0 and q4_0 take about a half "
            "and a quarter of the memory" + (V_NEEDS_FLASH if part == "v" else ")"),
        )
    parser.add_argument(
        "--quantkv",
        type=int,
        choices=sorted(QUANT_KV),
        metavar="N",
        help="KoboldCpp's KV cache setting: 0 f16, 1 q8_0, 2 q4_0, for both K and V",
    )
    parser.add_argument("--no-mmap", "--nommap", action="store_true", help="read the model into memory "
                        "instead of memory-mapping the file")  # fmt: skip
    parser.add_argument(
        "--mlock", "--usemlock", action="store_true", help="keep the model in RAM, never swapped"
    )
    parser.add_argument("--batch-size", "-b", "--blasbatchsize", type=int, default=512, metavar="N",
                        help="prompt tokens evaluated per call (n_batch; default: 512)")  # fmt: skip
    parser.add_argument("--ubatch-size", "-ub", type=int, default=512, metavar="N",
                        help="prompt tokens per compute step (n_ubatch; default: 512)")  # fmt: skip

    parser.add_argument(
        "--model-dir",
        action="append",
        default=[],
        type=Path,
        metavar="DIR",
        help="a folder of GGUF models to list in Models without copying them (text-generation-webui's "
        "user_data/models, LM Studio's models folder); repeatable",
    )


def count_type(*, all_word: bool = False) -> Callable[[str], int | None]:
    """An argparse type for a count that may be "auto" (None) or, with `all_word`, "all" (-1)."""

    def parse(text: str) -> int | None:
        word = text.strip().lower()
        if word == "auto":
            return None
        if all_word and word == "all":
            return -1
        try:
            value = int(word)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a number" + (', "auto" or "all"' if all_word else ' or "auto"')
            ) from None
        if value < (-1 if all_word else 0):
            raise argparse.ArgumentTypeError(f"{value} is too small")
        return value

    return parse


def users(parser: argparse.ArgumentParser, values: list[str]) -> tuple[tuple[str, str], ...]:
    """USER:PASS pairs from every --auth (each may hold several, comma-separated)."""
    users = []
    for value in values:
        for pair in value.split(","):
            user, sep, password = pair.strip().partition(":")
            if not sep or not user or not password:
                parser.error("--auth must look like USER:PASS (or u1:p1,u2:p2), with both parts non-empty.")
            users.append((user, password))
    return tuple(users)


def model_settings(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, Any]:
    """The `Settings` fields the model flags set, checked (exits with a message when not)."""
    for flag, value, low in (
        ("--n-ctx", args.n_ctx, 256),
        ("--threads", args.threads, 1),
        ("--threads-batch", args.threads_batch, 1),
        ("--batch-size", args.batch_size, 1),
        ("--ubatch-size", args.ubatch_size, 1),
    ):
        if value is not None and value < low:
            parser.error(f"{flag} must be at least {low}.")
    for folder in args.model_dir:
        if not folder.expanduser().is_dir():
            parser.error(f"--model-dir {folder} is not a folder.")
    quantized = QUANT_KV[args.quantkv] if args.quantkv is not None else "f16"
    return {
        "n_ctx": args.n_ctx,
        "threads": args.threads or physical_cores(),
        "threads_batch": args.threads_batch,
        "n_gpu_layers": args.n_gpu_layers,
        "flash_attn": args.flash_attn,
        "cache_type_k": args.cache_type_k or quantized,
        "cache_type_v": args.cache_type_v or quantized,
        "use_mmap": not args.no_mmap,
        "use_mlock": args.mlock,
        "n_batch": args.batch_size,
        "n_ubatch": args.ubatch_size,
        "model_dirs": tuple(folder.expanduser().resolve() for folder in args.model_dir),
    }
