"""Matricization ranks, TT-ranks and HT-ranks of dense tensors and of networks' weight tensors.

A matricization W^(rows) is W reshaped into a matrix whose row index runs over the modes in
`rows` and whose column index over the other modes (both in increasing order). Its rank is what
the paper's lemma compares with the CP rank (CP rank >= any matricization rank); the TT-ranks of
W are the ranks of its (first k | rest) matricizations, k = 1..d-1; the HT-ranks those of
(one subtree | rest), for every subtree of the tree.

For a network, W has a class index: every function returns one result per class (a list), the
ranks of that class's W_y (m, ..., m). Networks are never expanded to W when m^d is large: TT
networks are orthogonalised core by core for the (first k | rest) cuts, HT networks node by node
for their subtrees, CP networks through QR factorisations of their Khatri-Rao products, for any
rows; other cuts of large networks are refused (a rank bound from a sub-grid is
`cp_rank_lower_bound`).

Ranks are numerical: the number of singular values above a tolerance `tol`. The default is
numpy's (`matrix_rank`): sigma_max * eps(float64) * n, n the larger side of the matrix actually
decomposed (times d for the methods that sweep d cores); every result says which method and
tolerance gave it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from tensor_zoo.expressivity.formats import (
    DENSE_LIMIT,
    class_chains,
    dense_weights,
    ht_parts,
    network_format,
)
from tensor_zoo.functional import tt_round
from tensor_zoo.networks.base import require_multilinear

EPS = torch.finfo(torch.float64).eps
Rows = str | Sequence[int]


@dataclass(frozen=True)
class MatricizationRank:
    """A numerical matricization rank and how it was obtained.

    Attributes:
        rank: the number of singular values above `tol`.
        rows: the modes (positions, 0-based) on the row side.
        method: "dense SVD", "TT orthogonalisation", "HT orthogonalisation" or
            "CP Khatri-Rao QR".
        tol: the tolerance used (absolute).
        singular_values: the singular values found (descending; at most the smaller side).
    """

    rank: int
    rows: tuple[int, ...]
    method: str
    tol: float
    singular_values: Tensor


@dataclass(frozen=True)
class TTRanks:
    """TT-ranks r_1..r_{d-1}: ranks[k - 1] = rank of the (first k modes | rest) matricization.

    Attributes:
        ranks: the d - 1 numerical ranks.
        method: "dense SVD" or "TT orthogonalisation" (or another method of `matricization_rank`).
        tol: the tolerance, or None when each bond used its own default (numpy's rule).
    """

    ranks: tuple[int, ...]
    method: str
    tol: float | None


@dataclass(frozen=True)
class HTRanks:
    """HT-ranks for the binary tree that pairs consecutive positions (HTNet's tree).

    Attributes:
        ranks: `ranks[l][j]` is the rank of the (positions `j 2^l .. (j + 1) 2^l - 1` | rest)
            matricization, for levels l = 0 (leaves) .. L - 1 (the root's children).
        method: "dense SVD" or "HT orthogonalisation".
        tol: as in TTRanks.
    """

    ranks: tuple[tuple[int, ...], ...]
    method: str
    tol: float | None

    @property
    def level_max(self) -> tuple[int, ...]:
        """The largest rank of each level."""
        return tuple(max(level) for level in self.ranks)


def numerical_rank(
    singular_values: Tensor, size: int, tol: float | None = None
) -> tuple[int, float]:
    """(rank, tol): how many singular values exceed tol (default sigma_max * eps * size)."""
    if tol is None:
        top = float(singular_values.max()) if singular_values.numel() else 0.0
        tol = top * EPS * size
    return int((singular_values > tol).sum()), float(tol)


def resolve_rows(rows: Rows, num_positions: int) -> tuple[int, ...]:
    """ "odd_even" (positions 1, 3, 5, ... counted from 1, i.e. 0, 2, 4, ... from 0),
    "left_right" (the first d // 2) or explicit positions -> sorted 0-based positions."""
    if rows == "odd_even":
        return tuple(range(0, num_positions, 2))
    if rows == "left_right":
        return tuple(range(num_positions // 2))
    if isinstance(rows, str):
        raise ValueError(f"rows must be 'odd_even', 'left_right' or positions, got {rows!r}.")
    positions = tuple(sorted({int(p) for p in rows}))
    if positions and (positions[0] < 0 or positions[-1] >= num_positions):
        raise ValueError(f"rows {rows!r} must be positions in 0..{num_positions - 1}.")
    return positions


def matricization(W: Tensor, rows: Rows) -> Tensor:
    """W (n_1, ..., n_d) -> the matrix (prod_{k in rows} n_k, prod_{k not in rows} n_k).

    Args:
        W: a dense tensor; every mode counts (for a network's W, pass one class's W[y]).
        rows: "odd_even", "left_right" or the modes on the row side (0-based).
    """
    row_modes = resolve_rows(rows, W.dim())
    col_modes = tuple(k for k in range(W.dim()) if k not in row_modes)
    num_rows = math.prod(W.shape[k] for k in row_modes)
    return W.permute(*row_modes, *col_modes).reshape(num_rows, -1)


def _dense_rank(W: Tensor, rows: tuple[int, ...], tol: float | None) -> MatricizationRank:
    matrix = matricization(W.detach().double(), rows)
    values = torch.linalg.svdvals(matrix)
    rank, used = numerical_rank(values, max(matrix.shape), tol)
    return MatricizationRank(rank, rows, "dense SVD", used, values)


def _tt_bond_values(chain: list[Tensor]) -> list[Tensor]:
    """Singular values of (first k | rest) for k = 1..d-1 of one TT chain."""
    return tt_round(chain).singular_values


def _ht_node_values(
    leaves: Tensor, levels: list[Tensor], head: Tensor | None, label: int
) -> list[list[Tensor]]:
    """Singular values of (subtree | rest) for every non-root node of class `label`'s tree.

    Up the tree, every subtree's frame U_t (m^|t|, r_t) is factored as Q_t R_t with Q_t
    orthonormal; down the tree, W^(t) = Q_t B_t Z_t^T with Z_t orthonormal, so the singular
    values of W^(t) are those of the small B_t.
    """
    tops, transfers = [], []  # per level: R_t of every node; orthonormal transfer tensors
    r_factors = []
    for leaf in leaves:
        _, r = torch.linalg.qr(leaf)
        r_factors.append(r)
    tops.append(r_factors)
    for level in levels:
        below, r_factors, level_transfers = tops[-1], [], []
        for node, unit in enumerate(level):
            left, right = below[2 * node], below[2 * node + 1]
            merged = torch.einsum("ap,bq,pqj->abj", left, right, unit)
            q, r = torch.linalg.qr(merged.reshape(-1, merged.shape[-1]))
            level_transfers.append(q.reshape(left.shape[0], right.shape[0], -1))
            r_factors.append(r)
        transfers.append(level_transfers)
        tops.append(r_factors)
    root = tops[-1][0]
    vector = root @ head[:, label] if head is not None else root[:, label]
    downs = [vector[:, None]]
    values: list[list[Tensor]] = []
    for level_transfers in reversed(transfers):
        children = []
        for node, transfer in enumerate(level_transfers):
            parent = downs[node]
            left = torch.einsum("abc,ce->abe", transfer, parent).reshape(transfer.shape[0], -1)
            right = torch.einsum("abc,ce->bae", transfer, parent).reshape(transfer.shape[1], -1)
            for child in (left, right):
                if child.shape[1] > child.shape[0]:  # drop an orthonormal right factor
                    child = torch.linalg.qr(child.T)[1].T
                children.append(child)
        downs = children
        values.insert(0, [torch.linalg.svdvals(child) for child in children])
    return values


def _tt_sweep_size(chain: list[Tensor]) -> int:
    """The `size` of numpy's rule for the TT sweep: d times the largest (r_k m) x r_{k+1} side."""
    return len(chain) * max(max(core.shape[0] * core.shape[1], core.shape[2]) for core in chain)


def _ht_sweep_size(parts: tuple[Tensor, list[Tensor], Tensor | None], count: int) -> int:
    """The `size` of numpy's rule for the HT sweep: d times the largest r_l^2 x r_{l+1} side."""
    sides = [max(unit.shape[1] * unit.shape[2], unit.shape[3]) for unit in parts[1]]
    return count * max([parts[0].shape[1], *sides])


def _cp_row_factor(factors: Tensor, positions: Sequence[int]) -> Tensor:
    """R (k, r) with Khatri-Rao(factors[p] for p in positions) = Q R, Q orthonormal."""
    rank = factors.shape[-1]
    r = torch.ones(1, rank, dtype=factors.dtype)
    for position in positions:
        stacked = torch.einsum("ka,ia->kia", r, factors[position]).reshape(-1, rank)
        r = torch.linalg.qr(stacked)[1]
    return r


def _network_matricization(
    net: nn.Module, rows: tuple[int, ...], tol: float | None
) -> list[MatricizationRank]:
    count = net.num_positions
    columns = tuple(k for k in range(count) if k not in rows)
    kind = network_format(net)
    prefix = rows == tuple(range(len(rows))) or columns == tuple(range(len(columns)))
    if kind == "tt" and prefix and 0 < len(rows) < count:
        cut = len(rows) if rows and rows[0] == 0 else len(columns)
        results = []
        for chain in class_chains(net):
            values = _tt_bond_values(chain)[cut - 1]
            size = _tt_sweep_size(chain)
            rank, used = numerical_rank(values, size, tol)
            results.append(MatricizationRank(rank, rows, "TT orthogonalisation", used, values))
        return results
    if kind == "ht":
        span = _subtree_level(rows, count) or _subtree_level(columns, count)
        if span is not None:
            level, node = span
            parts = ht_parts(net)
            results = []
            for label in range(net.num_classes):
                values = _ht_node_values(*parts, label)[level][node]
                rank, used = numerical_rank(values, _ht_sweep_size(parts, count), tol)
                results.append(MatricizationRank(rank, rows, "HT orthogonalisation", used, values))
            return results
    if kind == "cp":
        factors = net.factors.detach().double()
        row_factor, col_factor = _cp_row_factor(factors, rows), _cp_row_factor(factors, columns)
        results = []
        for weights in net.weights.detach().double():
            values = torch.linalg.svdvals(row_factor * weights @ col_factor.T)
            rank, used = numerical_rank(values, count * factors.shape[-1] * factors.shape[1], tol)
            results.append(MatricizationRank(rank, rows, "CP Khatri-Rao QR", used, values))
        return results
    if net.feature_dim**count > DENSE_LIMIT:
        raise ValueError(
            f"The rank of the {rows} matricization of this {type(net).__name__}'s W "
            f"({net.feature_dim}^{count} entries per class) has no method that avoids forming W "
            f"here (TT: (first k | rest) cuts; HT: subtrees; CP: any rows). Use "
            f"cp_rank_lower_bound(net, rows=...) for a certified lower bound from a sub-grid."
        )
    return [_dense_rank(W, rows, tol) for W in dense_weights(net)]


def _subtree_level(positions: tuple[int, ...], count: int) -> tuple[int, int] | None:
    """(level, node) when positions are exactly one non-root subtree of the pairing tree."""
    size = len(positions)
    if size == 0 or size >= count or size & (size - 1) or positions[0] % size:
        return None
    if positions != tuple(range(positions[0], positions[0] + size)):
        return None
    return size.bit_length() - 1, positions[0] // size


def matricization_rank(
    obj: nn.Module | Tensor, rows: Rows = "odd_even", tol: float | None = None
) -> MatricizationRank | list[MatricizationRank]:
    """Numerical rank of W^(rows): of a dense tensor, or of each class's W_y of a network.

    Args:
        obj: a dense tensor (n_1, ..., n_d), every mode counted; or a multilinear network
            (TTNet, HTNet, CPNet, or any network with the same parameters).
        rows: "odd_even" (positions 0, 2, 4, ... as rows, the paper's Theorem 1), "left_right"
            (the first d // 2 positions) or a sequence of positions.
        tol: absolute tolerance on the singular values (None: numpy's rule, see the module).

    Returns:
        One `MatricizationRank` for a tensor; a list of them, one per class, for a network.
    """
    if isinstance(obj, Tensor):
        return _dense_rank(obj, resolve_rows(rows, obj.dim()), tol)
    require_multilinear(obj, "matricization_rank")
    return _network_matricization(obj, resolve_rows(rows, obj.num_positions), tol)


def tt_ranks(obj: nn.Module | Tensor, tol: float | None = None) -> TTRanks | list[TTRanks]:
    """Exact (numerical) TT-ranks: of a dense tensor, or of each class's W_y of a network.

    TT networks: from the cores by orthogonalisation (no W formed); the label core or the last
    core's class slice is folded in per class, so these are the ranks of W_y, which may be
    smaller than the network's bond widths (`net.ranks`). Other networks: the (first k | rest)
    matricization ranks by `matricization_rank`, which refuses what it cannot do without W.

    Args:
        obj: a dense tensor (every mode counted) or a multilinear network.
        tol: absolute tolerance (None: numpy's rule per bond).
    """
    if isinstance(obj, Tensor):
        count = obj.dim()
        ranks = [matricization_rank(obj, range(k), tol).rank for k in range(1, count)]
        return TTRanks(tuple(ranks), "dense SVD", tol)
    require_multilinear(obj, "tt_ranks")
    if network_format(obj) == "tt":
        results = []
        for chain in class_chains(obj):
            size = _tt_sweep_size(chain)
            ranks = [numerical_rank(v, size, tol)[0] for v in _tt_bond_values(chain)]
            results.append(TTRanks(tuple(ranks), "TT orthogonalisation", tol))
        return results
    cuts = [_network_matricization(obj, tuple(range(k)), tol) for k in range(1, obj.num_positions)]
    return [
        TTRanks(tuple(cut[label].rank for cut in cuts), cuts[0][label].method, tol)
        for label in range(obj.num_classes)
    ]


def _tree_spans(count: int) -> list[list[tuple[int, ...]]]:
    if count < 2 or count & (count - 1):
        raise ValueError(f"HT-ranks need a power-of-two number of modes, got {count}.")
    levels, size = [], 1
    while size < count:
        levels.append([tuple(range(s, s + size)) for s in range(0, count, size)])
        size *= 2
    return levels


def ht_ranks(obj: nn.Module | Tensor, tol: float | None = None) -> HTRanks | list[HTRanks]:
    """Exact (numerical) HT-ranks on the tree that pairs consecutive positions (HTNet's tree;
    with the quad-tree ("zorder") patch order its subtrees are square image blocks).

    HT networks: node by node, by orthogonalisation (no W formed). Other networks: the
    (subtree | rest) matricization ranks by `matricization_rank` (a TT's W of a large network
    can be converted first: `ht_ranks(HTNet.from_tt(tt))`).

    Args:
        obj: a dense tensor with 2^L modes, or a multilinear network with d = 2^L positions.
        tol: absolute tolerance (None: numpy's rule per node).
    """
    if isinstance(obj, Tensor):
        spans = _tree_spans(obj.dim())
        ranks = tuple(
            tuple(matricization_rank(obj, span, tol).rank for span in level) for level in spans
        )
        return HTRanks(ranks, "dense SVD", tol)
    require_multilinear(obj, "ht_ranks")
    spans = _tree_spans(obj.num_positions)
    if network_format(obj) == "ht":
        parts = ht_parts(obj)
        size = _ht_sweep_size(parts, obj.num_positions)
        results = []
        for label in range(obj.num_classes):
            values = _ht_node_values(*parts, label)
            ranks = tuple(tuple(numerical_rank(v, size, tol)[0] for v in level) for level in values)
            results.append(HTRanks(ranks, "HT orthogonalisation", tol))
        return results
    per_span = [[_network_matricization(obj, span, tol) for span in level] for level in spans]
    return [
        HTRanks(
            tuple(tuple(node[label].rank for node in level) for level in per_span),
            per_span[0][0][label].method,
            tol,
        )
        for label in range(obj.num_classes)
    ]
