"""GPT-2 files in ggml's examples/gpt-2 layout (AI Dungeon 2 Classic), turned into a `gpt2` GGUF.

A GPT-2 GGUF must carry the tokenizer's BPE merge rules, and the legacy file holds only
the token list. The rules can be rebuilt from that list alone: GPT-2 numbers its tokens
by merge rank. Ids 0-255 are the 256 single bytes, and token 256 + i is what merge i
produced; <|endoftext|> comes last. So each later token, tokenized by byte-level BPE
with only the tokens before it, must come out as exactly two earlier tokens, and that
pair is its merge. A token list not in that order (another tokenizer, or a shuffled
one) fails the check, and the file is refused rather than given wrong merges.

The tensors map one to one onto llama.cpp's gpt2 tensors and keep their ggml sizes:
ggml's converter already transposed the projection matrices into the order llama.cpp
multiplies them in. Their bytes are copied unchanged by `convert.py`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from gguf import GGUFWriter, TokenType

from catalog.errors import ConversionError
from catalog.ggml.errors import ConversionCancelledError, LegacyRefusalError
from catalog.ggml.reader import LegacyTensor, type_name

Progress = Callable[[float, str], None]
LAYER_NORM_EPSILON = 1e-5  # GPT-2's, in every size
END_OF_TEXT = b"<|endoftext|>"
_SPECIAL = re.compile(rb"<\|[^|\s]+\|>")  # control tokens such as <|endoftext|>, never merged
_PROGRESS_EVERY = 4096  # tokens between progress reports while recovering merges
_LAYER = re.compile(r"model/h(\d+)/(.+)")
# ggml gpt-2 tensor names inside a block -> llama.cpp gpt2 names.
_BLOCK_NAMES = {
    "ln_1/g": "attn_norm.weight",
    "ln_1/b": "attn_norm.bias",
    "attn/c_attn/w": "attn_qkv.weight",
    "attn/c_attn/b": "attn_qkv.bias",
    "attn/c_proj/w": "attn_output.weight",
    "attn/c_proj/b": "attn_output.bias",
    "ln_2/g": "ffn_norm.weight",
    "ln_2/b": "ffn_norm.bias",
    "mlp/c_fc/w": "ffn_up.weight",
    "mlp/c_fc/b": "ffn_up.bias",
    "mlp/c_proj/w": "ffn_down.weight",
    "mlp/c_proj/b": "ffn_down.bias",
}
_TOP_NAMES = {
    "model/wte": "token_embd.weight",
    "model/wpe": "position_embd.weight",
    "model/ln_f/g": "output_norm.weight",
    "model/ln_f/b": "output_norm.bias",
    "model/lm_head": "output.weight",  # absent in most files: GPT-2 ties it to wte
}


# -- GPT-2's printable spelling of bytes -----------------------------------------


def _byte_letters() -> tuple[str, ...]:
    """The character GPT-2's encoder.json spells each byte with.

    Bytes that print as themselves in Latin-1 (except space and soft hyphen) keep their
    own character; the rest, in byte order, take the characters from U+0100 on.
    """
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    letters = {b: chr(b) for b in printable}
    others = [b for b in range(256) if b not in letters]
    letters.update({b: chr(0x100 + i) for i, b in enumerate(others)})
    return tuple(letters[b] for b in range(256))


BYTE_LETTERS = _byte_letters()


def token_text(raw: bytes) -> str:
    """A token's bytes as GPT-2's vocabulary writes them: b" the" -> "Ġthe"."""
    return "".join(BYTE_LETTERS[b] for b in raw)


# -- byte-level BPE ----------------------------------------------------------------


def bpe_parts(word: bytes, ranks: dict[bytes, int]) -> list[bytes]:
    """Split `word` by byte-level BPE: merge the adjacent pair whose joined bytes have the
    lowest rank (leftmost first on a tie) until no adjacent pair joins into a known token."""
    parts = [word[i : i + 1] for i in range(len(word))]
    while len(parts) > 1:
        best_rank = -1
        best_at = -1
        for i in range(len(parts) - 1):
            rank = ranks.get(parts[i] + parts[i + 1], -1)
            if rank >= 0 and (best_rank < 0 or rank < best_rank):
                best_rank, best_at = rank, i
        if best_at < 0:
            break
        parts[best_at : best_at + 2] = [parts[best_at] + parts[best_at + 1]]
    return parts


def is_special(raw: bytes) -> bool:
    """True for control tokens such as <|endoftext|>, which BPE never produces."""
    return _SPECIAL.fullmatch(raw) is not None


def recover_merges(tokens: Sequence[bytes], progress: Progress | None = None) -> list[tuple[bytes, bytes]]:
    """The BPE merges of a GPT-2-style token list whose ids are merge ranks.

    Args:
        tokens: every token's bytes, in id order.
        progress: called with (fraction 0..1, words) every few thousand tokens.

    Returns:
        The merges in rank order: merge i joins two earlier tokens into token 256 + i
        (control tokens such as <|endoftext|> are skipped).

    Raises:
        ConversionError: the list does not start with the 256 single bytes, or a token
            does not split into exactly two earlier tokens: it is not rank-ordered.
    """
    _check_byte_tokens(tokens)
    ranks = {tokens[i]: i for i in range(256)}
    merges: list[tuple[bytes, bytes]] = []
    for token_id in range(256, len(tokens)):
        if progress is not None and token_id % _PROGRESS_EVERY == 0:
            progress(token_id / len(tokens), f"Rebuilding merge rules: token {token_id:,} of {len(tokens):,}")
        raw = tokens[token_id]
        if is_special(raw):
            continue
        if raw in ranks:
            raise ConversionError(
                f"The token list holds {token_text(raw)!r} twice (ids {ranks[raw]} and {token_id})."
            )
        parts = bpe_parts(raw, ranks)
        if len(parts) != 2:
            raise ConversionError(
                f"Token {token_id} ({token_text(raw)!r}) is not made of two earlier tokens, so the token "
                "list is not in GPT-2's merge order and its merge rules cannot be rebuilt."
            )
        merges.append((parts[0], parts[1]))
        ranks[raw] = token_id
    if progress is not None:
        progress(1.0, f"Rebuilt {len(merges):,} merge rules")
    return merges


def _check_byte_tokens(tokens: Sequence[bytes]) -> None:
    first = tokens[:256]
    if len(first) < 256 or any(len(t) != 1 for t in first) or len(set(first)) != 256:
        raise ConversionError(
            "The token list does not start with the 256 single bytes, as GPT-2's does, so its "
            "merge rules cannot be rebuilt."
        )


# -- the tensor set ------------------------------------------------------------------


@dataclass(frozen=True)
class Gpt2Facts:
    """Sizes of a GPT-2 model from its header and tensors, and the merges rebuilt from its tokens."""

    n_vocab: int
    n_ctx: int  # rows of the position embedding: the longest context the model can take
    n_embd: int
    n_head: int
    n_layer: int
    n_ff: int
    has_lm_head: bool  # most files tie the output matrix to the token embedding instead
    end_of_text_id: int
    merges: tuple[tuple[bytes, bytes], ...] = field(default=(), repr=False, compare=False)


def gguf_tensor_name(legacy_name: str) -> str:
    """The llama.cpp gpt2 name of a ggml gpt-2 tensor.

    Raises:
        KeyError: the name is not part of a GPT-2 model.
    """
    if legacy_name in _TOP_NAMES:
        return _TOP_NAMES[legacy_name]
    match = _LAYER.fullmatch(legacy_name)
    if match and match.group(2) in _BLOCK_NAMES:
        return f"blk.{int(match.group(1))}.{_BLOCK_NAMES[match.group(2)]}"
    raise KeyError(legacy_name)


def tensor_plan(tensors: Sequence[LegacyTensor]) -> list[tuple[str, LegacyTensor]]:
    """(GGUF name, legacy tensor) for every tensor to copy, in file order.

    A file without `model/lm_head` gets no `output.weight`: llama.cpp then uses the
    token embedding, as GPT-2 itself does.
    """
    return [(gguf_tensor_name(t.name), t) for t in tensors]


def gpt2_facts(
    file_name: str,
    hparams: dict[str, int],
    tensors: Sequence[LegacyTensor],
    tokens: Sequence[bytes],
    progress: Progress | None = None,
) -> Gpt2Facts:
    """Check a ggml gpt-2 file's tokens and tensors, and rebuild its merges.

    Raises:
        LegacyRefusalError: the file cannot become a working GGUF; `kind` is "gpt2"
            (token list, tensors) or "old-quant" (blocks of a superseded layout).
        ConversionCancelledError: raised by `progress` to stop.
    """
    try:
        _check_byte_tokens(tokens)
    except ConversionError as exc:
        raise LegacyRefusalError(str(exc), kind="gpt2") from exc
    if END_OF_TEXT not in tokens:
        raise LegacyRefusalError("Its token list has no <|endoftext|> token, which GPT-2's has.", kind="gpt2")
    facts = _facts_from_tensors(file_name, hparams, tensors, tokens.index(END_OF_TEXT))
    _check_quantization(file_name, hparams, tensors)
    try:
        merges = recover_merges(tokens, progress)
    except ConversionCancelledError:
        raise  # from `progress`: the user stopped it, the file is not at fault
    except ConversionError as exc:
        raise LegacyRefusalError(str(exc), kind="gpt2") from exc
    return replace(facts, merges=tuple(merges))


def _facts_from_tensors(
    file_name: str, hparams: dict[str, int], tensors: Sequence[LegacyTensor], end_of_text_id: int
) -> Gpt2Facts:
    if any(key not in hparams for key in ("n_vocab", "n_ctx", "n_embd", "n_head", "n_layer")):
        raise LegacyRefusalError(
            f"{file_name} has GPT-2's tensor names but not the header of ggml's gpt-2 files.", kind="gpt2"
        )
    if 12 * hparams["n_layer"] > 2 * len(tensors) + 64:  # before listing names for every layer claimed
        raise LegacyRefusalError(
            f"{file_name} is damaged or incomplete: its header gives {hparams['n_layer']} layers, "
            f"but it holds only {len(tensors)} tensors.",
            kind="gpt2",
        )
    by_name = {t.name: t for t in tensors}
    known = _known_names(hparams["n_layer"])
    unknown = [t.name for t in tensors if t.name not in known]
    if unknown or len(by_name) != len(tensors):
        what = f"the tensor {unknown[0]}, which" if unknown else "the same tensor twice, which"
        raise LegacyRefusalError(
            f"{file_name} holds {what} a GPT-2 model of {hparams['n_layer']} layers does not have.",
            kind="gpt2",
        )
    fc = by_name.get("model/h0/mlp/c_fc/w")
    n_ff = fc.ne[1] if fc is not None and len(fc.ne) == 2 else 4 * hparams["n_embd"]
    facts = Gpt2Facts(
        n_vocab=hparams["n_vocab"],
        n_ctx=hparams["n_ctx"],
        n_embd=hparams["n_embd"],
        n_head=hparams["n_head"],
        n_layer=hparams["n_layer"],
        n_ff=n_ff,
        has_lm_head="model/lm_head" in by_name,
        end_of_text_id=end_of_text_id,
    )
    if facts.n_embd % facts.n_head:
        raise LegacyRefusalError(
            f"{file_name} is damaged: its header gives {facts.n_embd} dimensions for {facts.n_head} heads, "
            "which do not divide evenly.",
            kind="gpt2",
        )
    for name, ne in _expected_shapes(facts).items():
        tensor = by_name.get(name)
        if tensor is None:
            raise LegacyRefusalError(
                f"{file_name} is incomplete: the tensor {name} is missing, though the header promises "
                f"{facts.n_layer} layers. Download it again.",
                kind="gpt2",
            )
        if tensor.ne != ne:
            raise LegacyRefusalError(
                f"{file_name} is damaged: tensor {name} has size {tensor.ne}, but the header implies {ne}.",
                kind="gpt2",
            )
        if len(ne) == 1 and tensor.ggml_type != 0:
            raise LegacyRefusalError(
                f"{file_name} stores the vector {name} as {tensor.type_name}; ggml's GPT-2 kept those in "
                "F32, so this file was not written by it.",
                kind="gpt2",
            )
    return facts


def _known_names(n_layer: int) -> set[str]:
    names = set(_TOP_NAMES)
    names.update(f"model/h{i}/{suffix}" for i in range(n_layer) for suffix in _BLOCK_NAMES)
    return names


def _expected_shapes(facts: Gpt2Facts) -> dict[str, tuple[int, ...]]:
    """Sizes in ggml order (fastest first) of every tensor a GPT-2 file must have; llama.cpp
    checks the same sizes when it loads the GGUF."""
    e, f = facts.n_embd, facts.n_ff
    shapes: dict[str, tuple[int, ...]] = {
        "model/wte": (e, facts.n_vocab),
        "model/wpe": (e, facts.n_ctx),
        "model/ln_f/g": (e,),
        "model/ln_f/b": (e,),
    }
    if facts.has_lm_head:
        shapes["model/lm_head"] = (e, facts.n_vocab)
    per_layer = {
        "ln_1/g": (e,),
        "ln_1/b": (e,),
        "attn/c_attn/w": (e, 3 * e),
        "attn/c_attn/b": (3 * e,),
        "attn/c_proj/w": (e, e),
        "attn/c_proj/b": (e,),
        "ln_2/g": (e,),
        "ln_2/b": (e,),
        "mlp/c_fc/w": (e, f),
        "mlp/c_fc/b": (f,),
        "mlp/c_proj/w": (f, e),
        "mlp/c_proj/b": (e,),
    }
    for layer in range(facts.n_layer):
        for suffix, ne in per_layer.items():
            shapes[f"model/h{layer}/{suffix}"] = ne
    return shapes


def _check_quantization(file_name: str, hparams: dict[str, int], tensors: Sequence[LegacyTensor]) -> None:
    """ggml stored its quantization version in the file type (version * 1000 + type). Before
    version 2 (May 2023) the blocks of most quantized types were laid out differently."""
    version = hparams.get("ftype", 0) // 1000
    for tensor in tensors:
        if tensor.ggml_type in (0, 1) or version >= 2 or (version == 1 and tensor.ggml_type in (6, 7)):
            continue  # F32, F16; Q5_0 and Q5_1 kept their layout from version 1 on
        raise LegacyRefusalError(
            f"{file_name} was quantized as {type_name(tensor.ggml_type)} by a ggml from before May 2023 "
            f"(quantization version {version}). ggml later changed how those blocks are stored, so a "
            "conversion would give a broken model. Only F32 and F16 files, or files quantized since, "
            "can be converted.",
            kind="old-quant",
        )


def convertible_text(file_type_name: str) -> str:
    """What happens to a GPT-2 file that converts, in words."""
    return (
        f"A GPT-2 model in ggml's gpt-2 layout ({file_type_name}), such as AI Dungeon 2 Classic; Hearth "
        "can convert it to GGUF. The tokenizer's merge rules are rebuilt from its token list and the "
        "tensor data is copied as is, so the converted model gives the same answers."
    )


def refusal_text(file_name: str, reason: str, alternative: str) -> str:
    """Why a GPT-2 file cannot convert, and the catalog model to use instead."""
    return (
        f"{file_name} is a GPT-2 model in the old ggml gpt-2 layout, but it cannot become a working "
        f"GGUF. {reason} For the AI Dungeon feel, use {alternative} from the catalog."
    )


# -- the GGUF metadata -----------------------------------------------------------------


def add_gpt2_keys(writer: GGUFWriter, facts: Gpt2Facts, tokens: Sequence[bytes]) -> None:
    """Write the hyperparameters and the BPE tokenizer of a `gpt2` GGUF (the general keys,
    such as the name and file type, are the caller's)."""
    writer.add_context_length(facts.n_ctx)
    writer.add_embedding_length(facts.n_embd)
    writer.add_block_count(facts.n_layer)
    writer.add_feed_forward_length(facts.n_ff)
    writer.add_head_count(facts.n_head)
    writer.add_layer_norm_eps(LAYER_NORM_EPSILON)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list([token_text(raw) for raw in tokens])
    writer.add_token_types(
        [int(TokenType.CONTROL if is_special(raw) else TokenType.NORMAL) for raw in tokens]
    )
    writer.add_token_merges([f"{token_text(a)} {token_text(b)}" for a, b in facts.merges])
    writer.add_bos_token_id(facts.end_of_text_id)
    writer.add_eos_token_id(facts.end_of_text_id)
    writer.add_add_bos_token(False)  # GPT-2 starts a text with no marker
