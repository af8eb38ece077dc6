"""Errors raised by the API, and the one place any error becomes OpenAI's error JSON.

    HearthError (presets.errors)
    └── ApiError                  base of API errors
        ├── BadRequestError       a request field is missing, of the wrong type or unsupported (400)
        ├── UnauthorizedError     no API key, or the wrong one (401)
        ├── ForbiddenHostError    a request named a host the API does not answer for (403)
        └── ApiServerError        the API server could not start listening

Errors from the other layers map to a status here too: no model loaded is 503, a
prompt that does not fit the context is 400, a bad sampler value is 400 and a model
that failed while generating is 500. Every body has OpenAI's shape,
`{"error": {"message", "type", "param", "code"}}`, with a plain message and never a
traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.errors import ContextOverflowError, GenerationError, NoModelLoadedError
from presets.errors import HearthError, SamplerError


class ApiError(HearthError):
    """Base of API errors."""


class BadRequestError(ApiError):
    """A request the API cannot serve as it is; `param` names the field at fault."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.param = param
        self.code = code


class UnauthorizedError(ApiError):
    """The request did not carry the API key."""


class ForbiddenHostError(ApiError):
    """The Host header is not one the API answers for (a DNS-rebinding guard)."""


class ApiServerError(ApiError):
    """The API server could not start (usually: the port is taken)."""


@dataclass(frozen=True)
class ErrorReply:
    """An HTTP status and OpenAI's error object."""

    status: int
    message: str
    type: str
    param: str | None = None
    code: str | None = None

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def error_reply(exc: BaseException) -> ErrorReply:
    """The status and error object for `exc`. Unknown failures become a plain 500."""
    message = str(exc)
    if isinstance(exc, BadRequestError):
        return ErrorReply(400, message, "invalid_request_error", exc.param, exc.code)
    if isinstance(exc, UnauthorizedError):
        return ErrorReply(401, message, "invalid_request_error", None, "invalid_api_key")
    if isinstance(exc, ForbiddenHostError):
        return ErrorReply(403, message, "invalid_request_error", None, "forbidden_host")
    if isinstance(exc, NoModelLoadedError):
        return ErrorReply(503, message, "service_unavailable", None, "model_not_loaded")
    if isinstance(exc, ContextOverflowError):
        return ErrorReply(400, message, "invalid_request_error", None, "context_length_exceeded")
    if isinstance(exc, SamplerError):
        return ErrorReply(400, message, "invalid_request_error", None, "invalid_value")
    if isinstance(exc, GenerationError):
        return ErrorReply(500, message, "server_error", None, "generation_failed")
    if isinstance(exc, HearthError):
        return ErrorReply(400, message, "invalid_request_error")
    return ErrorReply(500, "The server failed while handling the request; its log says why.", "server_error")
