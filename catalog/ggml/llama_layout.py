"""The Llama tensor set of a legacy file: GGUF names, expected shapes, inferred sizes.

Legacy files use Meta's checkpoint names (`layers.0.attention.wq.weight`); GGUF uses
`blk.0.attn_q.weight`. GGML never stored the feed-forward width or the number of
key/value heads, so both are read from the tensor shapes, which cannot be wrong.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from catalog.ggml.errors import LegacyFileDamagedError, LegacyFileTruncatedError, LegacyRefusalError
from catalog.ggml.reader import LegacyTensor

_GLOBAL_NAMES = {
    "tok_embeddings.weight": "token_embd.weight",
    "norm.weight": "output_norm.weight",
    "output.weight": "output.weight",
}
_LAYER_NAMES = {
    "attention.wq.weight": "attn_q.weight",
    "attention.wk.weight": "attn_k.weight",
    "attention.wv.weight": "attn_v.weight",
    "attention.wo.weight": "attn_output.weight",
    "attention_norm.weight": "attn_norm.weight",
    "feed_forward.w1.weight": "ffn_gate.weight",
    "feed_forward.w2.weight": "ffn_down.weight",
    "feed_forward.w3.weight": "ffn_up.weight",
    "ffn_norm.weight": "ffn_norm.weight",
}
# Meta's checkpoints stored the rotary inverse frequencies; llama.cpp computes them,
# and GGUF's `rope_freqs` means something else (per-dimension factors), so they are dropped.
SKIPPED_NAMES = frozenset({"rope.freqs"})
_LAYER = re.compile(r"layers\.(\d+)\.(.+)")


@dataclass(frozen=True)
class LlamaFacts:
    """Sizes of a Llama model, from its header and, where GGML did not store them, its tensors."""

    n_vocab: int
    n_embd: int
    n_head: int
    n_head_kv: int
    n_layer: int
    n_ff: int
    n_rot: int  # as stored; GGUF gets n_embd / n_head, which llama.cpp requires

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def gqa(self) -> int:
        """How many query heads share one key/value head (8 for Llama 2 70B)."""
        return self.n_head // self.n_head_kv


def gguf_tensor_name(legacy_name: str) -> str | None:
    """The GGUF name of a legacy Llama tensor; None for tensors that are dropped.

    Raises:
        KeyError: the name is not part of a Llama model.
    """
    if legacy_name in SKIPPED_NAMES:
        return None
    if legacy_name in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[legacy_name]
    match = _LAYER.fullmatch(legacy_name)
    if match and match.group(2) in _LAYER_NAMES:
        return f"blk.{int(match.group(1))}.{_LAYER_NAMES[match.group(2)]}"
    raise KeyError(legacy_name)


def llama_facts(file_name: str, hparams: Mapping[str, int], tensors: Sequence[LegacyTensor]) -> LlamaFacts:
    """Check a Llama file's tensors against its header and infer n_ff and n_head_kv.

    Raises:
        LegacyRefusalError: tensors that are not part of a Llama model (another architecture).
        LegacyFileDamagedError: a tensor is missing or has the wrong shape for the header.
    """
    by_name = {t.name: t for t in tensors}
    unknown = [t.name for t in tensors if not _is_llama_name(t.name)]
    if unknown:
        raise LegacyRefusalError(
            f"{file_name} is laid out like a Llama model but also holds tensors Hearth does not know "
            f"(such as '{unknown[0]}'), so it is probably another architecture and cannot be converted.",
            kind="other-arch",
        )
    n_vocab, n_embd, n_head, n_layer = (hparams[k] for k in ("n_vocab", "n_embd", "n_head", "n_layer"))
    if n_embd % n_head:
        raise LegacyFileDamagedError(
            f"{file_name} is damaged: its header gives {n_embd} dimensions for {n_head} heads, which "
            "do not divide evenly."
        )
    n_ff = _dim(file_name, by_name, "layers.0.feed_forward.w1.weight", 1)
    kv_width = _dim(file_name, by_name, "layers.0.attention.wk.weight", 1)
    head_dim = n_embd // n_head
    if kv_width % head_dim or n_head % (kv_width // head_dim or 1) or kv_width > n_embd:
        raise LegacyFileDamagedError(
            f"{file_name} is damaged: its key projection is {kv_width} wide, which is not a whole "
            f"number of {head_dim}-wide heads dividing {n_head}."
        )
    expected = _expected_shapes(n_vocab, n_embd, n_layer, n_ff, kv_width)
    for name, ne in expected.items():
        tensor = by_name.get(name)
        if tensor is None:
            raise LegacyFileTruncatedError(
                f"{file_name} is incomplete: the tensor {name} is missing, though the header "
                f"promises {n_layer} layers. Download it again."
            )
        if tensor.ne != ne:
            raise LegacyFileDamagedError(
                f"{file_name} is damaged: tensor {name} has size {tensor.ne}, but the header implies {ne}."
            )
    extra = [t.name for t in tensors if t.name not in expected and t.name not in SKIPPED_NAMES]
    if extra or len(by_name) != len(tensors):
        what = f"the tensor {extra[0]}" if extra else "the same tensor twice"
        raise LegacyFileDamagedError(
            f"{file_name} is damaged: it holds {what}, which its header ({n_layer} layers) does not "
            "account for."
        )
    return LlamaFacts(n_vocab, n_embd, n_head, kv_width // head_dim, n_layer, n_ff, hparams["n_rot"])


def _is_llama_name(name: str) -> bool:
    try:
        gguf_tensor_name(name)
    except KeyError:
        return False
    return True


def _dim(file_name: str, by_name: Mapping[str, LegacyTensor], name: str, axis: int) -> int:
    tensor = by_name.get(name)
    if tensor is None or len(tensor.ne) <= axis:
        raise LegacyFileTruncatedError(
            f"{file_name} is incomplete: the tensor {name} is missing or flat. Download it again."
        )
    return tensor.ne[axis]


def _expected_shapes(
    n_vocab: int, n_embd: int, n_layer: int, n_ff: int, kv_width: int
) -> dict[str, tuple[int, ...]]:
    """Sizes in ggml order (fastest first) of every tensor a Llama file must have."""
    shapes: dict[str, tuple[int, ...]] = {
        "tok_embeddings.weight": (n_embd, n_vocab),
        "norm.weight": (n_embd,),
        "output.weight": (n_embd, n_vocab),
    }
    per_layer = {
        "attention.wq.weight": (n_embd, n_embd),
        "attention.wk.weight": (n_embd, kv_width),
        "attention.wv.weight": (n_embd, kv_width),
        "attention.wo.weight": (n_embd, n_embd),
        "attention_norm.weight": (n_embd,),
        "feed_forward.w1.weight": (n_embd, n_ff),
        "feed_forward.w2.weight": (n_ff, n_embd),
        "feed_forward.w3.weight": (n_embd, n_ff),
        "ffn_norm.weight": (n_embd,),
    }
    for layer in range(n_layer):
        for suffix, ne in per_layer.items():
            shapes[f"layers.{layer}.{suffix}"] = ne
    return shapes
