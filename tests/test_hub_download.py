"""Downloads against the local Hub stand-in: progress, cancel, resume, checksums, space."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from catalog.download import Downloader, DownloadProgress
from catalog.errors import (
    ChecksumError,
    DownloadCancelledError,
    DownloadError,
    HubError,
    NotEnoughSpaceError,
    OfflineError,
    UnsafeNameError,
)
from catalog.hub import OFFLINE_MESSAGE, HubClient
from catalog.naming import group_gguf_files
from hf_server import MYTHO, MYTHO_Q4, SPLIT, SPLIT_PARTS, FakeHub, hub_quiet, hub_server  # noqa: F401

Q4_KEY = f"{MYTHO}/{MYTHO_Q4}"


def stepping_clock(step: float) -> Callable[[], float]:
    """A clock that moves `step` seconds each time it is read, so every chunk is reported."""
    now = [0.0]

    def clock() -> float:
        now[0] += step
        return now[0]

    return clock


@pytest.fixture
def hub(hub_server: FakeHub) -> HubClient:  # noqa: F811
    return HubClient(endpoint=hub_server.endpoint, offline=False)


@pytest.fixture
def models(tmp_path: Path) -> Path:
    return tmp_path / "models"


def downloader(hub: HubClient, models: Path, step: float = 0.25) -> Downloader:
    return Downloader(hub, models, clock=stepping_clock(step))


def gets(server: FakeHub, path: str) -> list[dict[str, str]]:
    return [r.headers for r in server.seen("GET", f"/{MYTHO}/resolve/") if r.path.endswith(path)]


def test_download_reports_progress_and_ends_in_a_verified_file(
    hub: HubClient,
    hub_server: FakeHub,  # noqa: F811
    models: Path,
) -> None:
    events: list[DownloadProgress] = []
    path = downloader(hub, models).download(MYTHO, MYTHO_Q4, progress=events.append)

    data = hub_server.repos[MYTHO].files[MYTHO_Q4]
    assert path == models / "TheBloke" / "MythoMax-L2-13B-GGUF" / MYTHO_Q4
    assert path.read_bytes() == data
    assert sorted(p.name for p in path.parent.iterdir()) == [MYTHO_Q4]  # no .part or sidecar left
    assert events[0].bytes_done == 0 and events[-1].bytes_done == len(data)
    assert all(e.bytes_total == len(data) and e.file_name == MYTHO_Q4 for e in events)
    done = [e.bytes_done for e in events]
    assert done == sorted(done) and any(0 < d < len(data) for d in done)
    assert all(e.rate > 0 for e in events if e.bytes_done > 0)
    assert events[-1].fraction == 1.0


def test_progress_callbacks_are_throttled(hub: HubClient, models: Path) -> None:
    events: list[DownloadProgress] = []
    # A clock that never moves: only the start and the end may be reported.
    Downloader(hub, models, clock=lambda: 0.0).download(MYTHO, MYTHO_Q4, progress=events.append)

    assert [e.bytes_done for e in events] == [0, events[-1].bytes_total]


def test_split_model_downloads_every_part_and_returns_the_first(
    hub: HubClient,
    hub_server: FakeHub,  # noqa: F811
    models: Path,
) -> None:
    choice = next(c for c in group_gguf_files(hub.list_files(SPLIT)) if c.is_split)
    events: list[DownloadProgress] = []
    path = downloader(hub, models).download(SPLIT, choice, progress=events.append)

    assert path.name == SPLIT_PARTS[0]
    # The parts, then the repo's vision projector, which lands beside them.
    for part in [*SPLIT_PARTS, "mmproj-split-model-f16.gguf"]:
        assert (path.parent / part).read_bytes() == hub_server.repos[SPLIT].files[part]
    assert sorted({(e.part_index, e.part_count) for e in events}) == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert events[-1].bytes_done == events[-1].bytes_total == choice.total_size


def test_cancel_keeps_the_part_and_a_later_call_resumes_it(
    hub: HubClient,
    hub_server: FakeHub,  # noqa: F811
    models: Path,
) -> None:
    cancel = threading.Event()

    def cancel_once_bytes_arrive(event: DownloadProgress) -> None:
        if event.bytes_done > 0:
            cancel.set()

    target = models / MYTHO / MYTHO_Q4
    with pytest.raises(DownloadCancelledError, match="download again to resume"):
        downloader(hub, models).download(MYTHO, MYTHO_Q4, progress=cancel_once_bytes_arrive, cancel=cancel)

    part = target.with_name(MYTHO_Q4 + ".part")
    kept = part.stat().st_size
    size = len(hub_server.repos[MYTHO].files[MYTHO_Q4])
    assert not target.exists() and 0 < kept < size
    assert json.loads(target.with_name(MYTHO_Q4 + ".part.json").read_text())["size"] == size

    downloader(hub, models).download(MYTHO, MYTHO_Q4)
    assert target.read_bytes() == hub_server.repos[MYTHO].files[MYTHO_Q4]
    assert gets(hub_server, MYTHO_Q4)[-1]["range"] == f"bytes={kept}-"


def test_interrupted_download_resumes_without_resending_received_bytes(
    hub: HubClient,
    hub_server: FakeHub,  # noqa: F811
    models: Path,
) -> None:
    data = hub_server.repos[MYTHO].files[MYTHO_Q4]
    hub_server.cut_after(Q4_KEY, 100_000)

    with pytest.raises(DownloadError, match="What arrived is kept; download again to resume") as caught:
        downloader(hub, models).download(MYTHO, MYTHO_Q4)
    assert type(caught.value) is DownloadError
    target = models / MYTHO / MYTHO_Q4
    assert target.with_name(MYTHO_Q4 + ".part").stat().st_size == 100_000
    assert hub_server.bytes_sent[Q4_KEY] == 100_000

    downloader(hub, models).download(MYTHO, MYTHO_Q4)

    assert target.read_bytes() == data
    first, second = gets(hub_server, MYTHO_Q4)
    assert "range" not in first and second["range"] == "bytes=100000-"
    assert hub_server.bytes_sent[Q4_KEY] == len(data)  # every byte crossed the wire exactly once


def test_part_of_another_file_version_is_not_resumed(
    hub: HubClient,
    hub_server: FakeHub,  # noqa: F811
    models: Path,
) -> None:
    target = models / MYTHO / MYTHO_Q4
    target.parent.mkdir(parents=True)
    target.with_name(MYTHO_Q4 + ".part").write_bytes(b"old version bytes")
    sidecar = {"schema": 1, "repo_id": MYTHO, "filename": MYTHO_Q4, "etag": "0" * 64}
    target.with_name(MYTHO_Q4 + ".part.json").write_text(json.dumps(sidecar))

    downloader(hub, models).download(MYTHO, MYTHO_Q4)

    assert target.read_bytes() == hub_server.repos[MYTHO].files[MYTHO_Q4]
    assert "range" not in gets(hub_server, MYTHO_Q4)[-1]


def test_finished_file_is_not_fetched_again(
    hub: HubClient,
    hub_server: FakeHub,  # noqa: F811
    models: Path,
) -> None:
    downloader(hub, models).download(MYTHO, MYTHO_Q4)
    downloader(hub, models).download(MYTHO, MYTHO_Q4)
    assert len(gets(hub_server, MYTHO_Q4)) == 1


def test_checksum_mismatch_is_rejected_and_the_file_never_appears(
    hub: HubClient,
    hub_server: FakeHub,  # noqa: F811
    models: Path,
) -> None:
    hub_server.corrupt(Q4_KEY)

    with pytest.raises(ChecksumError, match="arrived damaged"):
        downloader(hub, models).download(MYTHO, MYTHO_Q4)
    folder = models / MYTHO
    assert list(folder.iterdir()) == []  # no final file, no part, no sidecar


def test_corrupt_bytes_kept_from_an_earlier_attempt_are_caught_on_resume(
    hub: HubClient,
    hub_server: FakeHub,  # noqa: F811
    models: Path,
) -> None:
    hub_server.cut_after(Q4_KEY, 100_000)
    with pytest.raises(DownloadError):
        downloader(hub, models).download(MYTHO, MYTHO_Q4)
    part = models / MYTHO / (MYTHO_Q4 + ".part")
    part.write_bytes(b"\xff" + part.read_bytes()[1:])  # damaged on disk while paused

    with pytest.raises(ChecksumError):
        downloader(hub, models).download(MYTHO, MYTHO_Q4)
    assert not (models / MYTHO / MYTHO_Q4).exists() and not part.exists()


@pytest.mark.parametrize(
    ("repo_id", "filename"),
    [
        (MYTHO, "../../../outside.gguf"),
        (MYTHO, "/tmp/absolute.gguf"),
        (MYTHO, "sub\\..\\x.gguf"),
        (MYTHO, "ctrl\x07.gguf"),
        ("../..", MYTHO_Q4),
        ("TheBloke/../..", MYTHO_Q4),
    ],
)
def test_escaping_names_are_refused_before_any_request(
    hub: HubClient,
    hub_server: FakeHub,  # noqa: F811
    models: Path,
    repo_id: str,
    filename: str,
) -> None:
    with pytest.raises(UnsafeNameError):
        downloader(hub, models).download(repo_id, filename)
    assert hub_server.requests == []
    assert not models.exists()


def test_not_enough_space_is_refused_before_downloading(
    hub: HubClient,
    hub_server: FakeHub,  # noqa: F811
    models: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    usage = shutil.disk_usage("/")
    monkeypatch.setattr(shutil, "disk_usage", lambda _path: usage._replace(free=1_000_000))

    with pytest.raises(NotEnoughSpaceError, match=r"needs 438\.7 kB more .* only 1\.0 MB is free"):
        downloader(hub, models).download(MYTHO, MYTHO_Q4)
    assert gets(hub_server, MYTHO_Q4) == []
    assert not models.exists()


def test_offline_download_says_so_in_plain_words(hub_server: FakeHub, models: Path) -> None:  # noqa: F811
    offline = HubClient(endpoint=hub_server.endpoint, offline=True)

    with pytest.raises(OfflineError) as caught:
        downloader(offline, models).download(MYTHO, MYTHO_Q4)
    assert str(caught.value) == OFFLINE_MESSAGE
    assert hub_server.requests == []


def test_the_same_file_is_not_downloaded_twice_at_once(hub: HubClient, models: Path) -> None:
    second_attempts: list[BaseException] = []
    loader = downloader(hub, models)

    def start_again(event: DownloadProgress) -> None:
        if not second_attempts:
            with pytest.raises(DownloadError, match="already being downloaded") as caught:
                loader.download(MYTHO, MYTHO_Q4)
            second_attempts.append(caught.value)

    path = loader.download(MYTHO, MYTHO_Q4, progress=start_again)

    assert len(second_attempts) == 1 and path.is_file()
    loader.download(MYTHO, MYTHO_Q4)  # the claim is released afterwards


def test_a_server_that_ignores_the_range_restarts_the_file_cleanly(
    hub: HubClient,
    hub_server: FakeHub,  # noqa: F811
    models: Path,
) -> None:
    data = hub_server.repos[MYTHO].files[MYTHO_Q4]
    hub_server.cut_after(Q4_KEY, 100_000)
    with pytest.raises(DownloadError):
        downloader(hub, models).download(MYTHO, MYTHO_Q4)
    hub_server.honour_ranges = False

    events: list[DownloadProgress] = []
    path = downloader(hub, models).download(MYTHO, MYTHO_Q4, progress=events.append)

    assert path.read_bytes() == data
    assert gets(hub_server, MYTHO_Q4)[-1]["range"] == "bytes=100000-"
    assert events[0].bytes_done == 100_000 and events[-1].bytes_done == len(data)


def test_a_failing_file_request_is_a_plain_hub_error(
    hub: HubClient,
    hub_server: FakeHub,  # noqa: F811
    models: Path,
) -> None:
    commit = hub_server.repos[MYTHO].commit
    hub_server.fail_next(f"/{MYTHO}/resolve/{commit}/{MYTHO_Q4}", 500)

    with pytest.raises(HubError, match=r"server error \(500\)"):
        downloader(hub, models).download(MYTHO, MYTHO_Q4)
    assert not (models / MYTHO / MYTHO_Q4).exists()
