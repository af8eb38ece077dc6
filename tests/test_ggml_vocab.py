"""Legacy vocabularies become SentencePiece pieces: the paths the tiny files never reach."""

from __future__ import annotations

from gguf import TokenType

from catalog.ggml import spm_vocab

LLAMA_VOCAB = 32_000


def llama_entries(extra: list[bytes]) -> list[tuple[bytes, float]]:
    entries = [(b"<unk>", 0.0), (b"<s>", 0.0), (b"</s>", 0.0)]
    entries += [(bytes([b]), 0.0) for b in range(256)]
    entries += [(f" w{i}".encode(), -float(i)) for i in range(LLAMA_VOCAB - len(entries))]
    return entries + [(raw, 0.0) for raw in extra]


def test_tokens_appended_past_llamas_vocabulary_are_matched_whole() -> None:
    tokens, _scores, types = spm_vocab(llama_entries([b"<|im_start|>", b"<pad>", b" plain"]), has_scores=True)
    assert tokens[LLAMA_VOCAB:] == ["<|im_start|>", "<pad>", "\u2581plain"]
    assert types[LLAMA_VOCAB:] == [TokenType.USER_DEFINED, TokenType.USER_DEFINED, TokenType.NORMAL]
    assert tokens[LLAMA_VOCAB - 1] == "\u2581w31740" and types[LLAMA_VOCAB - 1] == TokenType.NORMAL


def test_a_vocabulary_without_scores_keeps_its_order() -> None:
    entries = llama_entries([])
    _tokens, scores, types = spm_vocab(entries, has_scores=False)
    assert scores[:3] == [0.0, 0.0, 0.0] and types[1:3] == [TokenType.CONTROL, TokenType.CONTROL]
    assert scores[300] == -300.0 and scores[301] == -301.0  # best first, as SentencePiece lists them
    with_scores = spm_vocab(entries, has_scores=True)[1]
    assert with_scores[300] == entries[300][1]
