"""Request bodies as SillyTavern builds them for a text-completion or chat-completion
backend, "Request token probabilities" on: every field its builders set, under the names
it uses (text-generation-webui's, llama.cpp's and Ollama's beside OpenAI's). They are
written from the field list of SillyTavern's `createTextGenGenerationData` and its chat
completion request, with the values of its default settings; SillyTavern itself cannot
run here to record them."""

from __future__ import annotations

from typing import Any

STOPS = ["\nUser:", "\nAssistant:", "<|im_end|>", "<|im_start|>user"]


def text_completion(prompt: str, kind: str = "generic") -> dict[str, Any]:
    """A text-completion body; `kind` "llamacpp" adds what SillyTavern adds for llama.cpp."""
    body: dict[str, Any] = {
        "prompt": prompt, "model": "hearth", "max_new_tokens": 40, "max_tokens": 40,
        "logprobs": 10, "temperature": 0.7, "top_p": 0.9, "typical_p": 1, "typical": 1,
        "min_p": 0.05, "repetition_penalty": 1.1, "frequency_penalty": 0, "presence_penalty": 0,
        "top_k": 40, "skew": 0, "min_tokens": 0, "add_bos_token": True, "smoothing_factor": 0,
        "smoothing_curve": 1, "dry_allowed_length": 2, "dry_multiplier": 0, "dry_base": 1.75,
        "dry_sequence_breakers": '["\\n", ":", "\\"", "*"]', "dry_penalty_last_n": 0,
        "max_tokens_second": 0, "stopping_strings": STOPS, "stop": STOPS, "truncation_length": 4096,
        "ban_eos_token": False, "skip_special_tokens": True, "include_reasoning": True, "top_a": 0,
        "tfs": 1, "mirostat_mode": 0, "mirostat_tau": 5, "mirostat_eta": 0.1, "custom_token_bans": "",
        "banned_strings": [], "api_type": kind, "xtc_threshold": 0.1, "xtc_probability": 0,
        "nsigma": 0, "top_n_sigma": 0, "min_keep": 0, "rep_pen": 1.1, "rep_pen_range": 0,
        "repetition_penalty_range": 0, "guidance_scale": 1, "negative_prompt": "",
        "repeat_penalty": 1.1, "repeat_last_n": 0, "n_predict": 40, "num_predict": 40,
        "num_ctx": 4096, "mirostat": 0, "ignore_eos": False, "n_probs": 10, "rep_pen_slope": 1,
    }  # fmt: skip
    if kind == "llamacpp":
        body.update(
            {"n": 1, "samplers": ["top_k", "min_p", "temperature"], "cache_prompt": True,
             "logit_bias": [[11, -5], [12, False]], "grammar": ""}
        )  # fmt: skip
    return body


def chat_completion(messages: list[dict[str, str]]) -> dict[str, Any]:
    """A chat-completion body for a "Custom (OpenAI-compatible)" source."""
    return {
        "messages": messages, "model": "hearth", "temperature": 1, "frequency_penalty": 0,
        "presence_penalty": 0, "top_p": 1, "max_tokens": 300, "stream": False, "logit_bias": {},
        "seed": 7, "n": 1, "logprobs": True, "top_logprobs": 5, "stop": STOPS,
        "include_reasoning": False, "reasoning_effort": "medium", "top_k": 0, "min_p": 0,
        "repetition_penalty": 1, "custom_url": "http://127.0.0.1:7860/v1",
    }  # fmt: skip
