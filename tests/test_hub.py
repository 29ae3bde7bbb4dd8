"""Checkpoints through the real huggingface_hub client and a loopback Hub server."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest
import torch
from hub_server import HubServer

import tensor_zoo
from tensor_zoo.zoo import ChecksumError, HubError
from tensor_zoo.zoo.registry import read_index, write_index

NAME = "tt-mnist-r2"
REPO = f"tensor-zoo/{NAME}"


@pytest.fixture
def hub() -> Iterator[HubServer]:
    with HubServer() as server:
        yield server


@pytest.fixture
def published(exported, hub, tmp_path, monkeypatch):
    """The exported checkpoint uploaded to the loopback Hub and pinned in a copy of the index."""
    files = {path.name: path.read_bytes() for path in exported["folder"].iterdir()}
    revision = hub.add_files(REPO, files)
    index = read_index(exported["index"])
    index["models"][NAME]["hub"] = {"repo_id": REPO, "revision": revision}
    write_index(index, tmp_path / "index.json")
    (tmp_path / "no-local-checkpoints").mkdir()
    settings = {
        "TENSOR_ZOO_INDEX": tmp_path / "index.json",
        "HF_ENDPOINT": hub.endpoint,
        "HF_HUB_CACHE": tmp_path / "hf-cache",
        "TENSOR_ZOO_CHECKPOINTS": tmp_path / "no-local-checkpoints",
    }
    for key, value in settings.items():
        monkeypatch.setenv(key, str(value))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TENSOR_ZOO_HUB_ORG", raising=False)
    return {"revision": revision, "files": files, "network": exported["network"]}


def downloads(hub: HubServer) -> list[str]:
    return [path for method, path in hub.requests if method == "GET" and "/resolve/" in path]


def test_first_download_then_cache_hit_with_no_request(hub, published):
    images = torch.rand(2, 1, 28, 28)
    model = tensor_zoo.load(NAME)
    with torch.no_grad():
        torch.testing.assert_close(model(images), published["network"](images))
    revision = published["revision"]
    assert sorted(downloads(hub)) == [
        f"/{REPO}/resolve/{revision}/config.json",
        f"/{REPO}/resolve/{revision}/model.safetensors",
    ]
    hub.requests.clear()
    tensor_zoo.load(NAME)
    assert hub.requests == []  # pinned revision in the cache: no network call at all


def test_offline_mode_uses_the_cache_and_fails_clearly_without_it(hub, published, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubError, match="offline mode is on"):
        tensor_zoo.load(NAME)
    assert hub.requests == []
    monkeypatch.delenv("HF_HUB_OFFLINE")
    tensor_zoo.load(NAME)
    hub.requests.clear()
    tensor_zoo.load(NAME, local_files_only=True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tensor_zoo.load(NAME)
    assert hub.requests == []


def test_corrupted_download_is_fetched_again_with_the_clients_force_download(hub, published):
    weights = published["files"]["model.safetensors"]
    hub.corrupt(REPO, "model.safetensors", weights[: len(weights) // 2])
    with pytest.raises(ChecksumError, match=r"downloaded again.*Nothing was deleted"):
        tensor_zoo.load(NAME)
    assert downloads(hub).count(f"/{REPO}/resolve/{published['revision']}/model.safetensors") == 2
    hub.restore(REPO)
    hub.requests.clear()
    tensor_zoo.load(NAME)  # the bad cached copy is replaced by the client itself
    assert any(path.endswith("/model.safetensors") for path in downloads(hub))


def test_a_bad_cached_file_linked_outside_the_cache_is_never_deleted(hub, published, tmp_path):
    tensor_zoo.load(NAME)
    (snapshot,) = (tmp_path / "hf-cache").rglob("snapshots/*/model.safetensors")
    blob = snapshot.resolve()
    outside = tmp_path / "my-precious-file"
    outside.write_bytes(b"not a checkpoint, but someone's data")
    blob.unlink()
    blob.symlink_to(outside)
    model = tensor_zoo.load(NAME)
    assert outside.read_bytes() == b"not a checkpoint, but someone's data"
    images = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(model(images), published["network"](images))


def test_missing_repo_and_missing_file_say_what_to_do(hub, published, monkeypatch):
    monkeypatch.setenv("TENSOR_ZOO_HUB_ORG", "elsewhere")
    with pytest.raises(HubError, match=r"no repo elsewhere/tt-mnist-r2.*TENSOR_ZOO_HUB_ORG"):
        tensor_zoo.load(NAME)
    monkeypatch.setenv("TENSOR_ZOO_HUB_ORG", "partial")
    hub.add_files(f"partial/{NAME}", {"config.json": published["files"]["config.json"]})
    with pytest.raises(HubError, match=r"has no file model.safetensors.*path=FOLDER"):
        tensor_zoo.load(NAME)


def unused_port() -> int:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_hub_down_is_one_clear_error_at_once(published, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{unused_port()}")
    with pytest.raises(HubError, match=r"connection failed \(ConnectError.*HF_HUB_OFFLINE=1"):
        tensor_zoo.load(NAME)


def test_a_server_error_is_reported_as_such(hub, published):
    hub.fail_status = 500
    with pytest.raises(HubError, match=r"answered 500 .*server has a problem; try again later"):
        tensor_zoo.load(NAME)
    assert len(hub.requests) == 1  # no retries


def test_a_slow_hub_times_out_quickly_with_one_error(hub, published, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_ETAG_TIMEOUT", 0.2)
    hub.delay = 1.0
    with pytest.raises(HubError, match=r"did not answer within 0.2 s \(HF_HUB_ETAG_TIMEOUT\)"):
        tensor_zoo.load(NAME)


def test_a_body_cut_short_is_one_clear_error(hub, published, tmp_path):
    hub.cut_body = True
    with pytest.raises(HubError, match=r"connection failed \(RemoteProtocolError"):
        tensor_zoo.load(NAME)
    hub.cut_body = False
    tensor_zoo.load(NAME)


def test_a_checkpoint_never_uploaded_is_not_asked_of_the_hub(hub, published, tmp_path):
    index = read_index(tmp_path / "index.json")
    index["models"][NAME]["hub"] = {"repo_id": None, "revision": None}
    write_index(index, tmp_path / "index.json")
    with pytest.raises(HubError, match=r"has not been uploaded.*checkpoints/tt-mnist-r2/"):
        tensor_zoo.load(NAME)
    assert hub.requests == []


def publish(args, index, folder, monkeypatch, capsys):
    """`tensor-zoo publish NAME ARGS` in this process: (exit status, stdout, stderr)."""
    from tensor_zoo.cli import main

    monkeypatch.setenv("TENSOR_ZOO_INDEX", str(index))
    monkeypatch.setenv("HF_TOKEN", "test-token")
    monkeypatch.setenv("TENSOR_ZOO_CHECKPOINTS", str(folder.parent))
    capsys.readouterr()
    try:
        main(["publish", NAME, *args])
        code = 0
    except SystemExit as exit_:
        code = 1
        print(exit_.code, file=sys.stderr)
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out, err)


def test_publish_uploads_the_folder_and_pins_the_commit(
    exported, hub, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    index = tmp_path / "index.json"
    shutil.copy(exported["index"], index)
    result = publish(
        ["--repo", "maintainer/tt-mnist-r2"], index, exported["folder"], monkeypatch, capsys
    )
    assert result.returncode == 0, result.stderr
    head = hub.head("maintainer/tt-mnist-r2")
    assert f"at revision {head}" in result.stdout
    stored = hub.files("maintainer/tt-mnist-r2")
    assert stored == {path.name: path.read_bytes() for path in exported["folder"].iterdir()}
    pinned = json.loads(index.read_text())["models"][NAME]["hub"]
    assert pinned == {"repo_id": "maintainer/tt-mnist-r2", "revision": head}


def test_a_rejected_publish_says_why(exported, hub, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    hub.reject_uploads = "You have no write access to org maintainer"
    index = tmp_path / "index.json"
    shutil.copy(exported["index"], index)
    result = publish(
        ["--repo", "maintainer/tt-mnist-r2"], index, exported["folder"], monkeypatch, capsys
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "refused the upload" in result.stderr and "no write access" in result.stderr
    assert json.loads(index.read_text())["models"][NAME]["hub"]["revision"] is None


def test_publish_to_a_hub_that_is_down_is_one_line(exported, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{unused_port()}")
    index = tmp_path / "index.json"
    shutil.copy(exported["index"], index)
    result = publish(["--repo", "maintainer/x"], index, exported["folder"], monkeypatch, capsys)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "Could not upload to maintainer/x" in result.stderr and "ConnectError" in result.stderr
    assert index.read_bytes() == exported["index"].read_bytes()
