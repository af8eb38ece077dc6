"""Rendering an untrusted chat template on a budget, so that no template can hang Hearth.

A GGUF chat template is code from a downloaded file (or from a server's `/props`).
Jinja's sandbox keeps it away from Python's internals, but not from working forever or
filling memory: two nested `range(100000)` loops never end, `'a' * 1500000000` takes
gigabytes, a template nested three thousand deep overflows the parser. So a template
is fenced twice:

- It runs in a child process, a fresh interpreter (never a fork of this one, whose
  threads hold locks), which this process kills at the wall-clock limit. Where the
  system allows (Linux), the child also caps its own address space (`RLIMIT_AS`) and
  CPU time (`RLIMIT_CPU`, so it ends even if Hearth dies first).
- In the child, `MeteredEnvironment` (`presets.template_sandbox`) counts the work:
  loop turns and calls, the size of what `*`, `+`, `**` and `~` build, each render's
  output, and Python's recursion. The usual abuses stop there at once, with a reason
  that names the limit, the same on every machine.

The child gets the template and a fixed list of conversations as JSON on its stdin
and answers with the rendered texts as JSON on its stdout: nothing it sends back is
unpickled or run here.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from presets.errors import FormatError

log = logging.getLogger(__name__)

# The budget. Real chat templates use a tiny part of each: rendering Hearth's test
# conversations (at most six short messages) takes a few hundred steps, a few kilobytes
# of text and well under a second, start-up of the child included.

#: Wall-clock seconds for the whole child: starting Python, compiling, every render.
TIME_LIMIT_S = 10.0
#: The child's address space (Linux): Python and Jinja take about 25 MiB of it.
MEMORY_LIMIT_BYTES = 512 * 2**20
#: Loop turns plus calls (macros, methods, functions), over all renders of one template.
MAX_STEPS = 100_000
#: Characters one render may write; also the length of any string or list `*`, `+` or
#: `~` may build.
MAX_OUTPUT_CHARS = 1_000_000
#: Bits of an integer `*` or `**` may build (about 20,000 decimal digits).
MAX_INT_BITS = 65_536
#: Python frames in the child (Python's own default). Jinja's parser spends about a dozen
#: per nested parenthesis, so this allows about 70 of them; nested blocks stop sooner, at
#: about 90, where Python refuses the code Jinja compiles them to.
RECURSION_LIMIT = 1_000
#: A longer template is refused before it runs.
MAX_TEMPLATE_CHARS = 1_000_000

_ROOT = Path(__file__).resolve().parent.parent  # the folder that holds `presets`


@dataclass(frozen=True)
class TemplateBudget:
    """What one template may spend. The defaults are the constants above."""

    seconds: float = TIME_LIMIT_S
    memory_bytes: int = MEMORY_LIMIT_BYTES
    steps: int = MAX_STEPS
    output_chars: int = MAX_OUTPUT_CHARS
    int_bits: int = MAX_INT_BITS
    recursion: int = RECURSION_LIMIT
    template_chars: int = MAX_TEMPLATE_CHARS


DEFAULT_BUDGET = TemplateBudget()


class TemplateBudgetError(FormatError):
    """A chat template ran past a limit of its budget, and was stopped."""


TemplateOptions = tuple[tuple[str, bool | str], ...]
"""Switches a template reads beside the messages: `enable_thinking`, `reasoning_effort`."""
# What every rendering sets unless told otherwise, as llama.cpp's server does: thinking
# stays on, so a template that reads `enable_thinking` (DeepSeek-R1's, Qwen3's) writes its
# thinking prompt.
DEFAULT_OPTIONS: TemplateOptions = (("enable_thinking", True),)
REASONING_EFFORTS = ("low", "medium", "high")  # what a `reasoning_effort` may be (gpt-oss's)


@dataclass(frozen=True)
class RenderCall:
    """One rendering of the template: the messages as (role, content), the reply flag, and
    the switches templates read beside them (`enable_thinking`, `reasoning_effort`)."""

    messages: tuple[tuple[str, str], ...]
    add_generation_prompt: bool
    options: TemplateOptions = ()


@dataclass(frozen=True)
class Rendered:
    """What one rendering gave: its text, or why it failed (the template's own error)."""

    text: str = ""
    error: str | None = None


def render_isolated(
    template: str,
    calls: Sequence[RenderCall],
    *,
    bos_token: str = "",
    eos_token: str = "",
    budget: TemplateBudget = DEFAULT_BUDGET,
) -> list[Rendered]:
    """Render `template` once per call in a child process, within `budget`.

    A rendering the template itself refuses (`raise_exception`, a sandbox refusal, a
    missing key) fails alone, in its `Rendered.error`; the others still run.

    Raises:
        TemplateBudgetError: the template ran past a limit; nothing of it is used.
        FormatError: the template is not valid Jinja, or the child could not run it.
    """
    if len(template) > budget.template_chars:
        raise TemplateBudgetError(
            f"The model's chat template is {len(template):,} characters long; "
            f"Hearth runs templates of at most {budget.template_chars:,}."
        )
    request = {
        "template": template,
        "bos_token": bos_token,
        "eos_token": eos_token,
        "calls": [
            [list(map(list, call.messages)), call.add_generation_prompt, dict(call.options)] for call in calls
        ],
        "budget": asdict(budget),
    }
    reply = _run_child(json.dumps(request).encode(), budget)
    if "failure" in reply:
        error = TemplateBudgetError if reply.get("budget") else FormatError
        raise error(str(reply["failure"]))
    renders = reply.get("renders")
    if not isinstance(renders, list) or len(renders) != len(calls):
        raise FormatError("The process rendering the model's chat template gave a damaged answer.")
    return [_rendered(item) for item in renders]


def _rendered(item: Any) -> Rendered:
    if isinstance(item, dict) and isinstance(item.get("text"), str):
        return Rendered(text=item["text"])
    if isinstance(item, dict) and isinstance(item.get("error"), str):
        return Rendered(error=item["error"])
    raise FormatError("The process rendering the model's chat template gave a damaged answer.")


def _run_child(request: bytes, budget: TemplateBudget) -> dict[str, Any]:
    """Start the child, hand it the request, and kill it at the deadline."""
    # -I: no PYTHON* variables, no user site, no current folder on the path.
    code = f"import sys; sys.path.insert(0, {str(_ROOT)!r}); import presets.template_sandbox as t; t.serve()"
    try:
        child = subprocess.Popen(
            [sys.executable, "-I", "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
    except OSError as exc:
        raise FormatError(f"Hearth could not start a process to render the chat template: {exc}") from exc
    try:
        out, _ = child.communicate(request, timeout=budget.seconds)
    except subprocess.TimeoutExpired:
        _end(child)
        log.warning("stopped a chat template still running after %g s", budget.seconds)
        raise TemplateBudgetError(
            f"The model's chat template was still running after {budget.seconds:g} s, "
            "Hearth's limit, and was stopped."
        ) from None
    except BaseException:
        _end(child)
        raise
    try:
        reply = json.loads(out)
    except ValueError:
        reply = None
    if not isinstance(reply, dict):
        log.warning("the chat template process ended with code %s and no answer", child.returncode)
        raise TemplateBudgetError(
            "The process rendering the model's chat template stopped without an answer "
            f"(exit code {child.returncode}): the template is too much for Hearth's limits."
        )
    return reply


def _end(child: subprocess.Popen[bytes]) -> None:
    child.kill()
    child.communicate()  # reap it, and close the pipes
