"""What the guide's catalog knows about a legacy file: its entry, its GGUF alternative, better guesses.

The guide links GGML files (`mythomax-l2-13b.ggmlv3.q4_K_M.bin`), so a legacy file a
user brings usually matches a catalog entry by its name. That entry knows what GGML
never stored (the trained context, the prompt format) and where the model's GGUF lives
today, which is what a refused file should point to.
"""

from __future__ import annotations

from dataclasses import replace

from catalog.entries import Catalog, CatalogEntry
from catalog.ggml.detect import LegacyModel, RefusalKind
from catalog.ggml.options import ConvertOptions, suggest_options


def catalog_entry(catalog: Catalog | None, model: LegacyModel) -> CatalogEntry | None:
    """The catalog entry the legacy file's name belongs to, or None."""
    return catalog.match(model.path.name) if catalog is not None else None


def gguf_alternative(catalog: Catalog | None, model: LegacyModel) -> CatalogEntry | None:
    """The runnable catalog entry to offer instead of this file, or None.

    The file's own entry when it is runnable (the same model, as GGUF); else the
    alternative that entry names (RWKV-4 Raven 7B: Nous-Hermes Llama 2 7B); else the one
    detection chose for the file's kind (GPT-2: Spring Dragon).
    """
    if catalog is None or model.refusal is RefusalKind.ALREADY_GGUF:
        return None
    entry = catalog_entry(catalog, model)
    candidates = [entry.id if entry.runnable else entry.alternative] if entry is not None else []
    candidates.append(model.alternative_id)
    for entry_id in candidates:
        found = catalog.find(entry_id) if entry_id else None
        if found is not None and found.runnable:
            return found
    return None


def where_to_get(entry: CatalogEntry) -> str:
    """The entry's name and where it is: its GGUF repo in the catalog, or the bundled model."""
    if entry.bundled or not entry.gguf_repo:
        return f"{entry.name}, which ships with Hearth"
    return f"{entry.name} ({entry.gguf_repo}) under Models → Recommended"


def alternative_sentence(alternative: CatalogEntry, same_model: bool) -> str:
    """One sentence pointing at a catalog entry, for a refused file."""
    if same_model:
        return f"The catalog has this model as GGUF: {where_to_get(alternative)}."
    return f"The catalog's closest runnable model is {where_to_get(alternative)}."


def refusal_message(catalog: Catalog | None, model: LegacyModel) -> str:
    """The plain explanation of why a file cannot convert, naming the catalog's GGUF alternative."""
    alternative = gguf_alternative(catalog, model)
    if alternative is None or (alternative.gguf_repo and alternative.gguf_repo in model.explanation):
        return model.explanation
    entry = catalog_entry(catalog, model)
    same = entry is not None and entry.id == alternative.id
    return f"{model.explanation} {alternative_sentence(alternative, same)}"


def options_for(model: LegacyModel, catalog: Catalog | None) -> ConvertOptions:
    """Suggested metadata for a convertible file, from its catalog entry when the name matches one.

    The entry's GGML repository is a better hint than a file name (it names the
    generation: "L2"), and its trained context and prompt format are facts, not guesses.

    Raises:
        LegacyRefusalError: the file cannot be converted.
    """
    entry = catalog_entry(catalog, model)
    options = suggest_options(model, (entry.guide_repo or entry.name) if entry else None)
    if entry is None:
        return options
    notes = [note for note in options.notes if not note.startswith("Prompt format")]
    context = options.context_length
    # A GPT-2 file's context is fixed by its position embeddings; nothing may raise it.
    if entry.context_length and options.rope_linear_scale is None and model.gpt2 is None:
        context = entry.context_length
        notes.append(f"{context:,}-token context: what the catalog says {entry.name} was trained on.")
    notes.append(f"Prompt format {entry.format_id}: the catalog's recommendation for {entry.name}.")
    return replace(options, context_length=context, prompt_format_id=entry.format_id, notes=tuple(notes))
