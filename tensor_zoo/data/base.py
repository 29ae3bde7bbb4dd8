"""Whole image datasets held in memory as uint8 tensors, batched and normalised as tensors.

The datasets of this zoo are small (at most 60,000 images of 3 x 32 x 32), so decoding a PIL
image per item is pure overhead: a data module keeps (N, C, H, W) integer tensors and yields
float batches in [0, 1]. Normalisation itself belongs to the network (its `input_mean` /
`input_std` buffers), so that it travels with the weights; the data module only reports the
statistics (`mean`, `std`) to build the network with.
"""

from __future__ import annotations

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler


class ScaledTensorDataset(Dataset):
    """(images uint8 (N, C, H, W), labels (N,)) -> items (float image in [0, 1], label)."""

    def __init__(self, images: Tensor, labels: Tensor, max_value: float = 255.0) -> None:
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels.")
        self.images = images
        self.labels = labels
        self.max_value = max_value

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.images[index].float() / self.max_value, self.labels[index]


class ShardSampler(DistributedSampler):
    """Evaluation sampler for several processes: rank i reads items i, i + world, ... in order.

    Lightning's default DistributedSampler pads the dataset with repeated items so that every
    process gets the same count, which makes multi-device validation and test accuracy count
    some images twice. Shards here are disjoint and cover the set exactly once (their sizes
    differ by at most one); accuracy summed over processes is then the exact single-device
    number. Lightning keeps a DistributedSampler it is given instead of replacing it.
    """

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False)
        self.num_samples = len(range(rank, len(dataset), num_replicas))  # type: ignore[arg-type]

    def __iter__(self):
        return iter(range(self.rank, len(self.dataset), self.num_replicas))  # type: ignore[arg-type]

    def __len__(self) -> int:
        return self.num_samples


def random_crop_flip(images: Tensor, padding: int, flip: bool = True) -> Tensor:
    """Per-image random crop of the reflection-padded batch (a shift of up to `padding`
    pixels) and, with `flip`, a random horizontal flip. images (B, C, H, W) -> same shape."""
    batch, _, height, width = images.shape
    padded = torch.nn.functional.pad(images, [padding] * 4, mode="reflect")
    rows = torch.randint(0, 2 * padding + 1, (batch,), device=images.device)
    cols = torch.randint(0, 2 * padding + 1, (batch,), device=images.device)
    row_index = rows[:, None] + torch.arange(height, device=images.device)  # (B, H)
    col_index = cols[:, None] + torch.arange(width, device=images.device)  # (B, W)
    batch_index = torch.arange(batch, device=images.device)[:, None, None]
    cropped = padded.permute(0, 2, 3, 1)[batch_index, row_index[:, :, None], col_index[:, None, :]]
    cropped = cropped.permute(0, 3, 1, 2)
    if not flip:
        return cropped
    flipped = torch.rand(batch, device=images.device) < 0.5
    return torch.where(flipped[:, None, None, None], cropped.flip(-1), cropped)


def split_indices(count: int, holdout: int, seed: int) -> tuple[Tensor, Tensor]:
    """A fixed random split of range(count) into (kept, held out) with `holdout` items held out."""
    permutation = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    return permutation[holdout:].sort().values, permutation[:holdout].sort().values


class InMemoryImageDataModule(L.LightningDataModule):
    """Base class: subclasses implement `load()` -> (train images, train labels, test ...).

    A validation split of `val_size` images is carved from the training set with `seed`;
    the test split is the dataset's official one.
    """

    num_classes: int
    classes: tuple[str, ...]
    max_value: float = 255.0
    augment: bool = False
    shift_pixels: int = 4  # training augmentation: random shift by up to this many pixels
    flip: bool = True  # ... and random horizontal flips

    def __init__(
        self, batch_size: int = 64, val_size: int = 5000, seed: int = 0, num_workers: int = 0
    ) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.val_size = val_size
        self.seed = seed
        self.num_workers = num_workers
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.test_set: Dataset | None = None

    def load(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        train_images, train_labels, test_images, test_labels = self.load()
        if not 0 <= self.val_size < len(train_images):
            raise ValueError(f"val_size must be in [0, {len(train_images)}), got {self.val_size}.")
        kept, held_out = split_indices(len(train_images), self.val_size, self.seed)
        self.train_set = ScaledTensorDataset(train_images[kept], train_labels[kept], self.max_value)
        self.val_set = ScaledTensorDataset(
            train_images[held_out], train_labels[held_out], self.max_value
        )
        self.test_set = ScaledTensorDataset(test_images, test_labels, self.max_value)

    def _loader(self, dataset: Dataset | None, shuffle: bool) -> DataLoader:
        if dataset is None:
            raise RuntimeError("Call setup() before asking for a data loader.")
        trainer = self.trainer
        sampler = None
        if not shuffle and trainer is not None and trainer.world_size > 1:
            sampler = ShardSampler(dataset, trainer.world_size, trainer.global_rank)
        return DataLoader(
            dataset, batch_size=self.batch_size, shuffle=shuffle, sampler=sampler,
            num_workers=self.num_workers, persistent_workers=self.num_workers > 0,
        )  # fmt: skip

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, shuffle=False)

    def on_after_batch_transfer(
        self, batch: tuple[Tensor, Tensor], dataloader_idx: int
    ) -> tuple[Tensor, Tensor]:
        """With `augment`, shift (and flip) training batches as tensors; never evaluation ones."""
        trainer = self.trainer
        if not (self.augment and trainer is not None and trainer.training):
            return batch
        images, labels = batch
        return random_crop_flip(images, self.shift_pixels, self.flip), labels
