"""The in-process llama.cpp backend. This is the only module that imports `llama_cpp`.

Prompts are tokenized here, once, and handed to llama-cpp-python as token ids, so the
token counts the prompt assembler budgets with are exactly what the model evaluates.
`KVCacheView` mirrors the tokens llama.cpp holds, which is how reuse is reported.
"""

from __future__ import annotations

import codecs
import ctypes
import logging
import secrets
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import llama_cpp
import numpy as np
import numpy.typing as npt
from llama_cpp import Llama, LlamaGrammar, LogitsProcessorList, StoppingCriteriaList
from llama_cpp import _logger as llama_cpp_logger
from llama_cpp.llama_grammar import json_schema_to_gbnf

from engine.backend import Backend
from engine.errors import GenerationError, ModelLoadError, ModelMemoryError, ProjectorError
from engine.gguf import check_projector, model_info, read_header
from engine.kvcache import KVCacheView, ReusePlan
from engine.prompts import HarmonyStream, uses_channels
from engine.resources import (
    BufferSizes,
    LoadLog,
    llama_said,
    memory_complaint,
    out_of_memory,
    parse_buffer_sizes,
    physical_cores,
)
from engine.sampling import LogprobRecorder, bias_stage
from engine.types import Chunk, Finish, FinishReason, GenerationRequest, LoadOptions, TokenLogprob, Usage
from engine.vision import Projector

log = logging.getLogger(__name__)


LEARNED_POSITIONS = frozenset({"gpt2", "starcoder"})
"""Architectures with a learned position embedding: a fixed longest context, and no shift."""
UNPLANNED_N_CTX = 4096  # the context of a load whose "auto" nobody planned
GGML_TYPES = {
    "f16": llama_cpp.GGML_TYPE_F16,
    "q8_0": llama_cpp.GGML_TYPE_Q8_0,
    "q4_0": llama_cpp.GGML_TYPE_Q4_0,
}


def gpu_offload_supported() -> bool:
    """Whether this llama.cpp build can put layers on a GPU (CUDA, ROCm, Metal, Vulkan)."""
    return bool(llama_cpp.llama_supports_gpu_offload())


_LOAD_LOG = LoadLog()


@llama_cpp.llama_log_callback
def _on_llama_log(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    # llama.cpp has one log callback per process: read loads, then print as llama-cpp-python does.
    _LOAD_LOG.write(text.decode("utf-8", errors="replace"))
    llama_cpp_logger.llama_log_callback(level, text, user_data)


llama_cpp.llama_log_set(_on_llama_log, ctypes.c_void_p(0))


def open_llama(path: Path, options: LoadOptions) -> Llama:
    """llama-cpp-python's own `Llama`, set up as Hearth runs it. The backend wraps it;
    benchmarks use it bare as the baseline Hearth is measured against."""
    threads = options.threads or physical_cores()
    layers = options.n_gpu_layers or 0  # unplanned "auto": the CPU
    return Llama(
        model_path=str(path),
        n_ctx=options.n_ctx or UNPLANNED_N_CTX,
        n_threads=threads,
        n_threads_batch=options.threads_batch or threads,
        n_gpu_layers=layers,
        n_batch=options.n_batch,
        n_ubatch=options.n_ubatch,
        flash_attn=options.uses_flash_attn(offloading=layers != 0 and gpu_offload_supported()),
        type_k=GGML_TYPES[options.cache_type_k],
        type_v=GGML_TYPES[options.cache_type_v],
        use_mmap=options.use_mmap,
        use_mlock=options.use_mlock,
        # A full-size sliding-window cache lets prefix reuse and shifting cut it anywhere.
        swa_full=True,
        verbose=False,
    )


class LlamaCppBackend(Backend):
    """A GGUF model loaded into this process with llama-cpp-python."""

    def __init__(self, path: Path, options: LoadOptions) -> None:
        """Load a GGUF file.

        Raises:
            ModelNotFoundError, NotGGUFError, LegacyGGMLError, CorruptModelError:
                the file is missing or not a usable GGUF (checked before llama.cpp runs).
            ModelMemoryError: llama.cpp could not allocate the memory it needs.
            ModelLoadError: llama.cpp refused the file.
        """
        header = read_header(path)
        info = model_info(path, header)
        n_ctx = options.n_ctx or UNPLANNED_N_CTX
        if info.architecture in LEARNED_POSITIONS and info.context_length:
            # Past its last position embedding llama.cpp aborts the whole process.
            n_ctx = min(n_ctx, info.context_length)
        try:
            with _LOAD_LOG.reading() as log_lines:
                self._llm = open_llama(path, replace(options, n_ctx=n_ctx))
        except Exception as exc:  # llama.cpp's errors, and jinja2's for a broken chat template
            if out_of_memory("".join(log_lines)):
                raise ModelMemoryError(
                    f"{path.name} did not fit in memory: llama.cpp could not allocate its "
                    f"buffers ({memory_complaint(log_lines)}). Fewer GPU layers or a smaller "
                    "context need less."
                ) from exc
            broken_template = type(exc).__module__.startswith("jinja2")
            detail = f"its chat template is broken: {exc}" if broken_template else llama_said(exc, log_lines)
            raise ModelLoadError(
                f"llama.cpp could not load {path.name} ({info.architecture}, {info.quant}). "
                "The file may be damaged, or its architecture may be newer than this "
                f"llama.cpp build. Details: {detail}"
            ) from exc
        usable = self._llm.n_ctx()  # llama.cpp rounds up to a multiple of 256
        super().__init__(info, min(usable, n_ctx) if info.architecture in LEARNED_POSITIONS else usable)
        self.options = options
        self.buffers: BufferSizes = parse_buffer_sizes("".join(log_lines))
        self.cache = KVCacheView()
        # Recurrent and some hybrid models keep a state that cannot be cut and moved; a
        # model without rope has its positions baked into the cached values.
        memory = self._llm._ctx.memory
        self.can_shift = (
            memory is not None
            and bool(llama_cpp.llama_memory_can_shift(memory))
            and info.architecture not in LEARNED_POSITIONS
        )
        self.shift_enabled = True
        self._said_no_shift = False
        self._bos = self._llm.token_bos() if self._llm._model.add_bos_token() else None
        self._projector = self._open_projector(Path(options.mmproj), options) if options.mmproj else None
        self.sees_images = self._projector is not None
        self.channels = uses_channels(info.chat_template)
        if self.channels:
            # gpt-oss's channel markers are special tokens: keep them in the text it writes.
            self._llm.detokenize = _with_special_tokens(self._llm)  # type: ignore[method-assign]

    @property
    def adds_bos(self) -> bool:
        return self._bos is not None

    def special_tokens(self) -> tuple[str, str]:
        def text(token: int) -> str:
            if token < 0:
                return ""
            return self._llm.detokenize([token], special=True).decode("utf-8", errors="replace")

        return text(self._llm.token_bos()), text(self._llm.token_eos())

    def tokenize(self, text: str) -> list[int]:
        # special=True so format tokens such as <|im_start|> become single control tokens.
        return list(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def prompt_tokens(self, prompt: str) -> list[int]:
        """The exact token ids a prompt is evaluated as, BOS included."""
        tokens = self.tokenize(prompt)
        return [self._bos, *tokens] if self._bos is not None else tokens

    def _open_projector(self, path: Path, options: LoadOptions) -> Projector:
        """Load the vision projector beside the model. Raises ProjectorError (the model is closed)."""
        try:
            try:
                header = read_header(path)
            except ModelLoadError as exc:
                raise ProjectorError(f"The vision projector could not be read: {exc}") from exc
            check_projector(path, header)
            threads = options.threads or physical_cores()
            use_gpu = bool(options.n_gpu_layers) and gpu_offload_supported()
            import llama_cpp.mtmd_cpp as mtmd  # the multimodal library loads only for a projector

            return Projector(mtmd, self._llm, path, threads=threads, use_gpu=use_gpu, log=_on_llama_log)
        except BaseException:
            self._llm.close()
            raise

    def generate(self, request: GenerationRequest, cancel: threading.Event) -> Iterator[Chunk | Finish]:
        self._sync_cache()
        if request.images:
            tokens, plan, shifted, first_picture = self._with_pictures(request)
        else:
            tokens = self.prompt_tokens(request.prompt)
            if len(tokens) >= self.n_ctx:
                too_long = f"The prompt has {len(tokens)} tokens but the context holds {self.n_ctx}."
                raise GenerationError(too_long)
            shifted, first_picture = self._shift_cache(tokens), -1
            plan = self._plan(tokens)
        seen = [len(tokens) - 1]

        def should_stop(ids: Any, _logits: Any) -> bool:
            # Called after each sampled token with the ids so far (prompt + sampled - 1).
            seen[0] = max(seen[0], len(ids))
            return cancel.is_set()

        reason = FinishReason.LENGTH
        channels = HarmonyStream() if self.channels else None
        try:
            for text, finish, logprob in self._stream(tokens, request, StoppingCriteriaList([should_stop])):
                text = channels.feed(text) if channels is not None else text
                if text or logprob is not None:
                    yield Chunk(text, (logprob,) if logprob is not None else ())
                if finish:
                    reason = FinishReason.STOP if finish == "stop" else FinishReason.LENGTH
            if channels is not None and (rest := channels.close()):
                yield Chunk(rest)
        finally:
            if first_picture >= 0:  # however it ended, no later prompt may take a picture's cells for text
                self._llm._ctx.kv_cache_seq_rm(0, first_picture, -1)
                self._llm.n_tokens = first_picture
        if cancel.is_set():
            reason = FinishReason.CANCELLED
        self._sync_cache()
        # The criteria also see the token sampled when the length limit ends the run,
        # which is never returned: cap the count at the limit.
        generated = min(seen[0] - len(tokens) + 1, request.params.max_new_tokens)
        usage = Usage(len(tokens), plan.evaluated, plan.reused, generated, shifted)
        yield Finish(reason, usage)

    def _with_pictures(self, request: GenerationRequest) -> tuple[list[int], ReusePlan, int, int]:
        """Evaluate a prompt with pictures (`engine.vision`): its tokens, the reuse, no
        shift, and where the first picture begins."""
        if self._projector is None:
            raise GenerationError("This model was loaded without a vision projector: it cannot see pictures.")
        try:
            done = self._projector.evaluate(self._llm, request.prompt, request.images, self.n_ctx)
        except BaseException:  # part of it may be in the cache, pictures included: forget it all
            self._llm.reset()
            self._llm._ctx.kv_cache_clear()
            self.cache.clear()
            raise
        plan = ReusePlan(prompt_tokens=len(done.tokens), reused=done.reused)
        return done.tokens, plan, 0, done.first_picture

    def _stream(
        self, tokens: list[int], request: GenerationRequest, stopping: StoppingCriteriaList
    ) -> Iterator[tuple[str, str | None, TokenLogprob | None]]:
        """The reply's text, token by token: (text, finish reason or None, the token's
        probabilities when asked for). Stop strings are the run's to find (`engine.run`),
        which then stops this through `stopping`."""
        params, llm = request.params, self._llm
        # The repetition window is a constructor setting in llama-cpp-python; the
        # sampler reads it afresh on every call.
        llm.last_n_tokens_size = params.repeat_last_n
        llm.set_seed(params.seed if params.seed >= 0 else secrets.randbits(32))
        recorder = LogprobRecorder(request.logprobs, self._piece) if request.logprobs is not None else None
        stages = [bias_stage(request.logit_bias, llm.n_vocab())] if request.logit_bias else []
        # Never past this backend's context, which can be shorter than llama.cpp's (a
        # model with learned positions): the run ends with "length" there.
        limit = max(1, min(params.max_new_tokens, self.n_ctx - len(tokens)))
        # Bytes that never become a character are dropped, as llama-cpp-python and llama.cpp's
        # server drop them; a character split across tokens waits for its last byte.
        decoder = codecs.getincrementaldecoder("utf-8")(errors="ignore")
        tokens_out = llm.generate(
            tokens,
            temp=params.temperature,
            top_p=params.top_p,
            top_k=params.top_k,
            min_p=params.min_p,
            typical_p=params.typical_p,
            repeat_penalty=params.repeat_penalty,
            presence_penalty=params.presence_penalty,
            frequency_penalty=params.frequency_penalty,
            mirostat_mode=params.mirostat_mode,
            mirostat_tau=params.mirostat_tau,
            mirostat_eta=params.mirostat_eta,
            logits_processor=LogitsProcessorList(stages) if stages else None,
            stopping_criteria=stopping,
            grammar=self._grammar(request),
        )
        for produced, token in enumerate(tokens_out, start=1):
            if llama_cpp.llama_vocab_is_eog(llm._model.vocab, token):
                yield decoder.decode(b"", final=True), "stop", None
                return
            text = decoder.decode(llm.detokenize([token]))
            logprob = recorder.take(token, self._last_logits()) if recorder is not None else None
            yield text, "length" if produced >= limit else None, logprob
            if produced >= limit:
                return

    def _last_logits(self) -> npt.NDArray[np.single]:
        """The logits the token just sampled came from, kept until the next evaluation (a view)."""
        pointer = llama_cpp.llama_get_logits_ith(self._llm._ctx.ctx, -1)
        return np.ctypeslib.as_array(pointer, shape=(self._llm.n_vocab(),))

    def _piece(self, token: int) -> bytes:
        return bytes(self._llm.detokenize([token], special=True))

    def _grammar(self, request: GenerationRequest) -> LlamaGrammar | None:
        """The request's grammar, or its JSON schema as one, checked. Raises GenerationError.

        llama.cpp parses a grammar only when the sampler chain is built, and a chain built
        with one it could not parse crashes the process: so it is parsed once here first."""
        # The request's own (the API's), else the sampler settings' (the panel's).
        grammar = request.grammar or request.params.grammar
        schema = (request.json_schema or request.params.json_schema).strip()
        if not grammar.strip() and not schema:
            return None
        what = "JSON schema" if schema else "grammar"
        try:
            gbnf = json_schema_to_gbnf(schema) if schema else grammar
        except Exception as exc:  # the converter raises whatever a bad schema makes it meet
            raise GenerationError(f"The {what} could not be used: {exc}") from exc
        parsed = llama_cpp.llama_sampler_init_grammar(self._llm._model.vocab, gbnf.encode(), b"root")
        if not parsed:
            raise GenerationError(
                f"The {what} could not be used: llama.cpp could not parse it as a GBNF grammar "
                "(it needs a rule named root, and every rule it names)."
            )
        llama_cpp.llama_sampler_free(parsed)
        return LlamaGrammar.from_string(gbnf, verbose=False)

    def _shift_cache(self, tokens: list[int]) -> int:
        """Drop the span the prompt no longer has and slide the rest left (ContextShift).

        Returns how many cached tokens were kept by shifting (0 when no shift applied).
        """
        if not self.shift_enabled:
            return 0
        plan = self.cache.plan_shift(tokens)
        if plan is None:
            return 0
        if not self.can_shift:
            if not self._said_no_shift:
                log.info("%s cannot shift its KV cache; evaluating the prompt in full", self.info.name)
                self._said_no_shift = True
            return 0
        ctx = self._llm._ctx
        end = plan.segment_start + plan.segment_length
        removed = ctx.kv_cache_seq_rm(0, end, -1) and ctx.kv_cache_seq_rm(0, plan.keep, plan.segment_start)
        if not removed:  # this cache type cannot drop a span; start clean instead
            log.info("%s could not remove a span of its KV cache; evaluating in full", self.info.name)
            self._llm.reset()
            self.cache.clear()
            return 0
        ctx.kv_cache_seq_shift(0, plan.segment_start, end, plan.delta)
        self.cache.apply_shift(plan)
        kept = len(self.cache.tokens)
        self._llm.input_ids[:kept] = self.cache.tokens
        self._llm.n_tokens = kept
        self._llm._requires_eval = True
        log.info(
            "context shift: dropped %d tokens at %d, kept %d by moving them", plan.dropped, plan.keep, kept
        )
        return plan.segment_length

    def _plan(self, tokens: list[int]) -> ReusePlan:
        plan = self.cache.plan(tokens)
        # llama-cpp-python skips evaluation entirely when the cache holds exactly the prompt.
        if self.cache.tokens == tokens and not self._llm._requires_eval:
            return ReusePlan(prompt_tokens=len(tokens), reused=len(tokens))
        return plan

    def _sync_cache(self) -> None:
        self.cache.replace(self._llm.input_ids[: self._llm.n_tokens].tolist())

    def clear_cache(self) -> None:
        """Forget the KV cache, so the next prompt is evaluated from its first token.

        Waits for a running generation to end first.
        """
        with self.lock:
            self._llm.reset()
            self._llm._ctx.kv_cache_clear()
            self.cache.clear()

    def close(self) -> None:
        if self._projector is not None:
            self._projector.close()
        self._llm.close()
        self.cache.clear()


def _with_special_tokens(llm: Llama) -> Any:
    """`llm.detokenize` that writes special tokens as text unless told otherwise."""
    plain = llm.detokenize

    def detokenize(tokens: list[int], prev_tokens: list[int] | None = None, special: bool = True) -> bytes:
        return plain(tokens, prev_tokens=prev_tokens, special=special)

    return detokenize

