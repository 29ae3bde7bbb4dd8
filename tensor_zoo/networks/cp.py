"""CP network (shallow, one hidden layer of width r).

W_y = sum_a lambda_ya v_1a (x) ... (x) v_da.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from tensor_zoo.functional import cp_contract, cp_to_dense
from tensor_zoo.networks.base import TensorNetwork, check_int


class CPNet(TensorNetwork):
    """Shallow network: score_y = sum_a weights[y, a] prod_k <f(x_k), factors[k, :, a]>.

    Parameters (besides the feature map): `factors` (d, m, rank), `weights` (num_classes, rank).
    Storage O(d m r).
    """

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int | Sequence[int] = 28,
        patch_size: int = 7,
        feature_dim: int = 8,
        rank: int = 16,
        num_classes: int = 10,
        stride: int | None = None,
        ordering: Literal["raster", "snake", "zorder"] = "raster",
        feature_map: Literal["relu", "identity", "sigmoid", "tanh", "rbf", "fourier"] = "relu",
        append_one: bool = True,
        dropout: float = 0.0,
        log_format: bool = True,
        input_mean: Sequence[float] | None = None,
        input_std: Sequence[float] | None = None,
    ) -> None:
        super().__init__(
            in_channels, image_size, patch_size, feature_dim, num_classes, stride, ordering,
            feature_map, append_one, dropout, log_format, input_mean, input_std, {"rank": rank},
        )  # fmt: skip
        self.rank = check_int("CPNet rank", rank)
        d, m = self.num_positions, self.feature_dim
        self.factors = nn.Parameter(torch.empty(d, m, rank))
        self.weights = nn.Parameter(torch.empty(num_classes, rank))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Every rank-one term starts near prod_k 1 = 1 (through the constant feature)."""
        nn.init.normal_(self.weights, std=self.rank**-0.5)
        if self.constant_channel is None:
            nn.init.normal_(self.factors, std=self.feature_dim**-0.5)
            return
        nn.init.normal_(self.factors, std=self.noise_std(1))
        self.factors[:, self.constant_channel] = 1.0

    def contract(self, features: Tensor) -> Tensor:
        return cp_contract(features, self.factors, self.weights, self.log_format)

    def full_tensor(self) -> Tensor:
        return cp_to_dense(self.factors, self.weights)
