"""A vision projector ("mmproj") beside a llama.cpp model: pictures into its context.

llama.cpp's multimodal library (mtmd, bound in llama-cpp-python as `llama_cpp.mtmd_cpp`,
the library its own vision chat handlers drive) loads the projector, cuts a prompt at
its `IMAGE_MARKER`s into text and picture chunks, and evaluates a picture chunk by
encoding it and feeding the embeddings to the model. `engine.llama` hands the binding
over, so that module stays the only one that imports llama-cpp-python.

The KV cache is reused up to the first picture: the prompt's text before it is compared
with what the cache holds, as for any prompt, and everything from the picture on is
evaluated again. After the reply the cache is cut back to where the first picture
began, so no later prompt can mistake the picture's cells for text.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import GenerationError, ProjectorError
from engine.kvcache import common_prefix

_TEXT_CHUNK = 0  # MTMD_INPUT_CHUNK_TYPE_TEXT


@dataclass(frozen=True)
class Evaluated:
    """A prompt with pictures, in the context: its positions, how many were reused, and
    where the first picture begins."""

    tokens: list[int]  # what the context holds (a picture's positions hold stale ids)
    reused: int
    first_picture: int


class Projector:
    """The projector loaded for one model; `close` it before the model."""

    def __init__(self, mtmd: Any, llm: Any, path: Path, *, threads: int, use_gpu: bool, log: Any) -> None:
        self._mtmd = mtmd
        mtmd.mtmd_log_set(log, ctypes.c_void_p(0))
        mtmd.mtmd_helper_log_set(log, ctypes.c_void_p(0))
        params = mtmd.mtmd_context_params_default()
        params.use_gpu = use_gpu
        params.print_timings = False
        params.n_threads = threads
        self._ctx = mtmd.mtmd_init_from_file(str(path).encode(), llm._model.model, params)
        if not self._ctx:
            raise ProjectorError(
                f"The vision projector {path.name} could not be loaded: it is damaged, or made for "
                "another model (its output width must match the model's)."
            )
        if not mtmd.mtmd_support_vision(self._ctx):
            self.close()
            raise ProjectorError(f"{path.name} is a projector without a vision encoder.")

    def evaluate(self, llm: Any, prompt: str, images: Sequence[bytes], n_ctx: int) -> Evaluated:
        """Put `prompt` with its pictures (one per marker, in order) into `llm`'s context.

        Raises:
            GenerationError: a picture cannot be read, the markers and pictures differ in
                number, or it all does not fit in the context.
        """
        bitmaps = [self._bitmap(data) for data in images]
        chunks = self._mtmd.mtmd_input_chunks_init()
        try:
            self._tokenize(chunks, prompt, bitmaps)
            return self._eval_chunks(llm, chunks, n_ctx)
        finally:
            self._mtmd.mtmd_input_chunks_free(chunks)
            for bitmap in bitmaps:
                self._mtmd.mtmd_bitmap_free(bitmap)

    def close(self) -> None:
        if self._ctx:
            self._mtmd.mtmd_free(self._ctx)
            self._ctx = None

    def _bitmap(self, data: bytes) -> Any:
        buffer = (ctypes.c_uint8 * len(data)).from_buffer(bytearray(data))
        bitmap = self._mtmd.mtmd_helper_bitmap_init_from_buf(self._ctx, buffer, len(data), False)
        if not bitmap:
            raise GenerationError("A picture in the chat could not be read by the vision projector.")
        return bitmap

    def _tokenize(self, chunks: Any, prompt: str, bitmaps: list[Any]) -> None:
        text = self._mtmd.mtmd_input_text()
        encoded = prompt.encode("utf-8")
        text.text, text.text_len = encoded, len(encoded)
        text.add_special, text.parse_special = True, True
        array = (self._mtmd.mtmd_bitmap_p_ctypes * len(bitmaps))(*bitmaps)
        result = self._mtmd.mtmd_tokenize(self._ctx, chunks, ctypes.byref(text), array, len(bitmaps))
        if result != 0:
            raise GenerationError(
                "The prompt and its pictures do not match (one picture for each place one goes)."
            )

    def _eval_chunks(self, llm: Any, chunks: Any, n_ctx: int) -> Evaluated:
        count = self._mtmd.mtmd_input_chunks_size(chunks)
        pieces = [self._mtmd.mtmd_input_chunks_get(chunks, i) for i in range(count)]
        needed = sum(self._n_tokens(piece) for piece in pieces)
        if needed >= n_ctx:
            raise GenerationError(
                f"The chat and its pictures take {needed} tokens but the context holds {n_ctx}: "
                "load the model with a larger context, or start a new chat."
            )
        reused = self._keep_common_start(llm, pieces[0]) if pieces else 0
        first_picture = -1
        for piece in pieces:
            if self._mtmd.mtmd_input_chunk_get_type(piece) == _TEXT_CHUNK:
                tokens = self._text_tokens(piece)
                done = reused if piece is pieces[0] else 0
                if tokens[done:]:
                    llm.eval(tokens[done:])
                continue
            first_picture = llm.n_tokens if first_picture < 0 else first_picture
            past = ctypes.c_int32(0)
            result = self._mtmd.mtmd_helper_eval_chunk_single(
                self._ctx, llm._ctx.ctx, piece, llm.n_tokens, 0, llm.n_batch, False, ctypes.byref(past)
            )
            if result != 0:
                raise GenerationError(f"The model could not take in a picture (error {result}).")
            llm.n_tokens = past.value
        return Evaluated(llm.input_ids[: llm.n_tokens].tolist(), reused, first_picture)

    def _keep_common_start(self, llm: Any, first: Any) -> int:
        """Keep the cached tokens the prompt's opening text shares; drop the rest."""
        keep = 0
        if self._mtmd.mtmd_input_chunk_get_type(first) == _TEXT_CHUNK:
            keep = common_prefix(self._text_tokens(first), llm.input_ids[: llm.n_tokens].tolist())
        llm._ctx.kv_cache_seq_rm(0, keep, -1)
        llm.n_tokens = keep
        return keep

    def _text_tokens(self, chunk: Any) -> list[int]:
        size = ctypes.c_size_t(0)
        pointer = self._mtmd.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(size))
        return [pointer[i] for i in range(size.value)]

    def _n_tokens(self, chunk: Any) -> int:
        return int(self._mtmd.mtmd_input_chunk_get_n_tokens(chunk))
