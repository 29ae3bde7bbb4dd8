"""What the three networks share: image -> normalised image -> patches -> features.

A subclass only says how its weight tensor W is stored (`contract`, `full_tensor`). The
constructor arguments of every network are plain JSON values and are kept in `net.config`
(`{"class_path": ..., "init_args": ...}`, the form LightningCLI and jsonargparse use), so that
a network can be rebuilt from a checkpoint's config with `build_network`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from tensor_zoo.functional import check_xi
from tensor_zoo.layers import PatchExtractor, build_feature_map


def tiled_identity(rank_in: int, rank_out: int) -> Tensor:
    """(rank_in, rank_out) 0/1 matrix with M[p, j] = [p == j mod rank_in]: maps ones to ones."""
    rows = torch.arange(rank_in)[:, None]
    cols = torch.arange(rank_out)[None, :]
    return (rows == cols % rank_in).float()


def xi_config(xi: str) -> dict[str, Any]:
    """The config entry of a network's `xi`: none for "product" (the default), else {"xi": xi}.

    Product networks keep the exact config they had before `xi` existed, so every checkpoint
    published then still rebuilds to an identical config.
    """
    return {} if check_xi(xi) == "product" else {"xi": xi}


def expand_ranks(rank: int | Sequence[int], count: int, what: str) -> list[int]:
    """An int rank repeated `count` times, or a list checked to have `count` positive entries."""
    ranks = [rank] * count if isinstance(rank, int) else [int(r) for r in rank]
    if len(ranks) != count or any(r < 1 for r in ranks):
        raise ValueError(
            f"rank must be a positive int or a list of {count} positive ints ({what}), "
            f"got {rank!r}."
        )
    return ranks


def is_multilinear(net: nn.Module) -> bool:
    """True when the scores are <W_y, f(x_1) (x) ... (x) f(x_d)> for a weight tensor W, i.e.
    unless the network combines positions with another operation (an `xi` other than
    "product", as in generalized tensor networks)."""
    return getattr(net, "xi", "product") == "product"


def require_multilinear(net: nn.Module, what: str) -> None:
    """Raise a ValueError saying what to use instead when the network has no weight tensor."""
    if not is_multilinear(net):
        raise ValueError(
            f"{what} needs a multilinear network (a weight tensor W), but this "
            f"{type(net).__name__} combines positions with xi={net.xi!r}, so it has no W. Use "
            f"tensor_zoo.expressivity.grid_tensor(net, templates) and matricization_rank on the "
            f"grid tensor, or cp_rank_lower_bound(net), which work through its contraction."
        )


class TensorNetwork(nn.Module):
    """Base class of CPNet, TTNet and HTNet: the stages before the contraction.

    Buffers `input_mean` and `input_std` (C,) normalise the input images, so a trained network
    takes raw images (e.g. scaled to [0, 1]) and its preprocessing travels with its weights.
    """

    input_mean: Tensor
    input_std: Tensor
    xi: str = "product"  # the binary operation of the units (tensor_zoo.functional.generalized)

    def __init__(
        self,
        in_channels: int,
        image_size: int | Sequence[int],
        patch_size: int,
        feature_dim: int,
        num_classes: int,
        stride: int | None,
        ordering: str,
        feature_map: str,
        append_one: bool,
        dropout: float,
        log_format: bool,
        input_mean: Sequence[float] | None,
        input_std: Sequence[float] | None,
        architecture_args: dict[str, Any],
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}.")
        if not isinstance(image_size, int):
            image_size = [int(size) for size in image_size]
        self.patches = PatchExtractor(in_channels, image_size, patch_size, stride, ordering)
        self.feature_map = build_feature_map(
            feature_map, self.patches.patch_dim, feature_dim, append_one, dropout
        )
        self.num_classes = num_classes
        self.log_format = log_format
        mean = (
            torch.zeros(in_channels)
            if input_mean is None
            else torch.tensor(input_mean, dtype=torch.float)
        )
        std = (
            torch.ones(in_channels)
            if input_std is None
            else torch.tensor(input_std, dtype=torch.float)
        )
        if mean.shape != (in_channels,) or std.shape != (in_channels,) or (std <= 0).any():
            raise ValueError(
                f"input_mean and input_std need one value per channel ({in_channels}), std > 0; "
                f"got {input_mean!r} and {input_std!r}."
            )
        self.register_buffer("input_mean", mean)
        self.register_buffer("input_std", std)
        self.config: dict[str, Any] = {
            "class_path": f"tensor_zoo.{type(self).__name__}",
            "init_args": {
                "in_channels": in_channels,
                "image_size": image_size,
                "patch_size": patch_size,
                "feature_dim": feature_dim,
                "num_classes": num_classes,
                **architecture_args,
                "stride": stride,
                "ordering": ordering,
                "feature_map": feature_map,
                "append_one": append_one,
                "dropout": dropout,
                "log_format": log_format,
                "input_mean": None if input_mean is None else [float(v) for v in input_mean],
                "input_std": None if input_std is None else [float(v) for v in input_std],
            },
        }

    @property
    def num_positions(self) -> int:
        """d: the number of patches, i.e. of modes of W."""
        return self.patches.num_positions

    @property
    def feature_dim(self) -> int:
        """m: the size of every mode of W (the constant 1, if appended, included)."""
        return self.feature_map.out_features

    @property
    def num_params(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    @property
    def constant_channel(self) -> int | None:
        """Index of the constant-1 feature, or None when the feature map has none."""
        return self.feature_dim - 1 if self.feature_map.append_one else None

    def noise_std(self, fan: int) -> float:
        """Std of the non-constant core entries: the d positions add O(1) variance in total."""
        return 1.0 / math.sqrt(self.num_positions * fan * max(self.feature_dim - 1, 1))

    def features(self, images: Tensor) -> Tensor:
        """Float images (B, C, H, W) -> feature vectors (B, d, m) that W is contracted with."""
        if not images.is_floating_point():
            raise TypeError(
                f"Expected float images, got dtype {images.dtype}; convert them first, e.g. "
                f"images.float() / 255 for 8-bit images."
            )
        mean = self.input_mean.to(images.dtype)[:, None, None]
        std = self.input_std.to(images.dtype)[:, None, None]
        return self.feature_map(self.patches((images - mean) / std))

    def contract(self, features: Tensor) -> Tensor:
        """Features (B, d, m) -> logits (B, num_classes)."""
        raise NotImplementedError

    def full_tensor(self) -> Tensor:
        """The dense weight tensor W (num_classes, m, ..., m); for tiny d and m only."""
        raise NotImplementedError

    def forward(self, images: Tensor) -> Tensor:
        """Float images (B, C, H, W) -> logits (B, num_classes)."""
        return self.contract(self.features(images))

    def lr_scales(self) -> dict[str, float]:
        """Learning-rate multipliers by parameter name (absent names: 1); see parameter_groups."""
        return {}

    def parameter_groups(self, lr: float) -> list[dict[str, Any]]:
        """Optimizer parameter groups with per-parameter learning rates `lr * lr_scales()[name]`.

        W is a product of d factors, so one Adam step that moves every entry by lr in a
        coherent direction changes the output by a factor that grows with how many products a
        unit sums: architectures scale the step of such units down (HT's bilinear nodes).
        """
        scales = self.lr_scales()
        groups: dict[float, list[nn.Parameter]] = {}
        for name, parameter in self.named_parameters():
            if parameter.requires_grad:
                groups.setdefault(scales.get(name, 1.0), []).append(parameter)
        return [{"params": params, "lr": lr * scale} for scale, params in groups.items()]

    def shared_args(self) -> dict[str, Any]:
        """Constructor arguments every architecture understands (all but rank and its options)."""
        keys = (
            "in_channels", "image_size", "patch_size", "feature_dim", "num_classes", "stride",
            "ordering", "feature_map", "append_one", "dropout", "log_format", "input_mean",
            "input_std",
        )  # fmt: skip
        return {key: self.config["init_args"][key] for key in keys}

    def copy_front_end(self, other: TensorNetwork) -> None:
        """Take the feature map and input normalisation of `other` (same shapes)."""
        self.feature_map.load_state_dict(other.feature_map.state_dict())
        self.input_mean.copy_(other.input_mean)
        self.input_std.copy_(other.input_std)
