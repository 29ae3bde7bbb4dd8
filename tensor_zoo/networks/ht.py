"""HT network (deep, convolutional): a binary tree of bilinear units over the d = 2^L patches.

With xi != "product", the generalized HT network (Cohen and Shashua's convolutional rectifier
network for xi = "relu").
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor, nn

from tensor_zoo.functional import Xi, check_xi, ht_contract, ht_contract_xi, ht_to_dense
from tensor_zoo.networks.base import (
    TensorNetwork,
    expand_ranks,
    require_multilinear,
    tiled_identity,
)
from tensor_zoo.networks.cp import CPNet

NodeType = Literal["full", "cp"]

# HTNet.from_tt refuses HT forms with more unit entries than this (r^2 widths grow as r^6).
FROM_TT_LIMIT = 2**26


class HTNet(TensorNetwork):
    """Deep network whose weight tensor is in hierarchical Tucker format.

    Leaves map f(x_k) to r_0 numbers; level l (l = 1..L) has d / 2^l nodes, each combining two
    consecutive children; the root (level L) gives the scores. With the quad-tree ("zorder")
    patch order, which `ordering=None` (the default) stands for whatever the other networks
    use, sibling subtrees are neighbouring image blocks: Cohen's square pooling geometry. Any
    other ordering is kept in `config` (and named on a published card): the tree then merges
    strips, not squares. `rank` is an int or the list [r_0, ..., r_{L-1}] of the widths of the
    leaves and of levels 1..L-1.

    Parameters (besides the feature map): `leaves` (d, m, r_0), and
    - node_type="full" (the paper's bilinear units): `nodes.{l-1}` (d / 2^l, r_{l-1}, r_{l-1}, r_l)
      with r_L = num_classes;
    - node_type="cp" (Cohen's ConvAC, 1x1 convolution + product pooling): `left.{l-1}` and
      `right.{l-1}` (d / 2^l, r_{l-1}, r_l) with r_L = r_{L-1}, then `head` (r_L, num_classes).

    Generalized HT network (Cohen and Shashua, "Convolutional rectifier networks as
    generalized tensor decompositions", ICML 2016; Khrulkov, Hrinchuk and Oseledets, ICLR
    2019): `xi` replaces the product in every unit by an associative, commutative operation,
    "relu" (xi(a, b) = max(a, b, 0): ReLU activation with max pooling) or "logsumexp"
    (log(e^a + e^b)). Leaves stay linear (u_k = f(x_k) @ leaves[k]); a full unit with children
    a, b gives z_j = sum_{p, q} T[p, q, j] xi(a_p, b_q); a "cp" unit gives
    z = xi(a U, b V) elementwise; the head stays linear. `log_format` only applies to the
    product (see `tensor_zoo.functional.generalized`), and `full_tensor()` only exists for it.

    Args:
        rank: the width of every level, or the list [r_0, ..., r_{L-1}] of the widths of the
            leaves and of levels 1..L-1.
        node_type: "full" (the paper's bilinear units) or "cp" (Cohen's ConvAC: 1x1
            convolution and product pooling, plus a linear head).
        xi: the binary operation of the units: "product" (the HT network), "relu" (a
            convolutional rectifier network) or "logsumexp" (generalized HT networks).
        **kwargs: the front end's arguments (in_channels, image_size, patch_size,
            feature_dim, num_classes, ...): see `TensorNetwork`. `ordering=None` (the
            default) means "zorder" here.
    """

    default_ordering = "zorder"

    def __init__(
        self,
        *,
        rank: int | list[int] = 16,
        node_type: NodeType = "full",
        xi: Xi = "product",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.xi = check_xi(xi)
        d, m = self.num_positions, self.feature_dim
        if d < 2 or d & (d - 1):
            raise ValueError(
                f"HTNet needs a power-of-two number of patches (2, 4, 8, ...), got d = {d} from a "
                f"{self.patches.grid[0]} x {self.patches.grid[1]} patch grid. Choose image_size, "
                f"patch_size and stride so that the grid is e.g. 4 x 4 (MNIST: patch_size=7) or "
                f"8 x 8 (CIFAR-10: patch_size=4)."
            )
        if node_type not in ("full", "cp"):
            raise ValueError(f"node_type must be 'full' or 'cp', got {node_type!r}.")
        self.node_type = node_type
        depth = d.bit_length() - 1
        self.ranks = expand_ranks(rank, depth, "leaf width, then one per inner level")
        self.leaves = nn.Parameter(torch.empty(d, m, self.ranks[0]))
        outputs = [*self.ranks[1:], self.num_classes if node_type == "full" else self.ranks[-1]]
        shapes = [
            (d >> (level + 1), rank_in, rank_out)
            for level, (rank_in, rank_out) in enumerate(zip(self.ranks, outputs, strict=True))
        ]
        self.head = None
        if node_type == "full":
            self.nodes = nn.ParameterList(
                nn.Parameter(torch.empty(count, r_in, r_in, r_out)) for count, r_in, r_out in shapes
            )
        else:
            self.left = nn.ParameterList(nn.Parameter(torch.empty(shape)) for shape in shapes)
            self.right = nn.ParameterList(nn.Parameter(torch.empty(shape)) for shape in shapes)
            self.head = nn.Parameter(torch.empty(self.ranks[-1], self.num_classes))
        self.reset_parameters()
        self.record_config(rank=rank, node_type=node_type, xi=xi)

    def levels(self) -> list[Tensor | tuple[Tensor, Tensor]]:
        """The inner levels in the form `ht_contract` takes."""
        if self.node_type == "full":
            return list(self.nodes)
        return list(zip(self.left, self.right, strict=True))

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Near-identity: leaves ~ ones (via the constant feature), units ~ elementwise product.

        Every node output starts close to the all-ones vector whatever the depth, and each leaf
        perturbation reaches the root additively, as in a linear model.

        Other xi: variance-preserving weights, every entry N(0, 1 / fan-in) (leaves 1 / m, full
        units 1 / r_in^2, cp units and head 1 / r_in): each unit's output keeps a second moment
        O(1) through the log2(d) levels.
        """
        if self.xi != "product":
            self._reset_generalized()
            return
        constant = self.constant_channel
        if constant is None:
            nn.init.normal_(self.leaves, std=self.feature_dim**-0.5)
        else:
            nn.init.normal_(self.leaves, std=self.noise_std(1))
            self.leaves[:, constant] = 1.0
        levels = self.levels()
        for level, weights in enumerate(levels):
            is_root = level == len(levels) - 1
            for weight in weights if isinstance(weights, tuple) else (weights,):
                rank_in, rank_out = weight.shape[1], weight.shape[-1]
                noise = 1.0 / (rank_in * self.num_positions**0.5)
                if is_root and self.node_type == "full":
                    nn.init.normal_(weight, std=1.0 / rank_in)  # the class read-out
                    continue
                nn.init.normal_(weight, std=noise)
                identity = tiled_identity(rank_in, rank_out)
                if weight.dim() == 4:  # T[p, q, j] = [p == q == j mod r_in]
                    diagonal = torch.arange(rank_in)
                    weight[:, diagonal, diagonal] += identity
                else:
                    weight += identity
        if self.head is not None:
            nn.init.normal_(self.head, std=self.ranks[-1] ** -0.5)

    @torch.no_grad()
    def _reset_generalized(self) -> None:
        nn.init.normal_(self.leaves, std=self.feature_dim**-0.5)
        for weights in self.levels():
            for weight in weights if isinstance(weights, tuple) else (weights,):
                fan_in = weight.shape[1] * (weight.shape[2] if weight.dim() == 4 else 1)
                nn.init.normal_(weight, std=fan_in**-0.5)
        if self.head is not None:
            nn.init.normal_(self.head, std=self.ranks[-1] ** -0.5)

    def lr_scales(self) -> dict[str, float]:
        """Inner (non-root) units sum r_in^2 (full) or r_in (cp) products: step 1/that as large."""
        scales = {}
        for level, rank_in in enumerate(self.ranks[: len(self.ranks) - 1]):
            if self.node_type == "full":
                scales[f"nodes.{level}"] = rank_in**-2.0
            else:
                scales[f"left.{level}"] = scales[f"right.{level}"] = 1.0 / rank_in
        return scales

    def contract(self, features: Tensor) -> Tensor:
        if self.xi != "product":
            return ht_contract_xi(features, self.leaves, self.levels(), self.head, self.xi)
        return ht_contract(features, self.leaves, self.levels(), self.head, self.log_format)

    def full_tensor(self) -> Tensor:
        require_multilinear(self, "full_tensor()")
        return ht_to_dense(self.leaves, self.levels(), self.head)

    @classmethod
    def from_cp(cls, cp: CPNet, node_type: NodeType = "full") -> HTNet:
        """The exact HT form of a CP network: rank r, diagonal units, same logits."""
        require_multilinear(cp, "HTNet.from_cp")
        net = cls(**cp.shared_args(), rank=cp.rank, node_type=node_type)
        net = net.to(dtype=cp.factors.dtype, device=cp.factors.device)
        net.copy_front_end(cp)
        eye = torch.eye(cp.rank, dtype=cp.factors.dtype, device=cp.factors.device)
        diagonal = torch.einsum("pj,qj->pqj", eye, eye)  # z = a * b elementwise
        with torch.no_grad():
            net.leaves.copy_(cp.factors)
            levels = net.levels()
            for level, weights in enumerate(levels):
                if isinstance(weights, tuple):
                    for weight in weights:
                        weight.copy_(eye.expand_as(weight))
                elif level == len(levels) - 1:
                    weights.copy_(
                        torch.einsum("pqa,ya->pqy", diagonal, cp.weights).expand_as(weights)
                    )
                else:
                    weights.copy_(diagonal.expand_as(weights))
            if net.head is not None:
                net.head.copy_(cp.weights.T)
        return net

    @classmethod
    def from_tt(cls, tt: TensorNetwork) -> HTNet:
        """The exact HT form of a TT network (same positions, same logits), node_type="full".

        Every subtree [a, b) of the binary tree stands for the TT segment G_a ... G_{b-1}: a
        matrix between bonds a and b, whose (r_a, r_b) entries become its r_a * r_b outputs
        (the paper's Theorem 2: HT width <= r^2). A level's width is the largest r_a * r_b of
        its subtrees (smaller ones are zero-padded); the last subtree of each level carries the
        class bond r_d = C of a label_site="last" TT, and the root reads a "middle" label core,
        which sits on bond d / 2, exactly where the root splits the positions.

        Args:
            tt: a TTNet (or any network with `tt_cores()` and `label_core`) with d = 2^L
                positions; its feature map, normalisation and patch order are kept.
        """
        require_multilinear(tt, "HTNet.from_tt")
        cores = [core.detach() for core in tt.tt_cores()]
        label_core = getattr(tt, "label_core", None)
        count = len(cores)
        if count < 2 or count & (count - 1):
            raise ValueError(
                f"HTNet.from_tt needs a power-of-two number of positions, got d = {count}."
            )
        classes = tt.num_classes
        bonds = [core.shape[0] for core in cores] + [cores[-1].shape[-1]]
        depth = count.bit_length() - 1
        spans = [
            [(start, start + 2**level) for start in range(0, count, 2**level)]
            for level in range(depth + 1)
        ]
        widths = [max(bonds[a] * bonds[b] for a, b in spans[level]) for level in range(depth)]
        outputs = [*widths[1:], classes]
        size = sum(
            (count >> (level + 1)) * widths[level] ** 2 * outputs[level] for level in range(depth)
        )
        if size > FROM_TT_LIMIT:
            raise ValueError(
                f"HTNet.from_tt: the HT form of this TT has widths {widths} (r^2 for TT rank r) "
                f"and {size:.3g} unit entries (more than {FROM_TT_LIMIT:.3g}); convert a TT with "
                f"smaller ranks, or measure its HT-ranks on a smaller network."
            )
        net = cls(**tt.shared_args(), rank=widths, node_type="full")
        net = net.to(dtype=cores[0].dtype, device=cores[0].device)
        net.copy_front_end(tt)
        leaves = torch.zeros_like(net.leaves)
        for position, core in enumerate(cores):  # leaf output (alpha, beta) = G[alpha, i, beta]
            leaves[position, :, : core.shape[0] * core.shape[2]] = core.permute(1, 0, 2).flatten(1)
        levels = [torch.zeros_like(level) for level in net.nodes]
        for level in range(1, depth + 1):
            for node, (start, stop) in enumerate(spans[level]):
                middle = (start + stop) // 2
                left, inner, right = bonds[start], bonds[middle], bonds[stop]
                a, b, c = torch.meshgrid(
                    torch.arange(left), torch.arange(inner), torch.arange(right), indexing="ij"
                )
                if level < depth:  # (a, b) x (b, c) -> (a, c)
                    levels[level - 1][node, a * inner + b, b * right + c, a * right + c] = 1.0
                elif label_core is None:  # root: (0, b) x (b, y) -> y
                    levels[level - 1][node, b, b * right + c, c] = 1.0
                else:  # root with the label core on bond d / 2: (0, b) x (b', 0) -> y
                    levels[level - 1][node, :inner, :inner, :classes] = label_core.permute(0, 2, 1)
        with torch.no_grad():
            net.leaves.copy_(leaves)
            for level, value in zip(net.nodes, levels, strict=True):
                level.copy_(value)
        return net
