"""Chat templates run on a budget: whatever a template does, the caller gets an answer.

Each runaway template must come back as a `TemplateBudgetError` naming the limit it hit,
and Hearth must go on deriving formats from good templates right after.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from typing import Any

import pytest

from hang_guard import returns
from presets import template_budget
from presets.errors import FormatError
from presets.jinja_format import format_from_template
from presets.template_budget import (
    MAX_TEMPLATE_CHARS,
    RenderCall,
    TemplateBudget,
    TemplateBudgetError,
    render_isolated,
)

NESTED_LOOPS = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
HUGE_STRING = "{{ 'a' * 1500000000 }}"
DEEP = "{% if true %}" * 3000 + "x" + "{% endif %}" * 3000
HUGE_LIST = "{% set big = [0] * 100000 * 100000 %}{{ big | length }}"
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        (NESTED_LOOPS, "more than 100,000 steps of work"),
        (HUGE_STRING, "builds a text or list 1,500,000,000 long"),
        (DEEP, "nests or recurses too deeply"),
        (HUGE_LIST, "builds a text or list 10,000,000,000 long"),
        (
            "{% set ns = namespace(s='a') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
            "builds a text or list 1,048,576 long",
        ),
        ("{{ 'ab' + 'c' * 999999 }}", "builds a text or list 1,000,001 long"),
        ("{{ 2 ** (10 ** 9) }}", "builds a number of about"),
        ("{% for i in range(2000) %}{{ 'x' * 1000 }}{% endfor %}", "writes more than 1,000,000 characters"),
        ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "nests or recurses too deeply"),
        ("{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}", "nests or recurses too deeply"),
        # The steps of a recursive loop's inner levels count too.
        (
            "{% for x in range(10) recursive %}{% if loop.depth < 3 %}{{ loop(range(100000)) }}"
            "{% endif %}{% endfor %}",
            "steps of work",
        ),
    ],
)
def test_runaway_templates_are_stopped_with_a_reason(template: str, reason: str) -> None:
    with pytest.raises(TemplateBudgetError, match="chat template") as caught:
        returns(lambda: format_from_template(template))
    assert reason in str(caught.value)
    # Hearth goes on: the next template is derived as usual.
    assert returns(lambda: format_from_template(CHATML)).user.prefix == "<|im_start|>user\n"


def test_a_template_over_budget_only_with_a_system_prompt_is_not_used_without_one() -> None:
    # The derivation probes a system message first; a probe that exhausts the budget must stop
    # everything, not read as "no system role" and derive a format from the other renderings.
    template = (
        "{% if messages[0].role == 'system' %}" + NESTED_LOOPS + "{% endif %}"
        "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}"
    )
    with pytest.raises(TemplateBudgetError, match="steps of work"):
        returns(lambda: format_from_template(template))


def test_the_process_is_killed_at_the_time_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    # With the work count out of the way, only the wall-clock limit can stop the loops.
    started: list[subprocess.Popen[bytes]] = []
    real_popen = subprocess.Popen

    def recording_popen(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        child = real_popen(*args, **kwargs)
        started.append(child)
        return child

    monkeypatch.setattr(template_budget.subprocess, "Popen", recording_popen)
    budget = TemplateBudget(seconds=1, steps=10**15)
    with pytest.raises(
        TemplateBudgetError, match=r"still running after 1 s, Hearth's limit, and was stopped"
    ):
        returns(lambda: format_from_template(NESTED_LOOPS, budget=budget))
    (child,) = started
    assert child.returncode is not None  # ended and reaped, not left spinning
    if sys.platform != "win32":
        assert child.returncode == -signal.SIGKILL


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS is enforced on Linux")
def test_the_memory_cap_stops_what_the_operators_do_not_see() -> None:
    # A filter is not an operator: this one asks for 600 MB, past the child's 512 MiB.
    with pytest.raises(TemplateBudgetError, match="needs more than 512 MiB of memory"):
        returns(lambda: format_from_template("{{ 'a' | center(600000000) }}"))


def test_an_overlong_template_is_refused_before_it_runs() -> None:
    with pytest.raises(TemplateBudgetError, match=f"at most {MAX_TEMPLATE_CHARS:,}"):
        format_from_template("x" * (MAX_TEMPLATE_CHARS + 1))


def test_each_rendering_fails_alone_when_the_template_refuses_it() -> None:
    template = "{% if messages[0].role == 'system' %}{{ raise_exception('no system') }}{% endif %}ok"
    calls = [
        RenderCall((("system", "s"), ("user", "u")), add_generation_prompt=True),
        RenderCall((("user", "u"),), add_generation_prompt=True),
    ]
    refused, fine = render_isolated(template, calls)
    assert (refused.error, fine.text, fine.error) == ("no system", "ok", None)


def test_a_template_that_is_not_jinja_is_a_format_error_not_a_budget_one() -> None:
    with pytest.raises(FormatError, match="not valid Jinja") as caught:
        format_from_template("{% for %}")
    assert not isinstance(caught.value, TemplateBudgetError)
