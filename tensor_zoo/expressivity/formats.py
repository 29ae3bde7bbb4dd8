"""Reading a network's weight tensor W from its parameters, whatever its format.

The tools recognise formats by what a network has, not by its class, so that any network that
stores W the same way works: `tt_cores()` (and `label_core`) for a tensor train, `leaves` and
`levels()` (and `head`) for a hierarchical Tucker tree, `factors` and `weights` for CP. A network
whose `xi` attribute is set to anything but "product" (a generalized network) has no weight
tensor at all: only its grid tensors exist (`tensor_zoo.expressivity.grid_tensor`).
Everything here works in float64 on detached copies.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from tensor_zoo.networks.base import require_multilinear

Format = Literal["tt", "ht", "cp", "other"]

# Dense sub-tensors (per class) up to this many entries are formed.
DENSE_LIMIT = 2**22


def network_format(net: nn.Module) -> Format:
    """Which stored form of W the network has: "tt", "ht", "cp" or "other"."""
    if hasattr(net, "tt_cores"):
        return "tt"
    if hasattr(net, "leaves") and hasattr(net, "levels"):
        return "ht"
    if hasattr(net, "factors") and hasattr(net, "weights"):
        return "cp"
    return "other"


def class_chains(net: nn.Module) -> list[list[Tensor]]:
    """One TT chain per class for a TT network: cores (r_k, m, r_{k+1}), r_0 = r_d = 1, float64.

    label_site "last": the class's slice of the last core; "middle": the class's matrix of the
    label core multiplied into the first core after bond d // 2.
    """
    cores = [core.detach().double() for core in net.tt_cores()]
    label_core = getattr(net, "label_core", None)
    chains = []
    for label in range(net.num_classes):
        chain = list(cores)
        if label_core is None:
            chain[-1] = chain[-1][:, :, label : label + 1]
        else:
            split = len(chain) // 2
            matrix = label_core.detach().double()[:, label, :]
            chain[split] = torch.tensordot(matrix, chain[split], dims=1)
        chains.append(chain)
    return chains


def ht_parts(net: nn.Module) -> tuple[Tensor, list[Tensor], Tensor | None]:
    """An HT network's leaves (d, m, r_0), full units per level (n, r, r, r'), head, in float64."""
    levels = []
    for level in net.levels():
        if isinstance(level, tuple):  # CP-factored units as full ones
            level = torch.einsum("npj,nqj->npqj", *level)
        levels.append(level.detach().double())
    head = getattr(net, "head", None)
    head = None if head is None else head.detach().double()
    return net.leaves.detach().double(), levels, head


def _tt_restricted(
    net: nn.Module, positions: Sequence[int], fixed: Tensor, basis: Tensor
) -> Tensor:
    """TT: see `restricted_tensor`."""
    kept = set(positions)
    per_class = []
    for chain in class_chains(net):
        pending = torch.ones(1, 1, dtype=torch.float64)
        reduced: list[Tensor] = []
        for position, core in enumerate(chain):
            if position in kept:
                core = torch.einsum("aib,ji->ajb", core, basis)
                reduced.append(torch.tensordot(pending, core, dims=1))
                pending = torch.eye(core.shape[-1], dtype=torch.float64)
            else:
                pending = pending @ torch.einsum("aib,i->ab", core, fixed[position])
        dense = pending if not reduced else reduced[0]
        for core in reduced[1:]:
            dense = torch.tensordot(dense, core, dims=1)
        if reduced:
            dense = torch.tensordot(dense, pending, dims=1)
        per_class.append(dense.reshape([basis.shape[0]] * len(positions)))
    return torch.stack(per_class)


def _merge(left: Tensor, right: Tensor, unit: Tensor) -> Tensor:
    """Subtree frames (a, p), (b, q) and a unit (p, q, j) -> the parent's frame (a * b, j)."""
    if left.shape[0] >= right.shape[0]:  # contract the smaller frame with the unit first
        partial = torch.einsum("bq,pqj->bpj", right, unit)
        return torch.einsum("ap,bpj->abj", left, partial).flatten(0, 1)
    partial = torch.einsum("ap,pqj->aqj", left, unit)
    return torch.einsum("aqj,bq->abj", partial, right).flatten(0, 1)


def _ht_restricted(
    net: nn.Module, positions: Sequence[int], fixed: Tensor, basis: Tensor
) -> Tensor:
    """HT: see `restricted_tensor`."""
    leaves, levels, head = ht_parts(net)
    kept = set(positions)
    subtrees = [
        basis @ leaf if position in kept else fixed[position][None] @ leaf
        for position, leaf in enumerate(leaves)
    ]  # each (size of its kept modes, r)
    for level in levels:
        subtrees = [
            _merge(subtrees[2 * i], subtrees[2 * i + 1], unit) for i, unit in enumerate(level)
        ]
    dense = subtrees[0] if head is None else subtrees[0] @ head  # (m^k, C)
    return dense.T.reshape(-1, *[basis.shape[0]] * len(positions))


def _cp_restricted(
    net: nn.Module, positions: Sequence[int], fixed: Tensor, basis: Tensor
) -> Tensor:
    """CP: see `restricted_tensor`."""
    factors = net.factors.detach().double()
    weights = net.weights.detach().double()
    kept = set(positions)
    for position in range(factors.shape[0]):
        if position not in kept:
            weights = weights * (fixed[position] @ factors[position])
    dense = torch.ones(1, factors.shape[-1], dtype=torch.float64)
    for position in positions:
        dense = torch.einsum("...a,ia->...ia", dense, basis @ factors[position])
    return torch.einsum("...a,ya->y...", dense, weights).reshape(-1, *dense.shape[1:-1])


def _contract_restricted(
    net: nn.Module, positions: Sequence[int], fixed: Tensor, basis: Tensor
) -> Tensor:
    """Any multilinear network: its contraction with the basis rows at the kept positions."""
    size, count = basis.shape[0], len(positions)
    dtype = next(net.parameters()).dtype
    index = torch.arange(size**count)
    digits = [(index // size ** (count - 1 - j)) % size for j in range(count)]
    features = fixed.to(dtype)[None].repeat(size**count, 1, 1)
    rows = basis.to(dtype)
    for slot, position in enumerate(positions):
        features[:, position] = rows[digits[slot]]
    with torch.no_grad():
        scores = torch.cat([net.contract(chunk) for chunk in features.split(4096)])
    return scores.double().T.reshape(-1, *[size] * count)


def restricted_tensor(
    net: nn.Module,
    positions: Sequence[int],
    fixed: Tensor | None,
    basis: Tensor | None = None,
) -> Tensor:
    """W on `positions`, the other modes contracted with fixed vectors: (C, M, ..., M).

    Args:
        net: a multilinear network.
        positions: increasing positions whose modes are kept (len(positions) modes in all).
        fixed: (d, m) the vector each other position is contracted with (None: all positions
            are kept).
        basis: (M, m) the vectors the kept modes are contracted with (None: the identity, M = m,
            which keeps W's own entries).

    Returns:
        T[y, j_1..j_k] = sum_i W[y, i] prod_{p kept} basis[j_p, i_p] prod_{p not kept}
        fixed[p, i_p], float64; with all positions kept and no basis it is W itself.
    """
    require_multilinear(net, "restricted_tensor")
    positions = list(positions)
    basis = torch.eye(net.feature_dim) if basis is None else basis
    entries = basis.shape[0] ** len(positions)
    if entries > DENSE_LIMIT:
        raise ValueError(
            f"A dense tensor on {len(positions)} positions would have {basis.shape[0]}^"
            f"{len(positions)} = {entries:.3g} entries per class (more than {DENSE_LIMIT}); "
            f"keep fewer positions (a sub-grid)."
        )
    if fixed is None:
        fixed = torch.zeros(net.num_positions, net.feature_dim, dtype=torch.float64)
    builder = {
        "tt": _tt_restricted,
        "ht": _ht_restricted,
        "cp": _cp_restricted,
        "other": _contract_restricted,
    }[network_format(net)]
    return builder(net, positions, fixed.detach().double(), basis.detach().double())


def dense_weights(net: nn.Module) -> Tensor:
    """The whole weight tensor W (C, m, ..., m) in float64, for networks with m^d small."""
    return restricted_tensor(net, range(net.num_positions), None)
