"""Inert Markdown, checked against a real CommonMark renderer: whatever the text, the
rendered HTML holds no tag the text brought with it."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from services.render import inert_markdown

COMMONMARK = MarkdownIt("commonmark")  # raw HTML on, as in a chat view
PIECES = [
    "`",
    "``",
    "```",
    "~~~",
    "\\",
    "<img src=x onerror=alert(1)>",
    "<b>",
    "\n",
    "\n\n",
    " ",
    "a",
    "- ",
    "> ",
    "    ",
]
FOREIGN_TAG = re.compile(r"<(img|b|script)\b")


def rendered(text: str) -> str:
    return str(COMMONMARK.render(inert_markdown(text)))


def test_known_escapes_from_code_are_closed() -> None:
    tricky = [
        "``<img src=x>`",  # code spans need runs of the same length
        "```a`\n<img src=x>",  # a backtick in the info string: not a fence
        "\\`<img src=x>`",  # an escaped backtick opens nothing
        "`a\nb` <img src=x> `c`",  # a code span may close on the next line
        "- a\n  ```\nfoo <img src=x>",  # a fence in a list item ends with the item
    ]
    for text in tricky:
        assert not FOREIGN_TAG.search(rendered(text)), text


def test_code_keeps_its_text_literal() -> None:
    assert rendered("a `<i>` b") == "<p>a <code>&lt;i&gt;</code> b</p>\n"
    assert rendered("```\n<b>\n```") == "<pre><code>&lt;b&gt;\n</code></pre>\n"


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=24).map("".join))
def test_no_text_renders_a_tag(text: str) -> None:
    assert not FOREIGN_TAG.search(rendered(text))
