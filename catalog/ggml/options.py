"""The metadata GGML never stored, and sensible guesses for it.

A legacy file has no context length, no RMS-norm epsilon, no rope base and no count
of key/value heads. GGUF needs them. The caller fills a `ConvertOptions` from the
catalog or a small form; `suggest_options` guesses from the model's shape and name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from catalog.detect import detect_model_format
from catalog.errors import ConversionError, UnsafeNameError
from catalog.ggml.detect import LegacyModel
from catalog.ggml.llama_layout import LlamaFacts
from catalog.naming import safe_relative_path
from presets.formats import load_builtin_formats

MAX_CONTEXT = 1 << 20
_MAX_STEM = 150
_LLAMA2 = re.compile(r"llama[-_ ]?2|(^|[^a-z0-9])l2([^a-z0-9]|$)")
_LLAMA1 = re.compile(r"llama[-_ ]?1|spring[-_ ]?dragon|superhot")
_CODE_LLAMA = re.compile(r"code[-_ ]?llama")
# (layers, embedding width) of the published Llama sizes.
_SIZE_LABELS = {(26, 3200): "3B", (32, 4096): "7B", (40, 5120): "13B", (48, 8192): "34B", (60, 6656): "30B"}


@dataclass(frozen=True)
class ConvertOptions:
    """Metadata for the GGUF that the legacy file does not hold.

    Attributes:
        name: `general.name`; Hearth also guesses the prompt format from it.
        context_length: tokens the model was trained on (Llama 2: 4096, LLaMA 1: 2048).
        rms_epsilon: RMS-norm epsilon (Llama 2: 1e-5, LLaMA 1: 1e-6).
        gqa: query heads per key/value head (Llama 2 70B: 8); None reads it from the tensors.
        rope_freq_base: rope base frequency; None leaves llama.cpp's default (10000).
        rope_linear_scale: linear rope scaling factor (SuperHOT 8K: 4); None for none.
        description: `general.description`; empty for a generated one.
        prompt_format_id: the Hearth prompt format suggested for the converted model.
        notes: plain sentences saying how the values were guessed, for the UI.
    """

    name: str
    context_length: int = 2048
    rms_epsilon: float = 5e-6
    gqa: int | None = None
    rope_freq_base: float | None = None
    rope_linear_scale: float | None = None
    description: str = ""
    prompt_format_id: str = "plain"
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ConversionError("The converted model needs a name.")
        if not 1 <= self.context_length <= MAX_CONTEXT:
            raise ConversionError(f"A context length of {self.context_length} tokens is not possible.")
        if not 0 < self.rms_epsilon < 1e-2:
            raise ConversionError(f"An RMS epsilon of {self.rms_epsilon} is not sensible (try 1e-5).")
        if self.gqa is not None and self.gqa < 1:
            raise ConversionError("The GQA factor must be 1 or more.")
        if self.rope_freq_base is not None and self.rope_freq_base <= 0:
            raise ConversionError("The rope base must be a positive number (usually 10000).")
        if self.rope_linear_scale is not None and self.rope_linear_scale < 1:
            raise ConversionError("The rope scaling factor must be 1 or more.")


def suggest_options(legacy_model: LegacyModel, catalog_hint: str | None) -> ConvertOptions:
    """Guess the missing metadata for a convertible Llama file.

    Args:
        legacy_model: from `inspect_legacy`.
        catalog_hint: the catalog's repository or model name (such as
            "TheBloke/MythoMax-L2-13B-GGML"); the file name is used when None.

    Raises:
        LegacyRefusalError: the model cannot be converted at all.
    """
    legacy_model.require_convertible()
    if legacy_model.gpt2 is not None:
        return _gpt2_options(legacy_model, catalog_hint)
    facts = legacy_model.llama
    assert facts is not None  # a convertible Llama model always has them
    text = (catalog_hint or legacy_model.path.name).lower()
    name = model_name(catalog_hint or legacy_model.path.name)
    size = size_label(facts)
    family, why = _family(facts, text)
    notes = [f"{size} {family} model ({why})."]
    context, epsilon, rope_base, scale = {
        "Llama 2": (4096, 1e-5, None, None),
        "LLaMA 1": (2048, 1e-6, None, None),
        "Code Llama": (16384, 1e-5, 1e6, None),
    }.get(family, (2048, 5e-6, None, None))
    if family == "Llama":
        notes.append(
            "Llama 2 or LLaMA 1 could not be told apart, so the safe 2048-token context and a middle "
            "epsilon are used; set 4096 and 1e-5 for a Llama 2 model."
        )
    if "superhot" in text and "8k" in text:
        context, scale = 8192, 4.0
        notes.append("SuperHOT 8K: 8192-token context with linear rope scaling 4.")
    if facts.gqa > 1:
        notes.append(f"Grouped-query attention from the tensors: {facts.gqa} query heads per key/value head.")
    fmt = detect_model_format(load_builtin_formats(), model_name=text)
    notes.append(f"Prompt format {fmt.format_id}: {fmt.reason}.")
    return ConvertOptions(
        name=name,
        context_length=context,
        rms_epsilon=epsilon,
        gqa=facts.gqa,
        rope_freq_base=rope_base,
        rope_linear_scale=scale,
        prompt_format_id=fmt.format_id,
        notes=tuple(notes),
    )


def _gpt2_options(legacy_model: LegacyModel, catalog_hint: str | None) -> ConvertOptions:
    """A GPT-2 file holds everything but a name: its context is fixed by its position embeddings."""
    facts = legacy_model.gpt2
    assert facts is not None
    hint = catalog_hint or legacy_model.path.name
    fmt = detect_model_format(load_builtin_formats(), model_name=hint.lower())
    notes = (
        f"GPT-2 model: {facts.n_layer} layers, {facts.n_embd} wide. Its {facts.n_ctx:,}-token context "
        "is fixed by its position embeddings.",
        f"Prompt format {fmt.format_id}: {fmt.reason}.",
    )
    return ConvertOptions(
        name=model_name(hint), context_length=facts.n_ctx, prompt_format_id=fmt.format_id, notes=notes
    )


def _family(facts: LlamaFacts, text: str) -> tuple[str, str]:
    if _CODE_LLAMA.search(text):
        return "Code Llama", "named so"
    if facts.gqa > 1:  # only Llama 2 70B and Code Llama 34B used grouped-query attention then
        return "Llama 2", "grouped-query attention"
    if _LLAMA2.search(text):
        return "Llama 2", "named so"
    if _LLAMA1.search(text):
        return "LLaMA 1", "named so"
    if (facts.n_layer, facts.n_embd) in ((60, 6656), (80, 8192)):
        return "LLaMA 1", "only LLaMA 1 came in this size without grouped-query attention"
    return "Llama", "the name does not say which generation"


def size_label(facts: LlamaFacts) -> str:
    """ "7B", "13B", "70B"... from the layer count and width, else from the parameter count."""
    key = (facts.n_layer, facts.n_embd)
    if key == (80, 8192):
        return "70B" if facts.gqa > 1 else "65B"
    if key in _SIZE_LABELS:
        return _SIZE_LABELS[key]
    per_layer = 4 * facts.n_embd * facts.n_embd + 3 * facts.n_embd * facts.n_ff
    total = facts.n_layer * per_layer + 2 * facts.n_vocab * facts.n_embd
    if total >= 1e9:
        return f"{total / 1e9:.1f}B"
    return f"{total / 1e6:.1f}M" if total >= 1e6 else f"{total / 1e3:.0f}K"


def model_name(hint: str) -> str:
    """A readable model name from a repository id or a legacy file name.

    "TheBloke/MythoMax-L2-13B-GGML" -> "MythoMax-L2-13B";
    "mythomax-l2-13b.ggmlv3.q4_K_M.bin" -> "mythomax-l2-13b".
    """
    base = hint.strip().rstrip("/").rsplit("/", 1)[-1]
    base = re.sub(r"\.bin$", "", base, flags=re.IGNORECASE)
    base = re.sub(r"[._-]ggml(v\d)?([._-].*)?$", "", base, flags=re.IGNORECASE)
    base = re.sub(r"\.(f16|f32|q\d\w*)$", "", base, flags=re.IGNORECASE)
    return base or hint or "converted model"


def default_output_name(legacy_model: LegacyModel) -> str:
    """A safe file name for the converted model: the legacy name with a .gguf suffix.

    The legacy name comes from the user's disk or an upload, so it is reduced to
    letters, digits, '.', '_' and '-' and checked like a downloaded file's name.
    """
    stem = legacy_model.path.name
    stem = re.sub(r"\.(bin|gguf)$", "", stem, flags=re.IGNORECASE)
    stem = re.sub(r"[._-]ggml(v\d)?(?=[._-]|$)", "", stem, flags=re.IGNORECASE)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("._-")[:_MAX_STEM].rstrip("._-")
    name = f"{stem or 'converted'}.gguf"
    try:
        safe_relative_path("hearth/converted", name)  # the downloads' own check
    except UnsafeNameError:  # a name Windows reserves, such as CON
        name = f"converted-{name}"
    safe_relative_path("hearth/converted", name)
    return name
