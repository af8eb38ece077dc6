"""What the Models tab does, as plain functions of typed values (no widgets here).

Downloads run as `ModelJob`s on their own threads, one per browser session, so a
handler can poll their progress and a Cancel button can stop exactly one of them.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from catalog.download import DownloadProgress, human_size
from catalog.entries import CatalogEntry
from catalog.errors import CatalogError, HubError
from catalog.fit import (
    BITS_PER_WEIGHT,
    DEFAULT_N_CTX,
    FitResult,
    Verdict,
    check_fit,
    estimate_for_entry,
    gigabytes,
    rough_estimate,
)
from catalog.hardware import Machine
from catalog.hub import RepoSummary
from catalog.library import LibraryItem
from catalog.naming import GgufChoice, group_gguf_files
from catalog.plan import LoadPlan
from engine.types import LoadOptions, ModelInfo
from services.context import AppContext
from services.models import plan as plans
from services.models.words import md, progress_bar

TAB_IDS = {"chat": "chat", "story": "story", "adventure": "adventure"}


# -- facts and cards -----------------------------------------------------------------------


def facts_markdown(ctx: AppContext, info: ModelInfo | None) -> str:
    """The loaded model's facts as a small table."""
    if info is None:
        return "### No model loaded\nPick one under **Installed**, or download one, and load it."
    detected = ctx.detected_format()
    if info.remote:
        return _remote_facts(ctx, info)
    rows = [
        ("Architecture", info.architecture),
        ("Quantization", info.quant),
        ("File size", human_size(info.file_size)),
        ("Trained context", f"{info.context_length:,} tokens"),
        ("Loaded context", f"{ctx.models.backend.n_ctx:,} tokens"),
        ("Chat template", "yes" if info.chat_template else "none (base model)"),
        ("Prompt format", f"{detected.format.name} ({detected.reason})"),
        ("File", info.path),
    ]
    table = "\n".join(f"| {k} | {md(str(v))} |" for k, v in rows)
    return f"### {md(info.name)}\n\n| Loaded model | |\n|---|---|\n{table}"


def _remote_facts(ctx: AppContext, info: ModelInfo) -> str:
    backend = ctx.models.backend
    detected = ctx.detected_format()
    rows = [
        ("Served from", info.path),
        ("Context", f"{backend.n_ctx:,} tokens"),
        ("Token counts", "estimated" if backend.token_count_is_estimate else "from the server"),
        ("Prompt format", f"{detected.format.name} ({detected.reason})"),
    ]
    table = "\n".join(f"| {k} | {md(str(v))} |" for k, v in rows)
    return f"### {md(info.name)} (remote)\n\n| Remote model | |\n|---|---|\n{table}"


def summary_markdown(ctx: AppContext, info: ModelInfo | None) -> str:
    """One line about the loaded model, above the Models tab's sections."""
    if info is None:
        if ctx.startup_error:
            return md(ctx.startup_error)
        return "**No model loaded.** Pick one below and load it."
    detected = ctx.detected_format()
    return (
        f"**Loaded: {md(info.name)}** · {md(info.quant)} · {ctx.models.backend.n_ctx:,}-token context "
        f"· {md(detected.format.name)} format · suits the {detected.default_tab.title()} tab"
    )


def installed_for(ctx: AppContext, entry: CatalogEntry) -> LibraryItem | None:
    """The usable local copy of a catalog model, if one is installed."""
    for item in ctx.library.items():
        if item.catalog_id == entry.id and item.usable:
            return item
    return None


def installed_catalog_ids(ctx: AppContext) -> set[str]:
    """The catalog entries with a usable local copy, from one listing of the library (each
    listing reads every model's header, so once per page, not once per card)."""
    return {item.catalog_id for item in ctx.library.items() if item.catalog_id and item.usable}


def catalog_card(ctx: AppContext, entry: CatalogEntry, quant: str | None, installed: bool) -> str:
    """One catalog entry as Markdown: what it is for, sizes, memory fit, format and mode."""
    title = f"#### {md(entry.name)}" + (" · installed" if installed else "")
    lines = [title, md(entry.notes)]
    if not entry.runnable:
        alternative = ctx.catalog.find(entry.alternative or "")
        instead = f" Try **{md(alternative.name)}** instead." if alternative else ""
        # A GPT-2 ggml file converts (catalog.ggml.gpt2); other unrunnable ones never will.
        verdict = "Convert it to run it" if entry.architecture == "gpt2" else "Cannot run in Hearth"
        lines.append(f"**{verdict}:** {md(entry.why_not or '')}{instead}")
    facts = [
        f"{entry.parameters / 1e9:g}B parameters",
        f"format: {ctx.formats[entry.format_id].name}",
        f"opens in: {entry.default_tab.title()}",
    ]
    if entry.context_length:
        facts.insert(1, f"{entry.context_length:,}-token context")
    lines.append(" · ".join(facts))
    if entry.runnable and entry.quants:
        sizes = ", ".join(f"{q.quant} {q.size_gb:g} GB" for q in entry.quants if q.size_gb)
        if sizes:
            lines.append(f"Quants: {sizes}")
        plan = entry_plan(ctx, entry, quant)
        lines.append(f"Memory: {plan.words() if plan else entry_fit(ctx, entry, quant).badge}")
    return "\n\n".join(lines)


def entry_plan(ctx: AppContext, entry: CatalogEntry, quant: str | None) -> LoadPlan | None:
    """A catalog model's load plan with the start-up settings, from the catalog's facts (no
    listing of the library per card); the bundled model's from its file, whose 262k-token
    vocabulary the facts do not know."""
    file = plans.bundled_file() if entry.bundled else None
    return plans.entry_plan(entry, quant, ctx.settings.load_options, file)


def catalog_action(
    ctx: AppContext, entry: CatalogEntry, quant: str | None, installed: bool
) -> tuple[str, bool]:
    """The words of a catalog card's button, and whether Hearth advises the click: a model
    too big for the free memory says so on the button itself."""
    if not entry.runnable:
        return "Cannot run", False
    local = installed or entry.bundled
    if entry.quants:
        plan, fit = entry_plan(ctx, entry, quant), entry_fit(ctx, entry, quant)
        needed, free = plans.needs_and_free(plan) if plan else (fit.estimate.total_bytes, fit.available_bytes)
        if (not plan.fits) if plan else fit.verdict is Verdict.TOO_BIG:
            verb = "Load" if local else "Download"
            return f"{verb} anyway (needs ~{gigabytes(needed)}, you have {gigabytes(free)} free)", False
    return ("Load" if local else "Download and load"), True


def entry_fit(ctx: AppContext, entry: CatalogEntry, quant: str | None) -> FitResult:
    return check_fit(estimate_for_entry(entry, quant, ctx.settings.n_ctx))


def within_trained_context(options: LoadOptions, trained: int) -> LoadOptions:
    """`options` with the context capped at the length the model was trained on (0: unknown;
    an "auto" context is left to the planner). Past it a model loses the thread, and some
    (learned positions) cannot go at all."""
    if trained > 0 and options.n_ctx is not None and options.n_ctx > trained:
        return dataclasses.replace(options, n_ctx=trained)
    return options


def context_note(ctx: AppContext, info: ModelInfo, asked: int | None) -> str:
    """A sentence about the loaded context when it is not simply the `asked` one within
    the model's training: capped at the trained length, or beyond it. "" otherwise."""
    n_ctx, trained = ctx.models.backend.n_ctx, info.context_length
    if asked is not None and n_ctx < asked and trained and n_ctx >= trained:
        return (
            f"Its context is {n_ctx:,} tokens, the length it was trained on, not the {asked:,} asked for: "
            "past its training a model loses the thread."
        )
    if trained and n_ctx > trained:
        return (
            f"Its context is {n_ctx:,} tokens, more than the {trained:,} it was trained on: "
            "replies may lose the thread past that."
        )
    return ""


def entry_load_options(ctx: AppContext, entry: CatalogEntry | None) -> LoadOptions:
    """Load options for a model: the start-up settings, within the model's own context."""
    options = ctx.settings.load_options
    if entry is not None and entry.context_length:
        return within_trained_context(options, entry.context_length)
    return options


# -- the Hub ---------------------------------------------------------------------------------


def search_repos(ctx: AppContext, text: str, order: str) -> tuple[list[tuple[str, str]], str]:
    """(label, repo id) choices for a search, and a line saying how it went.

    The Hub being unreachable is not an error here: the line says so in plain words,
    and the catalog stays browsable.
    """
    if not text.strip():
        raise CatalogError("Type a keyword, an owner/repo, or paste a Hugging Face link.")
    sort = order if order in ("downloads", "likes", "recent") else "downloads"
    try:
        repos = ctx.hub.search(text, sort)  # type: ignore[arg-type]
    except HubError as exc:
        return [], str(exc)
    found = f"{len(repos)} repositories found." if repos else "No GGUF repositories match."
    return [(repo_label(r), r.repo_id) for r in repos], found


def repo_label(repo: RepoSummary) -> str:
    updated = repo.last_modified.strftime("%Y-%m-%d") if repo.last_modified else "?"
    return f"{repo.repo_id} · {_count(repo.downloads)} downloads · {_count(repo.likes)} likes · {updated}"


def file_choices(ctx: AppContext, repo_id: str) -> list[GgufChoice]:
    """The repo's GGUF models (split files as one), smallest first."""
    return group_gguf_files(ctx.hub.list_files(repo_id))


def choice_fit(ctx: AppContext, repo_id: str, choice: GgufChoice) -> FitResult:
    """Memory fit of a Hub file: the catalog's facts when the repo is in it, else a rough guess."""
    entry = ctx.catalog.match(repo_id) or ctx.catalog.match(choice.first_part)
    if entry is not None and entry.kv is not None:
        estimate = estimate_for_entry(entry, choice.first_part, ctx.settings.n_ctx)
        if estimate.weights_bytes == choice.total_size:
            return check_fit(estimate)
    bits = BITS_PER_WEIGHT.get((choice.quant or "Q4_K_M").upper(), BITS_PER_WEIGHT["Q4_K_M"])
    n_ctx = ctx.settings.n_ctx or DEFAULT_N_CTX
    return check_fit(rough_estimate(choice.total_size, choice.total_size * 8 / bits, n_ctx))


def choice_words(ctx: AppContext, repo_id: str, choice: GgufChoice) -> str:
    """A Hub file's plan in words (from the catalog's facts when the repo is in it), else its fit."""
    entry = ctx.catalog.match(repo_id) or ctx.catalog.match(choice.first_part)
    if entry is not None and entry.kv is not None and entry.quant(choice.first_part) is not None:
        plan = plans.plan_entry(entry, choice.first_part, ctx.settings.load_options)
        if plan is not None:
            return plan.words()
    return choice_fit(ctx, repo_id, choice).badge


def choice_label(ctx: AppContext, repo_id: str, choice: GgufChoice) -> str:
    parts = f" ({len(choice.parts)} parts)" if choice.is_split else ""
    sees = " + vision projector" if choice.projector else ""
    verdict = choice_fit(ctx, repo_id, choice).verdict.value
    return f"{choice.quant or '?'} · {human_size(choice.total_size)}{parts}{sees} · {verdict} · {choice.name}"


# -- the library -----------------------------------------------------------------------------

LIBRARY_COLUMNS = ["Name", "Source", "Architecture", "Quant", "Size", "Context", "Template", "Plan", "Notes"]
AUTO = LoadOptions(n_ctx=None, n_gpu_layers=None)


def library_rows(
    items: list[LibraryItem],
    loaded: Path | None = None,
    options: Callable[[LibraryItem], LoadOptions] | None = None,
) -> list[list[str]]:
    """Table rows for the Installed list; the loaded model is marked in its notes. Each
    model's plan is made with `options(item)` (its remembered settings; "auto" by default),
    against the machine as it is now."""
    try:
        where: Machine | None = plans.machine()  # once for the whole list
    except (OSError, RuntimeError):
        where = None
    return [
        [
            item.name,
            item.source,
            item.architecture or "?",
            item.quant or "?",
            human_size(item.size),
            f"{item.context_length:,}" if item.context_length else "?",
            "yes" if item.has_chat_template else "no",
            plans.item_plan_words(item, options(item) if options else AUTO, where),
            _item_note(item, loaded),
        ]
        for item in items
    ]


def _item_note(item: LibraryItem, loaded: Path | None) -> str:
    if item.error:
        return item.error
    if item.needs_conversion:
        return "legacy GGML: select it to convert it to GGUF"
    notes = ["loaded"] if loaded is not None and loaded == item.path else []
    if item.projector is not None:
        notes.append(f"sees pictures ({item.projector.name})")
    return "; ".join(notes)


def library_choices(items: list[LibraryItem]) -> list[tuple[str, str]]:
    """(label, id) for the model list: the name, and where the file came from unless the
    name already says it ("Gemma 3 270M (bundled)")."""
    return [(_with_source(item.name, item.source), item.id) for item in items]


def _with_source(name: str, source: str) -> str:
    return name if name.endswith(f"({source})") else f"{name} ({source})"


# -- jobs ------------------------------------------------------------------------------------


@dataclass
class ModelJob:
    """A download (or a conversion) running on its own thread, with progress the UI polls."""

    cancel: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    fraction: float = 0.0
    words: str = "Starting…"
    result: Path | None = None
    error: Exception | None = None

    def report(self, progress: DownloadProgress) -> None:
        self.fraction = progress.fraction
        part = (
            f" (part {progress.part_index + 1} of {progress.part_count})" if progress.part_count > 1 else ""
        )
        self.words = (
            f"{progress_bar(progress.fraction)} {progress.fraction:.0%} · {human_size(progress.bytes_done)} "
            f"of {human_size(progress.bytes_total)} · {human_size(int(progress.rate))}/s{part}"
        )

    def show(self, fraction: float, words: str) -> None:
        """Progress of work that reports a fraction and words (a conversion, a load)."""
        self.fraction = fraction
        self.words = f"{progress_bar(fraction)} {fraction:.0%} · {words}"

    def wait(self, interval: float) -> bool:
        return self.done.wait(interval)


class JobBoard:
    """The job each browser session is running, so Cancel stops only that one.

    `what` names the kind of job ("download", "conversion") in messages and thread names.
    """

    def __init__(self, what: str = "download") -> None:
        self.what = what
        self._jobs: dict[str, ModelJob] = {}
        self._lock = threading.Lock()

    def start(self, owner: str, work: Callable[[ModelJob], Path]) -> ModelJob:
        job = ModelJob()
        with self._lock:
            running = self._jobs.get(owner)
            if running is not None and not running.done.is_set():
                raise CatalogError(
                    f"A {self.what} is already running in this window; wait for it or cancel it."
                )
            self._jobs[owner] = job

        def run() -> None:
            try:
                job.result = work(job)
            except Exception as exc:  # reported to the handler that polls this job
                job.error = exc
            finally:
                job.done.set()

        threading.Thread(target=run, name=f"{self.what}-{owner[:8]}", daemon=True).start()
        return job

    def cancel(self, owner: str) -> bool:
        with self._lock:
            job = self._jobs.get(owner)
        if job is None or job.done.is_set():
            return False
        job.cancel.set()
        return True


def download(ctx: AppContext, job: ModelJob, repo_id: str, choice: GgufChoice | str) -> Path:
    """The work of a download job."""
    return ctx.downloader.download(repo_id, choice, progress=job.report, cancel=job.cancel)


def _count(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.1f}k" if n >= 1e3 else str(n)
