"""What the three networks share: image -> normalised image -> patches -> features.

A subclass only says how its weight tensor W is stored (`contract`, `full_tensor`). The
constructor arguments of every network are plain JSON values and are kept in `net.config`
(`{"class_path": ..., "init_args": ...}`, the form LightningCLI and jsonargparse use), so that
a network can be rebuilt from a checkpoint's config with `build_network`.
"""

from __future__ import annotations

import inspect
import math
import numbers
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from tensor_zoo.functional.tt_engine import tracing
from tensor_zoo.layers import FeatureMapName, Ordering, PatchExtractor, build_feature_map


def tiled_identity(rank_in: int, rank_out: int) -> Tensor:
    """(rank_in, rank_out) 0/1 matrix with M[p, j] = [p == j mod rank_in]: maps ones to ones."""
    rows = torch.arange(rank_in)[:, None]
    cols = torch.arange(rank_out)[None, :]
    return (rows == cols % rank_in).float()


# Raw inputs further than this many input_std from input_mean are not images the network was
# trained on: [0, 255] images give ~800, already-normalised ones 8-10, [0, 1] images at most ~3.
INPUT_RANGE_LIMIT = 6.0


def is_int(value: Any) -> bool:
    """An integer, but not a bool (True would silently mean 1)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(name: str, value: Any, minimum: int = 1) -> int:
    """`value` as an int >= minimum; raises TypeError for a float, str or bool, ValueError below."""
    if not is_int(value):
        raise TypeError(f"{name} must be an int, got {value!r} ({type(value).__name__}).")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}.")
    return int(value)


def _check_values(name: str, values: Any, count: int, positive: bool) -> None:
    """None, or `count` finite numbers (> 0 with `positive`), one per input channel."""
    if values is None:
        return
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise TypeError(
            f"{name} must be a list of {count} numbers (one per channel), got {values!r}."
        )
    values = values.tolist() if hasattr(values, "tolist") else list(values)
    numbers_only = all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values)
    if not numbers_only or len(values) != count:
        raise ValueError(f"{name} needs one number per channel ({count}), got {values!r}.")
    if not all(math.isfinite(v) and (v > 0 or not positive) for v in values):
        need = "finite and positive" if positive else "finite"
        raise ValueError(f"{name} values must be {need}, got {values!r}.")


def check_shared_args(args: dict[str, Any]) -> None:
    """Types and values of the arguments every network shares; raises TypeError / ValueError
    naming the argument (a float patch size, `num_classes=True`, a NaN mean fail here)."""
    for name in ("in_channels", "patch_size", "feature_dim", "num_classes"):
        check_int(name, args[name])
    size = args["image_size"]
    if not is_int(size):
        if isinstance(size, (str, bytes)) or not isinstance(size, Sequence) or len(size) != 2:
            raise TypeError(f"image_size must be an int or (height, width), got {size!r}.")
    for value in [size] if is_int(size) else size:
        check_int("image_size", value)
    if args["stride"] is not None:
        check_int("stride", args["stride"])
    for name in ("append_one", "log_format"):
        if not isinstance(args[name], bool):
            raise TypeError(f"{name} must be True or False, got {args[name]!r}.")
    dropout = args["dropout"]
    if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real):
        raise TypeError(f"dropout must be a number in [0, 1), got {dropout!r}.")
    _check_values("input_mean", args["input_mean"], args["in_channels"], positive=False)
    _check_values("input_std", args["input_std"], args["in_channels"], positive=True)


def expand_ranks(rank: int | Sequence[int], count: int, what: str) -> list[int]:
    """An int rank repeated `count` times, or a list checked to have `count` positive entries."""
    if is_int(rank):
        ranks = [int(rank)] * count
    elif (
        not isinstance(rank, (str, bytes))
        and isinstance(rank, Sequence)
        and all(is_int(r) for r in rank)
    ):
        ranks = [int(r) for r in rank]
    else:
        raise TypeError(
            f"rank must be an int or a list of {count} ints ({what}), got {rank!r} "
            f"({type(rank).__name__})."
        )
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
    """Base class of CPNet, TTNet, HTNet and SharedTTNet: the stages before the contraction.

    Buffers `input_mean` and `input_std` (C,) normalise the input images, so a trained network
    takes raw images (e.g. scaled to [0, 1]) and its preprocessing travels with its weights.
    The arguments below (keyword-only) are the front end every network shares; each subclass
    adds its own (`rank`, ...) and passes these on. `config` records all of them.

    Args:
        in_channels: channels C of the input images (1 for grey, 3 for RGB).
        image_size: image side, or (height, width), in pixels.
        patch_size: side k of the square patches the image is cut into; each patch is one
            position of the network (d = number of patches).
        feature_dim: m, the size of every feature vector f(x_k), the constant 1 included.
        num_classes: number of classes (logits).
        stride: step between patches (None: patch_size, i.e. no overlap).
        ordering: order in which the patch grid is read into a sequence: "raster", "snake"
            or "zorder" (quad-tree); None: the architecture's own (HT: "zorder", else "raster").
        feature_map: the map f from a patch to its features: "relu", "identity", "sigmoid",
            "tanh" (sigma(Ax + b)), "rbf" or "fourier" (see `tensor_zoo.layers`).
        append_one: make the last feature the constant 1 (lets a position be skipped).
        dropout: probability of dropping a whole patch's learned features while training.
        log_format: contract in log format (running scale kept apart), so that long products
            neither overflow nor underflow.
        input_mean: per-channel mean subtracted from the images (None: 0).
        input_std: per-channel std the images are divided by (None: 1).
    """

    input_mean: Tensor
    input_std: Tensor
    xi: str = "product"  # the binary operation of the units (tensor_zoo.functional.generalized)
    # The patch order that `ordering=None` stands for: the architecture's own (HT: its quad-tree).
    default_ordering: str = "raster"
    # Constructor arguments of a subclass that `config` lists after the front end's rather than
    # after `num_classes` with the others: added after checkpoints were published, whose configs
    # must stay a prefix of the config they rebuild to (tests/test_checkpoints.py).
    appended_arguments: tuple[str, ...] = ()

    def __init__(
        self,
        *,
        in_channels: int = 1,
        image_size: int | Sequence[int] = 28,
        patch_size: int = 7,
        feature_dim: int = 8,
        num_classes: int = 10,
        stride: int | None = None,
        ordering: Ordering | None = None,
        feature_map: FeatureMapName = "relu",
        append_one: bool = True,
        dropout: float = 0.0,
        log_format: bool = True,
        input_mean: Sequence[float] | None = None,
        input_std: Sequence[float] | None = None,
    ) -> None:
        front_end = {name: value for name, value in locals().items() if name in FRONT_END}
        super().__init__()
        check_shared_args(front_end)
        if ordering is None:
            ordering = self.default_ordering
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
        self.register_buffer("input_mean", mean)
        self.register_buffer("input_std", std)
        self._training_range_checked = False  # see check_input_range
        self._range_warned = False
        self._front_end = {
            **front_end,
            "image_size": image_size,
            "ordering": ordering,
            "input_mean": None if input_mean is None else [float(v) for v in input_mean],
            "input_std": None if input_std is None else [float(v) for v in input_std],
        }
        self.config: dict[str, Any] = {}  # set by the subclass: record_config

    def record_config(self, **arguments: Any) -> None:
        """Set `config` from the subclass's own constructor arguments (every one, by keyword, at
        the end of its `__init__`) and the front end's.

        `config` is `{"class_path": "tensor_zoo.<Class>", "init_args": {...}}`, the arguments
        bound to the class's signature, in the order: the front end's up to `num_classes`, the
        subclass's own (signature order), the rest of the front end's, `appended_arguments`.
        `xi` is left out when it is "product": product networks keep the config they had
        before `xi` existed, so that every checkpoint published then rebuilds to an identical
        config.

        Raises:
            TypeError: an argument of the class's signature is missing, or a name is not one
                (a programming error: the config would not rebuild the network).
        """
        signature = inspect.signature(type(self))
        own = [
            name
            for name, parameter in signature.parameters.items()
            if parameter.kind is not inspect.Parameter.VAR_KEYWORD
        ]
        missing = [name for name in own if name not in arguments]
        if missing:
            raise TypeError(
                f"{type(self).__name__}.__init__ must pass every constructor argument of its own "
                f"to record_config; missing: {missing}."
            )
        signature.bind(**arguments, **self._front_end)  # TypeError for a name it does not take
        values = {**self._front_end, **arguments}
        if values.get("xi") == "product":
            del values["xi"]
        appended = self.appended_arguments
        architecture = [name for name in dict.fromkeys([*own, *arguments]) if name not in appended]
        split = FRONT_END.index("num_classes") + 1
        order = [*FRONT_END[:split], *architecture, *FRONT_END[split:], *appended]
        self.config = {
            "class_path": f"tensor_zoo.{type(self).__name__}",
            "init_args": {name: values[name] for name in order if name in values},
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
        """Float images (B, C, H, W) -> feature vectors (B, d, m) that W is contracted with.

        Images of another float dtype than the network's (float64, float16, bfloat16) are cast
        to it. Warns once per network when the images lie far outside the range it was trained
        on (see `check_input_range`).
        """
        if not images.is_floating_point():
            raise TypeError(
                f"Expected float images, got dtype {images.dtype}; convert them first, e.g. "
                f"images.float() / 255 for 8-bit images."
            )
        images = images.to(self.input_mean.dtype)
        normalised = (images - self.input_mean[:, None, None]) / self.input_std[:, None, None]
        self.check_input_range(normalised)
        return self.feature_map(self.patches(normalised))

    def check_input_range(self, normalised: Tensor) -> None:
        """Warn (once per network) when normalised inputs (B, C, H, W) reach INPUT_RANGE_LIMIT
        standard deviations: images in [0, 255] or already normalised give meaningless outputs.

        One min/max per batch in eval mode, only the first batch in training mode; never while
        torch.compile, torch.export or ONNX export trace the network.
        """
        if self._range_warned or normalised.numel() == 0 or tracing():
            return
        if self.training:
            if self._training_range_checked:
                return
            self._training_range_checked = True
        peak = normalised.detach().abs().amax().item()
        if not peak > INPUT_RANGE_LIMIT:  # NaN inputs are not a range problem
            return
        self._range_warned = True
        mean, std = self.input_mean.tolist(), self.input_std.tolist()
        warnings.warn(
            f"{type(self).__name__}: the input images reach {peak:.0f} standard "
            f"deviations from the mean the network normalises with (input_mean={mean}, "
            f"input_std={std}), so its outputs are meaningless. It takes raw images scaled to "
            f"[0, 1] and normalises them itself: divide 8-bit values by 255, and undo any "
            f"normalisation already applied (images * std + mean).",
            UserWarning,
            stacklevel=2,
        )

    def contract(self, features: Tensor) -> Tensor:
        """Features (B, d, m) -> logits (B, num_classes)."""
        raise NotImplementedError

    def full_tensor(self) -> Tensor:
        """The dense weight tensor W (num_classes, m, ..., m); for tiny d and m only."""
        raise NotImplementedError

    def forward(self, images: Tensor) -> Tensor:
        """Float images (B, C, H, W) -> logits (B, num_classes); an empty batch gives (0, C)."""
        features = self.features(images)
        if features.shape[0] == 0:  # nothing to contract (the contractions reshape by B)
            return features.new_zeros(0, self.num_classes) + 0 * features.sum()  # keeps grad
        return self.contract(features)

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
        """The front end's constructor arguments (all but rank and the architecture's options),
        as recorded in `config`: `OtherNet(**net.shared_args(), rank=...)` has the same front
        end (shapes and settings; `copy_front_end` copies its weights)."""
        return {name: self.config["init_args"][name] for name in FRONT_END}

    def copy_front_end(self, other: TensorNetwork) -> None:
        """Take the feature map and input normalisation of `other` (same shapes)."""
        self.feature_map.load_state_dict(other.feature_map.state_dict())
        self.input_mean.copy_(other.input_mean)
        self.input_std.copy_(other.input_std)


# The front end's constructor arguments (TensorNetwork's own), in config order.
FRONT_END: tuple[str, ...] = tuple(
    parameter.name
    for parameter in inspect.signature(TensorNetwork.__init__).parameters.values()
    if parameter.kind is inspect.Parameter.KEYWORD_ONLY
)
