"""Data modules: whole datasets in memory as uint8 tensors.

Each reads one dataset of `tensor_zoo.datasets.DATASETS` (its `spec`); `DATA_MODULES` maps
the table's keys to them.
"""

from tensor_zoo.data.base import (
    InMemoryImageDataModule,
    ScaledTensorDataset,
    ShardSampler,
    random_crop_flip,
    split_indices,
)
from tensor_zoo.data.datasets import (
    CIFAR10DataModule,
    FashionMNISTDataModule,
    MNISTDataModule,
    ToyDataModule,
)
from tensor_zoo.data.digits import DigitsDataModule
from tensor_zoo.data.files import DatasetCorruptError, DatasetNotFoundError

DATA_MODULES: dict[str, type[InMemoryImageDataModule]] = {
    module.spec.key: module
    for module in (
        MNISTDataModule,
        FashionMNISTDataModule,
        CIFAR10DataModule,
        DigitsDataModule,
        ToyDataModule,
    )
}

__all__ = [
    "DATA_MODULES",
    "CIFAR10DataModule",
    "DatasetCorruptError",
    "DatasetNotFoundError",
    "DigitsDataModule",
    "FashionMNISTDataModule",
    "InMemoryImageDataModule",
    "MNISTDataModule",
    "ScaledTensorDataset",
    "ShardSampler",
    "ToyDataModule",
    "random_crop_flip",
    "split_indices",
]
