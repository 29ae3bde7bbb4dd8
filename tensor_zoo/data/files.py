"""Find dataset files on disk and read them: IDX (MNIST, Fashion-MNIST) and CIFAR-10.

Where to look, in this order: an explicit `root`, the `TENSOR_ZOO_DATA` environment variable,
the per-user cache (`TENSOR_ZOO_CACHE`, default `~/.cache/tensor_zoo`), then dataset-specific
system folders (Debian's `dataset-fashion-mnist`). Inside each place a dataset may sit at the
top or in one of its usual sub-folders (`mnist/`, `MNIST/raw/`, ...).
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import pickle
import struct
import tarfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

log = logging.getLogger(__name__)


class DatasetNotFoundError(FileNotFoundError):
    """The dataset is in none of the places looked at, and could not be downloaded."""


def cache_dir() -> Path:
    """The per-user cache folder (`TENSOR_ZOO_CACHE`, default ~/.cache/tensor_zoo)."""
    return Path(os.environ.get("TENSOR_ZOO_CACHE", Path.home() / ".cache" / "tensor_zoo"))


def search_roots(
    root: str | os.PathLike | None, extra: Sequence[str | os.PathLike] = ()
) -> list[Path]:
    """The places to look, in order: root, $TENSOR_ZOO_DATA, the cache, then `extra`."""
    places = [root, os.environ.get("TENSOR_ZOO_DATA"), cache_dir(), *extra]
    return [Path(place).expanduser() for place in places if place]


def not_found_message(
    dataset: str, looked_in: Sequence[Path], accepted: str, download_error: str | None
) -> str:
    """The one error a user sees when a dataset is missing: what, where, which files, what to do."""
    places = "\n".join(f"  - {place}" for place in looked_in)
    download = (
        f"The download failed: {download_error}"
        if download_error
        else "Downloading was switched off (download=False)."
    )
    return (
        f"{dataset} was not found. Looked in:\n{places}\n"
        f"Accepted files: {accepted}\n{download}\n"
        f"Put the files in one of these places, or point to them with the data module's `root` "
        f"argument (recipes: --data.root=PATH) or the TENSOR_ZOO_DATA environment variable."
    )


# ---------------------------------------------------------------------------------- IDX files


def read_idx(path: Path) -> Tensor:
    """Read an IDX file (gzipped or not) as a uint8 tensor of its stored shape."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as stream:
        data = stream.read()
    zero, dtype_code, ndim = data[0:2], data[2], data[3]
    if zero != b"\x00\x00" or dtype_code != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (header {data[:4].hex()}).")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise ValueError(f"{path} is truncated: header says {shape}, found {array.size} bytes.")
    return torch.from_numpy(array.reshape(shape).copy())


IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def find_idx_folder(places: Sequence[Path], subfolders: Sequence[str]) -> Path | None:
    """The first folder holding all four IDX files (each plain or .gz)."""
    for place in places:
        for sub in ("", *subfolders):
            folder = place / sub
            if all(_idx_file(folder, name) for name in IDX_FILES.values()):
                return folder
    return None


def _idx_file(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def read_idx_dataset(folder: Path) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(train images (N, 1, 28, 28) uint8, train labels (N,) int64, test images, test labels)."""
    tensors = {key: read_idx(_idx_file(folder, name)) for key, name in IDX_FILES.items()}  # type: ignore[arg-type]
    return (
        tensors["train_images"].unsqueeze(1),
        tensors["train_labels"].long(),
        tensors["test_images"].unsqueeze(1),
        tensors["test_labels"].long(),
    )


# ---------------------------------------------------------------------------------- CIFAR-10

CIFAR_BIN_TRAIN = [f"data_batch_{i}.bin" for i in range(1, 6)]
CIFAR_PY_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
CIFAR_ARCHIVES = ("cifar-10-binary.tar.gz", "cifar-10-binary.tar.xz", "cifar-10-binary.tar")
CIFAR_ACCEPTED = (
    "the python release (cifar-10-batches-py/data_batch_1..5, test_batch), the binary release "
    "(cifar-10-batches-bin/data_batch_1..5.bin, test_batch.bin), or the binary archive "
    f"({', '.join(CIFAR_ARCHIVES)}), at the top of a place or in its cifar10/ or cifar-10/ folder"
)


def _parse_cifar_binary(blobs: Sequence[bytes]) -> tuple[Tensor, Tensor]:
    """Records of 1 label byte + 3,072 pixel bytes -> (images (N, 3, 32, 32), labels (N,))."""
    data = np.frombuffer(b"".join(blobs), dtype=np.uint8)
    if data.size % 3073:
        raise ValueError(
            f"CIFAR-10 binary data of {data.size} bytes is not whole 3,073-byte records."
        )
    records = data.reshape(-1, 3073)
    images = torch.from_numpy(records[:, 1:].reshape(-1, 3, 32, 32).copy())
    return images, torch.from_numpy(records[:, 0].astype(np.int64))


def _parse_cifar_pickles(paths: Sequence[Path]) -> tuple[Tensor, Tensor]:
    """The python release: pickled dicts with b"data" (N, 3072) and b"labels"."""
    images, labels = [], []
    for path in paths:
        with open(path, "rb") as stream:
            batch = pickle.load(stream, encoding="bytes")  # the official format is a pickle
        images.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.append(np.asarray(batch[b"labels"], dtype=np.int64))
    return torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels))


def find_cifar10(places: Sequence[Path]) -> Path | None:
    """The first CIFAR-10 folder or archive in any accepted layout."""
    for place in places:
        for sub in ("", "cifar10", "cifar-10"):
            folder = place / sub
            python_dir, binary_dir = folder / "cifar-10-batches-py", folder / "cifar-10-batches-bin"
            if all((python_dir / name).is_file() for name in [*CIFAR_PY_TRAIN, "test_batch"]):
                return python_dir
            if all((binary_dir / name).is_file() for name in [*CIFAR_BIN_TRAIN, "test_batch.bin"]):
                return binary_dir
            for archive in CIFAR_ARCHIVES:
                if (folder / archive).is_file():
                    return folder / archive
    return None


def read_cifar10(location: Path) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Read CIFAR-10 from a folder or archive found by `find_cifar10`."""
    if location.is_file():
        wanted = {name: None for name in [*CIFAR_BIN_TRAIN, "test_batch.bin"]}
        with tarfile.open(location) as archive:
            for member in archive.getmembers():
                name = Path(member.name).name
                if name in wanted and member.isfile():
                    wanted[name] = archive.extractfile(member).read()  # type: ignore[union-attr]
        missing = [name for name, blob in wanted.items() if blob is None]
        if missing:
            raise ValueError(f"{location} lacks {missing}; expected the official binary layout.")
        train = _parse_cifar_binary([wanted[name] for name in CIFAR_BIN_TRAIN])  # type: ignore[misc]
        test = _parse_cifar_binary([wanted["test_batch.bin"]])  # type: ignore[list-item]
    elif location.name == "cifar-10-batches-bin":
        train = _parse_cifar_binary([(location / name).read_bytes() for name in CIFAR_BIN_TRAIN])
        test = _parse_cifar_binary([(location / "test_batch.bin").read_bytes()])
    else:
        train = _parse_cifar_pickles([location / name for name in CIFAR_PY_TRAIN])
        test = _parse_cifar_pickles([location / "test_batch"])
    return (*train, *test)


def read_cifar10_cached(location: Path) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """`read_cifar10`, keeping an archive's decoded tensors in the cache folder.

    Decompressing the .tar.xz archive takes about 20 s; the decoded uint8 tensors (180 MB)
    load in well under a second. The cache entry is keyed by the archive's path, size and
    modification time, so a replaced archive is read again. Folders are read directly.
    """
    if not location.is_file():
        return read_cifar10(location)
    stat = location.stat()
    key = hashlib.sha256(f"{location.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    cached = cache_dir() / "decoded" / f"cifar10-{key.hexdigest()[:16]}.pt"
    if cached.is_file():
        try:
            return tuple(torch.load(cached, weights_only=True))  # type: ignore[return-value]
        except (RuntimeError, EOFError, pickle.UnpicklingError):
            cached.unlink(missing_ok=True)  # a half-written entry: decode the archive again
    tensors = read_cifar10(location)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(f".{os.getpid()}.tmp")
        torch.save(list(tensors), partial)
        partial.replace(cached)
    except OSError as error:  # a read-only or full cache only costs speed
        log.warning("Could not cache decoded CIFAR-10 in %s: %s", cached.parent, error)
    return tensors
