"""Shared test helpers."""

from __future__ import annotations

import pytest
import torch

from tensor_zoo import CPNet, HTNet, TensorNetwork, TTNet


def brute_force_logits(net: TensorNetwork, images: torch.Tensor) -> torch.Tensor:
    """<W_y, f(x_1) (x) ... (x) f(x_d)> from the dense tensor and the explicit outer product."""
    dense = net.full_tensor()
    features = net.features(images)
    outer = features[:, 0]
    for position in range(1, features.shape[1]):
        outer = torch.einsum("b...,bi->b...i", outer, features[:, position])
    return torch.einsum("y...,b...->by", dense, outer)


# (class, extra constructor arguments): every architecture variant the library offers.
VARIANTS = [
    pytest.param(CPNet, {}, id="cp"),
    pytest.param(TTNet, {}, id="tt-last"),
    pytest.param(TTNet, {"label_site": "middle"}, id="tt-middle"),
    pytest.param(HTNet, {}, id="ht-full"),
    pytest.param(HTNet, {"node_type": "cp"}, id="ht-cp"),
]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
