"""Converting a legacy GGML file from the Models tab, as plain functions of typed values.

A legacy file arrives three ways: dropped on the page (Gradio saves the upload in its
cache), added by path, or picked from the Installed list. `examine` says what it is
and what Hearth suggests for the metadata GGML never stored; `convert_and_load` runs
the conversion as a job on its own thread (progress, Cancel), writes the GGUF under
`<models>/converted/`, loads it, and yields status lines for the page.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from catalog import claims
from catalog.download import human_size
from catalog.errors import CatalogError, ConversionError
from catalog.ggml import (
    ConversionCancelledError,
    ConvertOptions,
    LegacyModel,
    RefusalKind,
    catalog_entry,
    convert_to_gguf,
    default_output_name,
    gguf_alternative,
    inspect_legacy,
    options_for,
    refusal_message,
    size_label,
    where_to_get,
)
from engine.types import LoadOptions, ModelInfo
from services.context import AppContext
from services.models.logic import JobBoard, ModelJob
from services.models.words import md, progress_bar

POLL = 0.25  # seconds between progress lines
DEFAULT_ROPE_BASE = 10000.0  # llama.cpp's default, so it is not written
EPSILON_CHOICES = [("1e-5 · Llama 2", "1e-5"), ("1e-6 · LLaMA 1", "1e-6"), ("5e-6 · not sure", "5e-6")]
MAX_NAME_SUFFIX = 100
Origin = Literal["upload", "library"]


@dataclass(frozen=True)
class PendingConversion:
    """A convertible legacy file shown in the Convert panel.

    It lives in `gr.State` (on the server), so the path the Convert button uses is one
    Hearth chose, never one the page sent back.
    """

    path: Path
    origin: Origin  # an upload copy (deleted once converted) or a library item
    suggested: ConvertOptions
    output_name: str  # a checked file name for <models>/converted/
    library_id: str | None = None  # the registered legacy file, forgotten once converted
    gpt2: bool = False  # a GPT-2 file: no Llama metadata to ask for, and a fixed context


@dataclass(frozen=True)
class Examined:
    """What the Convert panel shows about a legacy file."""

    model: LegacyModel
    message: str  # what will happen, or why it cannot (with the catalog's GGUF alternative)
    pending: PendingConversion | None  # None when the file cannot be converted

    @property
    def convertible(self) -> bool:
        return self.pending is not None


@dataclass(frozen=True)
class FormValues:
    """The metadata form's values, as its widgets give them (an empty number is None)."""

    name: str
    context_length: float | None
    rms_epsilon: str
    gqa: float | None
    rope_freq_base: float | None
    prompt_format_id: str


def examine(ctx: AppContext, path: Path, origin: Origin, library_id: str | None = None) -> Examined:
    """Inspect a legacy file and suggest its metadata from the catalog or its shape.

    Raises:
        ConversionError: not a GGML-family file, or a damaged or truncated one.
    """
    model = inspect_legacy(path)
    if model.refusal is RefusalKind.ALREADY_GGUF and origin == "upload":
        # Hearth does not keep uploads, and the user's own file is where they left it.
        words = (
            f"{path.name} is already a GGUF file, so there is nothing to convert: add it by its path above."
        )
        return Examined(model, words, None)
    if not model.convertible:
        return Examined(model, refusal_message(ctx.catalog, model), None)
    suggested = options_for(model, ctx.catalog)
    pending = PendingConversion(
        path, origin, suggested, default_output_name(model), library_id, gpt2=model.gpt2 is not None
    )
    message = model.explanation
    alternative = gguf_alternative(ctx.catalog, model)
    if alternative is not None and alternative == catalog_entry(ctx.catalog, model):
        message += f" To skip converting, download it as GGUF instead: {where_to_get(alternative)}."
    return Examined(model, message, pending)


def describe_markdown(ctx: AppContext, examined: Examined) -> str:
    """What the file is (format, version, quant, size, architecture), then the verdict and notes."""
    model = examined.model
    rows = [
        ("Format", model.label if model.container == "GGUF" else f"{model.label} (legacy GGML, before GGUF)"),
        ("Quantization", quant_label(model.file_type_name)),
        ("Size", human_size(model.file_size)),
        ("Architecture", architecture_text(model)),
    ]
    entry = catalog_entry(ctx.catalog, model)
    if entry is not None:
        rows.append(("Catalog", entry.name))
    table = "\n".join(f"| {k} | {md(v)} |" for k, v in rows)
    parts = [f"#### {md(model.path.name)}", f"| Legacy file | |\n|---|---|\n{table}", md(examined.message)]
    if examined.pending is not None:
        notes = "\n".join(f"- {md(note)}" for note in examined.pending.suggested.notes)
        parts.append(f"Suggested settings (check them, then press **Convert to GGUF**):\n\n{notes}")
    return "\n\n".join(parts)


def quant_label(file_type_name: str) -> str:
    """ "MOSTLY_Q4_K_M" -> "Q4_K_M", "ALL_F32" -> "F32"."""
    return file_type_name.removeprefix("MOSTLY_").removeprefix("ALL_") or "unknown"


def architecture_text(model: LegacyModel) -> str:
    if model.gpt2 is not None:
        g = model.gpt2
        return (
            f"GPT-2: {g.n_layer} layers, {g.n_embd} wide, {g.n_head} heads, feed-forward {g.n_ff}, "
            f"{g.n_vocab:,} tokens, {g.n_ctx:,}-token context"
        )
    facts = model.llama
    if facts is None:
        return {"gpt2": "GPT-2", "rwkv": "RWKV", "gpt-j": "GPT-J", "neox": "GPT-NeoX"}.get(
            str(model.architecture), "not recognised"
        )
    return (
        f"Llama, {size_label(facts)}: {facts.n_layer} layers, {facts.n_embd} wide, {facts.n_head} heads "
        f"({facts.n_head_kv} key/value), feed-forward {facts.n_ff}, {facts.n_vocab:,} tokens"
    )


def form_values(pending: PendingConversion) -> FormValues:
    """The form's starting values: the suggestions."""
    options = pending.suggested
    return FormValues(
        name=options.name,
        context_length=options.context_length,
        rms_epsilon=epsilon_text(options.rms_epsilon),
        gqa=options.gqa or 1,
        rope_freq_base=options.rope_freq_base or DEFAULT_ROPE_BASE,
        prompt_format_id=options.prompt_format_id,
    )


def epsilon_text(value: float) -> str:
    """1e-05 -> "1e-5", as the form's choices spell it."""
    mantissa, _, exponent = f"{value:.0e}".partition("e")
    return f"{mantissa}e{int(exponent)}" if float(f"{value:.0e}") == value else repr(value)


def options_from_form(ctx: AppContext, pending: PendingConversion, values: FormValues) -> ConvertOptions:
    """The metadata to write, from the form (what it does not show stays as suggested).

    Raises:
        ConversionError: a value that cannot be right, in words.
    """
    try:
        epsilon = float(str(values.rms_epsilon).strip())
    except ValueError:
        raise ConversionError(
            f"The RMS epsilon {values.rms_epsilon!r} is not a number; use 1e-5 for Llama 2, 1e-6 for LLaMA 1."
        ) from None
    if values.prompt_format_id not in ctx.formats:
        raise ConversionError("Pick a prompt format from the list.")
    if values.context_length is None:
        raise ConversionError(
            "Type the context length the model was trained on (Llama 2: 4096, LLaMA 1: 2048)."
        )
    if pending.gpt2 and int(values.context_length) > pending.suggested.context_length:
        # Its position embeddings end there; llama.cpp would crash on a longer prompt.
        raise ConversionError(
            f"This GPT-2 model reads at most {pending.suggested.context_length:,} tokens; "
            "its context length cannot be raised."
        )
    rope = values.rope_freq_base
    return replace(
        pending.suggested,
        name=values.name.strip(),
        context_length=int(values.context_length),
        rms_epsilon=epsilon,
        gqa=pending.suggested.gqa if values.gqa is None else int(values.gqa),
        rope_freq_base=None if not rope or rope == DEFAULT_ROPE_BASE else float(rope),
        prompt_format_id=values.prompt_format_id,
    )


def claim_output_path(folder: Path, name: str) -> Path:
    """`folder/name`, or `stem-2.gguf`, `stem-3.gguf`... when a conversion has that name already.

    The path is claimed until `release_output_path`, so two windows converting the
    same file at once never write to one name.
    """
    stem = Path(name).stem
    candidates = (folder / (name if n == 1 else f"{stem}-{n}.gguf") for n in range(1, MAX_NAME_SUFFIX))
    path = claims.claim_first_free(candidates)
    if path is None:
        raise ConversionError(f"{folder} already holds {MAX_NAME_SUFFIX} conversions named {name}.")
    return path


def release_output_path(path: Path) -> None:
    """End the claim `claim_output_path` made, once the conversion has ended."""
    claims.release(path)


@dataclass
class ConversionOutcome:
    """Filled in by `convert_and_load`: the model it loaded, if it got that far."""

    loaded: ModelInfo | None = None


def convert_and_load(
    ctx: AppContext,
    jobs: JobBoard,
    owner: str,
    pending: PendingConversion,
    options: ConvertOptions,
    outcome: ConversionOutcome | None = None,
) -> Iterator[str]:
    """Yield status lines while the file converts and the result loads; the last says how it went.

    A cancelled conversion ends with a status line and leaves no file; any other
    failure raises. Once converted, the GGUF is in the library even if loading fails.
    """
    run = _ConvertRun(ctx, pending, options, outcome=outcome or ConversionOutcome())
    job = jobs.start(owner, run.work)
    yield f"Converting **{md(pending.path.name)}**…"
    while not job.wait(POLL):
        yield run.status_line(job)
    if isinstance(job.error, ConversionCancelledError):
        yield "Conversion cancelled. Nothing was written, and the original file is untouched."
        return
    if job.error is not None:
        raise job.error
    yield run.status_line(job)


@dataclass
class _ConvertRun:
    """The work of one conversion job: convert, tidy up, load, apply the chosen format."""

    ctx: AppContext
    pending: PendingConversion
    options: ConvertOptions
    outcome: ConversionOutcome
    converted: Path | None = None
    loaded_line: str = ""

    def work(self, job: ModelJob) -> Path:
        folder = self.ctx.library.converted_dir
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConversionError(f"Cannot create {folder}: {exc.strerror or exc}.") from exc
        dst = claim_output_path(folder, self.pending.output_name)
        try:
            convert_to_gguf(self.pending.path, dst, self.options, progress=job.show, cancel=job.cancel)
        finally:
            release_output_path(dst)
        self.converted = dst
        self._tidy_up()
        job.show(0.0, f"Loading {dst.name}")
        info = self.ctx.load_model(dst, self._load_options(), job.show)
        apply_format_choice(self.ctx, self.options.prompt_format_id)
        self.outcome.loaded = info
        detected = self.ctx.detected_format()
        self.loaded_line = (
            f"Loaded **{md(info.name)}** with the {md(detected.format.name)} format ({md(detected.reason)}). "
            f"It suits the {detected.default_tab.title()} tab."
        )
        return dst

    def status_line(self, job: ModelJob) -> str:
        if self.converted is None:
            return f"Converting **{md(self.pending.path.name)}**: {md(job.words)}"
        done = f"Converted to **{md(self.converted.name)}** {progress_bar(1.0)} 100%."
        return f"{done} {self.loaded_line}" if self.loaded_line else f"{done} Loading: {md(job.words)}"

    def _tidy_up(self) -> None:
        """Drop the upload copy, and forget a registered legacy file (the file itself stays)."""
        if self.pending.origin == "upload":
            with suppress(OSError):  # Hearth's own copy in Gradio's upload cache; best effort
                self.pending.path.unlink(missing_ok=True)
        elif self.pending.library_id is not None:
            try:
                item = self.ctx.library.get(self.pending.library_id)
                if item.source == "added" and item.needs_conversion:
                    self.ctx.library.delete(item.id)
            except CatalogError:
                pass  # already gone from the list; nothing to forget

    def _load_options(self) -> LoadOptions:
        base = self.ctx.settings.load_options
        if base.n_ctx is None:  # auto: the plan keeps within the model's trained context
            return base
        return replace(base, n_ctx=min(base.n_ctx, self.options.context_length))


def apply_format_choice(ctx: AppContext, format_id: str) -> None:
    """Use the prompt format chosen in the form for the model just loaded, if it differs."""
    detected = ctx.detected_format()
    if format_id in ctx.formats and format_id != detected.format_id:
        ctx.model_format = replace(
            detected, format_id=format_id, format=ctx.formats[format_id], reason="chosen when converting"
        )
