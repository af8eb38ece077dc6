"""A stand-in for the Hugging Face Hub on 127.0.0.1, close enough for huggingface_hub 2.4.

It serves repos whose files are bytes in memory, with the JSON shapes and headers the
real Hub sends (the `/api/models` listing and `expand`, model info, the recursive
tree, paths-info, and `/resolve/` with ETag, X-Repo-Commit, X-Linked-* and real
`Range` support). It records every request, counts the body bytes sent per file, and
can cut a download off after N bytes or serve corrupted bytes, so tests can exercise
resume and checksum failures through the library's real code path.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
_SEND_BLOCK = 16 * 1024
_LFS_THRESHOLD = 1024  # like the Hub, big files are LFS (sha256 etag); small ones plain git
_SORT_KEYS = {"downloads", "likes", "lastModified", "createdAt", "trendingScore"}


@dataclass
class FakeRepo:
    """A model repo: files by path, plus the numbers search sorts on."""

    repo_id: str
    files: dict[str, bytes]
    downloads: int = 0
    likes: int = 0
    last_modified: str = "2024-01-01T00:00:00.000Z"
    created_at: str = "2023-01-01T00:00:00.000Z"
    tags: tuple[str, ...] = ("gguf", "llama", "text-generation")
    commit: str = field(default="")

    def __post_init__(self) -> None:
        self.commit = self.commit or hashlib.sha1(self.repo_id.encode()).hexdigest()

    def is_lfs(self, path: str) -> bool:
        return len(self.files[path]) >= _LFS_THRESHOLD

    def folders(self) -> set[str]:
        return {"/".join(p.split("/")[:i]) for p in self.files for i in range(1, p.count("/") + 1)}

    def entry(self, path: str) -> dict[str, Any]:
        """A tree / paths-info entry, as the Hub writes it."""
        if path in self.folders():
            return {"type": "directory", "oid": _git_sha1(path.encode()), "size": 0, "path": path}
        data = self.files[path]
        item: dict[str, Any] = {"type": "file", "oid": _git_sha1(data), "size": len(data), "path": path}
        if self.is_lfs(path):
            item["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
        return item

    def info(self, *, blobs: bool = False) -> dict[str, Any]:
        """The full `/api/models/{repo}` answer."""
        siblings = []
        for path, data in sorted(self.files.items()):
            sibling: dict[str, Any] = {"rfilename": path}
            if blobs:
                sibling.update(size=len(data), blobId=_git_sha1(data))
                if self.is_lfs(path):
                    sha = hashlib.sha256(data).hexdigest()
                    sibling["lfs"] = {"sha256": sha, "size": len(data), "pointerSize": 134}
            siblings.append(sibling)
        return {
            "_id": self.commit[:24],
            "id": self.repo_id,
            "modelId": self.repo_id,
            "author": self.repo_id.split("/")[0],
            "sha": self.commit,
            "lastModified": self.last_modified,
            "createdAt": self.created_at,
            "private": False,
            "disabled": False,
            "gated": False,
            "downloads": self.downloads,
            "likes": self.likes,
            "trendingScore": self.likes // 10,
            "tags": list(self.tags),
            "pipeline_tag": "text-generation",
            "library_name": "gguf" if "gguf" in self.tags else "transformers",
            "siblings": siblings,
            "spaces": [],
            "usedStorage": sum(len(d) for d in self.files.values()),
        }

    def listing(self, expand: list[str]) -> dict[str, Any]:
        """One item of `/api/models`: a short default shape, or `_id`, `id` and what was expanded."""
        full = self.info()
        if expand:
            return {key: full[key] for key in ["_id", "id", *expand] if key in full}
        keys = ["_id", "id", "likes", "trendingScore", "private", "downloads", "tags"]
        return {key: full[key] for key in [*keys, "pipeline_tag", "library_name", "createdAt", "modelId"]}


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


class FakeHub:
    """The server: start it, point `HubClient(endpoint=hub.endpoint)` at it, inspect what it saw."""

    def __init__(self, repos: list[FakeRepo]):
        self.repos = {repo.repo_id: repo for repo in repos}
        self.requests: list[SeenRequest] = []
        self.bytes_sent: Counter[str] = Counter()
        self._cut_after: dict[str, int] = {}
        self._corrupt: set[str] = set()
        self._fail_next: dict[str, int] = {}
        self.honour_ranges = True  # False: answer every GET with the whole file, like some CDNs
        self.seconds_per_block = 0.0  # > 0: a slow connection, so a download visibly progresses
        self._lock = threading.Lock()
        handler = type("Handler", (_HubHandler,), {"hub": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        # A short poll interval lets `stop` return at once instead of after half a second.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeHub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def cut_after(self, file_key: str, n_bytes: int) -> None:
        """The next GET of `owner/repo/path` sends `n_bytes` of the body, then drops the connection."""
        self._cut_after[file_key] = n_bytes

    def corrupt(self, file_key: str) -> None:
        """Serve damaged bytes (same length, same headers) for `owner/repo/path` from now on."""
        self._corrupt.add(file_key)

    def fail_next(self, path: str, status: int) -> None:
        """Answer the next request for exactly `path` with an error status."""
        self._fail_next[path] = status

    def seen(self, method: str, path_prefix: str = "") -> list[SeenRequest]:
        with self._lock:
            return [r for r in self.requests if r.method == method and r.path.startswith(path_prefix)]

    def record(self, request: SeenRequest) -> int | None:
        with self._lock:
            self.requests.append(request)
            return self._fail_next.pop(request.path, None)

    def take_cut(self, file_key: str) -> int | None:
        with self._lock:
            return self._cut_after.pop(file_key, None)

    def served_bytes(self, file_key: str, data: bytes) -> bytes:
        return bytes(b ^ 0xFF for b in data[:64]) + data[64:] if file_key in self._corrupt else data

    def count_sent(self, file_key: str, n_bytes: int) -> None:
        with self._lock:
            self.bytes_sent[file_key] += n_bytes


class _HubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real Hub; every answer has a length
    hub: FakeHub

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass  # keep test output clean

    def do_GET(self) -> None:
        self._route("GET")

    def do_HEAD(self) -> None:
        self._route("HEAD")

    def do_POST(self) -> None:
        self._route("POST")

    def _route(self, method: str) -> None:
        url = urlsplit(self.path)
        segments = [unquote(s) for s in url.path.split("/")[1:]]
        query = parse_qs(url.query)
        seen = SeenRequest(method, url.path, query, {k.lower(): v for k, v in self.headers.items()})
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) if method == "POST" else b""
        status = self.hub.record(seen)
        if status is not None:
            return self._json({"error": f"injected {status}"}, status)
        if segments[:2] == ["api", "models"]:
            return self._api(method, segments[2:], query, body)
        if len(segments) >= 5 and segments[2] == "resolve" and method in ("GET", "HEAD"):
            return self._resolve(method, "/".join(segments[:2]), segments[3], "/".join(segments[4:]))
        return self._json({"error": "Not found"}, 404)

    def _api(self, method: str, rest: list[str], query: dict[str, list[str]], body: bytes) -> None:
        if not rest and method == "GET":
            return self._search(query)
        repo = self.hub.repos.get("/".join(rest[:2]))
        if repo is None or len(rest) < 2:
            return self._json({"error": "Repository not found"}, 404, code="RepoNotFound")
        action, args = (rest[2], rest[3:]) if len(rest) > 2 else ("info", [])
        if action not in ("info", "revision", "tree", "paths-info"):
            return self._json({"error": "Not found"}, 404)
        revision = args[0] if args else "main"
        if revision not in ("main", repo.commit):
            return self._json({"error": "Invalid rev id"}, 404, code="RevisionNotFound")
        if action in ("info", "revision") and method == "GET":
            info = repo.info(blobs=_flag(query, "blobs"))
            expand = _multi(query, "expand")
            return self._json({k: info[k] for k in ["_id", "id", *expand] if k in info} if expand else info)
        if action == "tree" and method == "GET":
            return self._json(self._tree(repo, "/".join(args[1:]), _flag(query, "recursive")))
        if action == "paths-info" and method == "POST":
            paths = parse_qs(body.decode()).get("paths", [])
            known = repo.folders() | set(repo.files)
            return self._json([repo.entry(p) for p in paths if p in known])
        return self._json({"error": "Not found"}, 404)

    def _search(self, query: dict[str, list[str]]) -> None:
        repos = list(self.hub.repos.values())
        for wanted in _multi(query, "filter"):
            repos = [r for r in repos if wanted in r.tags]
        if search := (query.get("search") or [""])[0].lower():
            repos = [r for r in repos if search in r.repo_id.lower()]
        if author := (query.get("author") or [""])[0]:
            repos = [r for r in repos if r.repo_id.split("/")[0] == author]
        sort = (query.get("sort") or ["trendingScore"])[0]
        if sort not in _SORT_KEYS:
            return self._json({"error": f"Invalid sort {sort}"}, 400)
        repos.sort(key=lambda r: r.info()[sort], reverse=True)  # the Hub sorts descending
        limit = int((query.get("limit") or ["1000"])[0])
        self._json([r.listing(_multi(query, "expand")) for r in repos[:limit]])

    def _tree(self, repo: FakeRepo, under: str, recursive: bool) -> list[dict[str, Any]]:
        prefix = f"{under}/" if under else ""
        paths = sorted(repo.folders() | set(repo.files))
        inside = [p for p in paths if p.startswith(prefix)]
        if not recursive:
            inside = [p for p in inside if "/" not in p[len(prefix) :]]
        return [repo.entry(p) for p in inside]

    def _resolve(self, method: str, repo_id: str, revision: str, path: str) -> None:
        repo = self.hub.repos.get(repo_id)
        if repo is None:
            return self._json(
                {"error": "Repository not found"}, 404, code="RepoNotFound", head=method == "HEAD"
            )
        if revision not in ("main", repo.commit):
            return self._json(
                {"error": "Invalid rev id"}, 404, code="RevisionNotFound", head=method == "HEAD"
            )
        if path not in repo.files:
            return self._json({"error": "Entry not found"}, 404, code="EntryNotFound", head=method == "HEAD")
        key, true_data = f"{repo_id}/{path}", repo.files[path]
        data = self.hub.served_bytes(key, true_data)
        etag = hashlib.sha256(true_data).hexdigest() if repo.is_lfs(path) else _git_sha1(true_data)
        headers = {"ETag": f'"{etag}"', "X-Repo-Commit": repo.commit, "Accept-Ranges": "bytes"}
        if repo.is_lfs(path):
            headers.update({"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(len(true_data))})
        start, end, status = 0, len(data) - 1, 200
        if method == "GET" and self.hub.honour_ranges and (wanted := self.headers.get("Range")):
            match = _RANGE.match(wanted.strip())
            if match is None or int(match[1]) >= len(data):
                headers["Content-Range"] = f"bytes */{len(data)}"
                return self._send(416, b"", headers)
            start, end, status = int(match[1]), min(int(match[2] or len(data) - 1), len(data) - 1), 206
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        if method == "HEAD":
            return self._send(200, b"", {**headers, "Content-Length": str(len(data))}, head=True)
        self._stream(key, status, data[start : end + 1], headers)

    def _stream(self, key: str, status: int, body: bytes, headers: dict[str, str]) -> None:
        cut = self.hub.take_cut(key)
        self.send_response(status)
        for name, value in {**headers, "Content-Type": "application/octet-stream"}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        to_send = body if cut is None else body[:cut]
        try:
            for offset in range(0, len(to_send), _SEND_BLOCK):
                block = to_send[offset : offset + _SEND_BLOCK]
                self.wfile.write(block)
                self.wfile.flush()
                self.hub.count_sent(key, len(block))
                if self.hub.seconds_per_block:
                    time.sleep(self.hub.seconds_per_block)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client hung up (a cancelled download)
        if cut is not None:
            self.close_connection = True  # fewer bytes than Content-Length: an interrupted download

    def _json(self, payload: Any, status: int = 200, *, code: str | None = None, head: bool = False) -> None:
        headers = {"Content-Type": "application/json"}
        if code:
            headers["X-Error-Code"] = code
        self._send(status, json.dumps(payload).encode(), headers, head=head)

    def _send(self, status: int, body: bytes, headers: dict[str, str], *, head: bool = False) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head and self.command != "HEAD":
            self.wfile.write(body)


def _flag(query: dict[str, list[str]], name: str) -> bool:
    return (query.get(name) or ["false"])[0].lower() in ("1", "true")


def _multi(query: dict[str, list[str]], name: str) -> list[str]:
    """A repeated parameter; the Hub accepts both `expand=a&expand=b` and `expand[]=a`."""
    return query.get(name, []) + query.get(f"{name}[]", [])


def _git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@pytest.fixture
def hub_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep huggingface_hub from phoning huggingface.co on its own during a test.

    Building request headers makes the library fetch an "agent harnesses" list from
    its import-time endpoint (huggingface.co) once per process; that is part of its
    telemetry, which this switch turns off.
    """
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)


MYTHO = "TheBloke/MythoMax-L2-13B-GGUF"
SPLIT = "someone/split-model-GGUF"
FRESH = "newcomer/Fresh-Model-GGUF"
PLAIN = "someone/mythomax-safetensors"
MYTHO_Q4 = "mythomax-l2-13b.Q4_K_M.gguf"
SPLIT_PARTS = [f"split-model-Q8_0-{i:05d}-of-00003.gguf" for i in (1, 2, 3)]


def sample_repos(tiny: bytes) -> list[FakeRepo]:
    """Four repos: the most downloaded, the most liked, the newest, and one without GGUF.

    File contents are slices of the tiny GGUF: only their bytes and sizes matter here.
    """
    third = len(tiny) // 3
    mytho_files = {
        "README.md": b"# MythoMax L2 13B GGUF\n",
        "config.json": b'{"model_type": "llama"}',
        "mythomax-l2-13b.Q2_K.gguf": tiny[:150_000],
        MYTHO_Q4: tiny,
        "mythomax-l2-13b.Q8_0.gguf": tiny + tiny[:100_000],
    }
    split_files = {
        SPLIT_PARTS[0]: tiny[:third],
        SPLIT_PARTS[1]: tiny[third : 2 * third],
        SPLIT_PARTS[2]: tiny[2 * third :],
        "split-model-Q4_K_M.gguf": tiny[:200_000],
        "extra/split-model-IQ2_XS.gguf": tiny[:50_000],
        "mmproj-split-model-f16.gguf": tiny[:10_000],
        "README.md": b"# split\n",
    }
    mytho = FakeRepo(MYTHO, mytho_files, 50_000, 300, "2023-10-01T12:00:00.000Z")
    split = FakeRepo(SPLIT, split_files, 900, 2_000, "2024-06-01T00:00:00.000Z")
    fresh = FakeRepo(FRESH, {"fresh-model-Q5_K_S.gguf": tiny[:80_000]}, 10, 5, "2025-03-01T00:00:00.000Z")
    no_gguf = ("safetensors", "transformers", "mythomax")
    plain = FakeRepo(
        PLAIN, {"model.safetensors": bytes(4096)}, 10**6, 10**4, "2025-06-01T00:00:00.000Z", tags=no_gguf
    )
    return [mytho, split, fresh, plain]


@pytest.fixture
def hub_server(hub_quiet: None, tiny_gguf: Path) -> Iterator[FakeHub]:
    """The fake Hub with `sample_repos`, running for one test."""
    hub = FakeHub(sample_repos(tiny_gguf.read_bytes())).start()
    try:
        yield hub
    finally:
        hub.stop()
