"""Mutated tiny GGUF files, and a runner that loads each one the way Hearth does, in a child.

A mutant is the tiny llama GGUF of `tiny_model.py` with one to three changes to its
header values, vocabulary, tensor table, tensor data or raw bytes. `write_mutant(seed,
index, path)` writes the same file every time, so a failure names its seed and index
and reproduces alone:

    .venv/bin/python tests/gguf_fuzz.py --seed 0 --count 1000      # a full run
    .venv/bin/python tests/gguf_fuzz.py --seed 0 --only 417 --keep  # one mutant, file kept

The mutations are `gguf_mutants.py`'s, with the values they try in `gguf_values.py`,
on the file as editable parts (`gguf_parts.py`).

`ForkRunner` starts one server process that imports llama_cpp once and forks a child per
file. The child does what the app does: the header check and `ModelManager.load`, the
special tokens, one short generation, unload. A child that dies of a signal (llama.cpp
aborting) is reported with the end of its stderr. `--raw` switches Hearth's pre-load
checks (engine/gguf/checks.py) off in the child, to count what they prevent.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _path in (str(ROOT), str(HERE)):
    if _path not in sys.path:
        sys.path.insert(0, _path)


from gguf_mutants import WEIGHTS, Mutator, Skip  # noqa: E402
from gguf_parts import Parts, read_parts, to_bytes  # noqa: E402

from tiny_model import write_tiny_llama  # noqa: E402

BYTE_MUTATIONS = ("truncate", "flip")


@dataclass(frozen=True)
class Mutant:
    seed: int
    index: int
    changes: tuple[str, ...]

    def __str__(self) -> str:
        return f"seed {self.seed} mutant {self.index}: " + "; ".join(self.changes)


_BASE: dict[str, Parts] = {}


def base_parts() -> Parts:
    if "tiny" not in _BASE:
        with tempfile.TemporaryDirectory() as folder:
            _BASE["tiny"] = read_parts(write_tiny_llama(Path(folder) / "base.gguf"))
    return _BASE["tiny"]


def write_mutant(seed: int, index: int, path: Path) -> Mutant:
    """Write mutant `index` of `seed` to `path`: the same bytes on every call."""
    rng = random.Random(f"gguf-fuzz:{seed}:{index}")
    parts = copy.deepcopy(base_parts())
    mutator = Mutator(parts, rng)
    names, weights = list(WEIGHTS), list(WEIGHTS.values())
    changes = []
    for _ in range(rng.choice([1, 1, 1, 1, 2, 2, 3])):
        try:
            changes.append(getattr(mutator, rng.choices(names, weights)[0])())
        except Skip:
            continue
    data = bytearray(to_bytes(parts))
    header_end = len(data) - len(parts.data)
    if rng.random() < 0.08:
        cut = rng.choice([rng.randrange(len(data)), rng.randrange(header_end)])
        changes.append(f"cut at byte {cut} of {len(data)}")
        del data[cut:]
    elif rng.random() < 0.06:
        spots = [rng.randrange(8, header_end) for _ in range(rng.choice([1, 2, 8]))]
        for spot in spots:
            data[spot] = rng.randrange(256)
        changes.append(f"bytes changed at {spots}")
    path.write_bytes(bytes(data))
    return Mutant(seed, index, tuple(changes))


# -- loading in a child process ---------------------------------------------------------

# ASCII, a newline, 2- and 4-byte characters, NUL, and text that looks like special tokens
PROMPT = "Hello, world!\nÜber naïve café 😀 <s> </s>\t42\0"
N_CTX = 256
MAX_NEW_TOKENS = 4
HANG_SECONDS = 600.0  # a hang guard, not a speed limit: loaded CI machines are slow
MEMORY_LIMIT = 6 << 30  # a runaway allocation fails in the child instead of swapping the machine

REFUSED = "refused"  # Hearth's check raised a HearthError before llama.cpp saw the file
LOAD_ERROR = "load error"  # llama.cpp refused the file; Hearth raised a ModelLoadError
GENERATED = "generated"  # it loaded, generated and unloaded
GENERATION_ERROR = "generation error"  # a clean Python exception while generating
UNEXPECTED = "unexpected exception"  # the check or the load raised something not a HearthError
KILLED = "killed"  # the process died of a signal: llama.cpp aborted or crashed
HUNG = "hung"
CLEAN = frozenset({REFUSED, LOAD_ERROR, GENERATED, GENERATION_ERROR})
_CODES = {10: REFUSED, 11: LOAD_ERROR, 12: GENERATED, 13: GENERATION_ERROR, 14: UNEXPECTED}
_RAW_CHECKS = ("check_loadable",)  # engine.gguf.meta functions that --raw turns off


@dataclass(frozen=True)
class Outcome:
    kind: str
    detail: str = ""

    @property
    def clean(self) -> bool:
        return self.kind in CLEAN


def _child(path: Path, raw: bool) -> str:
    """Load `path` as the app does and generate; returns an outcome kind (never raises)."""
    import engine.gguf.meta as gguf_meta
    from engine.manager import ModelManager
    from engine.types import GenerationRequest, LoadOptions
    from presets.errors import HearthError
    from presets.samplers import SamplerParams

    # llama-cpp-python sends stderr to /dev/null while it loads; the child's stderr is a
    # log file, and what llama.cpp says before it aborts is the point of reading it.
    for name in ("llama_cpp.llama", "llama_cpp._internals"):
        if (binding := sys.modules.get(name)) is not None:
            binding.suppress_stdout_stderr = _Loud  # type: ignore[attr-defined]
    if raw:
        for name in _RAW_CHECKS:
            if hasattr(gguf_meta, name):
                setattr(gguf_meta, name, lambda *_a, **_k: None)
    try:
        gguf_meta.model_info(path, gguf_meta.read_header(path))
    except HearthError as exc:
        return _say(REFUSED, exc)
    except Exception as exc:
        return _say(UNEXPECTED, exc)
    manager = ModelManager()
    try:
        manager.load(path, LoadOptions(n_ctx=N_CTX, threads=1))
    except HearthError as exc:
        return _say(LOAD_ERROR, exc)
    except Exception as exc:
        return _say(UNEXPECTED, exc)
    try:
        manager.backend.special_tokens()
        params = SamplerParams(max_new_tokens=MAX_NEW_TOKENS, seed=7)
        run = manager.start(GenerationRequest(PROMPT, params), "fuzz")
        run.wait(HANG_SECONDS)
        manager.unload()
    except Exception as exc:
        return _say(GENERATION_ERROR, exc)
    return _say(GENERATED, "")


class _Loud:
    def __init__(self, disable: bool = False) -> None:
        pass

    def __enter__(self) -> None:
        return None

    def __exit__(self, *_exc: object) -> None:
        return None


def _say(kind: str, detail: object) -> str:
    text = f"{type(detail).__name__}: {detail}" if isinstance(detail, BaseException) else str(detail)
    print(f"@@outcome {json.dumps([kind, text[:600]])}", file=sys.stderr, flush=True)
    return kind


def serve(stdin: IO[str], stdout: IO[str]) -> None:
    """The fork server: one JSON request a line in, one JSON outcome a line out."""
    import engine.llama  # noqa: F401 - imports llama_cpp once, for every child to inherit
    import engine.manager  # noqa: F401

    codes = {kind: code for code, kind in _CODES.items()}
    for line in stdin:
        request = json.loads(line)
        path, raw = Path(request["path"]), bool(request.get("raw"))
        log = path.with_suffix(".stderr")
        pid = os.fork()
        if pid == 0:  # the child
            try:
                resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
                with log.open("wb") as err, open(os.devnull, "wb") as null:
                    os.dup2(null.fileno(), 1)
                    os.dup2(err.fileno(), 2)
                kind = _child(path, raw)
                os._exit(codes[kind])
            except BaseException:
                os._exit(99)
        outcome = _wait(pid, log)
        stdout.write(json.dumps([outcome.kind, outcome.detail]) + "\n")
        stdout.flush()


def _wait(pid: int, log: Path) -> Outcome:
    deadline = time.monotonic() + HANG_SECONDS
    status = 0
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.002)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        return Outcome(HUNG, _tail(log))
    if os.WIFSIGNALED(status):
        return Outcome(KILLED, f"{signal.Signals(os.WTERMSIG(status)).name}: {_tail(log)}")
    code = os.WEXITSTATUS(status)
    if code in _CODES:
        return Outcome(_CODES[code], _reported(log))
    return Outcome(UNEXPECTED, f"exit code {code}: {_tail(log)}")


def _reported(log: Path) -> str:
    for line in reversed(log.read_text(errors="replace").splitlines()):
        if line.startswith("@@outcome "):
            return str(json.loads(line.removeprefix("@@outcome "))[1])
    return ""


def _tail(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    lines = [re.sub(r"\S*/vendor/llama\.cpp/", "", line.strip()) for line in lines[-4:]]
    return " | ".join(line for line in lines if line and not line.startswith("@@"))[:600]


class ForkRunner:
    """Loads model files in forked children of one server process that imported llama_cpp."""

    def __init__(self) -> None:
        env = dict(os.environ, GGML_NO_BACKTRACE="1", PYTHONPATH=f"{ROOT}:{HERE}")
        self._proc = subprocess.Popen(
            [sys.executable, str(Path(__file__)), "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )

    def run(self, path: Path, *, raw: bool = False) -> Outcome:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(json.dumps({"path": str(path), "raw": raw}) + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError("the fuzz server process ended")
        kind, detail = json.loads(line)
        return Outcome(kind, detail)

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        self._proc.wait(30)

    def __enter__(self) -> ForkRunner:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def fuzz(
    seed: int, indices: range | list[int], folder: Path, *, raw: bool = False, keep: bool = False
) -> Iterator[tuple[Mutant, Outcome]]:
    """Write each mutant to `folder`, load it in a child, and yield what happened."""
    with ForkRunner() as runner:
        for index in indices:
            path = folder / f"mutant-{seed}-{index}.gguf"
            mutant = write_mutant(seed, index, path)
            outcome = runner.run(path, raw=raw)
            if not keep:
                path.unlink(missing_ok=True)
                path.with_suffix(".stderr").unlink(missing_ok=True)
            yield mutant, outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--only", type=int, nargs="*", help="run just these mutant indices")
    parser.add_argument("--raw", action="store_true", help="turn engine/gguf/checks.py off in the child")
    parser.add_argument("--keep", action="store_true", help="keep the files in test-artifacts/fuzz-mutants")
    parser.add_argument("--quiet", action="store_true", help="print only failures and the summary")
    args = parser.parse_args(argv)
    if args.serve:
        serve(sys.stdin, sys.stdout)
        return 0
    indices = args.only if args.only else range(args.start, args.start + args.count)
    tally: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as scratch:
        folder = ROOT / "test-artifacts" / "fuzz-mutants" if args.keep else Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        for mutant, outcome in fuzz(args.seed, indices, folder, raw=args.raw, keep=args.keep):
            tally[outcome.kind] += 1
            if not outcome.clean:
                failures[outcome.detail.split("|")[-1].strip()[:120]] += 1
            if not (args.quiet and outcome.clean):
                print(f"{outcome.kind:>20}  {mutant}\n{'':>22}{outcome.detail[:300]}", flush=True)
    print(f"\n{sum(tally.values())} mutants in {time.monotonic() - started:.0f} s (seed {args.seed}, "
          f"{'raw: checks off' if args.raw else 'with Hearth checks'})")  # fmt: skip
    for kind, n in tally.most_common():
        print(f"  {kind}: {n}")
    for what, n in failures.most_common():
        print(f"  {n} x {what}")
    return 1 if any(kind not in CLEAN for kind in tally) else 0


if __name__ == "__main__":
    sys.exit(main())
