"""Making user, model and card text safe to show.

Messages, transcripts and card text are Markdown, rendered here to HTML by markdown-it
(CommonMark with GFM tables and strikethrough) with raw HTML off: a `<script>` or an
`<img onerror=…>` in a card or a reply is text, because the parser says so, not because
an escaper guessed where code starts. Then, token by token:

- an image becomes its alt text: nothing shown may make the browser fetch a URL;
- a link stays clickable only for http(s) and mailto, opening a new tab with
  rel="noopener noreferrer"; any other link shows as its text;
- code keeps its newlines as `&#10;`, and every other line break is a `<br>`;
- a fenced block that names its language is coloured by Pygments (classes only, styled
  by `code_css`), and every code block carries a Copy button that the page's script
  answers (ui/script.py).

So the HTML is one line that starts with a block tag. Gradio's client-side Markdown
pass (marked) takes such a line as a single HTML block and passes it through untouched,
and `inspect.cleandoc` in gr.Chatbot and gr.Markdown has nothing to dedent. Gradio's
sanitizer stays on in the browser as a second line.

`$$…$$` spans (Gradio's default LaTeX delimiters) are kept out of Markdown, as Gradio
does before its own pass: they go in as escaped text, and KaTeX gets them as written,
backslashes, `*` and `&` included.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

SAFE_SCHEMES = ("http://", "https://", "mailto:")
LINK_ATTRS = {"target": "_blank", "rel": "noopener noreferrer"}
# Gradio's default `latex_delimiters` for gr.Chatbot and gr.Markdown, matched as it does.
MATH = re.compile(r"\$\$[\s\S]+?\$\$")
# Private-use characters mark where a math span was; the text's own are dropped.
MARK_OPEN, MARK_CLOSE = "\ue000", "\ue001"
MARKS = re.compile(f"[{MARK_OPEN}{MARK_CLOSE}]")
PLACED = re.compile(f"{MARK_OPEN}(\\d+){MARK_CLOSE}")
# Longer code is shown uncoloured: a lexer's time grows with its input, and a reply is
# rendered again each time the chat is shown.
COLOUR_MOST = 20_000
# Token classes start with "hl-" so that none meets a class of Gradio's page.
_COLOURS = HtmlFormatter(nowrap=True, classprefix="hl-")
COPY_BUTTON = '<span class="hearth-copy-code" role="button" tabindex="0">Copy</span>'


def inert_html(text: str) -> str:
    """`text` as Markdown, rendered to one line of HTML that cannot run or fetch."""
    spans: list[str] = []

    def hold(match: re.Match[str]) -> str:
        spans.append(match.group())
        return f"{MARK_OPEN}{len(spans) - 1}{MARK_CLOSE}"

    source = MATH.sub(hold, MARKS.sub("", text))
    tokens = _PARSER.parse(source)
    for token in tokens:
        if token.children:
            token.children = _inline(token.children)
    html = _PARSER.renderer.render(tokens, _PARSER.options, {})
    html = html.replace("\n", "").replace("\t", "&#9;")  # newlines left are between tags
    return PLACED.sub(lambda m: _one_line(escapeHtml(spans[int(m.group(1))])), html)


def _inline(tokens: list[Token]) -> list[Token]:
    """Images become their alt text; links to anything but http(s) or mailto become
    their text; strikethrough is <del>, as in GFM."""
    out: list[Token] = []
    dropped: list[bool] = []  # per open link: was it dropped?
    for token in tokens:
        if token.type == "image":
            alt = _ALT.renderInlineAsText(token.children or [], _PARSER.options, {})
            out.append(Token("text", "", 0, content=" ".join(alt.split()) or "(image)"))
        elif token.type == "link_open":
            href = str(token.attrGet("href") or "")
            safe = href.lower().startswith(SAFE_SCHEMES)
            dropped.append(not safe)
            if safe:
                token.attrs = {"href": href, **LINK_ATTRS}
                out.append(token)
        elif token.type == "link_close":
            if not (dropped.pop() if dropped else True):
                out.append(token)
        else:
            if token.type in ("s_open", "s_close"):
                token.tag = "del"
            out.append(token)
    return out


def _one_line(html: str) -> str:
    return html.replace("\n", "&#10;").replace("\t", "&#9;")


def _code(self: RendererHTML, tokens: Sequence[Token], idx: int, *_: object) -> str:
    """A code block with its Copy button, coloured when it names a language Pygments knows."""
    token = tokens[idx]
    words = token.info.split()
    body = _coloured(token.content, words[0]) if words else None
    code = body if body is not None else escapeHtml(token.content)
    return f'<div class="hearth-code">{COPY_BUTTON}<pre><code>{_one_line(code)}</code></pre></div>'


def _coloured(code: str, language: str) -> str | None:
    """`code` as HTML with Pygments' token classes; None for an unknown language or long code."""
    if len(code) > COLOUR_MOST:
        return None
    try:
        lexer = get_lexer_by_name(language, stripnl=False, ensurenl=False)
    except ClassNotFound:
        return None
    return str(highlight(code, lexer, _COLOURS))


def code_css(light: str = "friendly", dark: str = "monokai") -> str:
    """The colours of code tokens, in light and in dark mode (Gradio puts `dark` on <body>)."""
    rules = [
        *HtmlFormatter(style=light, classprefix="hl-").get_token_style_defs(".hearth-code"),
        *HtmlFormatter(style=dark, classprefix="hl-").get_token_style_defs(".dark .hearth-code"),
    ]
    return "\n".join(rules) + "\n"


def _line_break(self: RendererHTML, tokens: Sequence[Token], idx: int, *_: object) -> str:
    return "<br>"


def _as_text(self: RendererHTML, tokens: Sequence[Token], idx: int, *_: object) -> str:
    """Raw HTML is off, so there is none; if some ever came, it would show as text."""
    return _one_line(escapeHtml(tokens[idx].content))


def _parser() -> MarkdownIt:
    options: dict[str, Any] = {"html": False, "linkify": False, "typographer": False, "breaks": True}
    parser = MarkdownIt("commonmark", options).enable(["table", "strikethrough"])
    for name, rule in (
        ("fence", _code),
        ("code_block", _code),
        ("softbreak", _line_break),
        ("hardbreak", _line_break),
        ("html_block", _as_text),
        ("html_inline", _as_text),
    ):
        parser.add_render_rule(name, rule)
    return parser


_PARSER = _parser()
_ALT = RendererHTML()  # for an image's alt text, as plain text
