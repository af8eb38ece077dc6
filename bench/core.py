"""Core benchmarks, measured side by side in one run, written to docs/benchmarks.md.

    .venv/bin/python bench/core.py            # about two minutes on two cores

1. Streaming throughput: tokens/s of a reply streamed through the running app (over
   gradio_client, the same /send and /reply endpoints the page uses) divided by raw
   llama-cpp-python on the same prompt, settings and threads. Greedy sampling makes
   both produce the same tokens, so the ratio compares equal work.
2. Persisting one message: median milliseconds to append a message to chats that
   already hold 10, 1,000 and 10,000 messages.
3. Start-up: seconds from launching app.py to the first HTTP 200 (the model loads in
   the background, so this excludes the model load, which is reported beside it).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

from gradio_client import Client

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import update_section
from catalog.bundled import bundled_model_path
from engine.llama import open_llama
from engine.manager import ModelManager
from engine.prompts import Turn, chat_parts, fit_prompt
from engine.types import LoadOptions
from presets.formats import Speakers, load_builtin_formats
from presets.samplers import load_builtin_presets, ordered_values
from store.db import Store
from store.records import Message, Session, new_id

THREADS = 2
N_CTX = 2048
MAX_NEW = 400
FORMAT = "alpaca"  # greedy Gemma writes a full-length reply in it; the plain transcript stops early
QUESTION = "Write a long story about a lighthouse keeper and a storm at sea."


def start_app(data_dir: Path, port: int) -> tuple[subprocess.Popen[bytes], float]:
    """Launch app.py; return the process and seconds until its first HTTP 200."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "app.py", "--port", str(port), "--data-dir", str(data_dir),
         "--n-ctx", str(N_CTX), "--threads", str(THREADS)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return proc, time.perf_counter() - started
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("app.py exited during start-up") from None
            time.sleep(0.02)


def bench_startup(runs: int) -> dict[str, float]:
    times = []
    for i in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            proc, seconds = start_app(Path(tmp), 7900 + i)
            times.append(seconds)
            proc.terminate()
            proc.wait(30)
    load = []
    for _ in range(runs):
        manager = ModelManager()
        began = time.perf_counter()
        manager.load(bundled_model_path(), LoadOptions(n_ctx=N_CTX, threads=THREADS))
        load.append(time.perf_counter() - began)
        manager.unload()
    return {"http_200_s": statistics.median(times), "model_load_s": statistics.median(load)}


def bench_persist(samples: int) -> dict[int, float]:
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp))
        for size in (10, 1_000, 10_000):
            now = time.time()
            session = Session(id=new_id(), title=f"{size}", created=now, updated=now)
            store.sessions.restore(
                session, [Message("user", f"message {i} " + "x" * 120) for i in range(size)]
            )
            timings = []
            for i in range(samples):
                began = time.perf_counter()
                store.sessions.append(session.id, Message("assistant", f"reply {i} " + "y" * 120))
                timings.append((time.perf_counter() - began) * 1000)
            results[size] = statistics.median(timings)
    return results


def bench_stream(trials: int) -> dict[str, float]:
    deterministic = load_builtin_presets()["Deterministic"].params
    params = replace(deterministic, max_new_tokens=MAX_NEW)
    fmt = load_builtin_formats()[FORMAT]
    speakers = Speakers("User", "Assistant")
    prompt = fit_prompt(chat_parts(fmt, "", [Turn("user", QUESTION)], speakers), 10**6, len).text
    llm = open_llama(bundled_model_path(), LoadOptions(n_ctx=N_CTX, threads=THREADS))
    tokens = [llm.token_bos(), *llm.tokenize(prompt.encode(), add_bos=False, special=True)]

    def raw() -> tuple[float, str]:
        began = time.perf_counter()
        text = ""
        for chunk in llm.create_completion(
            tokens, max_tokens=MAX_NEW, temperature=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0,
            stop=list(fmt.stop_strings(speakers)), seed=0, stream=True,
        ):  # fmt: skip
            text += chunk["choices"][0]["text"]  # type: ignore[index]
        return time.perf_counter() - began, text.strip()

    with tempfile.TemporaryDirectory() as tmp:
        proc, _ = start_app(Path(tmp), 7950)
        try:
            client = Client("http://127.0.0.1:7950/", verbose=False)
            sliders = ordered_values(params)

            def app() -> tuple[float, str]:
                client.predict("", FORMAT, "Deterministic", *sliders, api_name="/new_chat")
                client.predict(QUESTION, "", FORMAT, "Deterministic", *sliders, api_name="/send")
                began = time.perf_counter()
                job = client.submit(api_name="/reply")
                final = job.result()  # the live reply's last value
                elapsed = time.perf_counter() - began
                content = final[-1]["content"]
                text = content[0]["text"] if isinstance(content, list) else content
                return elapsed, str(text).strip()

            app()  # warm both sides up: first calls pay one-off costs
            raw()
            ratios, app_rates, raw_rates = [], [], []
            for _ in range(trials):
                app_s, app_text = app()
                raw_s, raw_text = raw()
                n_tokens = len(llm.tokenize(raw_text.encode(), add_bos=False))
                if app_text != raw_text:
                    raise RuntimeError(
                        "app and raw llama wrote different greedy text; the comparison is void"
                    )
                app_rates.append(n_tokens / app_s)
                raw_rates.append(n_tokens / raw_s)
                ratios.append(raw_s / app_s)
        finally:
            proc.terminate()
            proc.wait(30)
    return {
        "ratio": statistics.median(ratios),
        "app_tps": statistics.median(app_rates),
        "raw_tps": statistics.median(raw_rates),
        "tokens": float(n_tokens),
    }


def write_report(stream: dict[str, float], persist: dict[int, float], startup: dict[str, float]) -> str:
    return f"""## Core (issue 2)

Measured on {time.strftime("%Y-%m-%d")}, 2 cores, bundled Gemma 3 270M Q4_K_M, {THREADS} threads,
n_ctx {N_CTX}, {FORMAT} format, greedy. Reproduce with `.venv/bin/python bench/core.py`.

| What | Result | Goal |
|---|---|---|
| Streaming tokens/s through the app ÷ raw llama-cpp-python | **{stream["ratio"]:.3f}** \
({stream["app_tps"]:.1f} vs {stream["raw_tps"]:.1f} tokens/s, \
{stream["tokens"]:.0f}-token greedy reply) | ≥ 0.97 |
| Persist one message, chat of 10 messages | **{persist[10]:.2f} ms** (median) | ≤ 5 ms, flat |
| Persist one message, chat of 1,000 messages | **{persist[1000]:.2f} ms** | ≤ 5 ms, flat |
| Persist one message, chat of 10,000 messages | **{persist[10000]:.2f} ms** | ≤ 5 ms, flat |
| Start to first HTTP 200 (model loads in the background) | **{startup["http_200_s"]:.2f} s** \
(model load alone: {startup["model_load_s"]:.2f} s) | — |

The throughput ratio times the same greedy reply both ways, alternating app and raw
runs, and takes the median of the per-pair ratios. The app's time runs from submitting
`/reply` over gradio_client to receiving its last streamed update, so it includes the
queue, the model's generation worker, throttled streaming (4 updates a second) and
saving the reply.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    stream = bench_stream(args.trials)
    persist = bench_persist(200)
    startup = bench_startup(3)
    section = write_report(stream, persist, startup)
    update_section(args.out, "## Core (issue 2)", section)
    print(section)


if __name__ == "__main__":
    main()
