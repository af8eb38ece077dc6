"""Choosing a prompt format for a model, in the order the Models tab promises.

1. The catalog entry the model's file or repo matches: the guide's models carry no chat
   template (their GGUFs date from 2023), so the catalog is the only reliable source.
2. The GGUF chat template, matched to one of our formats by its markers, preferring the
   most specific match, when it writes the same bytes as the format derived from the
   template through `presets.jinja_format` (verified byte for byte); otherwise the
   derived format. A template no wraps reproduce is rendered in full for every prompt
   (`presets.template_format`). It runs on a budget of time,
   memory, work, output and depth (`presets.template_budget`): a template that cannot
   be used, however it fails, leaves the choice to the steps below, and the reason
   says why.
3. The model's name, against each format's name patterns.
4. The plain `Name: text` transcript, which every model can continue.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from catalog.entries import Catalog, CatalogEntry
from presets.errors import FormatError
from presets.formats import PLAIN_FORMAT_ID, PromptFormat
from presets.jinja_format import GGUF_TEMPLATE_ID, format_from_template, writes_alike
from presets.template_budget import TemplateBudgetError, TemplateOptions
from presets.template_format import ChatTemplate, is_rendered, marked_format

DEFAULT_TAB = "chat"


@dataclass(frozen=True)
class FormatDetection:
    """The format chosen for a model, why (in words for the UI), and the tab to open."""

    format_id: str  # a format in the given mapping, or GGUF_TEMPLATE_ID for a derived one
    format: PromptFormat
    reason: str
    default_tab: str = DEFAULT_TAB
    catalog_id: str | None = None
    # The model's own template, when the format came from it. When every prompt is rendered
    # with it, `format` is the marked format the prompt is assembled in first (`in_full`).
    template: ChatTemplate | None = None

    @property
    def derived(self) -> bool:
        """True when the format was built from the model's own template, or is it."""
        return self.format_id == GGUF_TEMPLATE_ID or self.in_full

    @property
    def in_full(self) -> bool:
        """True when every prompt is rendered with the model's own template."""
        return is_rendered(self.format)

    def reads_any(self, fmt: PromptFormat, switches: TemplateOptions) -> bool:
        """Whether `fmt` is this model's own and its template reads one of `switches`."""
        template = self.template
        return template is not None and fmt is self.format and any(template.reads(n) for n, _ in switches)

    def with_switches(self, fmt: PromptFormat, switches: TemplateOptions) -> PromptFormat:
        """The format to assemble a prompt in: `fmt`, or, when `fmt` is this model's own and
        its template reads one of `switches` (`enable_thinking`, `reasoning_effort`), the
        marked format, so the template renders the prompt in full with them."""
        if self.template is None or self.in_full or not self.reads_any(fmt, switches):
            return fmt
        described = "The model's own chat template, rendered in full."
        return marked_format(self.template.eos_token, described, fmt.stop)


def detect_model_format(
    formats: Mapping[str, PromptFormat],
    *,
    catalog: Catalog | None = None,
    file_name: str = "",
    model_name: str = "",
    chat_template: str = "",
    bos_token: str = "",
    eos_token: str = "",
) -> FormatDetection:
    """Pick the prompt format for a model.

    Args:
        formats: the formats to choose from (must hold "plain").
        catalog: the guide's catalog; step 1 is skipped without it.
        file_name: the model's file name, local path or Hub repo id.
        model_name: the model's own name (GGUF `general.name`).
        chat_template: the GGUF `tokenizer.chat_template`, or "".
        bos_token, eos_token: the model's BOS/EOS token text, for rendering an unknown template.
    """
    entry = _catalog_entry(catalog, file_name, model_name)
    tab = entry.default_tab if entry else DEFAULT_TAB
    catalog_id = entry.id if entry else None
    if entry is not None and entry.format_id in formats:
        reason = f"the catalog's recommendation for {entry.name}"
        return FormatDetection(entry.format_id, formats[entry.format_id], reason, tab, catalog_id)
    template_note = ""
    if chat_template.strip():
        found = _from_template(formats, chat_template, bos_token, eos_token)
        if isinstance(found, str):
            template_note = f" (its own chat template could not be used: {found})"
        else:
            fmt, reason, template = found
            return FormatDetection(fmt.id, fmt, reason, tab, catalog_id, template=template)
    for name in (file_name, model_name):
        for fmt in formats.values():
            if name and fmt.matches_name(name):
                return FormatDetection(
                    fmt.id, fmt, "guessed from the model's name" + template_note, tab, catalog_id
                )
    reason = "no chat template, so a plain transcript" if not chat_template.strip() else "a plain transcript"
    return FormatDetection(PLAIN_FORMAT_ID, formats[PLAIN_FORMAT_ID], reason + template_note, tab, catalog_id)


def _from_template(
    formats: Mapping[str, PromptFormat], chat_template: str, bos_token: str, eos_token: str
) -> tuple[PromptFormat, str, ChatTemplate | None] | str:
    """The format a chat template asks for, why, and the template when it is rendered in
    full; or why it cannot be used.

    The format derived from the template is exact, so it wins; a format of ours that the
    template's markers name stands in for it when both write the same bytes (it has a
    name the user knows), or when the template cannot be used at all.
    """
    known = best_template_match(formats, chat_template)
    try:
        derived = format_from_template(chat_template, bos_token=bos_token, eos_token=eos_token)
    except TemplateBudgetError as exc:
        if known is not None:
            return known, "matched the model's chat template (which ran past Hearth's limits)", None
        return str(exc)
    except FormatError as exc:
        template = ChatTemplate(chat_template, bos_token, eos_token)
        try:
            template.check()
        except FormatError as failed:
            if known is not None:  # the template is broken, but says which family it belongs to
                return known, "matched the model's chat template (which cannot itself be used)", None
            return f"{exc} {failed}"
        fmt = marked_format(eos_token, f"The model's own chat template, rendered in full: {exc}")
        return fmt, "the model's own chat template, rendered in full for every prompt", template
    template = ChatTemplate(chat_template, bos_token, eos_token)
    if known is not None and writes_alike(known, derived):
        return known, "matched the model's chat template", template
    return derived, "the model's own chat template, which Hearth reproduces exactly", template


def best_template_match(formats: Mapping[str, PromptFormat], chat_template: str) -> PromptFormat | None:
    """The format whose markers all occur in the template, the most specific one when several do.

    More markers wins; then more of the format's own wrap strings found in the template (a
    Llama-2 template holds "[INST]" and "[/INST]" like Mistral's, but also "<<SYS>>" and
    "<</SYS>>"); then longer markers.
    """
    candidates = [fmt for fmt in formats.values() if fmt.matches_template(chat_template)]
    if not candidates:
        return None

    def specificity(fmt: PromptFormat) -> tuple[int, int, int]:
        pieces = {
            piece.strip()
            for wrap in (fmt.system, fmt.user, fmt.assistant)
            for piece in (wrap.prefix, wrap.suffix)
            if piece.strip() and "{{" not in piece
        }
        found = sum(piece in chat_template for piece in pieces)
        return len(fmt.template_markers), found, sum(len(m) for m in fmt.template_markers)

    return max(candidates, key=specificity)


def _catalog_entry(catalog: Catalog | None, *names: str) -> CatalogEntry | None:
    if catalog is None:
        return None
    for name in names:
        entry = catalog.match(name) if name.strip() else None
        if entry is not None:
            return entry
    return None
