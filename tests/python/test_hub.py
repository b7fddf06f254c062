"""Loading by hub id: latebird.ColBERT("org/name") against a fake hub on 127.0.0.1."""

from __future__ import annotations

import time
from pathlib import Path

import latebird
import numpy as np
import pytest
from conftest import model_dir
from fake_hub import FakeHub, Repo

COMMIT_V4 = "a" * 40
COMMIT_V5 = "b" * 40
TEXTS = ["what is late interaction?", "ColBERT keeps one vector per token."]


@pytest.fixture
def hub_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache, short timeouts and backoff, nothing inherited from the environment."""
    cache = tmp_path / "hub-cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_DOWNLOAD_TIMEOUT", "5")
    monkeypatch.setenv("LATEBIRD_HUB_RETRIES", "2")
    monkeypatch.setenv("LATEBIRD_HUB_BACKOFF", "0.05")
    monkeypatch.setenv("HF_TOKEN_PATH", str(tmp_path / "no-token"))
    for name in ("HF_HUB_OFFLINE", "HF_TOKEN", "HF_HOME"):
        monkeypatch.delenv(name, raising=False)
    return cache


def fixture_repos() -> dict[str, Repo]:
    v4, v5 = model_dir("modernbert-v4"), model_dir("modernbert-v5")
    return {
        "org/tiny": Repo(
            commits={COMMIT_V4: v4, COMMIT_V5: v5},
            refs={"main": COMMIT_V4, "v5": COMMIT_V5},
            extra_files=["README.md", "pytorch_model.bin", "onnx/model.onnx"],
        ),
        "org/broken": Repo(commits={COMMIT_V4: v4}, refs={"main": COMMIT_V4},
                           missing_files=["2_Dense/model.safetensors"]),
        "org/private": Repo(commits={COMMIT_V4: v4}, refs={"main": COMMIT_V4}, token="s3cret"),
    }  # fmt: skip


@pytest.fixture
def hub(hub_env: Path, monkeypatch: pytest.MonkeyPatch):
    with FakeHub(fixture_repos()) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        yield server


def encode_both(model: latebird.ColBERT) -> list[np.ndarray]:
    return model.encode(TEXTS, is_query=True) + model.encode(TEXTS, is_query=False)


def assert_same(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_download_load_encode_equals_folder(hub: FakeHub, hub_env: Path) -> None:
    model = latebird.ColBERT("org/tiny")
    snapshot = hub_env / "models--org--tiny" / "snapshots" / COMMIT_V4
    assert Path(model.model_name_or_path) == snapshot
    assert (hub_env / "models--org--tiny" / "refs" / "main").read_text() == COMMIT_V4
    assert_same(encode_both(model), encode_both(latebird.ColBERT(model_dir("modernbert-v4"))))
    # Only the PyLate files were fetched: no README, .bin or ONNX export, no temp files.
    local = sorted(p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file())
    want = sorted(
        p.relative_to(model_dir("modernbert-v4")).as_posix()
        for p in model_dir("modernbert-v4").rglob("*")
        if p.is_file()
    )
    assert local == want
    assert "1_Dense/model.safetensors" in local


def test_cached_files_are_not_fetched_again(hub: FakeHub) -> None:
    latebird.hub_download("org/tiny")
    fetched = hub.hits["resolve"]
    latebird.hub_download("org/tiny")
    assert hub.hits["resolve"] == fetched  # the commit's files are already there
    assert hub.hits["api"] == 2  # the revision is still resolved online


def test_second_load_from_cache_with_server_stopped(hub_env: Path, monkeypatch) -> None:
    with FakeHub(fixture_repos()) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        first = encode_both(latebird.ColBERT("org/tiny"))
    # The hub is gone (connection refused): the complete cached snapshot is used.
    assert_same(encode_both(latebird.ColBERT("org/tiny")), first)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert_same(encode_both(latebird.ColBERT("org/tiny")), first)
    assert_same(encode_both(latebird.ColBERT("org/tiny", revision=COMMIT_V4)), first)
    # A revision never downloaded is not in the cache.
    with pytest.raises(latebird.NotCachedError, match="HF_HUB_OFFLINE"):
        latebird.ColBERT("org/tiny", revision="v5")


def test_offline_without_cache_is_a_clear_error(hub: FakeHub, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(latebird.NotCachedError, match=r"org/tiny.*not in the cache"):
        latebird.ColBERT("org/tiny")
    assert hub.requests == []  # offline mode never touches the network
    with pytest.raises(latebird.NotCachedError):
        latebird.ColBERT("org/tiny", local_files_only=True)


def test_unreachable_hub_without_cache(hub_env: Path, monkeypatch) -> None:
    server = FakeHub({})
    url = server.url
    server.stop()
    monkeypatch.setenv("HF_ENDPOINT", url)
    with pytest.raises(latebird.NotCachedError, match="network error"):
        latebird.ColBERT("org/tiny")


def test_revision_pinning(hub: FakeHub, hub_env: Path) -> None:
    v5 = latebird.ColBERT("org/tiny", revision="v5")
    assert Path(v5.model_name_or_path).name == COMMIT_V5
    assert (hub_env / "models--org--tiny" / "refs" / "v5").read_text() == COMMIT_V5
    assert_same(encode_both(v5), encode_both(latebird.ColBERT(model_dir("modernbert-v5"))))
    by_commit = latebird.hub_download("org/tiny", COMMIT_V4)
    assert Path(by_commit).name == COMMIT_V4
    assert not (hub_env / "models--org--tiny" / "refs" / COMMIT_V4).exists()


@pytest.mark.parametrize("error_codes", [True, False])
def test_missing_repo_and_revision(hub_env: Path, monkeypatch, error_codes: bool) -> None:
    with FakeHub(fixture_repos(), error_codes=error_codes) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        with pytest.raises(latebird.RepositoryNotFoundError, match="org/nope"):
            latebird.ColBERT("org/nope")
        with pytest.raises(latebird.RevisionNotFoundError, match="no-such-branch"):
            latebird.ColBERT("org/tiny", revision="no-such-branch")
    assert issubclass(latebird.RepositoryNotFoundError, latebird.ModelLoadError)


def test_missing_file(hub: FakeHub, hub_env: Path) -> None:
    with pytest.raises(latebird.EntryNotFoundError, match=r"2_Dense/model\.safetensors"):
        latebird.ColBERT("org/broken")
    repo = hub_env / "models--org--broken"
    assert not (repo / "refs" / "main").exists()  # an incomplete snapshot gets no ref
    assert not list(repo.rglob("*.incomplete"))


def test_private_repo_needs_token(hub: FakeHub, monkeypatch) -> None:
    with pytest.raises(latebird.RepositoryNotFoundError, match="HF_TOKEN"):
        latebird.ColBERT("org/private")
    assert latebird.ColBERT("org/private", token="s3cret").embedding_dim > 0
    monkeypatch.setenv("HF_TOKEN", "s3cret")
    assert Path(latebird.hub_download("org/private")).name == COMMIT_V4


def test_retries_5xx_then_succeeds(hub: FakeHub) -> None:
    hub.fail_api = 2
    latebird.ColBERT("org/tiny")
    assert hub.hits["api"] == 3


def test_gives_up_after_retries(hub: FakeHub, monkeypatch) -> None:
    monkeypatch.setenv("LATEBIRD_HUB_RETRIES", "1")
    hub.fail_api = 5
    with pytest.raises(latebird.HubError, match=r"HTTP 500 \(after 2 attempt"):
        latebird.ColBERT("org/tiny")


def test_hanging_server_times_out(hub: FakeHub, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_DOWNLOAD_TIMEOUT", "0.3")
    monkeypatch.setenv("LATEBIRD_HUB_RETRIES", "1")
    hub.hang = True
    start = time.perf_counter()
    with pytest.raises(latebird.HubError, match=r"(?i)timed out|timeout"):
        latebird.ColBERT("org/tiny")
    assert time.perf_counter() - start < 5
    assert len(hub.requests) == 2  # first try and one retry


def test_cut_transfer_leaves_no_partial_file(hub: FakeHub, hub_env: Path) -> None:
    hub.truncate = True
    with pytest.raises(latebird.HubError, match="network error"):
        latebird.ColBERT("org/tiny")
    snapshot = hub_env / "models--org--tiny" / "snapshots" / COMMIT_V4
    assert not [p for p in snapshot.rglob("*") if p.is_file()]
    hub.truncate = False
    latebird.ColBERT("org/tiny")  # and a later try completes it


def test_bad_ids(hub: FakeHub) -> None:
    with pytest.raises(latebird.ModelLoadError, match="not a local model folder"):
        latebird.ColBERT("./no/such/folder")
    with pytest.raises(latebird.InvalidInputError, match="invalid revision"):
        latebird.ColBERT("org/tiny", revision="../x")
    assert hub.requests == []
