"""TT network (recurrent): h_k = G_k(f(x_k), h_{k-1}) with bilinear units, score = h_d."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from tensor_zoo.functional import tt_contract, tt_to_dense
from tensor_zoo.functional.tt_engine import CONTRACTIONS, TTContraction
from tensor_zoo.networks.base import TensorNetwork, expand_ranks, tiled_identity
from tensor_zoo.networks.cp import CPNet


class TTNet(TensorNetwork):
    """Recurrent network whose weight tensor is a tensor train; TT-ranks = hidden widths.

    Parameters (besides the feature map): `cores.k` (r_k, m, r_{k+1}) for k = 0..d-1, r_0 = 1.
    With `label_site="last"` the last core carries the class (r_d = num_classes); with
    `label_site="middle"` r_d = 1 and `label_core` (r_p, num_classes, r_p) sits on bond
    p = d // 2. `rank` is an int or the list of the d - 1 bond ranks r_1..r_{d-1}.
    `contraction` says how the chain is multiplied out: "sequential" (the sweep, one small
    GEMM per position), "tree" (transfer matrices multiplied in a balanced tree: log2 d batched
    matmuls), "chunked" (tree per chunk, bounded memory) or "auto" (chosen from batch size,
    d, rank and m; see `tensor_zoo.functional.tt_engine.choose_contraction`). All give the
    same logits and gradients up to rounding.
    """

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int | Sequence[int] = 28,
        patch_size: int = 7,
        feature_dim: int = 8,
        rank: int | list[int] = 16,
        num_classes: int = 10,
        label_site: Literal["last", "middle"] = "last",
        stride: int | None = None,
        ordering: Literal["raster", "snake", "zorder"] = "raster",
        feature_map: Literal["relu", "identity", "sigmoid", "tanh", "rbf", "fourier"] = "relu",
        append_one: bool = True,
        dropout: float = 0.0,
        log_format: bool = True,
        input_mean: Sequence[float] | None = None,
        input_std: Sequence[float] | None = None,
        contraction: TTContraction = "auto",
    ) -> None:
        super().__init__(
            in_channels, image_size, patch_size, feature_dim, num_classes, stride, ordering,
            feature_map, append_one, dropout, log_format, input_mean, input_std,
            {"rank": rank, "label_site": label_site},
        )  # fmt: skip
        if contraction not in CONTRACTIONS:
            raise ValueError(
                f"contraction must be one of {', '.join(map(repr, CONTRACTIONS))}, "
                f"got {contraction!r}."
            )
        self.contraction = contraction
        self.config["init_args"]["contraction"] = contraction
        d, m = self.num_positions, self.feature_dim
        if label_site not in ("last", "middle"):
            raise ValueError(f"label_site must be 'last' or 'middle', got {label_site!r}.")
        if label_site == "middle" and d < 2:
            raise ValueError("label_site='middle' needs at least 2 positions (patches).")
        self.label_site = label_site
        self.ranks = expand_ranks(rank, d - 1, f"one per bond between the {d} positions")
        last = num_classes if label_site == "last" else 1
        bonds = [1, *self.ranks, last]
        self.cores = nn.ParameterList(
            nn.Parameter(torch.empty(bonds[k], m, bonds[k + 1])) for k in range(d)
        )
        self.label_core = None
        if label_site == "middle":
            middle = self.ranks[d // 2 - 1]
            self.label_core = nn.Parameter(torch.empty(middle, num_classes, middle))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Near-identity cores: h stays close to a unit vector whatever d is (TorchMPS-style)."""
        constant = self.constant_channel
        last_index = len(self.cores) - 1
        for index, core in enumerate(self.cores):
            rank_in, _, rank_out = core.shape
            if constant is None:
                nn.init.normal_(core, std=(rank_in * self.feature_dim) ** -0.5)
                continue
            nn.init.normal_(core, std=self.noise_std(rank_in))
            if index == last_index and self.label_core is None:
                nn.init.normal_(core[:, constant], std=1.0)  # the class read-out of h_{d-1}
            elif index == last_index:
                core[:, constant] = rank_in**-0.5  # the right sweep starts from ones / sqrt(r)
            else:
                core[:, constant] = tiled_identity(rank_in, rank_out) * (rank_in / rank_out) ** 0.5
        if self.label_core is not None:
            nn.init.normal_(self.label_core, std=1.0)

    def contract(self, features: Tensor) -> Tensor:
        return tt_contract(
            features, list(self.cores), self.label_core, self.log_format, self.contraction
        )

    def full_tensor(self) -> Tensor:
        return tt_to_dense(list(self.cores), self.label_core)

    @classmethod
    def from_cp(cls, cp: CPNet, label_site: Literal["last", "middle"] = "last") -> TTNet:
        """The exact TT form of a CP network: rank r, diagonal cores, same logits."""
        net = cls(**cp.shared_args(), rank=cp.rank, label_site=label_site)
        net = net.to(dtype=cp.factors.dtype, device=cp.factors.device)
        net.copy_front_end(cp)
        eye = torch.eye(cp.rank, dtype=cp.factors.dtype, device=cp.factors.device)
        with torch.no_grad():
            last = len(net.cores) - 1
            for index, (core, factor) in enumerate(zip(net.cores, cp.factors, strict=True)):
                if index == 0:
                    core.copy_(factor[None])
                elif index == last and label_site == "last":
                    core.copy_(torch.einsum("ia,ya->aiy", factor, cp.weights))
                elif index == last:
                    core.copy_(factor.T[:, :, None])
                else:
                    core.copy_(torch.einsum("ia,ab->aib", factor, eye))
            if net.label_core is not None:
                net.label_core.copy_(torch.einsum("ya,ab->ayb", cp.weights, eye))
        return net
