"""Request bodies of the OpenAI-compatible endpoints, parsed into dataclasses.

Parsing checks every field the API uses and names the one at fault in the error
(`BadRequestError.param`). `null` means "not given", as OpenAI's clients send it.

Fields the API does not know are ignored: clients add their own (`user`, `metadata`,
`store`, ...). Fields that ask for something Hearth cannot do (several choices, tools,
echo, a suffix) are refused unless they hold the value that means "off", so a client
never gets an answer that silently ignored what it asked for.

Steering fields, as OpenAI and llama.cpp's server take them: `logprobs` (chat: true or
false, with `top_logprobs` 0-20; completions: how many alternatives, 0-20),
`logit_bias` (token id -> -100..100), `response_format` (`json_object`, or
`json_schema` with its schema), and llama.cpp's `grammar` (GBNF) and `json_schema`.

Sampler fields are OpenAI's (`temperature`, `top_p`, `presence_penalty`,
`frequency_penalty`, `seed`, `max_tokens`) plus the rest of `SamplerParams` under
their own names (`top_k`, `min_p`, `typical_p`, `repeat_penalty`, `repeat_last_n`,
`mirostat_mode`, `mirostat_tau`, `mirostat_eta`), as llama.cpp's server accepts them.
Anything not given comes from the default sampler preset.

One field is Hearth's own: `hearth_itemize: true` asks for the prompt's parts and their
token counts in the reply (see docs/api.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from api.errors import BadRequestError
from api.steering import Steering, parse_steering
from presets.errors import SamplerError
from presets.samplers import RANGES, SamplerParams
from presets.template_budget import REASONING_EFFORTS, TemplateOptions

Role = Literal["system", "user", "assistant"]

_WHOLE_CONTEXT = ("repeat_last_n", "max_new_tokens")
MAX_STOPS = 64  # OpenAI allows 4; llama.cpp's server has no limit

# Request field -> SamplerParams field. Later entries win (max_completion_tokens over max_tokens).
SAMPLER_FIELDS: dict[str, str] = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "min_p": "min_p",
    "typical_p": "typical_p",
    "repeat_penalty": "repeat_penalty",
    "repeat_last_n": "repeat_last_n",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "mirostat_mode": "mirostat_mode",
    "mirostat_tau": "mirostat_tau",
    "mirostat_eta": "mirostat_eta",
    "seed": "seed",
    # llama.cpp's and Ollama's names, as SillyTavern sends them beside OpenAI's.
    "mirostat": "mirostat_mode",
    "n_predict": "max_new_tokens",
    "max_tokens": "max_new_tokens",
    "max_completion_tokens": "max_new_tokens",
}

# Fields Hearth cannot honour, with the test for the one value that means "off".
_ONLY_OFF: dict[str, Callable[[Any], bool]] = {
    "best_of": lambda v: v == 1,
    "echo": lambda v: v is False,
    "suffix": lambda v: v == "",
    "tools": lambda v: v == [],
    "functions": lambda v: v == [],
    "tool_choice": lambda v: v == "none",
    "function_call": lambda v: v == "none",
}


_ROLES: dict[str, Role] = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
}


@dataclass(frozen=True)
class ChatMessage:
    """One message of a chat request. OpenAI's `developer` role arrives as `system`."""

    role: Role
    content: str


@dataclass(frozen=True)
class Generation:
    """What every generating request shares: sampling, stop strings and streaming."""

    model: str  # as the client named it; "" when it did not
    params: SamplerParams
    stop: tuple[str, ...]
    stream: bool
    include_usage: bool  # stream_options.include_usage: a last chunk carries the token counts
    itemize: bool = False  # hearth_itemize: the reply says what the prompt was made of
    steering: Steering = field(default_factory=Steering)
    n: int = 1  # choices: replies written one after another (a stream has one)




@dataclass(frozen=True)
class CompletionRequest:
    """POST /v1/completions: raw text the model continues, with no prompt format."""

    prompt: str
    generation: Generation


@dataclass(frozen=True)
class ChatRequest:
    """POST /v1/chat/completions: messages rendered in the loaded model's prompt format."""

    messages: tuple[ChatMessage, ...]
    generation: Generation
    # Switches for the model's chat template: `enable_thinking`, `reasoning_effort`.
    switches: TemplateOptions = ()


def parse_completion_request(body: Any, defaults: SamplerParams) -> CompletionRequest:
    """Check a completion body and build the request.

    Raises:
        BadRequestError: naming the field at fault.
    """
    fields = _object(body)
    return CompletionRequest(_prompt(fields.get("prompt")), _generation(fields, defaults))


def parse_chat_request(body: Any, defaults: SamplerParams) -> ChatRequest:
    """Check a chat completion body and build the request.

    Raises:
        BadRequestError: naming the field at fault.
    """
    fields = _object(body)
    return ChatRequest(_messages(fields.get("messages")), _generation(fields, defaults), _switches(fields))


def _switches(fields: Mapping[str, Any]) -> TemplateOptions:
    """`reasoning_effort` (OpenAI's) and `chat_template_kwargs` (llama.cpp server's): only
    the switches Hearth hands to templates, checked."""
    kwargs = fields.get("chat_template_kwargs") or {}
    if not isinstance(kwargs, Mapping):
        raise BadRequestError("'chat_template_kwargs' must be an object.", "chat_template_kwargs")
    unknown = sorted(set(kwargs) - {"enable_thinking", "reasoning_effort"})
    if unknown:
        raise BadRequestError(
            "Hearth passes only 'enable_thinking' and 'reasoning_effort' to chat templates.",
            "chat_template_kwargs",
            "unsupported",
        )
    switches: list[tuple[str, bool | str]] = []
    thinking = kwargs.get("enable_thinking")
    if thinking is not None:
        if not isinstance(thinking, bool):
            raise BadRequestError("'enable_thinking' must be true or false.", "chat_template_kwargs")
        switches.append(("enable_thinking", thinking))
    effort = fields.get("reasoning_effort", kwargs.get("reasoning_effort"))
    if effort is not None:
        if effort not in REASONING_EFFORTS:
            raise BadRequestError("'reasoning_effort' must be 'low', 'medium' or 'high'.", "reasoning_effort")
        switches.append(("reasoning_effort", effort))
    return tuple(switches)


def _object(body: Any) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise BadRequestError("The request body must be a JSON object.")
    return body


def _generation(fields: Mapping[str, Any], defaults: SamplerParams) -> Generation:
    for name, is_off in _ONLY_OFF.items():
        value = fields.get(name)
        if value is not None and not is_off(value):
            raise BadRequestError(
                f"Hearth's API does not support '{name}'; leave it out.", name, "unsupported"
            )
    model = fields.get("model")
    if model is not None and not isinstance(model, str):
        raise BadRequestError("'model' must be a string.", "model")
    stream = _flag(fields, "stream")
    options = fields.get("stream_options")
    if options is not None and not isinstance(options, Mapping):
        raise BadRequestError("'stream_options' must be an object.", "stream_options")
    include_usage = _flag(options or {}, "include_usage", "stream_options.include_usage")
    return Generation(
        model=model or "",
        params=_params(fields, defaults),
        stop=_stop(fields.get("stop")),
        stream=stream,
        include_usage=stream and include_usage,
        itemize=_flag(fields, "hearth_itemize"),
        steering=parse_steering(fields),
        n=_choices(fields.get("n"), stream),
    )


MAX_CHOICES = 8


def _choices(value: Any, stream: bool) -> int:
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CHOICES:
        raise BadRequestError(f"'n' must be a number of choices from 1 to {MAX_CHOICES}.", "n")
    if value > 1 and stream:
        raise BadRequestError("Several choices ('n' above 1) come only unstreamed.", "n", "unsupported")
    return value


def _flag(fields: Mapping[str, Any], name: str, param: str | None = None) -> bool:
    value = fields.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise BadRequestError(f"'{param or name}' must be true or false.", param or name)
    return value


def _params(fields: Mapping[str, Any], defaults: SamplerParams) -> SamplerParams:
    params = defaults
    for name, target in SAMPLER_FIELDS.items():
        value = fields.get(name)
        if value is None:
            continue
        if value == -1 and target in _WHOLE_CONTEXT:  # llama.cpp's "as far as the context goes"
            value = RANGES[target].high
        try:
            params = SamplerParams.from_mapping({target: value}, base=params)
        except SamplerError as exc:
            raise BadRequestError(f"Invalid '{name}': {exc}", name, "invalid_value") from exc
    return params


def _stop(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise BadRequestError("'stop' must be a string or a list of strings.", "stop")
    if len(stops) > MAX_STOPS:
        raise BadRequestError(f"'stop' may hold at most {MAX_STOPS} strings.", "stop")
    return tuple(dict.fromkeys(s for s in stops if s))


def _prompt(value: Any) -> str:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, list):
        raise BadRequestError("'prompt' must be one string; send one request per prompt.", "prompt")
    if not isinstance(value, str):
        raise BadRequestError("'prompt' must be a string (token ids are not supported).", "prompt")
    if not value:
        raise BadRequestError("'prompt' must not be empty.", "prompt")
    return value


def _messages(value: Any) -> tuple[ChatMessage, ...]:
    if not isinstance(value, list) or not value:
        raise BadRequestError("'messages' must be a non-empty list of messages.", "messages")
    return tuple(_message(item, f"messages[{index}]") for index, item in enumerate(value))


def _message(item: Any, where: str) -> ChatMessage:
    if not isinstance(item, Mapping):
        raise BadRequestError(f"'{where}' must be an object with a role and content.", where)
    raw_role = item.get("role")
    role = _ROLES.get(raw_role) if isinstance(raw_role, str) else None
    if role is None:
        raise BadRequestError(
            f"'{where}.role' must be system, developer, user or assistant (tools are not supported).",
            f"{where}.role",
        )
    if item.get("tool_calls") or item.get("function_call"):
        raise BadRequestError(f"'{where}' holds tool calls, which are not supported.", where, "unsupported")
    content = item.get("content")
    if content is None and role == "assistant":
        content = ""
    return ChatMessage(role, _content(content, f"{where}.content"))


def _content(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        texts = []
        for part in value:
            if (
                not isinstance(part, Mapping)
                or part.get("type") != "text"
                or not isinstance(part.get("text"), str)
            ):
                raise BadRequestError(f"'{where}' may only hold text parts.", where, "unsupported")
            texts.append(part["text"])
        return "\n".join(texts)
    raise BadRequestError(f"'{where}' must be a string or a list of text parts.", where)
