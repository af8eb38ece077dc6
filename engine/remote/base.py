"""Remote engines: a model that another program serves, reached over HTTP.

Hearth still owns the prompt. It builds the text, fits it to the context and sends it
as a plain completion, so Chat, Story and Adventure work the same against a remote
engine. This module holds what every remote engine shares: where it is
(`RemoteSpec`), how its tokens are counted, and the `RemoteBackend` base. The wire
(HTTP, server-sent events, Stop) is in `engine/remote/http.py`; the APIs are in
`engine/remote/openai.py` (`/v1/completions`: llama.cpp's server, llama-cpp-python's
server, vLLM, ...) and `engine/remote/kobold.py` (KoboldCpp, KoboldAI United).

What a server offers is found out once, at connect: a tokenize endpoint (so fitting
counts what the server will evaluate; without one, a deliberate over-estimate), its
context size and its chat template.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from engine.backend import Backend
from engine.errors import RemoteConnectError, RemoteEngineError
from engine.remote.http import RemoteHTTP
from engine.tokens import TokenCounter
from engine.types import ModelInfo

DEFAULT_N_CTX = 4096  # when neither the server nor the user says
BYTES_PER_TOKEN = 3.5  # of English text, for estimates; real tokenizers average more
_API_SUFFIXES = ("/v1/chat/completions", "/v1/completions", "/api/v1/generate", "/api/v1", "/v1", "/api")

RemoteKind = Literal["openai", "kobold"]
REMOTE_KINDS: dict[str, str] = {"openai": "OpenAI-compatible", "kobold": "KoboldAI"}


@dataclass(frozen=True)
class RemoteSpec:
    """Where a remote engine is and how to talk to it.

    `model` may be empty (the server's first model); `n_ctx` 0 means the context
    size the server reports. The API key is kept out of the repr, so out of logs.
    """

    kind: RemoteKind
    url: str
    api_key: str = field(default="", repr=False)
    model: str = ""
    n_ctx: int = 0

    def __post_init__(self) -> None:
        if self.kind not in REMOTE_KINDS:
            raise RemoteConnectError(f"Unknown kind of remote engine {self.kind!r}: use openai or kobold.")
        if self.n_ctx < 0:
            raise RemoteConnectError("The context size must be 0 (ask the server) or a number of tokens.")
        server_root(self.url)

    @property
    def base_url(self) -> str:
        """The server's root address (see `server_root`)."""
        return server_root(self.url)

    @property
    def shown_url(self) -> str:
        """`base_url` without a user name or password typed into it: safe to show and keep."""
        return without_credentials(self.base_url)


def without_credentials(url: str) -> str:
    """`url` with any `user:password@` taken out of its address."""
    text = url.strip()
    if "://" not in text:  # typed bare, like user:pw@host:5001
        return text.rpartition("@")[2]
    parts = urlsplit(text)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def server_root(url: str) -> str:
    """The server's root address from what a user typed: `host:port`, `.../v1`, or an endpoint.

    Raises:
        RemoteConnectError: it is not an http(s) address.
    """
    text = url.strip()
    if not text:
        raise RemoteConnectError("Type the server's address, like http://127.0.0.1:8080.")
    parts = urlsplit(text if "://" in text else "http://" + text)
    try:
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # a port that is not a number
        valid = False
    if not valid:
        raise RemoteConnectError(f"{text} is not a server address. Type it like http://127.0.0.1:8080.")
    path = parts.path.rstrip("/")
    for suffix in _API_SUFFIXES:
        if path.endswith(suffix):
            path = path[: -len(suffix)]
            break
    return f"{parts.scheme}://{parts.netloc}{path}"


# -- token counting ------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenizeEndpoint:
    """A server's tokenize endpoint: its path, and the request field that holds the text."""

    path: str
    text_field: str
    extra: Mapping[str, Any] = field(default_factory=dict)

    def body(self, text: str) -> dict[str, Any]:
        """The request that asks for `text`'s tokens."""
        return {**self.extra, self.text_field: text}


class TokenCounting:
    """Token ids from the server's tokenize endpoint, or an over-estimate when it has none.

    Some endpoints add a BOS to every text. What they return for "" is measured once
    and cut from every answer, so counts are of the text alone, like the local
    backend's. Counts are cached: fitting a prompt asks for the same texts often.
    """

    def __init__(self, http: RemoteHTTP, endpoint: TokenizeEndpoint | None, prefix: int = 0) -> None:
        self.http = http
        self.endpoint = endpoint
        self.prefix = prefix
        self._counts = TokenCounter(self.tokenize, capacity=4096)

    @classmethod
    def detect(cls, http: RemoteHTTP, candidates: list[TokenizeEndpoint]) -> TokenCounting:
        """The first candidate the server answers with tokens; an estimate if none."""
        for endpoint in candidates:
            if token_ids(http.post(endpoint.path, endpoint.body("Hello"), optional=True)) is None:
                continue
            empty = token_ids(http.post(endpoint.path, endpoint.body(""), optional=True))
            return cls(http, endpoint, prefix=len(empty or []))
        return cls(http, None)

    @property
    def estimated(self) -> bool:
        """True when the server cannot tokenize, so counts are estimates."""
        return self.endpoint is None

    def tokenize(self, text: str) -> list[int]:
        """Token ids of `text` (placeholder zeros when estimated: only their number means anything)."""
        if self.endpoint is None:
            return [0] * estimate_tokens(text)
        ids = token_ids(self.http.post(self.endpoint.path, self.endpoint.body(text)))
        if ids is None:
            raise RemoteEngineError(
                f"{self.http.base_url}{self.endpoint.path} stopped answering with tokens."
            )
        return ids[self.prefix :]

    def count(self, text: str) -> int:
        """How many tokens `text` takes (cached)."""
        return self._counts(text)


def token_ids(answer: Any) -> list[int] | None:
    """The ids in a tokenize answer (`tokens` or `ids`), or zeros for a bare count."""
    if not isinstance(answer, dict):
        return None
    ids = answer.get("tokens", answer.get("ids"))
    if isinstance(ids, list) and all(isinstance(i, int) for i in ids):
        return ids
    count = answer.get("value", answer.get("count"))
    if isinstance(count, int) and count >= 0:
        return [0] * count
    return None


def estimate_tokens(text: str) -> int:
    """A deliberate over-count, so an estimated prompt still fits the real context.

    English averages about four bytes a token; other scripts take more tokens per
    byte, so their bytes count at two a token.
    """
    size = len(text.encode("utf-8"))
    ascii_bytes = sum(1 for c in text if c < "\x80")
    return math.ceil(ascii_bytes / BYTES_PER_TOKEN + (size - ascii_bytes) / 2)


# -- the backend ---------------------------------------------------------------------------


def whole_number(value: Any) -> int | None:
    """A count from a server's JSON, or None when it is not a positive whole number of a
    sane size: servers send strings, floats, booleans and nulls where counts belong."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**53:
        return None
    return value


def choose_n_ctx(reported: int | None, requested: int) -> tuple[int, str]:
    """The context size to fit prompts to, and where it came from.

    The user's value wins when it is smaller than the server's: prompts then stay
    short. A larger one cannot be honoured, since the server would refuse the prompt.
    """
    if reported and (not requested or requested >= reported):
        return reported, "reported by the server"
    if requested:
        return requested, "as you set it"
    return DEFAULT_N_CTX, "a guess: the server does not say"


class RemoteBackend(Backend):
    """What every remote engine shares: the HTTP client, token counting, no local cache.

    `token_count_is_estimate` is True when the server has no tokenize endpoint, so
    prompt sizes are estimates; `n_ctx_source` says where the context size came from.
    """

    can_shift = False  # the server keeps its own KV cache and decides how to reuse it
    shift_enabled = False

    def __init__(
        self,
        info: ModelInfo,
        n_ctx: int,
        http: RemoteHTTP,
        tokens: TokenCounting,
        *,
        model_id: str,
        n_ctx_source: str,
    ) -> None:
        super().__init__(info, n_ctx)
        self.http = http
        self.tokens = tokens
        self.model_id = model_id
        self.n_ctx_source = n_ctx_source
        self.bos_eos = ("", "")
        http.connected = True

    @property
    def token_count_is_estimate(self) -> bool:
        """True when prompt sizes are estimates: the UI says "(estimated)" beside them."""
        return self.tokens.estimated

    @property
    def engine(self) -> str:
        """The kind of server, as detected at connect ("llama.cpp server", "KoboldCpp 1.80", ...)."""
        return self.info.architecture

    @property
    def adds_bos(self) -> bool:
        # Servers add a BOS to a completion prompt when the model wants one; reserving
        # a token for it costs little and never overflows.
        return True

    def special_tokens(self) -> tuple[str, str]:
        return self.bos_eos

    def tokenize(self, text: str) -> list[int]:
        return self.tokens.tokenize(text)

    def count_tokens(self, text: str) -> int:
        return self.tokens.count(text)

    def count_safely(self, text: str) -> int:
        """A count for usage figures: the server's if it answers, else an estimate."""
        try:
            return self.count_tokens(text)
        except RemoteEngineError:
            return estimate_tokens(text)

    def learn_n_ctx(self, n_ctx: int) -> None:
        """Adopt the context size a server revealed in an error; later prompts fit it."""
        self.n_ctx = n_ctx
        self.n_ctx_source = "reported by the server when a prompt did not fit"

    def close(self) -> None:
        """Close the connections; the server and its model stay as they are."""
        self.http.close()
