"""CP network (shallow, one hidden layer of width r).

W_y = sum_a lambda_ya v_1a (x) ... (x) v_da; with xi != "product", a generalized CP network.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from tensor_zoo.functional import Xi, check_xi, cp_als, cp_contract, cp_contract_xi, cp_to_dense
from tensor_zoo.networks.base import TensorNetwork, check_int, require_multilinear


class CPNet(TensorNetwork):
    """Shallow network: `score_y = sum_a weights[y, a] prod_k <f(x_k), factors[k, :, a]>`.

    Parameters (besides the feature map): `factors` (d, m, rank), `weights` (num_classes, rank).
    Storage O(d m r).

    Generalized CP network (Cohen and Shashua, ICML 2016; Khrulkov, Hrinchuk and Oseledets,
    ICLR 2019): with `xi` another associative, commutative operation than the product,
    score_y = sum_a weights[y, a] xi_{k=1..d} <f(x_k), factors[k, :, a]>, xi folded over the
    positions: "relu" (max(a, b, 0), so max(0, max_k <f(x_k), v_ka>) for d >= 2: a ReLU
    network with global max pooling) or "logsumexp" (log sum_k exp <f(x_k), v_ka>). See
    `tensor_zoo.functional.generalized`; `log_format` only applies to the product.

    Args:
        rank: the width r of the hidden layer (number of rank-one terms).
        xi: the binary operation that combines the positions: "product" (the CP network),
            "relu" or "logsumexp" (generalized CP networks).
        **kwargs: the front end's arguments (in_channels, image_size, patch_size,
            feature_dim, num_classes, ...): see `TensorNetwork`.
    """

    def __init__(self, *, rank: int = 16, xi: Xi = "product", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.xi = check_xi(xi)
        self.rank = check_int("CPNet rank", rank)
        d, m = self.num_positions, self.feature_dim
        self.factors = nn.Parameter(torch.empty(d, m, rank))
        self.weights = nn.Parameter(torch.empty(self.num_classes, rank))
        self.reset_parameters()
        self.record_config(rank=rank, xi=xi)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Every rank-one term starts near prod_k 1 = 1 (through the constant feature).

        Other xi: plain variance-preserving weights (each projection and score O(1)), since a
        max or log-sum-exp over the d positions neither grows nor shrinks with d.
        """
        nn.init.normal_(self.weights, std=self.rank**-0.5)
        if self.constant_channel is None or self.xi != "product":
            nn.init.normal_(self.factors, std=self.feature_dim**-0.5)
            return
        nn.init.normal_(self.factors, std=self.noise_std(1))
        self.factors[:, self.constant_channel] = 1.0

    def contract(self, features: Tensor) -> Tensor:
        if self.xi != "product":
            return cp_contract_xi(features, self.factors, self.weights, self.xi)
        return cp_contract(features, self.factors, self.weights, self.log_format)

    def full_tensor(self) -> Tensor:
        require_multilinear(self, "full_tensor()")
        return cp_to_dense(self.factors, self.weights)

    @classmethod
    def fit(
        cls,
        net_or_W: TensorNetwork | Tensor,
        rank: int,
        num_iterations: int = 500,
        tol: float = 1e-12,
        seed: int = 0,
        **network_args: Any,
    ) -> CPNet:
        """A rank-`rank` CPNet fitted to a network's (or a tensor's) W by ALS; small d only.

        The class index is one more CP mode (its factor is `weights`), so all classes share the
        d factors, as in CPNet. The fit is kept on the result as `net.fit_report` (a `CPFit`
        with `residual` = ||W - W_cp||_F / ||W||_F and `iterations`): ALS finds a local
        optimum, so a residual above zero does not prove that the rank is too small.

        Args:
            net_or_W: a network with a multilinear `full_tensor()` (its front end is kept), or a
                dense W (C, m, ..., m).
            rank: the CP rank (width) of the result.
            num_iterations: ALS stopping rule: at most this many sweeps (see
                `tensor_zoo.functional.cp_als`).
            tol: ALS stopping rule: stop when the residual changes by less (see `cp_als`).
            seed: seed of the random start.
            **network_args: constructor arguments of the result when a tensor is given (its
                geometry must give d positions and feature_dim m); ignored for a network.
        """
        require_multilinear(net_or_W, "CPNet.fit")
        if isinstance(net_or_W, TensorNetwork):
            dense = net_or_W.full_tensor().detach()
            network_args = net_or_W.shared_args()
        else:
            dense = net_or_W.detach()
            network_args = {**network_args, "num_classes": dense.shape[0]}
        generator = torch.Generator().manual_seed(seed)
        report = cp_als(dense, rank, num_iterations, tol, generator)
        net = cls(**network_args, rank=rank).to(dtype=dense.dtype, device=dense.device)
        if (net.num_positions, net.feature_dim) != (dense.dim() - 1, dense.shape[1]):
            raise ValueError(
                f"W has d = {dense.dim() - 1} modes of size {dense.shape[1]}, but the network "
                f"arguments give d = {net.num_positions}, m = {net.feature_dim}."
            )
        if isinstance(net_or_W, TensorNetwork):
            net.copy_front_end(net_or_W)
        with torch.no_grad():
            net.weights.copy_(report.factors[0])
            net.factors.copy_(torch.stack(report.factors[1:]))
        net.fit_report = report
        return net
