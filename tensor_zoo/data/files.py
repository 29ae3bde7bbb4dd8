"""Find dataset files on disk and read them: IDX (MNIST, Fashion-MNIST) and CIFAR-10.

Where to look, in this order: an explicit `root`, the `TENSOR_ZOO_DATA` environment variable,
the per-user cache (`TENSOR_ZOO_CACHE`, default `~/.cache/tensor_zoo`), then dataset-specific
system folders (Debian's `dataset-fashion-mnist`). Inside each place a dataset may sit at the
top or in one of its usual sub-folders (`mnist/`, `MNIST/raw/`, ...).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import logging
import lzma
import math
import os
import pickle
import struct
import tarfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from tensor_zoo.datasets import DATASETS

log = logging.getLogger(__name__)


class DatasetNotFoundError(FileNotFoundError):
    """The dataset is in none of the places looked at, and could not be downloaded."""


class DatasetCorruptError(ValueError):
    """A dataset file is there but cannot be read: truncated, damaged or not what it claims."""


# What a damaged compressed file or archive raises while it is read.
DECODE_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error, lzma.LZMAError, tarfile.TarError)


def corrupt_file(path: Path, problem: str) -> DatasetCorruptError:
    """The error for a damaged dataset file: which file, what is wrong, what to do."""
    return DatasetCorruptError(
        f"{path} {problem}. The file is damaged or incomplete (an interrupted download or "
        f"copy?): delete it and download it again, or copy it again from where it came from."
    )


def cache_dir() -> Path:
    """The per-user cache folder (`TENSOR_ZOO_CACHE`, default ~/.cache/tensor_zoo)."""
    return Path(os.environ.get("TENSOR_ZOO_CACHE", Path.home() / ".cache" / "tensor_zoo"))


def search_roots(
    root: str | os.PathLike | None, extra: Sequence[str | os.PathLike] = ()
) -> list[Path]:
    """The places to look, in order: root, $TENSOR_ZOO_DATA, the cache, then `extra`."""
    places = [root, os.environ.get("TENSOR_ZOO_DATA"), cache_dir(), *extra]
    unique: dict[Path, Path] = {}  # the same folder named twice is looked at (and listed) once
    for place in places:
        if place:
            path = Path(place).expanduser()
            unique.setdefault(path.resolve(), path)
    return list(unique.values())


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
    """Read an IDX file (gzipped or not) as a uint8 tensor of its stored shape.

    Raises DatasetCorruptError, naming the file, when it cannot be decompressed or its header
    and size disagree.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as stream:
            data = stream.read()
    except DECODE_ERRORS as error:
        raise corrupt_file(path, f"cannot be decompressed ({describe_error(error)})") from None
    if len(data) < 4 or data[0:2] != b"\x00\x00" or data[2] != 0x08 or not 1 <= data[3] <= 3:
        raise corrupt_file(
            path, f"is not an unsigned-byte IDX file (its header is {data[:4].hex() or 'empty'})"
        )
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        raise corrupt_file(path, f"is truncated inside its header ({len(data)} bytes)")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    expected = int(np.prod(shape))
    if array.size != expected:
        problem = "is truncated" if array.size < expected else "has trailing bytes"
        raise corrupt_file(
            path,
            f"{problem}: its header says {shape} ({expected:,} bytes), it holds {array.size:,}",
        )
    return torch.from_numpy(array.reshape(shape).copy())


def describe_error(error: BaseException) -> str:
    """`Type: message` on one line, for an error that becomes part of another message."""
    return " ".join(f"{type(error).__name__}: {error}".split())[:400]


def remove_new_empty_folders(root: Path, existed: set[Path]) -> None:
    """Remove the empty folders under `root`, `root` included, that are not in `existed`:
    what a failed download leaves behind."""
    if not root.is_dir():
        return
    folders = [path for path in [root, *root.rglob("*")] if path.is_dir()]
    for folder in sorted(folders, key=lambda path: len(path.parts), reverse=True):
        if folder not in existed:
            with contextlib.suppress(OSError):  # a folder that is not empty stays
                folder.rmdir()


def check_labels(path: Path, labels: Tensor, num_classes: int) -> None:
    """Raise DatasetCorruptError when a label is outside 0..num_classes - 1."""
    if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) < num_classes:
        bad = labels[(labels < 0) | (labels >= num_classes)]
        raise corrupt_file(
            path, f"holds label {int(bad[0])}, outside 0..{num_classes - 1} ({len(bad)} such)"
        )


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


def read_idx_dataset(
    folder: Path, image_size: tuple[int, int], num_classes: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(train images (N, 1, H, W) uint8, train labels (N,) int64, test images, test labels).

    Args:
        folder: the folder of the four IDX files.
        image_size: the dataset's (H, W); other images are refused.
        num_classes: labels must lie in 0..num_classes - 1.

    Raises DatasetCorruptError when a file is damaged, images and labels disagree in number
    or shape, or a label is not a class index.
    """
    paths = {key: _idx_file(folder, name) for key, name in IDX_FILES.items()}
    tensors = {key: read_idx(path) for key, path in paths.items()}  # type: ignore[arg-type]
    for split in ("train", "test"):
        images, labels = tensors[f"{split}_images"], tensors[f"{split}_labels"]
        image_path, label_path = paths[f"{split}_images"], paths[f"{split}_labels"]
        if images.dim() != 3 or tuple(images.shape[1:]) != tuple(image_size):
            shape = tuple(images.shape[1:])
            expected = " x ".join(str(side) for side in image_size)
            raise corrupt_file(image_path, f"holds images of shape {shape}, not {expected}")
        if labels.dim() != 1 or len(labels) != len(images):
            raise corrupt_file(
                label_path, f"holds {len(labels)} labels for the {len(images)} images"
            )
        check_labels(label_path, labels, num_classes)  # type: ignore[arg-type]
    return (
        tensors["train_images"].unsqueeze(1),
        tensors["train_labels"].long(),
        tensors["test_images"].unsqueeze(1),
        tensors["test_labels"].long(),
    )


# ---------------------------------------------------------------------------------- CIFAR-10

CIFAR10 = DATASETS["cifar10"]
CIFAR_IMAGE_BYTES = math.prod(CIFAR10.image_shape)  # 3 x 32 x 32 in both releases
CIFAR_BIN_TRAIN = [f"data_batch_{i}.bin" for i in range(1, 6)]
CIFAR_PY_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
CIFAR_ARCHIVES = ("cifar-10-binary.tar.gz", "cifar-10-binary.tar.xz", "cifar-10-binary.tar")
CIFAR_ACCEPTED = (
    "the python release (cifar-10-batches-py/data_batch_1..5, test_batch), the binary release "
    "(cifar-10-batches-bin/data_batch_1..5.bin, test_batch.bin), or the binary archive "
    f"({', '.join(CIFAR_ARCHIVES)}), at the top of a place or in its cifar10/ or cifar-10/ folder"
)


def _parse_cifar_binary(blobs: Sequence[tuple[Path, bytes]]) -> tuple[Tensor, Tensor]:
    """(file, its bytes) pairs of 1 label byte + 3,072 pixel bytes records -> (images
    (N, 3, 32, 32), labels (N,)). Raises DatasetCorruptError naming a file that is not whole
    records or holds a label above 9."""
    images, labels = [], []
    record = 1 + CIFAR_IMAGE_BYTES
    for path, blob in blobs:
        if len(blob) == 0 or len(blob) % record:
            raise corrupt_file(
                path, f"holds {len(blob):,} bytes, not whole {record:,}-byte CIFAR-10 records"
            )
        records = np.frombuffer(blob, dtype=np.uint8).reshape(-1, record)
        labels.append(torch.from_numpy(records[:, 0].astype(np.int64)))
        check_labels(path, labels[-1], CIFAR10.num_classes)
        images.append(torch.from_numpy(records[:, 1:].reshape(-1, *CIFAR10.image_shape).copy()))
    return torch.cat(images), torch.cat(labels)


class _ForbiddenGlobal(pickle.UnpicklingError):
    """A pickle asked for a global outside the allowed set."""


class _CIFARUnpickler(pickle.Unpickler):
    """Reads the python release's pickles without running code: only the globals a pickled
    numpy array and plain containers need are resolved; anything else is refused."""

    ALLOWED: ClassVar[frozenset[tuple[str, str]]] = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.numeric", "_frombuffer"),
            ("numpy._core.numeric", "_frombuffer"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("_codecs", "encode"),  # how Python 3 pickles bytes at protocols 0-2
            *(("builtins", name) for name in ("dict", "list", "bytes", "bytearray")),
        }
    )

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self.ALLOWED:
            raise _ForbiddenGlobal(f"it asks to run {module}.{name} while it is read")
        return super().find_class(module, name)


def _load_cifar_pickle(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch of the python release -> (data (N, 3072) uint8, labels (N,) int64).

    Raises DatasetCorruptError for a damaged file and for one that would run code when read
    (never the official files): such a file is refused, not executed.
    """
    try:
        with open(path, "rb") as stream:
            batch = _CIFARUnpickler(stream, encoding="bytes").load()
    except _ForbiddenGlobal as error:
        raise DatasetCorruptError(
            f"{path} is refused: {error}, which a CIFAR-10 batch never does (it was not written "
            f"by the official release and may be malicious; nothing in it was run). Delete the "
            f"folder {path.parent} and download CIFAR-10 again (python or binary release)."
        ) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError) as error:
        raise corrupt_file(path, f"is not a readable pickle ({describe_error(error)})") from None
    data = batch.get(b"data") if isinstance(batch, dict) else None
    labels = batch.get(b"labels") if isinstance(batch, dict) else None
    is_array = isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
    if not (is_array and data.shape[1] == CIFAR_IMAGE_BYTES and isinstance(labels, list)):
        raise corrupt_file(
            path, "is not a CIFAR-10 batch (a dict of b'data', uint8 (N, 3072), and b'labels')"
        )
    try:
        label_array = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        raise corrupt_file(path, "holds labels that are not integers") from None
    if label_array.shape != (len(data),):
        raise corrupt_file(path, f"holds {len(label_array)} labels for {len(data)} images")
    return data, label_array


def _parse_cifar_pickles(paths: Sequence[Path]) -> tuple[Tensor, Tensor]:
    """The python release: pickled dicts with b"data" (N, 3072) and b"labels"."""
    images, labels = [], []
    for path in paths:
        data, label_array = _load_cifar_pickle(path)
        labels.append(torch.from_numpy(label_array))
        check_labels(path, labels[-1], CIFAR10.num_classes)
        images.append(torch.from_numpy(data.reshape(-1, *CIFAR10.image_shape).copy()))
    return torch.cat(images), torch.cat(labels)


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
    """Read CIFAR-10 from a folder or archive found by `find_cifar10`.

    Raises DatasetCorruptError naming the damaged file (or archive member).
    """
    if location.is_file():
        wanted: dict[str, bytes | None] = dict.fromkeys([*CIFAR_BIN_TRAIN, "test_batch.bin"])
        try:  # decompress the whole stream first: that checks its CRC, which tarfile skips
            decompress = {".gz": gzip.open, ".xz": lzma.open}.get(location.suffix, open)
            with decompress(location, "rb") as stream:
                blob = io.BytesIO(stream.read())
            with tarfile.open(fileobj=blob) as archive:
                for member in archive.getmembers():
                    name = Path(member.name).name
                    if name in wanted and member.isfile():
                        wanted[name] = archive.extractfile(member).read()  # type: ignore[union-attr]
        except DECODE_ERRORS as error:
            raise corrupt_file(location, f"cannot be unpacked ({describe_error(error)})") from None
        missing = [name for name, blob in wanted.items() if blob is None]
        if missing:
            raise corrupt_file(location, f"lacks {missing} (expected the official binary layout)")
        blobs = {name: (location / name, blob) for name, blob in wanted.items()}
    elif location.name == "cifar-10-batches-bin":
        names = [*CIFAR_BIN_TRAIN, "test_batch.bin"]
        blobs = {name: (location / name, (location / name).read_bytes()) for name in names}
    else:
        train = _parse_cifar_pickles([location / name for name in CIFAR_PY_TRAIN])
        test = _parse_cifar_pickles([location / "test_batch"])
        return (*train, *test)
    train = _parse_cifar_binary([blobs[name] for name in CIFAR_BIN_TRAIN])  # type: ignore[misc]
    test = _parse_cifar_binary([blobs["test_batch.bin"]])  # type: ignore[list-item]
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
