"""Data modules for MNIST, Fashion-MNIST and CIFAR-10 (real files) and the paper's toy sets."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from tensor_zoo.data.base import InMemoryImageDataModule
from tensor_zoo.data.files import (
    CIFAR_ACCEPTED,
    DatasetNotFoundError,
    cache_dir,
    describe_error,
    find_cifar10,
    find_idx_folder,
    not_found_message,
    read_cifar10_cached,
    read_idx_dataset,
    remove_new_empty_folders,
    search_roots,
)
from tensor_zoo.datasets import DATASETS

log = logging.getLogger(__name__)


def locate_dataset(
    name: str,
    places: list[Path],
    find: Callable[[list[Path]], Path | None],
    fetch: Callable[[str], None] | None,
    accepted: str,
) -> Path:
    """Find a dataset in `places`; else run `fetch` (a download into the cache) and look again.

    Raises DatasetNotFoundError naming every place looked at, the accepted layouts and why the
    download failed (or that downloading is off, `fetch=None`).
    """
    location = find(places)
    error = None
    if location is None and fetch is not None:
        cache = cache_dir()
        existed = {cache, *cache.rglob("*")} if cache.is_dir() else set()
        try:
            fetch(str(cache))
        except Exception as exc:  # any failure becomes part of one actionable message
            error = describe_error(exc)
        location = find(places)
        if location is None:
            remove_new_empty_folders(cache, existed)
        if location is None and error is None:
            error = "the download reported success but the files are not in the cache"
    if location is None:
        raise DatasetNotFoundError(not_found_message(name, places, accepted, error))
    log.info("Reading %s from %s", name, location)
    return location


class _IDXDataModule(InMemoryImageDataModule):
    """MNIST-format data: four IDX files of grey images, a training and a test split.

    `augment` (off by default) shifts training images by up to 2 pixels; `flip` adds random
    horizontal flips (off by default: digits have a handedness; most clothes do not).

    Args:
        root: folder to look for the files in first (then $TENSOR_ZOO_DATA, then the
            cache); None: only those.
        download: fetch the files with torchvision into the cache when they are found
            nowhere.
        augment: shift training images by up to 2 pixels.
        flip: with augment, also flip training images left-right at random (for
            Fashion-MNIST; never for digits).
        batch_size: images per batch (per process), training and evaluation alike.
        val_size: images held out of the training set for validation.
        seed: fixes the validation split, the training order of every epoch and the
            augmentation of every batch.
        num_workers: DataLoader worker processes (0: load in the main process).
    """

    subfolders: tuple[str, ...]
    system_places: tuple[str, ...] = ()
    shift_pixels = 2

    def __init__(
        self,
        root: str | None = None,
        download: bool = True,
        augment: bool = False,
        flip: bool = False,
        batch_size: int = 128,
        val_size: int = 5000,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__(batch_size, val_size, seed, num_workers)
        self.root = root
        self.download = download
        self.augment = augment
        self.flip = flip

    def _torchvision_fetch(self, folder: str) -> None:
        raise NotImplementedError

    def load(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        accepted = (
            "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
            "t10k-labels-idx1-ubyte (each plain or .gz), at the top of a place or in "
            + ", ".join(f"{sub}/" for sub in self.subfolders)
        )
        folder = locate_dataset(
            self.name,
            search_roots(self.root, self.system_places),
            lambda places: find_idx_folder(places, self.subfolders),
            self._torchvision_fetch if self.download else None,
            accepted,
        )
        return read_idx_dataset(folder, self.spec.image_shape[1:], self.spec.num_classes)


class MNISTDataModule(_IDXDataModule):
    """MNIST (LeCun and Cortes, CC BY-SA 3.0)."""

    spec = DATASETS["mnist"]
    subfolders = ("mnist", "MNIST/raw")

    def _torchvision_fetch(self, folder: str) -> None:
        from torchvision.datasets import MNIST

        MNIST(folder, download=True)


class FashionMNISTDataModule(_IDXDataModule):
    """Fashion-MNIST (Zalando, MIT). Debian's `dataset-fashion-mnist` package is found as is."""

    spec = DATASETS["fashion-mnist"]
    subfolders = ("fashion-mnist", "FashionMNIST/raw")
    system_places = ("/usr/share/datasets",)

    def _torchvision_fetch(self, folder: str) -> None:
        from torchvision.datasets import FashionMNIST

        FashionMNIST(folder, download=True)


class CIFAR10DataModule(InMemoryImageDataModule):
    """CIFAR-10 (Krizhevsky, 2009): colour images, a training and a test split.

    Training batches are augmented as tensors when `augment` is on: a random crop of the
    image padded by 4 pixels (reflection) and a random horizontal flip. Evaluation batches
    never are.

    Args:
        root: folder to look for the files in first (then $TENSOR_ZOO_DATA, then the
            cache); None: only those.
        download: fetch the files with torchvision into the cache when they are found
            nowhere.
        augment: random 4-pixel shifts and horizontal flips of training images.
        batch_size: images per batch (per process), training and evaluation alike.
        val_size: images held out of the training set for validation.
        seed: fixes the validation split, the training order of every epoch and the
            augmentation of every batch.
        num_workers: DataLoader worker processes (0: load in the main process).
    """

    spec = DATASETS["cifar10"]

    def __init__(
        self,
        root: str | None = None,
        download: bool = True,
        augment: bool = True,
        batch_size: int = 128,
        val_size: int = 5000,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__(batch_size, val_size, seed, num_workers)
        self.root = root
        self.download = download
        self.augment = augment

    def load(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        location = locate_dataset(
            self.name,
            search_roots(self.root),
            find_cifar10,
            self._torchvision_fetch if self.download else None,
            CIFAR_ACCEPTED,
        )
        return read_cifar10_cached(location)

    @staticmethod
    def _torchvision_fetch(folder: str) -> None:
        from torchvision.datasets import CIFAR10

        CIFAR10(folder, download=True)


class ToyDataModule(InMemoryImageDataModule):
    """The paper's toy sets: sklearn's make_moons / make_circles as two 1-pixel "patches".

    Each point (x, y) becomes an "image" (1, 1, 2), so a network with patch_size=1 sees
    d = 2 positions with n = 1 value each, as in the paper's decision-boundary figure.

    Args:
        dataset: "moons" or "circles".
        num_samples: training points (the test set has half as many, drawn apart).
        noise: std of the Gaussian noise added to the points.
        batch_size: images per batch (per process), training and evaluation alike.
        val_size: images held out of the training set for validation.
        seed: fixes the validation split, the training order of every epoch and the
            augmentation of every batch.
        num_workers: DataLoader worker processes (0: load in the main process).
    """

    spec = DATASETS["toy"]

    def __init__(
        self,
        dataset: str = "moons",
        num_samples: int = 2000,
        noise: float = 0.1,
        batch_size: int = 64,
        val_size: int = 200,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__(batch_size, val_size, seed, num_workers)
        if dataset not in ("moons", "circles"):
            raise ValueError(f"dataset must be 'moons' or 'circles', got {dataset!r}.")
        self.dataset = dataset
        self.num_samples = num_samples
        self.noise = noise

    def load(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        from sklearn.datasets import make_circles, make_moons

        make = make_moons if self.dataset == "moons" else make_circles
        kwargs = {"noise": self.noise} | ({"factor": 0.5} if self.dataset == "circles" else {})
        splits = []
        for count, seed in ((self.num_samples, self.seed), (self.num_samples // 2, self.seed + 1)):
            points, labels = make(n_samples=count, random_state=seed, **kwargs)
            images = torch.from_numpy(points).float().reshape(-1, 1, 1, 2)
            splits += [images, torch.from_numpy(labels).long()]
        return tuple(splits)  # type: ignore[return-value]
