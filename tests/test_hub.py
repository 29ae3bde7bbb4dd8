"""The Hub seam (`hub_file`, `publish_folder`) through the real huggingface_hub client, against a
loopback Hub; one end-to-end run of `tensor-zoo publish` and `tensor_zoo.load` as a user runs
them (a new process: the client reads HF_ENDPOINT and HF_HUB_CACHE when it is imported)."""

from __future__ import annotations

import copy
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest
import torch
from hub_server import HubServer
from safetensors.torch import load_file

from tensor_zoo.zoo import ChecksumError, HubError
from tensor_zoo.zoo.hub import hub_file, publish_folder, sha256_file
from tensor_zoo.zoo.registry import read_index

NAME = "tt-mnist-r2"  # the checkpoint of the `exported` fixture (conftest)
REPO = f"tensor-zoo/{NAME}"
WEIGHTS = "model.safetensors"


@pytest.fixture
def hub() -> Iterator[HubServer]:
    with HubServer() as server:
        yield server


@pytest.fixture
def entry(exported, hub, monkeypatch):
    """The exported checkpoint committed to the loopback Hub; its index entry pins that commit."""
    monkeypatch.delenv("TENSOR_ZOO_HUB_ORG", raising=False)
    files = {path.name: path.read_bytes() for path in exported["folder"].iterdir()}
    revision = hub.commit(REPO, files)
    entry = copy.deepcopy(read_index(exported["index"])["models"][NAME])
    entry["hub"] = {"repo_id": REPO, "revision": revision}
    return entry


def fetch(hub: HubServer, entry: dict, tmp_path, **options):
    """`hub_file` for the weights, from the loopback Hub into a cache in tmp_path."""
    return hub_file(
        NAME, entry, WEIGHTS, endpoint=hub.endpoint, cache_dir=tmp_path / "cache", **options
    )


def downloads(hub: HubServer) -> list[str]:
    return [path for method, path in hub.requests if method == "GET" and "/resolve/" in path]


def unused_port() -> int:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_publish_then_load_end_to_end_with_the_real_client(exported, hub, tmp_path):
    index = tmp_path / "index.json"
    shutil.copy(exported["index"], index)
    (tmp_path / "no-local-checkpoints").mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("HF_", "TENSOR_ZOO_"))
    }
    env.update(
        HF_ENDPOINT=hub.endpoint,
        HF_HUB_CACHE=str(tmp_path / "cache"),
        HF_TOKEN="test-token",
        HF_HUB_DISABLE_TELEMETRY="1",
        TENSOR_ZOO_INDEX=str(index),
        TENSOR_ZOO_CHECKPOINTS=str(tmp_path / "no-local-checkpoints"),
    )
    script = f"""
import torch, tensor_zoo
from safetensors.torch import save_file
from tensor_zoo.cli import main
main(["publish", "{NAME}", "--repo", "{REPO}", "--folder", r"{exported["folder"]}"])
first, second = tensor_zoo.load("{NAME}"), tensor_zoo.load("{NAME}")
images = torch.rand(3, 1, 28, 28)
with torch.no_grad():
    save_file({{"images": images, "first": first(images), "second": second(images)}},
              r"{tmp_path / "logits.safetensors"}")
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (revision, files), *_ = [history[-1] for history in hub.commits.values()]
    assert f"Uploaded {NAME} to {REPO} at revision {revision}" in result.stdout
    assert files == {path.name: path.read_bytes() for path in exported["folder"].iterdir()}
    assert json.loads(index.read_text())["models"][NAME]["hub"] == {
        "repo_id": REPO,
        "revision": revision,
    }
    # each file downloaded once, at the pinned commit: the second load asked nothing
    assert sorted(downloads(hub)) == [
        f"/{REPO}/resolve/{revision}/config.json",
        f"/{REPO}/resolve/{revision}/{WEIGHTS}",
    ]
    saved = load_file(str(tmp_path / "logits.safetensors"))
    with torch.no_grad():
        expected = exported["network"](saved["images"])
    torch.testing.assert_close(saved["first"], expected)
    torch.testing.assert_close(saved["second"], expected)


def test_the_cache_serves_without_a_request_and_offline_says_what_to_do(hub, entry, tmp_path):
    with pytest.raises(HubError, match="offline mode is on"):
        fetch(hub, entry, tmp_path, local_files_only=True)
    assert hub.requests == []
    path = fetch(hub, entry, tmp_path)
    assert sha256_file(path) == entry["files"][WEIGHTS]["sha256"]
    hub.requests.clear()
    assert fetch(hub, entry, tmp_path) == path == fetch(hub, entry, tmp_path, local_files_only=True)
    assert hub.requests == []


def test_a_bad_copy_is_downloaded_again_once_with_force_download(hub, entry, tmp_path):
    _, files = hub.commits[REPO][-1]
    good = files[WEIGHTS]
    files[WEIGHTS] = good[: len(good) // 2]  # the Hub serves other bytes at the pinned commit
    with pytest.raises(ChecksumError, match=r"downloaded again.*Nothing was deleted"):
        fetch(hub, entry, tmp_path)
    assert len(downloads(hub)) == 2
    files[WEIGHTS] = good
    with pytest.raises(ChecksumError, match="offline mode forbids downloading it again"):
        fetch(hub, entry, tmp_path, local_files_only=True)  # the bad copy is in the cache
    path = fetch(hub, entry, tmp_path)  # replaced by the client's force_download
    assert path.read_bytes() == good and len(downloads(hub)) == 3


def test_a_bad_cached_file_linked_outside_the_cache_is_never_deleted(hub, entry, tmp_path):
    blob = fetch(hub, entry, tmp_path).resolve()
    outside = tmp_path / "my-precious-file"
    outside.write_bytes(b"not a checkpoint, but someone's data")
    blob.unlink()
    blob.symlink_to(outside)
    path = fetch(hub, entry, tmp_path)
    assert outside.read_bytes() == b"not a checkpoint, but someone's data"
    assert sha256_file(path) == entry["files"][WEIGHTS]["sha256"]


def no_repo(hub, entry, monkeypatch):
    monkeypatch.setenv("TENSOR_ZOO_HUB_ORG", "elsewhere")


def no_file(hub, entry, monkeypatch):
    del hub.commits[REPO][-1][1][WEIGHTS]


def no_revision(hub, entry, monkeypatch):
    entry["hub"]["revision"] = "f" * 40


def server_error(hub, entry, monkeypatch):
    hub.status = 500


def slow(hub, entry, monkeypatch):
    hub.delay = 1.0


def cut_short(hub, entry, monkeypatch):
    hub.cut = True


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (no_repo, r"no repo elsewhere/tt-mnist-r2 .*Set TENSOR_ZOO_HUB_ORG"),
        (no_file, r"has no file model.safetensors. Or use a local copy: load\(path=FOLDER\)"),
        (no_revision, r"Revision 'f{40}' of tensor-zoo/tt-mnist-r2 does not exist"),
        (server_error, r"answered 500 .*the server has a problem; try again later"),
        (slow, r"did not answer within 0.2 s \(HF_HUB_ETAG_TIMEOUT\)"),
        (cut_short, r"the connection failed \(RemoteProtocolError"),
    ],
)
def test_each_hub_failure_is_one_hub_error_without_retries(
    hub, entry, tmp_path, monkeypatch, fault, message
):
    fault(hub, entry, monkeypatch)
    with pytest.raises(HubError, match=message):
        fetch(hub, entry, tmp_path, timeout=0.2)
    heads = [path for method, path in hub.requests if method == "HEAD"]
    assert len(heads) <= 2  # one metadata request of ours, at most one of the client's
    if fault is server_error:
        assert len(hub.requests) == 1  # no retries
    hub.status, hub.delay, hub.cut = None, 0.0, False
    if fault in (server_error, slow, cut_short):  # a passing fault: the next call succeeds
        assert sha256_file(fetch(hub, entry, tmp_path)) == entry["files"][WEIGHTS]["sha256"]


def test_a_hub_that_is_down_is_one_hub_error(entry, tmp_path):
    with pytest.raises(HubError, match=r"connection failed \(ConnectError.*HF_HUB_OFFLINE=1"):
        hub_file(
            NAME, entry, WEIGHTS, endpoint=f"http://127.0.0.1:{unused_port()}", cache_dir=tmp_path
        )


def test_a_checkpoint_never_uploaded_is_not_asked_of_the_hub(hub, entry, tmp_path):
    entry["hub"] = {"repo_id": None, "revision": None}
    with pytest.raises(HubError, match=r"has not been uploaded.*checkpoints/tt-mnist-r2/"):
        fetch(hub, entry, tmp_path)
    assert hub.requests == []


def test_a_refused_or_failed_upload_is_one_hub_error(exported, hub):
    hub.reject = "You have no write access to org maintainer"
    with pytest.raises(HubError, match=r"(?s)refused the upload to maintainer/x.*no write access"):
        publish_folder(exported["folder"], "maintainer/x", "test-token", endpoint=hub.endpoint)
    down = f"http://127.0.0.1:{unused_port()}"
    with pytest.raises(HubError, match=r"Could not upload to maintainer/x .*ConnectError"):
        publish_folder(exported["folder"], "maintainer/x", "test-token", endpoint=down)
