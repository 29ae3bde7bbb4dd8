"""scikit-learn's bundled 8 x 8 digits (1,797 images, 10 classes): no files, no downloads."""

from __future__ import annotations

import torch
from torch import Tensor

from tensor_zoo.data.base import InMemoryImageDataModule, split_indices
from tensor_zoo.datasets import DATASETS


class DigitsDataModule(InMemoryImageDataModule):
    """`sklearn.datasets.load_digits` as (1, 8, 8) images with values 0..16.

    There is no official test split: `test_size` images are held out with `seed` (then
    `val_size` more from the rest), the same split on every machine.

    Args:
        batch_size: images per batch (per process), training and evaluation alike.
        val_size: images held out of the training set for validation.
        test_size: images held out as the test split.
        seed: fixes the test and validation splits, the training order of every epoch and the
            augmentation of every batch.
        num_workers: DataLoader worker processes (0: load in the main process).
    """

    spec = DATASETS["digits"]

    def __init__(
        self,
        batch_size: int = 32,
        val_size: int = 180,
        test_size: int = 360,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__(batch_size, val_size, seed, num_workers)
        self.test_size = test_size

    def load(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = torch.from_numpy(digits.images).to(torch.uint8).unsqueeze(1)
        labels = torch.from_numpy(digits.target).long()
        train, test = split_indices(len(images), self.test_size, self.seed + 1)
        return images[train], labels[train], images[test], labels[test]
