"""What a request asks of the tokens themselves, as OpenAI and llama.cpp's server take it.

- `logprobs`: chat sends `true` with `top_logprobs` (0-20 alternatives); completions
  send the number of alternatives (OpenAI allows 5, llama.cpp's server more: 0-20 here).
- `logit_bias`: token id (as text) -> a bias from -100 (never) to 100 (all but always).
- `response_format`: `json_object` (any object, or llama.cpp's `schema` beside it) or
  `json_schema` (`json_schema.schema`), and llama.cpp's own `json_schema` and `grammar`
  (GBNF). One of a grammar and a schema at most.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from api.errors import BadRequestError
from engine.sampling import MAX_TOP_LOGPROBS

MAX_BIASED_TOKENS = 1024


@dataclass(frozen=True)
class Steering:
    """What a request asks of the tokens themselves (`GenerationRequest` takes it as is)."""

    logprobs: int | None = None  # None: no log probabilities; else how many alternatives
    logit_bias: tuple[tuple[int, float], ...] = ()
    grammar: str = ""
    json_schema: str = ""


def parse_steering(fields: Mapping[str, Any]) -> Steering:
    """The steering a request body asks for. Raises BadRequestError naming the field."""
    return Steering(_logprobs(fields), _logit_bias(fields.get("logit_bias")), *_constraint(fields))


def _logprobs(fields: Mapping[str, Any]) -> int | None:
    """Chat asks with `logprobs: true` and `top_logprobs: N`; completions with `logprobs: N`,
    or with llama.cpp's `n_probs: N` (SillyTavern's "Request token probabilities")."""
    value, top = fields.get("logprobs"), fields.get("top_logprobs")
    if value is None and fields.get("n_probs"):
        value = fields.get("n_probs")
    if value is None or value is False:
        if top not in (None, 0):
            raise BadRequestError("'top_logprobs' needs 'logprobs': true.", "top_logprobs")
        return None
    count = (top or 0) if value is True else value
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_TOP_LOGPROBS:
        raise BadRequestError(
            f"'logprobs' must be true (chat) or a number of alternatives from 0 to {MAX_TOP_LOGPROBS}, "
            f"and 'top_logprobs' from 0 to {MAX_TOP_LOGPROBS}.",
            "top_logprobs" if value is True else "logprobs",
        )
    return count


def _logit_bias(value: Any) -> tuple[tuple[int, float], ...]:
    """OpenAI's object of token ids, or llama.cpp's list of [id, bias] pairs, where a bias
    of `false` bans the token (SillyTavern sends its token bans so)."""
    if value is None:
        return ()
    pairs = list(value.items()) if isinstance(value, Mapping) else value
    if not isinstance(pairs, list) or len(pairs) > MAX_BIASED_TOKENS:
        raise BadRequestError(
            f"'logit_bias' must be an object of at most {MAX_BIASED_TOKENS} token ids and biases.",
            "logit_bias",
        )
    bias = []
    for pair in pairs:
        key, amount = pair if isinstance(pair, (list, tuple)) and len(pair) == 2 else (None, None)
        amount = -100 if amount is False else amount
        if not str(key).isdigit() or isinstance(amount, bool) or not isinstance(amount, (int, float)):
            raise BadRequestError("'logit_bias' maps token ids to numbers.", "logit_bias")
        if not -100 <= amount <= 100:
            raise BadRequestError("A 'logit_bias' value must be from -100 to 100.", "logit_bias")
        bias.append((int(str(key)), float(amount)))
    return tuple(bias)


def _constraint(fields: Mapping[str, Any]) -> tuple[str, str]:
    """(GBNF grammar, JSON schema as text) from `response_format`, `grammar` or `json_schema`."""
    # SillyTavern's text completion sends the grammar as text-generation-webui names it.
    grammar, schema = fields.get("grammar") or fields.get("grammar_string"), fields.get("json_schema")
    if grammar is not None and not isinstance(grammar, str):
        raise BadRequestError("'grammar' must be a GBNF grammar, as text.", "grammar")
    if schema is not None and not isinstance(schema, Mapping):
        raise BadRequestError("'json_schema' must be a JSON schema object.", "json_schema")
    form = fields.get("response_format")
    if form is not None:
        kind = form.get("type") if isinstance(form, Mapping) else None
        if kind not in ("text", "json_object", "json_schema"):
            raise BadRequestError(
                "'response_format.type' must be text, json_object or json_schema.", "response_format"
            )
        if kind == "json_object":
            schema = form.get("schema") if isinstance(form.get("schema"), Mapping) else {"type": "object"}
        elif kind == "json_schema":
            inner = form.get("json_schema")
            schema = inner.get("schema") if isinstance(inner, Mapping) else None
            if not isinstance(schema, Mapping):
                where = "response_format"
                raise BadRequestError(f"'{where}.json_schema.schema' must be an object.", where)
    if grammar and schema is not None:
        raise BadRequestError("Give a grammar or a JSON schema, not both.", "grammar")
    return grammar or "", json.dumps(schema) if schema is not None else ""
