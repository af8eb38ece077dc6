"""The child process that renders a chat template for `presets.template_budget`.

It is started as a fresh interpreter and serves one request: it caps its own memory,
CPU time and recursion, compiles the template in `MeteredEnvironment`, renders each
conversation, and writes the texts (or why it stopped) as JSON. Hearth's own process
never imports it: template code runs only in the child.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, NoReturn

from jinja2 import Template, TemplateError, nodes
from jinja2.ext import Extension
from jinja2.parser import Parser
from jinja2.runtime import Context, LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

from presets.errors import FormatError
from presets.template_budget import RenderCall, TemplateBudget, TemplateBudgetError, TemplateOptions

_RESERVED = frozenset({"messages", "add_generation_prompt", "bos_token", "eos_token"})


def serve() -> None:
    """The child's entry point: one request on stdin, one answer on stdout, then exit."""
    request = json.loads(sys.stdin.buffer.read())
    budget = TemplateBudget(**request["budget"])
    _limit_process(budget)
    calls = [
        RenderCall(tuple((str(r), str(c)) for r, c in messages), bool(flag), _options(options))
        for messages, flag, options in request["calls"]
    ]
    try:
        renders = _render_all(request["template"], calls, request["bos_token"], request["eos_token"], budget)
        reply: dict[str, Any] = {"renders": renders}
    except TemplateBudgetError as exc:
        reply = {"failure": str(exc), "budget": True}
    except FormatError as exc:
        reply = {"failure": str(exc)}
    sys.stdout.write(json.dumps(reply))  # ASCII only: any text survives the pipe
    sys.stdout.flush()


def _options(raw: dict[str, Any]) -> TemplateOptions:
    """The switches a call sets, each a name no template variable of ours already has."""
    return tuple(
        (str(name), value if isinstance(value, bool) else str(value))
        for name, value in raw.items()
        if str(name).isidentifier() and name not in _RESERVED
    )


def _limit_process(budget: TemplateBudget) -> None:
    sys.setrecursionlimit(budget.recursion)
    try:
        import resource
    except ImportError:  # Windows: the parent's deadline is the fence
        return
    cpu = math.ceil(budget.seconds) + 1
    for kind, limit in (
        (resource.RLIMIT_AS, budget.memory_bytes),
        (resource.RLIMIT_CPU, cpu),
        (resource.RLIMIT_CORE, 0),  # a crash leaves no core file behind
    ):
        try:
            _soft, hard = resource.getrlimit(kind)
            capped = limit if hard == resource.RLIM_INFINITY else min(limit, hard)
            resource.setrlimit(kind, (capped, capped))
        except (ValueError, OSError):  # not supported here: the other fences remain
            pass


def _render_all(
    template: str, calls: Sequence[RenderCall], bos_token: str, eos_token: str, budget: TemplateBudget
) -> list[dict[str, str]]:
    env = MeteredEnvironment(budget)
    with _python_limits(budget):
        compiled = env.metered_template(template)
    results: list[dict[str, str]] = []
    for call in calls:
        variables = {
            **dict(call.options),
            "messages": [{"role": role, "content": content} for role, content in call.messages],
            "add_generation_prompt": call.add_generation_prompt,
            "bos_token": bos_token,
            "eos_token": eos_token,
        }
        try:
            with _python_limits(budget):
                text = env.render_counted(compiled, variables)
        except TemplateBudgetError:
            raise
        # The template is untrusted code: any other failure means only that this rendering failed.
        except Exception as exc:
            results.append({"error": str(exc)})
        else:
            results.append({"text": text})
    return results


@contextmanager
def _python_limits(budget: TemplateBudget) -> Iterator[None]:
    """Turn what Python raises at its own limits (recursion, memory) into budget errors."""
    try:
        yield
    except RecursionError:
        raise TemplateBudgetError(
            "The model's chat template nests or recurses too deeply for Hearth's limit "
            f"({budget.recursion:,} Python frames)."
        ) from None
    except MemoryError:
        raise TemplateBudgetError(
            f"The model's chat template needs more than {budget.memory_bytes / 2**20:,.0f} MiB "
            "of memory, Hearth's limit."
        ) from None


class MeteredEnvironment(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, counting the work a template does against a budget.

    Every loop turn and every call is a step. `*`, `+` and `**` are intercepted (the
    sandbox's `intercepted_binops`) and refuse to build a string, list or integer past
    the budget before building it; `~` is rewritten into a checked join; each render's
    output is counted as it is written. Constant folding is off, so nothing of the
    template runs while it compiles.
    """

    intercepted_binops = frozenset({"*", "+", "**"})

    def __init__(self, budget: TemplateBudget) -> None:
        super().__init__(
            trim_blocks=True,
            lstrip_blocks=True,
            extensions=["jinja2.ext.loopcontrols", _GenerationTag],
            optimized=False,
        )
        self.budget = budget
        self.steps = 0
        # Helpers chat templates never need; fewer objects in reach means less to escape through.
        for name in ("lipsum", "cycler", "joiner"):
            self.globals.pop(name, None)
        # Hugging Face's helpers, as transformers renders chat templates.
        self.globals["raise_exception"] = _raise_exception
        self.globals["strftime_now"] = _strftime_now
        self.filters["tojson"] = _tojson

    def metered_template(self, source: str) -> Template:
        """Compile `source` with a counter around every loop and a checked `~`.

        Raises:
            FormatError: it is not valid Jinja, or Python cannot compile what it becomes.
        """
        try:
            tree = self.parse(source)
            tree = _Meter(self).visit(tree)
            return self.from_string(tree)
        except TemplateError as exc:
            line = getattr(exc, "lineno", None)
            where = f" (line {line})" if line else ""
            raise FormatError(f"The model's chat template is not valid Jinja{where}: {exc}") from exc
        except (RecursionError, MemoryError):
            raise
        except Exception as exc:  # e.g. SyntaxError: "too many statically nested blocks"
            raise FormatError(f"The model's chat template could not be compiled: {exc}") from exc

    def render_counted(self, template: Template, variables: dict[str, Any]) -> str:
        """Render, counting the output as it is written."""
        pieces, written = [], 0
        for piece in template.generate(variables):
            written += len(piece)
            if written > self.budget.output_chars:
                raise TemplateBudgetError(
                    f"The model's chat template writes more than {self.budget.output_chars:,} "
                    "characters for a short conversation, Hearth's limit."
                )
            pieces.append(piece)
        return "".join(pieces)

    # -- the meters --------------------------------------------------------------------

    def step(self) -> None:
        """Count one unit of work: a loop turn or a call."""
        self.steps += 1
        if self.steps > self.budget.steps:
            raise TemplateBudgetError(
                f"The model's chat template does more than {self.budget.steps:,} steps of work "
                "(loop turns and calls), Hearth's limit."
            )

    def metered_iter(self, iterable: Any) -> _Counted:
        """What a rewritten `for` loop iterates: `iterable`, one step per item."""
        return _Counted(self, iterable)

    def metered_concat(self, *parts: Any) -> str:
        """What a rewritten `~` does: join the parts as text, within the size limit."""
        texts = [str(part) for part in parts]
        self._check_length(sum(map(len, texts)))
        return "".join(texts)

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        self.step()
        if isinstance(obj, LoopContext) and args:  # `loop(children)` in a recursive loop
            args = (self.metered_iter(args[0]), *args[1:])
        return super().call(context, obj, *args, **kwargs)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            self._check_repeat(left, right)
        elif operator == "+":
            if _is_sequence(left) and _is_sequence(right):
                self._check_length(len(left) + len(right))
        elif operator == "**" and _is_int(left) and _is_int(right) and right > 0 and abs(left) > 1:
            self._check_bits(right * abs(left).bit_length())
        return super().call_binop(context, operator, left, right)

    def _check_repeat(self, left: Any, right: Any) -> None:
        if _is_sequence(left) and _is_int(right):
            self._check_length(len(left) * right)
        elif _is_int(left) and _is_sequence(right):
            self._check_length(left * len(right))
        elif _is_int(left) and _is_int(right):
            self._check_bits(abs(left).bit_length() + abs(right).bit_length())

    def _check_length(self, length: int) -> None:
        if length > self.budget.output_chars:
            raise TemplateBudgetError(
                f"The model's chat template builds a text or list {length:,} long; "
                f"Hearth's limit is {self.budget.output_chars:,}."
            )

    def _check_bits(self, bits: int) -> None:
        if bits > self.budget.int_bits:
            raise TemplateBudgetError(
                f"The model's chat template builds a number of about {bits:,} bits; "
                f"Hearth's limit is {self.budget.int_bits:,}."
            )


class _Counted:
    """An iterable that counts a step per item (and keeps `len`, so `loop.length` is cheap)."""

    def __init__(self, env: MeteredEnvironment, iterable: Any) -> None:
        self._env, self._iterable = env, iterable

    def __iter__(self) -> Iterator[Any]:
        for item in self._iterable:
            self._env.step()
            yield item

    def __len__(self) -> int:
        return len(self._iterable)


class _Meter(NodeTransformer):
    """Rewrites a parsed template: `for x in y` iterates `metered_iter(y)`, `a ~ b` calls
    `metered_concat(a, b)`. Both are environment attributes, which no template can name
    or shadow."""

    def __init__(self, env: MeteredEnvironment) -> None:
        self._env = env

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = self._call("metered_iter", [node.iter], node)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return self._call("metered_concat", node.nodes, node)

    def _call(self, attribute: str, args: Iterable[nodes.Node], at: nodes.Node) -> nodes.Call:
        call = nodes.Call(nodes.EnvironmentAttribute(attribute), list(args), [], None, None)
        call.set_lineno(at.lineno)
        call.set_environment(self._env)
        return call


class _GenerationTag(Extension):
    """`{% generation %}…{% endgeneration %}`, which transformers adds to Jinja to mark the
    assistant's text for training; rendering a prompt only writes what it encloses."""

    tags = {"generation"}

    def parse(self, parser: Parser) -> list[nodes.Node]:
        next(parser.stream)
        return parser.parse_statements(("name:endgeneration",), drop_needle=True)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_sequence(value: Any) -> bool:
    return isinstance(value, str | bytes | list | tuple)


def _raise_exception(message: str) -> NoReturn:
    raise TemplateError(message)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def _tojson(value: Any, indent: int | None = None) -> str:
    # Like Hugging Face's: no HTML escaping, non-ASCII kept.
    return json.dumps(value, ensure_ascii=False, indent=indent)
