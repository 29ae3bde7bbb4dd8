"""The facts of every dataset, in one table: shapes, classes, normalisation, split sizes, Hub ids
and the recipe's network defaults.

Everything else reads them from here: the data modules (`tensor_zoo.data`: `data.mean`,
`data.classes`, ...), the zoo's names and fresh networks (`tensor_zoo.zoo.registry`), the export
and model cards (`tensor_zoo.zoo.export`), the recipes (`tensor_zoo.lightning.cli` fills the
network's input arguments from this table, so `recipes/configs/*.yaml` do not repeat them), the
demo and the benchmark. This module imports nothing but the standard library, so that every
layer of the package may read it; that is why it sits here and not in `tensor_zoo/data/`
(importing `tensor_zoo.data` imports Lightning, which the zoo and the networks must not).

    from tensor_zoo.datasets import DATASETS
    cifar = DATASETS["cifar10"]
    cifar.image_shape  # (3, 32, 32)
    cifar.network_defaults()  # the network arguments of recipes/cifar10.py, rank aside
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

DIGITS = tuple(str(digit) for digit in range(10))


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset is, and what a network trained on it expects.

    Args:
        key: its name in model names (`tt-fashion-mnist-r16`), config.json and commands.
        title: its name in prose, cards and W&B groups ("Fashion-MNIST").
        in_channels: image channels C (1 grayscale, 3 RGB).
        image_size: H = W (an int) or (H, W).
        classes: the class names, in label order.
        mean: per-channel mean of the training images scaled to [0, 1] (the network's
            `input_mean`); None: fed as they come, not normalised.
        std: per-channel standard deviation, likewise (the network's `input_std`).
        max_value: the largest raw value; the data modules divide by it to get [0, 1].
        train_size: images in the official training split (the validation split is carved
            from it); None: no official split (the data module's settings decide).
        test_size: images in the official test split; None: likewise.
        test_split: what the test split is, in words (for model cards).
        pixels: what the images look like (polarity, range), in words (for the docs).
        hub_id: the dataset's id on the Hugging Face Hub, for model cards; None: none.
        recipe_args: the recipe's default network arguments besides the input facts and the
            rank (patch size, feature size, dropout, patch order).
        zoo: whether `{arch}-{key}-r{rank}` model names exist for it.
    """

    key: str
    title: str
    in_channels: int
    image_size: int | tuple[int, int]
    classes: tuple[str, ...]
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    max_value: float
    train_size: int | None
    test_size: int | None
    test_split: str
    pixels: str
    hub_id: str | None
    recipe_args: Mapping[str, Any] = field(default_factory=dict)
    zoo: bool = True

    def __post_init__(self) -> None:
        """Read-only recipe arguments: no consumer can change the table for the others."""
        object.__setattr__(self, "recipe_args", MappingProxyType(dict(self.recipe_args)))

    @property
    def num_classes(self) -> int:
        """The number of classes."""
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """One image as (C, H, W)."""
        size = self.image_size
        height, width = (size, size) if isinstance(size, int) else size
        return (self.in_channels, height, width)

    def input_args(self) -> dict[str, Any]:
        """The network constructor arguments this dataset fixes: the input's shape, the
        classes and the normalisation ({in_channels, image_size, num_classes, input_mean,
        input_std}, as plain ints and lists)."""
        size = self.image_size
        return {
            "in_channels": self.in_channels,
            "image_size": size if isinstance(size, int) else list(size),
            "num_classes": self.num_classes,
            "input_mean": None if self.mean is None else list(self.mean),
            "input_std": None if self.std is None else list(self.std),
        }

    def network_defaults(self) -> dict[str, Any]:
        """`input_args()` and the recipe's defaults (`recipe_args`): every network argument of
        this dataset's recipe but the rank."""
        return {**self.input_args(), **self.recipe_args}


DATASETS: dict[str, DatasetSpec] = {
    spec.key: spec
    for spec in (
        DatasetSpec(
            key="mnist",
            title="MNIST",
            in_channels=1,
            image_size=28,
            classes=DIGITS,
            mean=(0.1307,),
            std=(0.3081,),
            max_value=255.0,
            train_size=60_000,
            test_size=10_000,
            test_split="the official test split",
            pixels="a white (1.0) digit on a black (0.0) background",
            hub_id="mnist",
            recipe_args={"patch_size": 7, "feature_dim": 32, "dropout": 0.1},
        ),
        DatasetSpec(
            key="fashion-mnist",
            title="Fashion-MNIST",
            in_channels=1,
            image_size=28,
            classes=(
                "T-shirt/top",
                "Trouser",
                "Pullover",
                "Dress",
                "Coat",
                "Sandal",
                "Shirt",
                "Sneaker",
                "Bag",
                "Ankle boot",
            ),
            mean=(0.2860,),
            std=(0.3530,),
            max_value=255.0,
            train_size=60_000,
            test_size=10_000,
            test_split="the official test split",
            pixels="a light garment on a black (0.0) background",
            hub_id="fashion_mnist",
            recipe_args={"patch_size": 7, "feature_dim": 32, "dropout": 0.1},
        ),
        DatasetSpec(
            key="cifar10",
            title="CIFAR-10",
            in_channels=3,
            image_size=32,
            classes=(
                "airplane",
                "automobile",
                "bird",
                "cat",
                "deer",
                "dog",
                "frog",
                "horse",
                "ship",
                "truck",
            ),
            mean=(0.4914, 0.4822, 0.4465),
            std=(0.2470, 0.2435, 0.2616),
            max_value=255.0,
            train_size=50_000,
            test_size=10_000,
            test_split="the official test split",
            pixels="colour photographs",
            hub_id="cifar10",
            recipe_args={"patch_size": 4, "feature_dim": 32, "dropout": 0.1, "ordering": "zorder"},
        ),
        # scikit-learn's load_digits: 1,797 images of values 0..16 (mean and std of all of them,
        # divided by 16), no official split (DigitsDataModule holds out test_size = 360 with a
        # fixed seed); the recipe arguments are the demo's
        DatasetSpec(
            key="digits",
            title="scikit-learn digits",
            in_channels=1,
            image_size=8,
            classes=DIGITS,
            mean=(0.3053,),
            std=(0.3760,),
            max_value=16.0,
            train_size=None,
            test_size=None,
            test_split="a fixed held-out test split (DigitsDataModule, seed 0)",
            pixels="a white digit on black: `load_digits` values 0..16, divided by 16",
            hub_id="digits",
            recipe_args={"patch_size": 2, "feature_dim": 8, "dropout": 0.2, "ordering": "snake"},
        ),
        # the paper's moons / circles: a point (x, y) as an "image" (1, 1, 2), not normalised
        DatasetSpec(
            key="toy",
            title="toy sets",
            in_channels=1,
            image_size=(1, 2),
            classes=("0", "1"),
            mean=None,
            std=None,
            max_value=1.0,
            train_size=None,
            test_size=None,
            test_split="a fresh draw of half the training size (ToyDataModule)",
            pixels="two coordinates (x, y), fed as they are",
            hub_id=None,
            recipe_args={"patch_size": 1, "feature_dim": 8, "dropout": 0.0},
            zoo=False,
        ),
    )
}


@dataclass(frozen=True)
class SiteLayout:
    """Another way to cut the images into sites than the dataset's recipe default, named in
    model names: `{arch}-{dataset}-{layout}-r{rank}` (`tt-mnist-pixels-r20`).

    Args:
        key: its name in model names.
        description: what it is, in words (for docs and cards).
        network_args: the network arguments it sets, over the dataset's `recipe_args`.
        tt_args: further arguments for TT networks only.
    """

    key: str
    description: str
    network_args: Mapping[str, Any]
    tt_args: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Read-only, as `DatasetSpec.recipe_args`."""
        object.__setattr__(self, "network_args", MappingProxyType(dict(self.network_args)))
        object.__setattr__(self, "tt_args", MappingProxyType(dict(self.tt_args)))


SITE_LAYOUTS: dict[str, SiteLayout] = {
    layout.key: layout
    for layout in (
        SiteLayout(
            key="pixels",
            description=(
                "one site per pixel (patch 1, d = H x W) with the 2-dimensional feature map "
                "[x, 1], the label core in the middle of a TT: the matrix product state of "
                "Stoudenmire and Schwab and of TorchMPS (recipes/configs/mnist_pixels.yaml)"
            ),
            network_args={
                "patch_size": 1,
                "feature_dim": 2,
                "feature_map": "identity",
                "dropout": 0.0,
            },
            tt_args={"label_site": "middle"},
        ),
        SiteLayout(
            key="p4",
            description=(
                "4 x 4 patches (d = 49 on 28 x 28 images) instead of the recipe's 7 x 7 "
                "(d = 16): more, smaller sites"
            ),
            network_args={"patch_size": 4},
        ),
        SiteLayout(
            key="p7s3",
            description=(
                "7 x 7 patches every 3 pixels, overlapping: an 8 x 8 grid (d = 64) on 28 x 28 "
                "images, a power of two on each side as HT's quad-tree needs"
            ),
            network_args={"patch_size": 7, "stride": 3},
        ),
        SiteLayout(
            key="p4m64",
            description=(
                "4 x 4 patches (d = 49 on 28 x 28 images) read in snake order, with 64 "
                "features per patch instead of the recipe's 32 "
                "(recipes/configs/fashion_mnist_p4m64.yaml)"
            ),
            network_args={"patch_size": 4, "feature_dim": 64, "ordering": "snake"},
        ),
    )
}
