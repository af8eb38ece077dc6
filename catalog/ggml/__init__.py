"""Importing legacy GGML-family model files (2023, before GGUF) by converting them to GGUF.

    model = inspect_legacy(path)            # what it is; model.convertible / model.explanation
    options = suggest_options(model, hint)  # the metadata GGML never stored, guessed
    convert_to_gguf(path, dst, options, progress=..., cancel=...)

`advice` adds what the guide's catalog knows: `options_for` (suggestions from the
matching entry) and `refusal_message` (the explanation plus the catalog's GGUF
alternative).

Llama-family GGJT v3 files of any quantization convert, and F32/F16 files of the older
containers (GGJT v1/v2, GGMF, unversioned GGML); GGJT v2 Q5_0/Q5_1 files too. GPT-2
files in ggml's gpt-2 layout (AI Dungeon 2 Classic) convert to a `gpt2` GGUF, with the
tokenizer's merge rules rebuilt from the token list (`recover_merges`). Older
quantizations, QK_K=64 K-quants, RWKV, GPT-J and GPT-NeoX files, and GPT-2 files whose
token list is not GPT-2's, are recognised and refused with a plain explanation.
"""

from catalog.ggml.advice import catalog_entry, gguf_alternative, options_for, refusal_message, where_to_get
from catalog.ggml.convert import convert_to_gguf, remove_interrupted, spm_vocab
from catalog.ggml.detect import Architecture, LegacyModel, RefusalKind, inspect_legacy
from catalog.ggml.errors import (
    ConversionCancelledError,
    LegacyFileDamagedError,
    LegacyFileTruncatedError,
    LegacyRefusalError,
    NotALegacyModelError,
)
from catalog.ggml.gpt2 import Gpt2Facts, recover_merges
from catalog.ggml.llama_layout import LlamaFacts
from catalog.ggml.options import ConvertOptions, default_output_name, size_label, suggest_options

__all__ = [
    "Architecture",
    "ConversionCancelledError",
    "ConvertOptions",
    "Gpt2Facts",
    "LegacyFileDamagedError",
    "LegacyFileTruncatedError",
    "LegacyModel",
    "LegacyRefusalError",
    "LlamaFacts",
    "NotALegacyModelError",
    "RefusalKind",
    "catalog_entry",
    "convert_to_gguf",
    "default_output_name",
    "gguf_alternative",
    "inspect_legacy",
    "options_for",
    "recover_merges",
    "refusal_message",
    "remove_interrupted",
    "size_label",
    "spm_vocab",
    "suggest_options",
    "where_to_get",
]
