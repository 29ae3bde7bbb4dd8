"""Data modules: whole datasets in memory as uint8 tensors."""

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

__all__ = [
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
