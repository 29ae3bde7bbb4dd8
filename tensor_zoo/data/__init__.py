"""Data modules: whole datasets in memory as uint8 tensors."""

from tensor_zoo.data.base import InMemoryImageDataModule, ScaledTensorDataset, split_indices
from tensor_zoo.data.digits import DigitsDataModule

__all__ = ["DigitsDataModule", "InMemoryImageDataModule", "ScaledTensorDataset", "split_indices"]
