"""The values the GGUF mutants try: numbers at the edges of their types, names llama.cpp
knows and does not, and the optional header keys it reads."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from gguf import GGUFValueType  # noqa: E402
from gguf_parts import F32, U32, S  # noqa: E402

INTS = [0, 1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 255, 256, 257, 259,
        262, 263, 264, 511, 512, 1024, 4096, 65535, 65536, 2**31 - 1, 2**31, 2**32 - 1, 2**32,
        2**63 - 1, 2**64 - 1, -1, -2]  # fmt: skip
FLOATS = [0.0, -0.0, 1.0, -1.0, 0.5, 1e-38, 1e-45, 1e38, 3.4e38, math.inf, -math.inf, math.nan, 1e4, 1e6]
ARCHS = ["gpt2", "phi3", "gemma", "gemma3", "qwen2", "qwen3", "mamba", "rwkv6", "bert", "t5", "falcon",
         "starcoder", "mistral3", "granite", "deci", "llama4", "qwen3moe", "olmo2", "exaone", "plamo",
         "baichuan", "internlm2", "command-r", "", "llama ", "LLAMA", "bogus"]  # fmt: skip
TOKENIZERS = ["gpt2", "bert", "t5", "rwkv", "none", "no_vocab", "plamo2", "", "bogus", "llama"]
PRE = ["default", "llama3", "llama-bpe", "gpt-2", "qwen2", "deepseek-llm", "tekken", "bogus", ""]
TEMPLATES = ["{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}", "{% for", "{{ x.y.z }}", ""]
# Keys llama.cpp reads when present, with values to try.
OPTIONAL: list[tuple[str, int, list[Any]]] = [
    ("llama.rope.freq_base", F32, FLOATS),
    ("llama.rope.freq_scale", F32, FLOATS),
    ("llama.rope.scaling.type", S, ["none", "linear", "yarn", "longrope", "bogus", ""]),
    ("llama.rope.scaling.factor", F32, FLOATS),
    ("llama.rope.scaling.original_context_length", U32, INTS),
    ("llama.rope.scaling.attn_factor", F32, FLOATS),
    ("llama.expert_count", U32, INTS),
    ("llama.expert_used_count", U32, INTS),
    ("llama.expert_shared_count", U32, INTS),
    ("llama.expert_group_count", U32, INTS),
    ("llama.expert_group_used_count", U32, INTS),
    ("llama.nextn_predict_layers", U32, INTS),
    ("llama.attention.sliding_window", U32, INTS),
    ("llama.attention.key_length", U32, INTS),
    ("llama.attention.value_length", U32, INTS),
    ("llama.attention.layer_norm_epsilon", F32, FLOATS),
    ("llama.attention.clamp_kqv", F32, FLOATS),
    ("llama.attention.logit_softcapping", F32, FLOATS),
    ("llama.final_logit_softcapping", F32, FLOATS),
    ("llama.logit_scale", F32, FLOATS),
    ("llama.residual_scale", F32, FLOATS),
    ("llama.embedding_scale", F32, FLOATS),
    ("llama.attention.scale", F32, FLOATS),
    ("llama.vocab_size", U32, INTS),
    ("llama.context_length", U32, INTS),
    ("llama.leading_dense_block_count", U32, INTS),
    ("llama.interleave_moe_layer_step", U32, INTS),
    ("llama.pooling_type", U32, INTS),
    ("llama.attention.causal", GGUFValueType.BOOL, [False, True]),
    ("tokenizer.ggml.padding_token_id", U32, INTS),
    ("tokenizer.ggml.eot_token_id", U32, INTS),
    ("tokenizer.ggml.eom_token_id", U32, INTS),
    ("tokenizer.ggml.seperator_token_id", U32, INTS),
    ("tokenizer.ggml.cls_token_id", U32, INTS),
    ("tokenizer.ggml.mask_token_id", U32, INTS),
    ("tokenizer.ggml.fim_pre_token_id", U32, INTS),
    ("tokenizer.ggml.fim_mid_token_id", U32, INTS),
    ("tokenizer.ggml.fim_suf_token_id", U32, INTS),
    ("tokenizer.ggml.add_bos_token", GGUFValueType.BOOL, [False, True]),
    ("tokenizer.ggml.add_eos_token", GGUFValueType.BOOL, [False, True]),
    ("tokenizer.ggml.add_space_prefix", GGUFValueType.BOOL, [False, True]),
    ("tokenizer.ggml.remove_extra_whitespaces", GGUFValueType.BOOL, [False, True]),
    ("tokenizer.ggml.pre", S, PRE),
    ("tokenizer.chat_template", S, TEMPLATES),
    ("general.alignment", U32, [0, 1, 2, 3, 8, 16, 64, 2**31]),
    ("general.quantization_version", U32, INTS),
    ("split.count", GGUFValueType.UINT16, [0, 1, 2, 65535]),
    ("split.no", GGUFValueType.UINT16, [0, 1, 2]),
]
# Per-layer arrays llama.cpp accepts in place of a scalar.
PER_LAYER = ["llama.attention.head_count", "llama.attention.head_count_kv", "llama.feed_forward_length"]
TOKEN_TYPES = [0, 1, 2, 3, 4, 5, 6, 7, 8, 255, -1, 2**31 - 1, -(2**31)]
