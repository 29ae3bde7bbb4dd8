"""Where checkpoint files come from: a local checkpoints folder, else the Hugging Face Hub.

Every file of a published checkpoint is checked against the sha256 in the index before
anything reads it. A file in the Hub cache that fails the check is downloaded again once with
the client's own `force_download`; no file is deleted (a local folder is the user's, and a
cache entry may link anywhere: only the snapshot link inside the cache is replaced). Every
network failure becomes one HubError, fast: the metadata request is made once, without the
client's retries, within `HF_HUB_ETAG_TIMEOUT`. The Hub's address, cache and offline mode are
huggingface_hub's own (`HF_ENDPOINT`, `HF_HUB_CACHE` / `HF_HOME`, `HF_HUB_OFFLINE`, read when
it is imported); `hub_file` and `publish_folder` take an endpoint and a cache folder too.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
from pathlib import Path
from typing import Any

from tensor_zoo.zoo.registry import UnknownModelError, no_weights_message, published_entry

log = logging.getLogger(__name__)
DEFAULT_HUB_ORG = "tensor-zoo"


class ChecksumError(RuntimeError):
    """A checkpoint file's sha256 is not the one in the index."""


class HubError(RuntimeError):
    """The Hub could not provide a checkpoint file (missing repo or file, offline, down)."""


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def source_checkout_checkpoints() -> Path | None:
    """The repository's `checkpoints/` when tensor_zoo runs from a source checkout."""
    root = Path(__file__).resolve().parents[2]
    folder = root / "checkpoints"
    return folder if folder.is_dir() and (root / "pyproject.toml").is_file() else None


def packaged_checkpoints() -> Path | None:
    """The checkpoints shipped inside the installed package (`tensor_zoo/zoo/checkpoints`)."""
    folder = Path(__file__).with_name("checkpoints")
    return folder if folder.is_dir() else None


def local_checkpoints_dir() -> Path | None:
    """`TENSOR_ZOO_CHECKPOINTS`, else the source checkout's `checkpoints/`, else the packaged
    checkpoints, else None."""
    configured = os.environ.get("TENSOR_ZOO_CHECKPOINTS")
    if configured:
        return Path(configured).expanduser()
    return source_checkout_checkpoints() or packaged_checkpoints()


def hub_org() -> str:
    """The Hub organisation (or user) that holds the checkpoints: `TENSOR_ZOO_HUB_ORG`."""
    return os.environ.get("TENSOR_ZOO_HUB_ORG", DEFAULT_HUB_ORG)


def hub_location(name: str, entry: dict[str, Any]) -> tuple[str, str]:
    """(repo id, revision) to download from: the pinned commit when the org is the published one.

    An index entry records where `publish` uploaded it ({"repo_id", "revision"}). With another
    org (`TENSOR_ZOO_HUB_ORG`, e.g. a mirror) the commit differs, so "main" is used; the sha256
    check keeps the content pinned either way.
    """
    repo_id = f"{hub_org()}/{name}"
    hub = entry.get("hub") or {}
    if hub.get("repo_id") == repo_id and hub.get("revision"):
        return repo_id, hub["revision"]
    return repo_id, "main"


def checked_entry(name: str) -> dict[str, Any]:
    """The index entry of a published checkpoint; UnknownModelError otherwise."""
    entry = published_entry(name)
    if entry is not None:
        return entry
    raise UnknownModelError(no_weights_message(name))


def fetch_file(
    name: str, filename: str, revision: str | None = None, local_files_only: bool = False
) -> Path:
    """Path of a verified file of a published checkpoint: local folder first, then the Hub."""
    entry = checked_entry(name)
    if filename not in entry["files"]:
        raise KeyError(f"{name} has no file {filename!r}; it has {sorted(entry['files'])}.")
    expected = entry["files"][filename]["sha256"]
    local = local_checkpoints_dir()
    if local is not None and not local.is_dir():  # a typo must not silently mean "the Hub"
        raise FileNotFoundError(
            f"TENSOR_ZOO_CHECKPOINTS is {str(local)!r}, which is not a folder. Point it at the "
            f"folder that holds the checkpoint folders, or unset it."
        )
    if local is not None and (local / name / filename).is_file():
        path = local / name / filename
        actual = sha256_file(path)
        if actual != expected:
            raise ChecksumError(
                f"{path} has sha256 {actual}, but the index expects {expected}. The local copy "
                f"differs from the published checkpoint: restore it (git checkout / re-export) "
                f"or remove it to download the published one."
            )
        return path
    return hub_file(name, entry, filename, revision=revision, local_files_only=local_files_only)


def hub_file(
    name: str,
    entry: dict[str, Any],
    filename: str,
    *,
    revision: str | None = None,
    local_files_only: bool = False,
    endpoint: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    timeout: float | None = None,
) -> Path:
    """A file of a published checkpoint from the Hub cache, else the Hub, checked by sha256.

    A copy with another sha256 is downloaded again once with the client's `force_download`
    (the cache's snapshot link is replaced, nothing is deleted); failures are one HubError or
    ChecksumError each.

    Args:
        name: the checkpoint's name.
        entry: its index entry ({"files": {filename: {"sha256", ...}}, "hub": {...}}).
        filename: the file, e.g. "model.safetensors".
        revision: a Hub revision instead of the one pinned in the index.
        local_files_only: only the Hub cache, no network call (as `HF_HUB_OFFLINE=1`).
        endpoint: the Hub's address (default: huggingface_hub's, `HF_ENDPOINT`).
        cache_dir: the Hub cache folder (default: huggingface_hub's, `HF_HUB_CACHE`).
        timeout: seconds to wait for the Hub (default: `HF_HUB_ETAG_TIMEOUT`).
    """
    from huggingface_hub import constants

    expected = entry["files"][filename]["sha256"]
    client = {"endpoint": endpoint, "cache_dir": cache_dir, "timeout": timeout}
    path = _download(name, entry, filename, revision, local_files_only, **client)
    if sha256_file(path) == expected:
        return path
    if local_files_only or constants.HF_HUB_OFFLINE:
        raise ChecksumError(
            f"The cached {filename} of {name} ({path}) does not have the sha256 the index "
            f"expects ({expected}), and offline mode forbids downloading it again. Unset "
            f"HF_HUB_OFFLINE (and local_files_only) once to replace it."
        )
    log.warning("The cached %s of %s is not the published file; downloading again", filename, name)
    _forget_snapshot_entry(path, Path(cache_dir or constants.HF_HUB_CACHE))
    path = _download(name, entry, filename, revision, False, force_download=True, **client)
    actual = sha256_file(path)
    if actual != expected:
        raise ChecksumError(
            f"{filename} of {name}, downloaded again, has sha256 {actual}, but the index "
            f"expects {expected}: the Hub repo serves other content (changed repo, or a "
            f"mirror's TENSOR_ZOO_HUB_ORG holds other files). Nothing was deleted."
        )
    return path


def _forget_snapshot_entry(path: Path, cache: Path) -> None:
    """Remove a file's entry in the Hub cache's snapshot folder: the link, never its target.

    The client's `force_download` rewrites the blob but keeps an existing snapshot link, which
    may point at another (bad) blob; without the link it links the fresh blob. Nothing outside
    the cache folder is touched.
    """
    if path.parent.resolve().is_relative_to(cache.resolve()) and (
        path.is_symlink() or path.is_file()
    ):
        path.unlink()


def _network_errors() -> tuple[type[Exception], ...]:
    """The transport exceptions of the HTTP library huggingface_hub uses (httpx2 or httpx)."""
    errors: list[type[Exception]] = [OSError]
    for module in ("httpx2", "httpx"):
        try:
            errors.append(importlib.import_module(module).HTTPError)
        except ImportError:
            continue
    return tuple(errors)


def _download(
    name: str,
    entry: dict[str, Any],
    filename: str,
    revision: str | None,
    local_files_only: bool,
    force_download: bool = False,
    *,
    endpoint: str | None,
    cache_dir: str | os.PathLike | None,
    timeout: float | None,
) -> Path:
    """A file from the Hub cache, else downloaded; every failure is one HubError."""
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_download, hf_hub_url
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    repo_id, pinned = hub_location(name, entry)
    revision = revision or pinned
    offline = local_files_only or constants.HF_HUB_OFFLINE
    hub = endpoint or constants.ENDPOINT
    where = f"{repo_id}@{revision} on {hub}"
    elsewhere = (
        f"Or use a local copy: load(path=FOLDER), or put the folder in TENSOR_ZOO_CHECKPOINTS "
        f"(the source repository has it in checkpoints/{name}/)."
    )
    options = {
        "revision": revision,
        "cache_dir": cache_dir,
        "endpoint": endpoint,
        "library_name": "tensor-zoo",
    }
    if not force_download:
        try:  # the sha256 check pins the content, so any cached copy will do: no request
            return Path(hf_hub_download(repo_id, filename, local_files_only=True, **options))
        except LocalEntryNotFoundError:
            pass
    if offline:
        raise HubError(
            f"{filename} of {name} is not in the local checkpoints folder or the Hub cache, "
            f"and offline mode is on (HF_HUB_OFFLINE=1 or local_files_only=True). Download "
            f"it once with network access (unset HF_HUB_OFFLINE). {elsewhere}"
        )
    if not _uploaded(name, entry, repo_id) and "TENSOR_ZOO_HUB_ORG" not in os.environ:
        raise HubError(
            f"{name} has not been uploaded to the Hub yet (the index records no upload to "
            f"{repo_id}), and no local checkpoints folder holds {filename}. {elsewhere}"
        )
    timeout = timeout or constants.HF_HUB_ETAG_TIMEOUT
    try:  # one metadata request, no retries: a failure is reported at once
        get_hf_file_metadata(
            hf_hub_url(repo_id, filename, revision=revision, endpoint=endpoint),
            timeout=timeout,
            library_name="tensor-zoo",
            endpoint=endpoint,
        )
        path = hf_hub_download(
            repo_id, filename, force_download=force_download, etag_timeout=timeout, **options
        )
    except RevisionNotFoundError as error:
        raise HubError(
            f"Revision {revision!r} of {repo_id} does not exist on {hub}. {elsewhere}"
        ) from error
    except RepositoryNotFoundError as error:
        raise HubError(
            f"The Hub has no repo {repo_id} (at {hub}): the checkpoint may not be "
            f"uploaded there. Set TENSOR_ZOO_HUB_ORG to the org that holds it. {elsewhere}"
        ) from error
    except EntryNotFoundError as error:
        raise HubError(f"{where} has no file {filename}. {elsewhere}") from error
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else "an error"
        raise HubError(
            f"The Hub answered {status} for {filename} from {where} "
            f"({str(error).splitlines()[0]}): "
            + ("the server has a problem; try again later. " if str(status)[0] == "5" else "")
            + elsewhere
        ) from error
    except _network_errors() as error:
        kind = type(error).__name__
        slow = "Timeout" in kind
        raise HubError(
            f"Could not download {filename} from {where}: "
            + (
                f"the Hub did not answer within {timeout} s (HF_HUB_ETAG_TIMEOUT)"
                if slow
                else f"the connection failed ({kind}: {error})"
            )
            + ". Check the network or HF_ENDPOINT; with a cached copy, HF_HUB_OFFLINE=1 loads "
            f"it without asking. {elsewhere}"
        ) from error
    log.info("%s of %s from %s", filename, name, path)
    return Path(path)


def _uploaded(name: str, entry: dict[str, Any], repo_id: str) -> bool:
    """Whether the index records an upload of `name` to `repo_id`."""
    hub = entry.get("hub") or {}
    return hub.get("repo_id") == repo_id and bool(hub.get("revision"))


def publish_folder(
    folder: Path,
    repo_id: str,
    token: str | None = None,
    private: bool = False,
    commit_message: str | None = None,
    endpoint: str | None = None,
) -> str:
    """Create `repo_id` if needed and upload a checkpoint folder; returns the commit sha.

    Args:
        folder: the checkpoint folder.
        repo_id: ORG/NAME on the Hub.
        token: a write token (default: `HF_TOKEN` or the saved login).
        private: create the repo private.
        commit_message: the commit's message (default: "Upload NAME with tensor-zoo").
        endpoint: the Hub's address (default: huggingface_hub's, `HF_ENDPOINT`).
    """
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError, HfUriError

    api = HfApi(endpoint=endpoint, token=token)
    hub = endpoint or constants.ENDPOINT
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            commit_message=commit_message or f"Upload {folder.name} with tensor-zoo",
        )
    except (HfHubHTTPError, HfUriError) as error:  # HfUriError: a 403 on an existing repo
        raise HubError(
            f"The Hub ({hub}) refused the upload to "
            f"{repo_id}: {error}. Check that your token (HF_TOKEN or `hf auth login`) may write "
            f"to that org."
        ) from error
    except _network_errors() as error:
        raise HubError(
            f"Could not upload to {repo_id} on {hub}: "
            f"the connection failed ({type(error).__name__}: {error}). Check the network or "
            f"HF_ENDPOINT and run publish again; the index is unchanged."
        ) from error
    return commit.oid
