"""Form the dense weight tensor W (C, m, ..., m) of each format: for tiny d and m only.

These are the definitions the fast contractions are checked against: m^d entries per class,
so d = 6, m = 3 is already 729 numbers a class.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def _check_size(num_positions: int, feature_dim: int, limit: int = 2**24) -> None:
    if feature_dim**num_positions > limit:
        raise ValueError(
            f"The dense tensor would have {feature_dim}^{num_positions} entries per class "
            f"(more than "
            f"{limit}); full_tensor() is meant for tiny networks (e.g. d <= 8, m <= 4)."
        )


def cp_to_dense(factors: Tensor, weights: Tensor) -> Tensor:
    """factors (d, m, r), weights (C, r) -> W (C, m, ..., m)."""
    num_positions, feature_dim, _ = factors.shape
    _check_size(num_positions, feature_dim)
    dense = factors[0]  # (m, r)
    for factor in factors[1:]:
        dense = torch.einsum("...a,ma->...ma", dense, factor)
    return torch.einsum("...a,ya->y...", dense, weights)


def _tt_chain(cores: Sequence[Tensor]) -> Tensor:
    """cores (r_0, m, r_1), ..., -> (r_0, m, ..., m, r_k)."""
    dense = cores[0]
    for core in cores[1:]:
        dense = torch.tensordot(dense, core, dims=1)
    return dense


def tt_to_dense(cores: Sequence[Tensor], label_core: Tensor | None = None) -> Tensor:
    """TT cores (see `tt_contract`) -> W (C, m, ..., m)."""
    feature_dim = cores[0].shape[1]
    _check_size(len(cores), feature_dim)
    if label_core is None:
        dense = _tt_chain(cores)[0]  # (m, ..., m, C)
        return dense.movedim(-1, 0)
    split = len(cores) // 2
    left = _tt_chain(cores[:split])[0]  # (m, ..., m, r)
    right = _tt_chain(cores[split:])[..., 0]  # (r, m, ..., m)
    return _tt_label_dense(left, label_core, right)


def _tt_label_dense(left: Tensor, label_core: Tensor, right: Tensor) -> Tensor:
    """left (m^a..., r), label (r, C, r), right (r, m^b...) -> (C, m^a..., m^b...)."""
    with_label = torch.tensordot(left, label_core, dims=1)  # (m^a..., C, r)
    dense = torch.tensordot(with_label, right, dims=1)  # (m^a..., C, m^b...)
    return dense.movedim(left.dim() - 1, 0)


def ht_to_dense(
    leaves: Tensor,
    nodes: Sequence[Tensor | tuple[Tensor, Tensor]],
    head: Tensor | None = None,
) -> Tensor:
    """HT leaves, nodes and head (see `ht_contract`) -> W (C, m, ..., m)."""
    num_positions, feature_dim, _ = leaves.shape
    _check_size(num_positions, feature_dim)
    subtrees = list(leaves)  # each (m^s, r): the modes of a subtree, flattened
    for level in nodes:
        if isinstance(level, tuple):
            left_weight, right_weight = level
            level = torch.einsum("npj,nqj->npqj", left_weight, right_weight)
        subtrees = [
            torch.einsum("ap,bq,pqj->abj", subtrees[2 * i], subtrees[2 * i + 1], unit).flatten(0, 1)
            for i, unit in enumerate(level)
        ]
    dense = subtrees[0]  # (m^d, r_L or C), modes in position order
    if head is not None:
        dense = dense @ head
    return dense.T.reshape(-1, *[feature_dim] * num_positions)
