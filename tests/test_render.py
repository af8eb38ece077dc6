"""Inert HTML, checked with a real HTML parser as the oracle: whatever the Markdown, the
page gets only allowed elements, no attribute that can fetch or run, and code that shows
its `<` and `&` literally."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from markdown_it.token import Token

from engine.types import ModelInfo
from services.context import AppContext
from services.models import logic as model_logic
from services.render import inert_html
from store.cards import CharacterCard
from ui.chat.side import character_notes

TRACKER = "http://127.0.0.1:9/p.png"
ALLOWED = {
    "p", "em", "strong", "code", "pre", "ul", "ol", "li", "table", "thead", "tbody", "tr", "th", "td",
    "blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "br", "del", "a", "div", "span",
}  # fmt: skip
# A code block's frame and Copy button, and Pygments' token classes inside it.
FRAME_ATTRIBUTES = {
    ("div", "class", "hearth-code"),
    ("span", "class", "hearth-copy-code"),
    ("span", "role", "button"),
    ("span", "tabindex", "0"),
}
TOKEN_CLASS = re.compile(r"^hl-[a-z0-9]+$")
FRAME = '<div class="hearth-code"><span class="hearth-copy-code" role="button" tabindex="0">Copy</span>'
SAFE_HREF = re.compile(r"^(https?://|mailto:)", re.IGNORECASE)
ALIGN = re.compile(r"^text-align:(left|center|right)$")
# Gradio's client-side pass is GFM Markdown with raw HTML on: what a page gets from
# Markdown that is not rendered here first.
GRADIO_LIKE = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
# The parser's own view of the text: what is code, and what that code says.
GFM = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])

PIECES = [
    "|", " | ", "---", "|---|---|", "- ", "* ", "1. ", "> ", "    ", "  ", "\t", "\n", "\n\n",
    "`", "``", "```", "~~~", "\\", "*", "_", "~~", "a", "b c", "<", "&", "&&", "x<y",
    '<img src="http://127.0.0.1:9/p.png">', "<img src=x onerror=alert(1)>", "<script>alert(1)</script>",
    "<video src=v>", "<a href=javascript:alert(1)>a</a>", "<form action=http://127.0.0.1:9/f>",
    "![x](http://127.0.0.1:9/p.png)", "![](http://127.0.0.1:9/q.png)", "[x](javascript:alert(1))",
    "[y](http://ok.example/)", "<http://ok.example/>", "[z](data:image/png;base64,AAAA)",
    "<!-- c -->", "&lt;", "&#60;", "[r]: http://127.0.0.1:9/r.png", "![r]",
    "| a | b |\n|---|---|\n", "- a\n\n", "\n  ", "  ```\n",
]  # fmt: skip
pieces = st.lists(st.sampled_from(PIECES), max_size=30).map("".join)
# Random pieces rarely line up into a table row or a code block in a list item, so
# these two shapes are built on purpose, with the same troublesome text inside.
INNER = ["x", " ", "|", "\\", "<", "&", "&&", '<img src="http://127.0.0.1:9/p.png">', "<script>", "`"]
inner = st.lists(st.sampled_from(INNER), max_size=5).map("".join)
ticks = st.sampled_from(["", "`", "``"])
cell = st.builds(lambda a, text, b: a + text + b, ticks, inner, ticks)
row = st.lists(cell, min_size=1, max_size=4).map("|".join)
table = st.lists(row, min_size=1, max_size=3).map(lambda rows: "| a | b |\n|---|---|\n" + "\n".join(rows))
indent = st.sampled_from(["", " ", "  ", "   ", "    ", "      "])
fenced = st.builds(
    lambda ind, fence, lang, lines: f"{ind}{fence}{lang}\n" + "".join(f"{ind}{line}\n" for line in lines)
    + ind + fence,
    indent, st.sampled_from(["```", "~~~", "````"]), st.sampled_from(["", "python", "html", "js", "nope"]),
    st.lists(inner, max_size=3),
)  # fmt: skip
indented = st.builds(lambda ind, line: f"{ind}    {line}", indent, inner)
listed = st.builds(
    lambda marker, first, blocks: f"{marker}{first}\n\n" + "\n\n".join(blocks),
    st.sampled_from(["- ", "* ", "1. ", "> - ", "- > "]), inner,
    st.lists(fenced | indented, min_size=1, max_size=2),
)  # fmt: skip
markdown_text = pieces | table | listed


class Page(HTMLParser):
    """What a browser would build from the HTML, reduced to what the checks need."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.code_texts: list[str] = []
        self.open_code = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED:
            self.problems.append(f"<{tag}>")
        for name, value in attrs:
            if not allowed_attribute(tag, name, value or ""):
                self.problems.append(f"<{tag} {name}={value!r}>")
        if tag == "code":
            self.open_code += 1
            self.code_texts.append("")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag == "code":
            self.open_code -= 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "code":
            self.open_code -= 1

    def handle_data(self, data: str) -> None:
        if self.open_code:
            self.code_texts[-1] += data

    def handle_comment(self, data: str) -> None:
        self.problems.append(f"<!--{data}-->")

    def handle_decl(self, decl: str) -> None:
        self.problems.append(f"<!{decl}>")

    def handle_pi(self, data: str) -> None:
        self.problems.append(f"<?{data}>")


def allowed_attribute(tag: str, name: str, value: str) -> bool:
    if tag == "a":
        return (name == "href" and bool(SAFE_HREF.match(value))) or (name, value) in {
            ("target", "_blank"),
            ("rel", "noopener noreferrer"),
        }
    if tag in ("th", "td"):
        return name == "style" and bool(ALIGN.match(value))
    if tag == "span" and name == "class" and TOKEN_CLASS.match(value):
        return True
    if (tag, name, value) in FRAME_ATTRIBUTES:
        return True
    return tag == "ol" and name == "start" and value.isdigit()


def page_of(html: str) -> Page:
    page = Page()
    page.feed(html)
    page.close()
    return page


def code_contents(tokens: list[Token]) -> list[str]:
    """The text of every code span and block, in the order the page shows them."""
    found: list[str] = []
    for token in tokens:
        if token.type in ("fence", "code_block"):
            found.append(token.content)
        for child in token.children or []:
            if child.type == "code_inline":
                found.append(child.content)
    return found


def test_a_code_span_in_a_table_lets_no_html_out() -> None:
    """Defect (a): a `|` inside a code span ends a GFM table cell, so the span is not code."""
    text = f'| a | b |\n|---|---|\n| `x|<img src="{TRACKER}">|y` | c |'
    html = inert_html(text)
    assert page_of(html).problems == []
    assert "<img" not in html and "&lt;img src=&quot;http://127.0.0.1:9/p.png&quot;&gt;" in html


def test_code_in_a_list_item_shows_its_text_literally() -> None:
    """Defect (b): fenced and indented code inside a list item keep `<` and `&&`."""
    text = "- step\n\n  ```\n  a < b && c\n  ```\n\n      x <y> && z\n"
    assert page_of(inert_html(text)).code_texts == ["a < b && c\n", "x <y> && z\n"]


def test_images_become_text_and_only_web_links_stay_links() -> None:
    html = inert_html(
        f"![a pixel]({TRACKER}) ![]({TRACKER}) [x](javascript:alert(1)) [y](/gradio_api/file=a) "
        "[z](https://example.org/) <mailto:me@example.org>"
    )
    assert page_of(html).problems == []
    assert html == (
        "<p>a pixel (image) [x](javascript:alert(1)) y "
        '<a href="https://example.org/" target="_blank" rel="noopener noreferrer">z</a> '
        '<a href="mailto:me@example.org" target="_blank" rel="noopener noreferrer">'
        "mailto:me@example.org</a></p>"
    )


def test_the_html_is_one_line_for_gradios_markdown_pass() -> None:
    """One line that opens with a block tag: marked takes it as one HTML block, and
    `inspect.cleandoc` in gr.Chatbot has nothing to dedent."""
    html = inert_html("a\nb\n\n    code\n    \tmore\n\n- x\n\n| t |\n|---|\n| u |\n")
    assert "\n" not in html and "\t" not in html
    assert html == (
        f"<p>a<br>b</p>{FRAME}<pre><code>code&#10;&#9;more&#10;</code></pre></div><ul><li>x</li></ul>"
        "<table><thead><tr><th>t</th></tr></thead><tbody><tr><td>u</td></tr></tbody></table>"
    )


def test_math_reaches_katex_as_written() -> None:
    """`$$…$$` is kept out of Markdown, as Gradio does: its backslashes and `&` stay."""
    html = inert_html("Solve $$a_1 \\\\ b*c*d & x<y$$ now\n\n```\n$$a<b$$\n```")
    code = f"{FRAME}<pre><code>$$a&lt;b$$&#10;</code></pre></div>"
    assert html == f"<p>Solve $$a_1 \\\\ b*c*d &amp; x&lt;y$$ now</p>{code}"
    assert page_of(inert_html("$$<img src=x>$$ \ue0000\ue001")).problems == []


@settings(max_examples=500, deadline=None)
@given(markdown_text)
def test_no_text_renders_an_element_or_attribute_outside_the_allow_list(text: str) -> None:
    html = inert_html(text)
    assert "\n" not in html and (html == "" or re.match(r"<(p|h[1-6]|ul|ol|blockquote|div|table|hr)\b", html))
    assert page_of(html).problems == []


@settings(max_examples=300, deadline=None)
@given(markdown_text)
def test_code_shows_what_the_parser_says_it_holds(text: str) -> None:
    assert page_of(inert_html(text)).code_texts == code_contents(GFM.parse(text))


def test_the_character_sidebar_shows_no_image() -> None:
    card = CharacterCard(
        name=f"![]({TRACKER}) <img src={TRACKER}>",
        tags=[f"![t]({TRACKER})", "[tag](http://127.0.0.1:9/)"],
        creator_notes=f"Hi ![notes]({TRACKER})\n\n| a |\n|---|\n| `x|<img src={TRACKER}>|` |",
    )
    html = character_notes(card)
    assert page_of(html).problems == [] and "<img" not in html
    assert "[tag](http://127.0.0.1:9/)" in html and "![t](http://127.0.0.1:9/p.png)" in html  # as text


def test_a_model_named_like_an_image_shows_its_name(fake_ctx: AppContext) -> None:
    """Names and paths from GGUF metadata go into the facts and summary Markdown through
    `md`: rendered the way Gradio's Markdown pass would (raw HTML on), they stay text."""
    payload = f"![]({TRACKER}) <img src={TRACKER}> [x](javascript:alert(1)) | a\nb"
    info = ModelInfo(
        path=payload, name=payload, architecture=payload, file_size=1, quant=payload, context_length=1
    )
    for markdown in (
        model_logic.facts_markdown(fake_ctx, info),
        model_logic.summary_markdown(fake_ctx, info),
    ):
        html = GRADIO_LIKE.render(markdown)
        assert page_of(html).problems == [] and "<img" not in html
        assert "![](http://127.0.0.1:9/p.png) &lt;img" in html


def test_code_that_names_its_language_is_coloured_and_stays_literal() -> None:
    html = inert_html('```python\nif x < 1 and y: print("<b>&")\n```\n\n```nope\na < b\n```')
    page = page_of(html)
    assert page.problems == []
    assert page.code_texts == ['if x < 1 and y: print("<b>&")\n', "a < b\n"]
    assert '<span class="hl-k">if</span>' in html and '<span class="hl-ow">and</span>' in html
    assert html.count(FRAME) == 2 and "<pre><code>a &lt; b&#10;</code></pre>" in html  # unknown: plain
    long = "x = 1\n" * 4_000  # past COLOUR_MOST: shown plain
    assert "hl-" not in inert_html(f"```python\n{long}```")
