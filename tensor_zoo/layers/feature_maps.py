"""Feature maps f: R^n -> R^m, applied to every patch with the same parameters.

The score of a tensor network is <W, f(x_1) (x) ... (x) f(x_d)>, so f decides what the
multilinear model sees. Every map here returns (B, d, m) from patches (B, d, n). With
`append_one=True` the last feature is the constant 1: it lets the network skip a position
(and so represent all lower-order terms), and it is what the near-identity initialisation of
the networks builds on. `m` always counts that constant, so the learned part has m - 1 outputs.
`dropout` (training only) is the paper's per-patch dropout: it zeroes the learned features of
whole positions, never the constant, so that with `append_one` a dropped patch is skipped.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

ACTIVATIONS = {
    "relu": torch.relu,
    "identity": lambda x: x,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
}


class FeatureMap(nn.Module):
    """Base class: subclasses map (..., n) -> (..., m - append_one) in `transform`.

    Args:
        in_features: n, the values in one patch.
        out_features: m, the features per patch, the constant 1 (if appended) included.
        append_one: make the last feature the constant 1.
        dropout: probability of zeroing a whole patch's learned features while training.
    """

    def __init__(
        self, in_features: int, out_features: int, append_one: bool = True, dropout: float = 0.0
    ) -> None:
        super().__init__()
        if out_features < 1 + int(append_one):
            raise ValueError(
                f"feature_dim={out_features} is too small: with append_one={append_one} it must be "
                f"at least {1 + int(append_one)} (the constant 1 counts as one feature)."
            )
        self.in_features = in_features
        self.out_features = out_features
        self.append_one = append_one
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
        self.dropout = dropout

    @property
    def learned_features(self) -> int:
        """Number of features computed from the patch (m without the constant)."""
        return self.out_features - int(self.append_one)

    def transform(self, patches: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, patches: Tensor) -> Tensor:
        """(B, d, n) -> (B, d, m)."""
        features = self.transform(patches)
        if self.training and self.dropout > 0:
            features = features * self.dropout_scale(features)
        if self.append_one:
            # the constant as a one-column pad: `cat` copies one element at a time here
            features = F.pad(features, (0, 1), value=1.0)
        return features

    def dropout_scale(self, features: Tensor) -> Tensor:
        """features (B, d, k) -> per-patch dropout factors (B, d, 1): 0 for a dropped patch,
        1 / (1 - p) for a kept one (one pass over the features when multiplied)."""
        keep = torch.rand_like(features[..., :1]) >= self.dropout
        return keep.to(features.dtype).mul_(1.0 / (1.0 - self.dropout))

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"append_one={self.append_one}, dropout={self.dropout}"
        )


class AffineFeatureMap(FeatureMap):
    """The paper's f(x) = sigma(A x + b), sigma in relu / identity / sigmoid / tanh.

    Parameters: `linear.weight` (m', n) and `linear.bias` (m',), m' = m - append_one.

    Args:
        in_features: n, the values in one patch.
        out_features: m, the features per patch, the constant 1 (if appended) included.
        append_one: make the last feature the constant 1.
        dropout: probability of zeroing a whole patch's learned features while training.
        activation: sigma: "relu", "identity", "sigmoid" or "tanh".
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        append_one: bool = True,
        dropout: float = 0.0,
        activation: str = "relu",
    ) -> None:
        super().__init__(in_features, out_features, append_one, dropout)
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"Unknown activation {activation!r}; expected one of {list(ACTIVATIONS)}."
            )
        self.activation = activation
        self.linear = nn.Linear(in_features, self.learned_features)
        # Unit-variance pre-activations for unit-variance inputs, so features are O(1).
        nn.init.normal_(self.linear.weight, std=1.0 / math.sqrt(in_features))
        nn.init.zeros_(self.linear.bias)

    def transform(self, patches: Tensor) -> Tensor:
        return ACTIVATIONS[self.activation](self.linear(patches))

    def forward(self, patches: Tensor) -> Tensor:
        """(B, d, n) -> (B, d, m).

        With the constant and relu or identity, the constant is the linear layer's m-th output
        (a zero weight row, bias 1): one GEMM of m outputs and no pad. It is exact, since
        relu(1) = 1 and relu(k z) = k relu(z) for dropout's scale k >= 0, and faster: at the
        CIFAR-10 shape (8,192 patches of 48 values) MKL took 0.57 ms for 31 outputs and 0.33 ms
        for 32, and a training step of the feature map 1.37 ms instead of 1.67 (0.85 without
        dropout).
        """
        if not (self.append_one and self.activation in ("relu", "identity")):
            return super().forward(patches)
        weight = F.pad(self.linear.weight, (0, 0, 0, 1))
        bias = F.pad(self.linear.bias, (0, 1), value=1.0)
        values = F.linear(patches, weight, bias)
        if self.training and self.dropout > 0:  # the same random numbers as FeatureMap.forward
            mask = self.dropout_scale(values).expand_as(values).clone()
            mask[..., -1] = 1.0  # never the constant
            values = values * mask
        return ACTIVATIONS[self.activation](values)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, activation={self.activation!r}"


class RBFFeatureMap(FeatureMap):
    """Gaussian similarity to m' learned templates (Cohen's representation layer).

    f_j(x) = exp(-||x - t_j||^2 / (2 n s_j^2)); parameters `templates` (m', n) and
    `log_bandwidth` (m',) = log s_j. Dividing by n keeps the exponent O(1) for any patch size.

    Args:
        in_features: n, the values in one patch.
        out_features: m, the features per patch, the constant 1 (if appended) included.
        append_one: make the last feature the constant 1.
        dropout: probability of zeroing a whole patch's learned features while training.
    """

    def __init__(
        self, in_features: int, out_features: int, append_one: bool = True, dropout: float = 0.0
    ) -> None:
        super().__init__(in_features, out_features, append_one, dropout)
        self.templates = nn.Parameter(torch.randn(self.learned_features, in_features))
        self.log_bandwidth = nn.Parameter(torch.zeros(self.learned_features))

    def transform(self, patches: Tensor) -> Tensor:
        sq_dist = (
            patches.pow(2).sum(-1, keepdim=True)
            - 2 * patches @ self.templates.T
            + self.templates.pow(2).sum(-1)
        ).clamp_min(0)
        bandwidth_sq = torch.exp(2 * self.log_bandwidth) * self.in_features
        return torch.exp(-sq_dist / (2 * bandwidth_sq))


class FourierFeatureMap(FeatureMap):
    """A fixed local trigonometric map: f_j(x) = sqrt(2) cos(w_j . x + phi_j).

    Random Fourier features of a Gaussian kernel of the given bandwidth (relative to sqrt(n)).
    Frequencies and phases are drawn once from `seed` and stored as buffers `frequencies`
    (m', n) and `phases` (m',), so they are part of the checkpoint but never trained. With
    n = 1, m' = 2 and hand-set frequencies pi/2 and phases 0, -pi/2 it is Stoudenmire's
    (cos, sin) pixel map.

    Args:
        in_features: n, the values in one patch.
        out_features: m, the features per patch, the constant 1 (if appended) included.
        append_one: make the last feature the constant 1.
        dropout: probability of zeroing a whole patch's learned features while training.
        bandwidth: bandwidth of the Gaussian kernel, in units of sqrt(n).
        seed: seed of the frequencies and phases.
    """

    frequencies: Tensor
    phases: Tensor

    def __init__(
        self,
        in_features: int,
        out_features: int,
        append_one: bool = True,
        dropout: float = 0.0,
        bandwidth: float = 1.0,
        seed: int = 0,
    ) -> None:
        super().__init__(in_features, out_features, append_one, dropout)
        self.bandwidth = bandwidth
        generator = torch.Generator().manual_seed(seed)
        std = 1.0 / (bandwidth * math.sqrt(in_features))
        frequencies = torch.randn(self.learned_features, in_features, generator=generator) * std
        phases = torch.rand(self.learned_features, generator=generator) * 2 * math.pi
        self.register_buffer("frequencies", frequencies)
        self.register_buffer("phases", phases)

    def transform(self, patches: Tensor) -> Tensor:
        return math.sqrt(2.0) * torch.cos(patches @ self.frequencies.T + self.phases)


FeatureMapName = Literal["relu", "identity", "sigmoid", "tanh", "rbf", "fourier"]
# What each name of FeatureMapName computes (the same names, in the same order: a test checks).
FEATURE_MAPS: dict[str, str] = {
    "relu": "sigma(Ax+b) with ReLU",
    "identity": "Ax+b",
    "sigmoid": "sigma(Ax+b) with the logistic sigmoid",
    "tanh": "sigma(Ax+b) with tanh",
    "rbf": "Gaussian similarity to learned templates",
    "fourier": "fixed random Fourier (trigonometric) features",
}


def build_feature_map(
    name: FeatureMapName,
    in_features: int,
    out_features: int,
    append_one: bool = True,
    dropout: float = 0.0,
) -> FeatureMap:
    """Feature map by name (one of FEATURE_MAPS) with these arguments (see FeatureMap)."""
    if name in ACTIVATIONS:
        return AffineFeatureMap(in_features, out_features, append_one, dropout, activation=name)
    if name == "rbf":
        return RBFFeatureMap(in_features, out_features, append_one, dropout)
    if name == "fourier":
        return FourierFeatureMap(in_features, out_features, append_one, dropout)
    raise ValueError(f"Unknown feature_map {name!r}; expected one of {sorted(FEATURE_MAPS)}.")
