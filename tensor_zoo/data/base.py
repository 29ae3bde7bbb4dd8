"""Whole image datasets held in memory as uint8 tensors, batched and normalised as tensors.

The datasets of this zoo are small (at most 60,000 images of 3 x 32 x 32), so decoding a PIL
image per item is pure overhead: a data module keeps (N, C, H, W) integer tensors and yields
float batches in [0, 1]. Normalisation itself belongs to the network (its `input_mean` /
`input_std` buffers), so that it travels with the weights; the data module only reports the
statistics (`mean`, `std`) to build the network with. Those and every other fact of a dataset
(shape, classes, split sizes) come from its entry in `tensor_zoo.datasets.DATASETS` (`spec`).
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any, ClassVar

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from tensor_zoo.datasets import DatasetSpec

log = logging.getLogger(__name__)


class ScaledTensorDataset(Dataset):
    """(images uint8 (N, C, H, W), labels (N,)) -> items (float image in [0, 1], label).

    Args:
        images: the images (N, C, H, W), any integer or float dtype.
        labels: the class indices (N,).
        max_value: the value that maps to 1.0 (255 for 8-bit images).
    """

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

    Args:
        dataset: the dataset to shard.
        num_replicas: number of processes.
        rank: this process's index.
    """

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False)
        self.num_samples = len(range(rank, len(dataset), num_replicas))  # type: ignore[arg-type]

    def __iter__(self):
        return iter(range(self.rank, len(self.dataset), self.num_replicas))  # type: ignore[arg-type]

    def __len__(self) -> int:
        return self.num_samples


def batch_seed(*parts: int) -> int:
    """A 63-bit seed determined by `parts` (run seed, epoch, batch, rank, ...) alone, so that a
    resumed run draws the same random numbers for a batch as an uninterrupted one."""
    digest = hashlib.sha256("/".join(str(int(part)) for part in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


class EpochShuffleSampler(DistributedSampler):
    """Training order: a shuffle fixed by (seed, epoch) alone, the same in every run, which a
    resumed run can enter part-way (`start`: items of this process's shard already trained on).

    With several processes each reads its own shard, as Lightning's default sampler does.

    Args:
        dataset: the training set.
        num_replicas: number of processes.
        rank: this process's index.
        seed: the shuffle of epoch e depends on (seed, e) alone.
    """

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, seed: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self.start = 0

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.start = 0
        super().set_epoch(epoch)

    def __iter__(self):
        indices = list(super().__iter__())[self.start :]
        self.start = 0
        return iter(indices)


class ResumableLoader(DataLoader):
    """The training loader: counts the batches it has handed out this epoch, and Lightning
    saves that position (`state_dict`) in every checkpoint and hands it back on resume, so a
    run killed mid-epoch continues with the very batches it had not trained on yet."""

    sampler: EpochShuffleSampler

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batches_done = 0

    def __iter__(self):
        self.batches_done = self.sampler.start // self.batch_size  # type: ignore[operator]
        for batch in super().__iter__():
            self.batches_done += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.sampler.epoch, "batches_done": self.batches_done}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.sampler.epoch = state["epoch"]
        self.sampler.start = state["batches_done"] * self.batch_size  # type: ignore[operator]
        self.batches_done = state["batches_done"]


def random_crop_flip(
    images: Tensor, padding: int, flip: bool = True, generator: torch.Generator | None = None
) -> Tensor:
    """Per-image random crop of the reflection-padded batch (a shift of up to `padding`
    pixels) and, with `flip`, a random horizontal flip. images (B, C, H, W) -> same shape.
    `generator` (on the images' device) draws the randomness, else the global one does."""
    batch, _, height, width = images.shape
    padded = torch.nn.functional.pad(images, [padding] * 4, mode="reflect")
    draw = {"device": images.device, "generator": generator}
    rows = torch.randint(0, 2 * padding + 1, (batch,), **draw)
    cols = torch.randint(0, 2 * padding + 1, (batch,), **draw)
    row_index = rows[:, None] + torch.arange(height, device=images.device)  # (B, H)
    col_index = cols[:, None] + torch.arange(width, device=images.device)  # (B, W)
    batch_index = torch.arange(batch, device=images.device)[:, None, None]
    cropped = padded.permute(0, 2, 3, 1)[batch_index, row_index[:, :, None], col_index[:, None, :]]
    cropped = cropped.permute(0, 3, 1, 2)
    if not flip:
        return cropped
    flipped = torch.rand(batch, **draw) < 0.5
    return torch.where(flipped[:, None, None, None], cropped.flip(-1), cropped)


def split_indices(count: int, holdout: int, seed: int) -> tuple[Tensor, Tensor]:
    """A fixed random split of range(count) into (kept, held out) with `holdout` items held out."""
    permutation = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    return permutation[holdout:].sort().values, permutation[:holdout].sort().values


class InMemoryImageDataModule(L.LightningDataModule):
    """Base class: subclasses set `spec` (their dataset's `tensor_zoo.datasets.DatasetSpec`,
    which `name`, `classes`, `mean`, ... report) and implement `load()` -> (train images,
    train labels, test images, test labels).

    A validation split of `val_size` images is carved from the training set with `seed`;
    the test split is the dataset's official one. `seed` also fixes the training order of
    every epoch and the augmentation of every batch, so that a run resumed from a checkpoint
    (even one saved mid-epoch) sees exactly the batches an uninterrupted run would.

    Args:
        batch_size: images per batch (per process), training and evaluation alike.
        val_size: images held out of the training set for validation.
        seed: fixes the validation split, the training order of every epoch and the
            augmentation of every batch.
        num_workers: DataLoader worker processes (0: load in the main process).
    """

    spec: ClassVar[DatasetSpec]  # the dataset's facts: its entry of tensor_zoo.datasets.DATASETS
    augment: bool = False
    shift_pixels: int = 4  # training augmentation: random shift by up to this many pixels
    flip: bool = True  # ... and random horizontal flips

    def __init__(
        self, batch_size: int = 64, val_size: int = 5000, seed: int = 0, num_workers: int = 0
    ) -> None:
        super().__init__()
        for name, value, minimum in (
            ("batch_size", batch_size, 1),
            ("val_size", val_size, 0),
            ("seed", seed, 0),
            ("num_workers", num_workers, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}.")
        self.batch_size = batch_size
        self.val_size = val_size
        self.seed = seed
        self.num_workers = num_workers
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.test_set: Dataset | None = None
        self.train_loader: ResumableLoader | None = None

    @property
    def name(self) -> str:
        """The dataset's title ("CIFAR-10")."""
        return self.spec.title

    @property
    def classes(self) -> tuple[str, ...]:
        """The class names, in label order."""
        return self.spec.classes

    @property
    def num_classes(self) -> int:
        """The number of classes."""
        return self.spec.num_classes

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """One image as (C, H, W)."""
        return self.spec.image_shape

    @property
    def mean(self) -> tuple[float, ...] | None:
        """Per-channel mean of the training images in [0, 1]: the network's `input_mean`."""
        return self.spec.mean

    @property
    def std(self) -> tuple[float, ...] | None:
        """Per-channel standard deviation, likewise: the network's `input_std`."""
        return self.spec.std

    @property
    def max_value(self) -> float:
        """The largest raw value: batches are the raw values divided by it, in [0, 1]."""
        return self.spec.max_value

    def load(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        train_images, train_labels, test_images, test_labels = self.load()
        expected = (self.spec.train_size, self.spec.test_size)
        found = (len(train_images), len(test_images))
        if None not in expected and found != expected:  # e.g. a download cut short
            log.warning(
                "%s holds %s training and %s test images here, not the official %s and %s.",
                self.name,
                *(f"{count:,}" for count in (*found, *expected)),
            )
        if not 0 <= self.val_size < len(train_images):
            raise ValueError(f"val_size must be in [0, {len(train_images)}), got {self.val_size}.")
        kept, held_out = split_indices(len(train_images), self.val_size, self.seed)
        self.train_set = ScaledTensorDataset(train_images[kept], train_labels[kept], self.max_value)
        self.val_set = ScaledTensorDataset(
            train_images[held_out], train_labels[held_out], self.max_value
        )
        self.test_set = ScaledTensorDataset(test_images, test_labels, self.max_value)

    def _loader(self, dataset: Dataset | None) -> DataLoader:
        """An evaluation loader: in order, in disjoint shards when there are several processes."""
        if dataset is None:
            raise RuntimeError("Call setup() before asking for a data loader.")
        trainer = self.trainer
        sampler = None
        if trainer is not None and trainer.world_size > 1:
            sampler = ShardSampler(dataset, trainer.world_size, trainer.global_rank)
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=False,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        if self.train_set is None:
            raise RuntimeError("Call setup() before asking for a data loader.")
        trainer = self.trainer
        world, rank = (trainer.world_size, trainer.global_rank) if trainer else (1, 0)
        self.train_loader = ResumableLoader(
            self.train_set,
            batch_size=self.batch_size,
            sampler=EpochShuffleSampler(self.train_set, world, rank, self.seed),
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )
        return self.train_loader

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.test_set)

    def on_after_batch_transfer(
        self, batch: tuple[Tensor, Tensor], dataloader_idx: int
    ) -> tuple[Tensor, Tensor]:
        """With `augment`, shift (and flip) training batches as tensors; never evaluation ones."""
        trainer = self.trainer
        if not (self.augment and trainer is not None and trainer.training):
            return batch
        images, labels = batch
        generator = None
        if self.train_loader is not None:  # the batch's own draw: the same after a resume
            epoch, index = self.train_loader.sampler.epoch, self.train_loader.batches_done
            seed = batch_seed(self.seed, epoch, index, trainer.global_rank)
            generator = torch.Generator(images.device).manual_seed(seed)
        return random_crop_flip(images, self.shift_pixels, self.flip, generator), labels
