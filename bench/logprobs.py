"""What recording token probabilities costs, written to docs/benchmarks.md.

    .venv/bin/python bench/logprobs.py              # about a minute on two cores
    .venv/bin/python bench/logprobs.py --out /tmp/logprobs.md

The bundled Gemma 3 270M writes the same reply with and without `logprobs` (five
alternatives per token), alternately, several times; the figure is tokens per second
with recording on divided by off, from the medians. Its 262,144-token vocabulary is
the worst case: the recorder reads the whole distribution of every next token.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import update_section
from catalog.bundled import bundled_model_path
from engine.llama import LlamaCppBackend
from engine.types import Chunk, Finish, GenerationRequest, LoadOptions
from presets.samplers import SamplerParams

PROMPT = "The lighthouse keeper climbed the stairs and looked out over the sea. He saw"
HEADING = "## Token probabilities (issue 16)"


def tokens_per_second(backend: LlamaCppBackend, logprobs: int | None, tokens: int) -> float:
    backend.clear_cache()  # each run evaluates the same prompt, so only generation differs
    params = SamplerParams(max_new_tokens=tokens, temperature=0.0, seed=1)
    request = GenerationRequest(PROMPT, params, logprobs=logprobs)
    first = time.perf_counter()
    produced = 0
    for item in backend.generate(request, threading.Event()):
        if isinstance(item, Chunk) and not produced:
            first = time.perf_counter()  # generation only: the prompt is done by now
        if isinstance(item, Chunk):
            produced += 1
        if isinstance(item, Finish):
            produced = item.usage.completion_tokens
    elapsed = time.perf_counter() - first
    return (produced - 1) / elapsed if elapsed > 0 and produced > 1 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=96)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    backend = LlamaCppBackend(bundled_model_path(), LoadOptions(n_ctx=1024))
    off: list[float] = []
    on: list[float] = []
    try:
        tokens_per_second(backend, None, 8)  # warm up
        for _ in range(args.trials):
            off.append(tokens_per_second(backend, None, args.tokens))
            on.append(tokens_per_second(backend, 5, args.tokens))
    finally:
        backend.close()
    ratio = statistics.median(on) / statistics.median(off)
    section = "\n".join(
        [
            HEADING,
            "",
            f"`bench/logprobs.py`: the bundled Gemma 3 270M (262,144-token vocabulary), {args.tokens} "
            f"tokens, {args.trials} alternating trials, CPU, greedy.",
            "",
            "| Recording | Median tokens/s |",
            "|---|---|",
            f"| off | {statistics.median(off):.1f} |",
            f"| on (5 alternatives) | {statistics.median(on):.1f} |",
            "",
            f"**On ÷ off: {ratio:.3f}** (goal ≥ 0.95). The recorder reads the raw logits of each "
            "next token only; llama.cpp is never asked for the whole context's (`logits_all`).",
        ]
    )
    update_section(args.out, HEADING, section)
    print(section)


if __name__ == "__main__":
    main()
