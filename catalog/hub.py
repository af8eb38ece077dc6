"""The Hugging Face Hub client: search GGUF repos, list files, and stream file bytes.

This is the only module that imports `huggingface_hub`. It stays thin: each method
is one or two library calls whose results become small frozen dataclasses, and
whose failures become `HubError`/`OfflineError` with plain messages.

huggingface_hub reads `HF_ENDPOINT` and `HF_HUB_OFFLINE` once, at import. Hearth
decides both per call instead (settings can change while the app runs, and tests
point a client at a local server), so the endpoint is passed to every call and
offline mode is checked here before any request.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import httpx2
from huggingface_hub import HfApi, constants, get_hf_file_metadata, hf_hub_url
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.hf_api import ExpandModelProperty_T, ModelInfo, RepoFile
from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

from catalog.errors import DownloadError, HubError, OfflineError
from catalog.naming import RemoteFile, check_repo_id

__all__ = [
    "OFFLINE_MESSAGE",
    "ByteStream",
    "FileVersion",
    "HubClient",
    "RepoSummary",
    "SortOrder",
    "repo_id_from_query",
]

DEFAULT_ENDPOINT = "https://huggingface.co"
OFFLINE_MESSAGE = "Hugging Face could not be reached; you seem to be offline. The catalog is still browsable."
SortOrder = Literal["downloads", "likes", "recent"]
_SORTS: dict[str, Literal["downloads", "likes", "last_modified"]] = {
    "downloads": "downloads",
    "likes": "likes",
    "recent": "last_modified",
}
_SUMMARY_FIELDS: list[ExpandModelProperty_T] = ["author", "downloads", "likes", "lastModified", "tags"]
# A pasted link: huggingface.co/<owner>/<repo>, optionally followed by /tree/..., /blob/... etc.
_REPO_URL = re.compile(
    r"^(?:https?://)?(?:www\.)?(?:huggingface\.co|hf\.co)/(?P<owner>[^/?#\s]+)/(?P<name>[^/?#\s]+)"
    r"(?:/(?:tree|blob|resolve|raw|commits?|discussions)(?:/[^?#\s]*)?)?/?(?:[?#].*)?$",
    re.IGNORECASE,
)
# Both are `fullmatch`ed: with `match`, `$` also matches before a final newline.
_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_PROBE_TIMEOUT = 5.0
_REACHABLE_FOR = 60.0  # seconds a successful contact vouches for the connection


@dataclass(frozen=True)
class RepoSummary:
    """One search result: a model repository on the Hub."""

    repo_id: str
    author: str
    downloads: int
    likes: int
    last_modified: datetime | None
    tags: tuple[str, ...]


@dataclass(frozen=True)
class FileVersion:
    """What a HEAD on a file's resolve URL says about the version that would be downloaded.

    `url` is pinned to `commit` when the Hub names one, so every byte of a download
    (and of its resumption) comes from the same version of the file.
    """

    url: str
    size: int | None
    etag: str | None
    commit: str | None

    @property
    def sha256(self) -> str | None:
        """The etag when it is a sha256 (LFS files); plain git files carry a sha1 etag."""
        return self.etag if self.etag and _SHA256.fullmatch(self.etag) else None


@dataclass(frozen=True)
class ByteStream:
    """An open download: where the server started (0 if it ignored the Range) and the bytes."""

    offset: int
    total: int | None
    chunks: Iterator[bytes]


class HubClient:
    """Search and read the Hugging Face Hub (or any endpoint that speaks its API).

    Args:
        endpoint: base URL of the Hub; None means huggingface.co.
        token: an access token for gated or private repos; None lets huggingface_hub
            use the token saved by `hf auth login`, if any.
        offline: True refuses every request; None reads `HF_HUB_OFFLINE` (or
            `TRANSFORMERS_OFFLINE`) from the environment at each call.
    """

    def __init__(self, endpoint: str | None = None, token: str | None = None, offline: bool | None = None):
        self.endpoint = (endpoint or DEFAULT_ENDPOINT).rstrip("/")
        self.token = token
        self.offline = offline
        self._api = HfApi(endpoint=self.endpoint, token=token)
        self._reachable_until = 0.0

    def is_offline(self) -> bool:
        """Whether offline mode is on right now (the setting, else the environment)."""
        if self.offline is not None:
            return self.offline
        value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
        return value.strip().upper() in {"1", "ON", "YES", "TRUE"}

    def search(self, query: str, sort: SortOrder = "downloads", limit: int = 30) -> list[RepoSummary]:
        """GGUF repositories matching a keyword, an exact `owner/repo`, or a pasted Hub URL.

        For an id or URL that names an existing GGUF repo, that repo comes first,
        followed by other repos whose names contain it.

        Raises:
            OfflineError: offline mode is on, or the Hub cannot be reached.
            HubError: the Hub refused the search.
        """
        if sort not in _SORTS:
            raise ValueError(f"sort must be one of {sorted(_SORTS)}, not {sort!r}")
        query = query.strip()
        exact_id = repo_id_from_query(query)
        with self._calling(probe=True):
            results: list[RepoSummary] = []
            if exact_id is not None:
                exact = self._exact_repo(exact_id)
                results.extend([exact] if exact is not None else [])
            listing = self._api.list_models(
                filter="gguf",
                search=(exact_id or query) or None,
                sort=_SORTS[sort],
                limit=limit,
                expand=_SUMMARY_FIELDS,
            )
            seen = {r.repo_id for r in results}
            results.extend(s for s in map(_summary, listing) if s.repo_id not in seen)
        return results[:limit]

    def list_files(self, repo_id: str, revision: str = "main") -> list[RemoteFile]:
        """Every file in a repo (all folders), with sizes and LFS sha256s.

        Raises:
            UnsafeNameError: `repo_id` is not a plain `owner/name`.
            OfflineError, HubError: as for `search`; also when the repo does not exist.
        """
        check_repo_id(repo_id)
        with self._calling(probe=True, repo_id=repo_id):
            entries = self._api.list_repo_tree(repo_id, recursive=True, revision=revision)
            return [
                RemoteFile(e.path, e.size, e.lfs.sha256 if e.lfs else None)
                for e in entries
                if isinstance(e, RepoFile)
            ]

    def file_version(self, repo_id: str, filename: str, revision: str = "main") -> FileVersion:
        """Size, etag and commit of one file, from a HEAD on its resolve URL.

        Raises:
            UnsafeNameError: `repo_id` is not a plain `owner/name`.
            OfflineError, HubError: as for `search`; also when the file does not exist.
        """
        check_repo_id(repo_id)
        with self._calling(repo_id=repo_id, filename=filename):
            url = hf_hub_url(repo_id, filename, revision=revision, endpoint=self.endpoint)
            meta = get_hf_file_metadata(url, token=self.token, endpoint=self.endpoint)
        commit = meta.commit_hash
        pinned = hf_hub_url(repo_id, filename, revision=commit, endpoint=self.endpoint) if commit else url
        return FileVersion(url=pinned, size=meta.size, etag=meta.etag, commit=commit)

    @contextmanager
    def open_bytes(self, url: str, start: int = 0) -> Iterator[ByteStream]:
        """Stream a file from byte `start` on, through huggingface_hub's own HTTP session.

        Use as a context manager; leaving it closes the connection. A server that
        ignores the Range header answers from byte 0, which `ByteStream.offset` shows.

        Raises:
            OfflineError, HubError: the request failed before any byte arrived.
            DownloadError: the connection broke while bytes were arriving.
        """
        headers = build_hf_headers(token=self.token)
        headers["Accept-Encoding"] = "identity"  # byte offsets must be offsets in the file itself
        if start > 0:
            headers["Range"] = f"bytes={start}-"
        with (
            self._calling(),
            get_session().stream(
                "GET", url, headers=headers, timeout=constants.HF_HUB_DOWNLOAD_TIMEOUT, follow_redirects=True
            ) as response,
        ):
            hf_raise_for_status(response)
            offset = _served_offset(response, start)
            length = _int_or_none(response.headers.get("Content-Length"))
            total = offset + length if length is not None else None
            yield ByteStream(offset=offset, total=total, chunks=_chunks(response))

    @contextmanager
    def _calling(
        self, *, probe: bool = False, repo_id: str | None = None, filename: str | None = None
    ) -> Iterator[None]:
        """Run library calls online (or refuse), turning their failures into our errors."""
        if self.is_offline():
            raise OfflineError(OFFLINE_MESSAGE)
        try:
            if probe:
                self._probe()
            yield
            self._reachable_until = time.monotonic() + _REACHABLE_FOR
        except (OfflineModeIsEnabled, httpx2.TransportError) as exc:
            # OfflineModeIsEnabled: HF_HUB_OFFLINE was set when huggingface_hub was imported.
            self._reachable_until = 0.0
            raise OfflineError(OFFLINE_MESSAGE) from exc
        except HfHubHTTPError as exc:
            raise _plain_http_error(exc, repo_id, filename) from exc
        except HFValidationError as exc:
            raise HubError(f"Hugging Face refused the name: {exc}") from exc

    def _probe(self) -> None:
        """One quick request without retries before calls that retry for ~20 s when offline.

        huggingface_hub's paginated listings back off and retry on connection errors;
        on a machine without network that would freeze the search for half a minute
        before saying "offline". Any HTTP answer at all proves the Hub is reachable.
        """
        if time.monotonic() < self._reachable_until:
            return
        get_session().head(self.endpoint, timeout=_PROBE_TIMEOUT, follow_redirects=False)

    def _exact_repo(self, repo_id: str) -> RepoSummary | None:
        try:
            info = self._api.model_info(repo_id, expand=_SUMMARY_FIELDS)
        except (RepositoryNotFoundError, RevisionNotFoundError):
            return None
        summary = _summary(info)
        return summary if "gguf" in {t.lower() for t in summary.tags} else None


def repo_id_from_query(query: str) -> str | None:
    """The repo id in a search query that is an `owner/repo` or a Hub URL, else None."""
    match = _REPO_URL.match(query)
    candidate = f"{match['owner']}/{match['name']}" if match else query
    if match and match["owner"].lower() in {"datasets", "spaces", "models", "api"}:
        return None
    return candidate if _REPO_ID.fullmatch(candidate) else None


def _summary(info: ModelInfo) -> RepoSummary:
    return RepoSummary(
        repo_id=info.id,
        author=info.author or info.id.split("/")[0],
        downloads=info.downloads or 0,
        likes=info.likes or 0,
        last_modified=info.last_modified,
        tags=tuple(info.tags or ()),
    )


def _served_offset(response: httpx2.Response, start: int) -> int:
    """Where the body begins: the requested start on a matching 206, else 0."""
    if start == 0 or response.status_code != 206:
        return 0
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    if match is None or int(match[1]) != start:
        raise DownloadError("The server answered a resume request with the wrong part of the file.")
    return start


def _chunks(response: httpx2.Response) -> Iterator[bytes]:
    # No chunk size: bytes are handed on as they arrive, so a broken connection loses
    # nothing that was already received and the next attempt resumes right after it.
    try:
        yield from response.iter_bytes()
    except httpx2.TransportError as exc:
        raise DownloadError("The connection to Hugging Face broke during the download.") from exc


def _plain_http_error(exc: HfHubHTTPError, repo_id: str | None, filename: str | None) -> HubError:
    repo = f"'{repo_id}'" if repo_id else "that repository"
    status = exc.response.status_code if exc.response is not None else 0
    if isinstance(exc, GatedRepoError):
        return HubError(
            f"{repo} is gated: accept its terms on huggingface.co, then start Hearth with your access "
            "token in HF_TOKEN (or after `hf auth login`)."
        )
    if isinstance(exc, RemoteEntryNotFoundError):
        return HubError(f"{repo} has no file named '{filename}'.")
    if isinstance(exc, RevisionNotFoundError):
        return HubError(f"{repo} has no such branch or revision.")
    if isinstance(exc, RepositoryNotFoundError) or status == 404:
        return HubError(f"There is no model repository {repo} on Hugging Face, or it is private.")
    if status in (401, 403):
        return HubError(
            f"Hugging Face refused access to {repo}; check the access token in HF_TOKEN (or `hf auth login`)."
        )
    if status == 429:
        return HubError("Hugging Face is rate-limiting requests; wait a minute and try again.")
    if status >= 500:
        return HubError(f"Hugging Face had a server error ({status}); try again in a few minutes.")
    return HubError(f"Hugging Face refused the request (HTTP {status}).")


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
