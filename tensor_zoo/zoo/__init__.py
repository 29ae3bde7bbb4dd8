"""The zoo: named checkpoints, their files and where they come from.

tensor_zoo.list_models("tt-*")            # published checkpoints
model = tensor_zoo.load("tt-cifar10-r16")  # eval-mode network, files verified
probs = model(images).softmax(-1)          # images: float (B, C, H, W) in [0, 1]
preprocess = tensor_zoo.zoo.transforms("tt-cifar10-r16")  # a PIL image / array -> (C, H, W)
"""

from tensor_zoo.zoo.api import create_model, load, model_info
from tensor_zoo.zoo.format import CheckpointFormatError
from tensor_zoo.zoo.hub import ChecksumError, HubError
from tensor_zoo.zoo.preprocess import ImageTransform, transforms
from tensor_zoo.zoo.registry import IndexFileError, UnknownModelError, list_models

__all__ = [
    "CheckpointFormatError",
    "ChecksumError",
    "HubError",
    "ImageTransform",
    "IndexFileError",
    "UnknownModelError",
    "create_model",
    "list_models",
    "load",
    "model_info",
    "transforms",
]
