"""The Hub client against a local stand-in of the Hub, through huggingface_hub's real code."""

from __future__ import annotations

import hashlib
import socket
from datetime import UTC, datetime

import pytest
from huggingface_hub import constants

from catalog.errors import HubError, OfflineError, UnsafeNameError
from catalog.hub import OFFLINE_MESSAGE, HubClient, repo_id_from_query
from catalog.naming import RemoteFile, group_gguf_files
from hf_server import FRESH, MYTHO, PLAIN, SPLIT, SPLIT_PARTS, FakeHub, hub_quiet, hub_server  # noqa: F401


@pytest.fixture
def client(hub_server: FakeHub) -> HubClient:  # noqa: F811
    return HubClient(endpoint=hub_server.endpoint, offline=False)


def test_keyword_search_finds_only_gguf_repos_with_their_numbers(client: HubClient) -> None:
    results = client.search("mytho")

    # PLAIN's id contains "mytho" too, but it has no GGUF files.
    assert [r.repo_id for r in results] == [MYTHO]
    top = results[0]
    assert (top.author, top.downloads, top.likes) == ("TheBloke", 50_000, 300)
    assert top.last_modified == datetime(2023, 10, 1, 12, 0, tzinfo=UTC)
    assert "gguf" in top.tags


def test_search_sends_the_gguf_filter_and_asks_for_the_summary_fields(
    client: HubClient,
    hub_server: FakeHub,  # noqa: F811
) -> None:
    client.search("mytho", limit=7)

    (listing,) = hub_server.seen("GET", "/api/models")
    assert listing.query["filter"] == ["gguf"]
    assert listing.query["search"] == ["mytho"]
    assert listing.query["limit"] == ["7"]
    assert set(listing.query["expand"]) >= {"author", "downloads", "likes", "lastModified", "tags"}


def test_exact_repo_id_comes_first_through_model_info(client: HubClient, hub_server: FakeHub) -> None:  # noqa: F811
    results = client.search(SPLIT)

    assert results[0].repo_id == SPLIT
    assert hub_server.seen("GET", f"/api/models/{SPLIT}")


@pytest.mark.parametrize(
    "pasted",
    [
        f"https://huggingface.co/{SPLIT}",
        f"https://huggingface.co/{SPLIT}/",
        f"https://huggingface.co/{SPLIT}/tree/main",
        f"https://huggingface.co/{SPLIT}/blob/main/{SPLIT_PARTS[0]}",
        f"https://huggingface.co/{SPLIT}/resolve/main/{SPLIT_PARTS[0]}?download=true",
        f"  hf.co/{SPLIT}  ",
    ],
)
def test_pasted_hub_url_finds_that_repo(client: HubClient, pasted: str) -> None:
    assert client.search(pasted)[0].repo_id == SPLIT


def test_pasted_url_of_a_repo_without_gguf_is_not_offered(client: HubClient) -> None:
    assert PLAIN not in [r.repo_id for r in client.search(f"https://huggingface.co/{PLAIN}")]


@pytest.mark.parametrize(
    ("query", "repo_id"),
    [
        ("mythomax 13b", None),
        ("TheBloke/MythoMax-L2-13B-GGUF", "TheBloke/MythoMax-L2-13B-GGUF"),
        ("https://huggingface.co/datasets/owner/data", None),
        ("https://huggingface.co/models", None),
        ("https://example.com/owner/repo", None),
        ("owner/../repo", None),
    ],
)
def test_repo_id_is_read_only_from_ids_and_hub_model_urls(query: str, repo_id: str | None) -> None:
    assert repo_id_from_query(query) == repo_id


@pytest.mark.parametrize(
    ("sort", "sent", "expected"),
    [
        ("downloads", "downloads", [MYTHO, SPLIT, FRESH]),
        ("likes", "likes", [SPLIT, MYTHO, FRESH]),
        ("recent", "lastModified", [FRESH, SPLIT, MYTHO]),
    ],
)
def test_the_three_sorts(
    client: HubClient,
    hub_server: FakeHub,  # noqa: F811
    sort: str,
    sent: str,
    expected: list[str],
) -> None:
    results = client.search("", sort=sort)  # type: ignore[arg-type]

    assert [r.repo_id for r in results] == expected
    assert hub_server.seen("GET", "/api/models")[-1].query["sort"] == [sent]


def test_limit_caps_the_results(client: HubClient) -> None:
    assert len(client.search("", limit=2)) == 2


def test_file_list_has_every_file_with_size_and_lfs_sha256(
    client: HubClient,
    hub_server: FakeHub,  # noqa: F811
) -> None:
    files = {f.path: f for f in client.list_files(SPLIT)}

    served = hub_server.repos[SPLIT].files
    assert set(files) == set(served)  # the nested extra/ file included
    for path, data in served.items():
        assert files[path].size == len(data)
    assert files[SPLIT_PARTS[0]].sha256 == hashlib.sha256(served[SPLIT_PARTS[0]]).hexdigest()
    assert files["README.md"].sha256 is None  # small files are plain git, not LFS


def test_split_files_become_one_choice_and_quants_are_named(client: HubClient) -> None:
    choices = group_gguf_files(client.list_files(SPLIT))

    by_name = {c.name: c for c in choices}
    assert set(by_name) == {
        "split-model-Q8_0.gguf",
        "split-model-Q4_K_M.gguf",
        "extra/split-model-IQ2_XS.gguf",
    }
    split = by_name["split-model-Q8_0.gguf"]
    assert [p.path for p in split.parts] == SPLIT_PARTS
    assert split.first_part == SPLIT_PARTS[0]
    # The repo's vision projector goes with every model in it.
    assert all(c.projector is not None and c.projector.path == "mmproj-split-model-f16.gguf" for c in choices)
    assert split.projector is not None
    assert split.total_size == sum(p.size for p in split.parts) + split.projector.size
    assert {c.quant for c in choices} == {"Q8_0", "Q4_K_M", "IQ2_XS"}
    assert [c.total_size for c in choices] == sorted(c.total_size for c in choices)


def test_unknown_repo_is_a_plain_hub_error(client: HubClient) -> None:
    with pytest.raises(HubError, match="no model repository 'nobody/nothing'") as caught:
        client.list_files("nobody/nothing")
    assert not isinstance(caught.value, OfflineError)


def test_unknown_file_is_a_plain_hub_error(client: HubClient) -> None:
    with pytest.raises(HubError, match="has no file named 'missing.gguf'"):
        client.file_version(MYTHO, "missing.gguf")


def test_server_error_is_a_plain_hub_error(client: HubClient, hub_server: FakeHub) -> None:  # noqa: F811
    hub_server.fail_next(f"/{MYTHO}/resolve/main/README.md", 503)

    with pytest.raises(HubError, match=r"server error \(503\); try again"):
        client.file_version(MYTHO, "README.md")


def test_file_version_pins_the_commit_and_names_the_sha256(client: HubClient, hub_server: FakeHub) -> None:  # noqa: F811
    repo = hub_server.repos[MYTHO]
    version = client.file_version(MYTHO, "mythomax-l2-13b.Q2_K.gguf")

    data = repo.files["mythomax-l2-13b.Q2_K.gguf"]
    assert version.size == len(data)
    assert version.sha256 == hashlib.sha256(data).hexdigest()
    assert version.commit == repo.commit
    assert f"/resolve/{repo.commit}/" in version.url


def test_offline_setting_refuses_before_any_request(hub_server: FakeHub) -> None:  # noqa: F811
    client = HubClient(endpoint=hub_server.endpoint, offline=True)

    for call in (lambda: client.search("mytho"), lambda: client.list_files(MYTHO)):
        with pytest.raises(OfflineError) as caught:
            call()
        assert str(caught.value) == OFFLINE_MESSAGE
    assert hub_server.requests == []


def test_offline_environment_is_read_at_call_time(
    hub_server: FakeHub,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = HubClient(endpoint=hub_server.endpoint)  # offline=None: follow HF_HUB_OFFLINE

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError):
        client.search("mytho")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert [r.repo_id for r in client.search("mytho")] == [MYTHO]


def test_library_offline_flag_is_restored_after_a_call(client: HubClient) -> None:
    before = constants.HF_HUB_OFFLINE
    client.search("mytho")
    assert before == constants.HF_HUB_OFFLINE


def _unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_unreachable_hub_is_offline_in_plain_words(hub_quiet: None) -> None:  # noqa: F811
    client = HubClient(endpoint=f"http://127.0.0.1:{_unused_port()}", offline=False)

    calls = [
        lambda: client.search("mytho"),
        lambda: client.list_files(MYTHO),
        lambda: client.file_version(MYTHO, "x"),
    ]
    for call in calls:
        with pytest.raises(OfflineError) as caught:
            call()
        assert str(caught.value) == OFFLINE_MESSAGE


def test_unsafe_repo_id_is_refused_before_any_request(client: HubClient, hub_server: FakeHub) -> None:  # noqa: F811
    with pytest.raises(UnsafeNameError):
        client.list_files("../etc")
    assert hub_server.requests == []


def test_remote_file_is_a_value() -> None:
    assert RemoteFile("a.gguf", 3, None) == RemoteFile("a.gguf", 3)
