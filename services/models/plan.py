"""Load plans for every load and for the Models tab, and the load settings kept per model.

A plan (`catalog.plan`) decides the "auto" context and GPU layers from the model's shape
(its GGUF header, read once per file version) and the machine as it is now (free RAM,
free GPU memory, whether this llama.cpp build can offload). The settings a user loads a
model with are remembered for that file, in the store's settings, and come back the
next time it is picked.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from catalog.bundled import bundled_model_path
from catalog.entries import CatalogEntry
from catalog.errors import CatalogError
from catalog.fit import check_fit, estimate_for_model, shape_for_entry
from catalog.hardware import Machine, discover
from catalog.library import LibraryItem
from catalog.plan import LoadPlan, plan_load
from catalog.shape import ModelShape, shape_from_header
from engine.gguf import read_header
from engine.types import CACHE_TYPES, FLASH_ATTENTION, LoadOptions
from presets.errors import HearthError
from store.db import Store

SETTINGS_KEY = "model_load_settings"  # the store setting: {model file: {field: value}}
MAX_REMEMBERED = 200


class LoadSettingsError(HearthError):
    """A load setting typed in the Models tab is not one Hearth can use."""


@functools.cache
def offload_supported() -> bool:
    """Whether this llama.cpp build can put layers on a GPU (it is built once per install)."""
    from engine.llama import gpu_offload_supported  # imports llama_cpp: only when asked

    return gpu_offload_supported()


def machine() -> Machine:
    """The machine as it is now: free memory changes, so it is read afresh each time."""
    return discover()


def bundled_file() -> Path | None:
    """The bundled model's file, or None where its package is missing."""
    try:
        return bundled_model_path()
    except CatalogError:
        return None


def shape_of(path: Path) -> ModelShape | None:
    """A GGUF file's shape, read from its header once per version of the file.

    Raises:
        ModelLoadError (and subclasses): the file is missing or not a usable GGUF.
    """
    try:
        stat = path.stat()
    except OSError:
        return _shape(path, 0, 0)  # read_header says what is wrong, in words
    return _shape(path, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _shape(path: Path, _size: int, _mtime_ns: int) -> ModelShape | None:
    return shape_from_header(read_header(path))


def plan_file(path: Path, options: LoadOptions, where: Machine | None = None) -> LoadPlan | None:
    """The plan for a local file; None when its header lacks the model's shape.

    Raises:
        ModelLoadError (and subclasses): the file is missing or not a usable GGUF.
    """
    shape = shape_of(path)
    if shape is None:
        return None
    return plan_load(shape, options, where or machine(), offload_supported=offload_supported())


def plan_entry(
    entry: CatalogEntry, quant: str | None, options: LoadOptions, where: Machine | None = None
) -> LoadPlan | None:
    """The plan for a catalog model before its download, from the catalog's facts."""
    shape = shape_for_entry(entry, quant)
    if shape is None:
        return None
    return plan_load(shape, options, where or machine(), offload_supported=offload_supported())


# -- settings typed in the Models tab -------------------------------------------------------


def parse_count(text: Any, what: str, *, all_word: bool = False, low: int = 0) -> int | None:
    """A context or GPU-layer count from the form: None for "auto", -1 for "all".

    Raises:
        LoadSettingsError: not a number, "auto" (or "all"), or below `low`.
    """
    word = str(text if text is not None else "auto").strip().lower()
    if word in ("", "auto"):
        return None
    if all_word and word in ("all", "-1"):
        return -1
    try:
        value = int(float(word.split()[0]))
    except (ValueError, IndexError):
        allowed = '"auto", "all" or a number' if all_word else '"auto" or a number'
        raise LoadSettingsError(f"{what} must be {allowed}, not {str(text)[:20]!r}.") from None
    if value < low:
        raise LoadSettingsError(f"{what} must be at least {low}.")
    return value


def form_options(
    n_ctx: Any,
    gpu_layers: Any,
    threads: Any,
    threads_batch: Any,
    flash_attn: Any,
    cache_k: Any,
    cache_v: Any,
    use_mmap: Any,
    use_mlock: Any,
    n_batch: Any,
    n_ubatch: Any,
) -> LoadOptions:
    """LoadOptions from the Models tab's load settings, checked.

    Raises:
        LoadSettingsError: a setting out of range, or a choice Hearth does not offer.
    """
    for name, value, allowed in (
        ("Flash attention", flash_attn, FLASH_ATTENTION),
        ("K cache type", cache_k, CACHE_TYPES),
        ("V cache type", cache_v, CACHE_TYPES),
    ):
        if value not in allowed:
            raise LoadSettingsError(f"{name} must be one of {', '.join(allowed)}.")
    return LoadOptions(
        n_ctx=parse_count(n_ctx, "Context size", low=256),
        n_gpu_layers=parse_count(gpu_layers, "GPU layers", all_word=True),
        threads=parse_count(threads, "CPU threads", low=1),
        threads_batch=parse_count(threads_batch, "Prompt threads", low=1),
        flash_attn=flash_attn,
        cache_type_k=cache_k,
        cache_type_v=cache_v,
        use_mmap=bool(use_mmap),
        use_mlock=bool(use_mlock),
        n_batch=parse_count(n_batch, "Batch size", low=1) or 512,
        n_ubatch=parse_count(n_ubatch, "Micro-batch size", low=1) or 512,
    )


def count_text(value: int | None, *, all_word: bool = False) -> str:
    """A count as the form shows it: "auto", "all", or the number."""
    if value is None:
        return "auto"
    return "all" if all_word and value < 0 else str(value)


# -- settings remembered per model ------------------------------------------------------------


def remembered_options(store: Store, path: Path, base: LoadOptions) -> LoadOptions:
    """`base` with the settings last used for this file, where they are still valid."""
    saved = _remembered(store).get(str(path))
    if not isinstance(saved, Mapping):
        return base
    known = {f.name: f for f in fields(LoadOptions)}
    changes: dict[str, Any] = {}
    for name, value in saved.items():
        if name in known and _valid(name, value):
            changes[name] = value
    return replace(base, **changes)


def remember_options(store: Store, path: Path, options: LoadOptions) -> None:
    """Keep the settings a model was loaded with, for the next time it is picked."""
    saved = {k: v for k, v in _remembered(store).items() if k != str(path)}
    saved[str(path)] = {f.name: getattr(options, f.name) for f in fields(LoadOptions)}
    while len(saved) > MAX_REMEMBERED:
        saved.pop(next(iter(saved)))
    store.set_setting(SETTINGS_KEY, saved)


def _remembered(store: Store) -> dict[str, Any]:
    saved = store.get_setting(SETTINGS_KEY, {})
    return dict(saved) if isinstance(saved, Mapping) else {}


def _valid(name: str, value: Any) -> bool:
    """Whether a remembered value (from a file a person could edit) is one LoadOptions takes."""
    if name in ("n_ctx", "threads", "threads_batch"):
        return value is None or (type(value) is int and value >= 1)
    if name == "n_gpu_layers":
        return value is None or (type(value) is int and value >= -1)
    if name in ("n_batch", "n_ubatch"):
        return type(value) is int and value >= 1
    if name == "flash_attn":
        return value in FLASH_ATTENTION
    if name in ("cache_type_k", "cache_type_v"):
        return value in CACHE_TYPES
    return name in ("use_mmap", "use_mlock") and type(value) is bool


# -- plans in words, for the Models tab -------------------------------------------------------


def item_plan_words(item: LibraryItem, options: LoadOptions, where: Machine | None) -> str:
    """An installed model's plan in one line, or its RAM fit where no plan can be made
    (a split model, whose tensors are spread over its parts, or an unknown shape)."""
    if item.info is None or not item.usable:
        return "?"
    try:
        plan = plan_file(item.path, options, where) if where is not None and not item.parts else None
    except HearthError:
        return "?"
    if plan is not None:
        return plan.words()
    try:
        estimate = estimate_for_model(item.info, options.n_ctx, total_size=item.size)
        return check_fit(estimate, where.ram_free if where else None).badge
    except HearthError:
        return "?"  # free memory cannot be read here


def entry_plan(
    entry: CatalogEntry, quant: str | None, options: LoadOptions, installed: Path | None = None
) -> LoadPlan | None:
    """A catalog model's plan: from its file when it is installed, else from the catalog's facts."""
    if installed is not None:
        try:
            return plan_file(installed, options)
        except HearthError:
            pass  # a damaged download: the facts still say what the model needs
    return plan_entry(entry, quant, options)


def needs_and_free(plan: LoadPlan) -> tuple[int, int]:
    """What a plan needs and what is free where it matters: the GPU's memory when layers go
    there, else the RAM (all of it, with unified memory)."""
    estimate, where = plan.estimate, plan.machine
    if estimate.n_gpu_layers and not where.unified:
        return estimate.gpu_bytes, where.gpu_free
    return estimate.total_bytes, where.ram_free


def plan_markdown(path: Path | None, options: LoadOptions) -> str:
    """The plan for the model picked in the Installed list, with what was decided for it."""
    if path is None:
        return ""
    try:
        plan = plan_file(path, options)
    except HearthError as exc:
        return f"**Plan:** cannot plan this file: {exc}"
    if plan is None:
        return "**Plan:** the file does not say its shape; it loads with the settings as they are."
    notes = "".join(f"\n\n{note}" for note in plan.notes)
    return f"**Plan:** {plan.words()}.{notes}"
