"""The test Hub server works with the real huggingface_hub client (no mocks)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_XET", "1")

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hub_server import HubServer
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

COMMIT = re.compile(r"[0-9a-f]{40}")
REPO = "zoo-org/cp-mnist"
FILES = {"weights.safetensors": b"\x00\x01weights" * 100, "config.json": b'{"rank": 4}'}


@pytest.fixture
def server() -> Iterator[HubServer]:
    with HubServer() as hub:
        yield hub


def download(server: HubServer, cache: Path, filename: str, revision: str = "main") -> bytes:
    path = hf_hub_download(
        REPO, filename, revision=revision, endpoint=server.endpoint, cache_dir=cache
    )
    return Path(path).read_bytes()


def test_download_then_cache_hit_at_pinned_sha(server: HubServer, tmp_path: Path) -> None:
    sha = server.add_files(REPO, FILES)
    assert download(server, tmp_path, "weights.safetensors", sha) == FILES["weights.safetensors"]
    url = f"/{REPO}/resolve/{sha}/weights.safetensors"
    assert server.requests == [("HEAD", url), ("GET", url)]

    assert download(server, tmp_path, "weights.safetensors", sha) == FILES["weights.safetensors"]
    assert len(server.requests) == 2  # pinned sha + cached file: no request at all

    assert download(server, tmp_path, "weights.safetensors") == FILES["weights.safetensors"]
    assert server.requests[2:] == [("HEAD", f"/{REPO}/resolve/main/weights.safetensors")]


def test_snapshot_download(server: HubServer, tmp_path: Path) -> None:
    sha = server.add_files(REPO, {**FILES, "extra/notes.txt": b"hello"})
    folder = Path(
        snapshot_download(REPO, revision="main", endpoint=server.endpoint, cache_dir=tmp_path)
    )
    assert folder.name == sha
    assert (folder / "extra" / "notes.txt").read_bytes() == b"hello"
    assert (folder / "config.json").read_bytes() == FILES["config.json"]
    assert ("GET", f"/api/models/{REPO}/revision/main") in server.requests
    assert ("GET", f"/api/models/{REPO}/tree/{sha}") in server.requests


def test_create_repo_upload_folder_round_trip(server: HubServer, tmp_path: Path) -> None:
    api = HfApi(endpoint=server.endpoint, token="test-token")
    url = api.create_repo(REPO, exist_ok=True)
    assert url.repo_id == REPO
    api.create_repo(REPO, exist_ok=True)  # 409 -> accepted
    folder = tmp_path / "upload"
    (folder / "sub").mkdir(parents=True)
    (folder / "weights.safetensors").write_bytes(FILES["weights.safetensors"])
    (folder / "sub" / "card.txt").write_bytes(b"card")

    info = api.upload_folder(repo_id=REPO, folder_path=str(folder), commit_message="Upload cp")
    assert COMMIT.fullmatch(info.oid) and server.head(REPO) == info.oid
    assert server.files(REPO, info.oid) == {
        "weights.safetensors": FILES["weights.safetensors"],
        "sub/card.txt": b"card",
    }
    cache = tmp_path / "cache"
    assert download(server, cache, "sub/card.txt", info.oid) == b"card"
    assert download(server, cache, "weights.safetensors") == FILES["weights.safetensors"]


def test_rejected_upload_raises_hub_http_error(server: HubServer, tmp_path: Path) -> None:
    server.add_files(REPO, FILES)
    server.reject_uploads = "uploads to zoo-org are closed"
    api = HfApi(endpoint=server.endpoint, token="test-token")
    with pytest.raises(HfHubHTTPError, match="uploads to zoo-org are closed") as new_repo:
        api.create_repo("zoo-org/new-model", exist_ok=True)
    assert new_repo.value.response.status_code == 403

    api.create_repo(REPO, exist_ok=True)  # an existing repo: 409, accepted
    (tmp_path / "a.txt").write_bytes(b"a")
    with pytest.raises(HfHubHTTPError, match="uploads to zoo-org are closed") as upload:
        api.upload_folder(repo_id=REPO, folder_path=str(tmp_path), commit_message="x")
    assert upload.value.server_message == "uploads to zoo-org are closed"
    assert server.files(REPO) == FILES


def test_missing_repo_file_and_revision(server: HubServer, tmp_path: Path) -> None:
    with pytest.raises(RepositoryNotFoundError):
        download(server, tmp_path, "config.json")
    server.add_files(REPO, FILES)
    with pytest.raises(RemoteEntryNotFoundError) as missing:
        download(server, tmp_path, "nope.bin")
    assert isinstance(missing.value, EntryNotFoundError)
    with pytest.raises(RevisionNotFoundError):
        download(server, tmp_path, "config.json", "f" * 40)


def test_corrupt_serves_other_bytes_until_restored(server: HubServer, tmp_path: Path) -> None:
    sha = server.add_files(REPO, FILES)
    server.corrupt(REPO, "config.json", b"garbage")
    assert download(server, tmp_path / "a", "config.json", sha) == b"garbage"
    tree = HfApi(endpoint=server.endpoint).list_repo_tree(REPO, revision=sha)
    sizes = {entry.path: entry.size for entry in tree}
    assert sizes["config.json"] == len(FILES["config.json"])  # the listing is unchanged
    server.restore(REPO)
    assert download(server, tmp_path / "b", "config.json", sha) == FILES["config.json"]
