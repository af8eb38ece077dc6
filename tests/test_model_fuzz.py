"""No model file may take Hearth down: mutated GGUFs through the real load path, in children.

Every mutant (tests/gguf_fuzz.py) goes through what loading a model does in the app: the
header check, `ModelManager.load` with llama.cpp, the special tokens, one short generation,
unload. Each runs in a forked child, so an abort in llama.cpp kills the child and is
reported instead of ending the test run. The property: Hearth's check refuses the file
with a HearthError, or llama.cpp refuses it with a clean error, or it loads and generates
(or fails with a Python exception); the child never dies of a signal.

A CI-sized run of 120 mutants takes seconds. For the full run:

    HEARTH_FUZZ_MODELS=1000 .venv/bin/python -m pytest tests/test_model_fuzz.py -k mutated
    HEARTH_FUZZ_SEED=7 ...                    # another seed (the default is 0)

A failure names the seed and mutant; `python tests/gguf_fuzz.py --seed S --only I --keep`
writes that file to test-artifacts/fuzz-mutants/ and runs it alone.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_model_checks import BROKEN, SOUND

import gguf_fuzz
from gguf_fuzz import GENERATED, KILLED, REFUSED, ForkRunner
from tiny_model import write_tiny_llama

COUNT = int(os.environ.get("HEARTH_FUZZ_MODELS", "120"))
SEED = int(os.environ.get("HEARTH_FUZZ_SEED", "0"))


@pytest.fixture(scope="module")
def runner() -> Iterator[ForkRunner]:
    with ForkRunner() as runner:
        yield runner


@pytest.mark.slow
def test_mutated_model_files_never_kill_the_process(tmp_path: Path) -> None:
    tally: Counter[str] = Counter()
    failures = []
    for mutant, outcome in gguf_fuzz.fuzz(SEED, range(COUNT), tmp_path):
        tally[outcome.kind] += 1
        if not outcome.clean:
            failures.append(f"{mutant}\n    -> {outcome.kind}: {outcome.detail}")
    summary = f"{COUNT} mutants of seed {SEED}: " + ", ".join(
        f"{n} {kind}" for kind, n in tally.most_common()
    )
    print(summary)
    assert not failures, (
        f"{summary}\n"
        + "\n".join(failures)
        + f"\nRerun one: python tests/gguf_fuzz.py --seed {SEED} --only I --keep"
    )
    # The run exercised every way out, so a runner that never reached llama.cpp fails here.
    assert tally[REFUSED] and tally[gguf_fuzz.LOAD_ERROR] and tally[GENERATED], summary


@pytest.mark.parametrize("name", list(BROKEN))
def test_each_refused_file_would_kill_llama_cpp(tmp_path: Path, runner: ForkRunner, name: str) -> None:
    """Unchecked, llama.cpp dies on each file the checks refuse; checked, Hearth refuses it."""
    path = write_tiny_llama(tmp_path / "broken.gguf", **BROKEN[name][0])
    unchecked = runner.run(path, raw=True)
    assert unchecked.kind == KILLED, unchecked
    checked = runner.run(path)
    assert checked.kind == REFUSED and "cannot be loaded" in checked.detail, checked


# Header values the checks pass in files that lack those layers' or experts' tensors.
INCOMPLETE = {"the most layers llama.cpp has", "experts that fit"}


@pytest.mark.parametrize("name", list(SOUND))
def test_each_sound_file_loads_and_generates(tmp_path: Path, runner: ForkRunner, name: str) -> None:
    """Files the checks pass: they generate, or llama.cpp refuses them with an error."""
    outcome = runner.run(write_tiny_llama(tmp_path / "sound.gguf", **SOUND[name]))
    assert outcome.kind == (gguf_fuzz.LOAD_ERROR if name in INCOMPLETE else GENERATED), outcome


def test_a_broken_chat_template_is_a_load_error(tmp_path: Path, runner: ForkRunner) -> None:
    """llama-cpp-python compiles the file's template while loading; its jinja2 error is
    reported like any other load failure, not raised as is."""
    outcome = runner.run(
        write_tiny_llama(tmp_path / "template.gguf", chat_template="{% for m in messages %}")
    )
    assert outcome.kind == gguf_fuzz.LOAD_ERROR, outcome
    assert "its chat template is broken" in outcome.detail
