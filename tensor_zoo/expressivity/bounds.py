"""Certified lower bounds on the CP rank (the width of an equivalent shallow network).

The paper's lemma: for any split of the modes into rows and columns, rank W^(rows) <= CP rank
of W, since each rank-one term has a rank-one matricization. The same holds for every tensor
obtained from W by contracting some modes with fixed vectors (a sub-tensor) or by multiplying
modes with matrices (a grid tensor): these never raise a matricization rank, and never raise the
CP rank either. So the rank of any matricization of a sub-tensor or grid tensor of W_y is a
lower bound on the CP rank of W_y, that is, on the width of any CP (shallow) network computing
the class's scores with the same feature map.

Theorem 1 (Khrulkov, Novikov, Oseledets 2018): for d = 2k and TT-ranks r, the odd/even
matricization of a generic TT tensor has rank >= q^k, q = min(m, r); hence the CP rank is
>= q^(d/2) except on a set of measure zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from tensor_zoo.expressivity.formats import network_format, restricted_tensor
from tensor_zoo.expressivity.grid import grid_tensor, random_templates, template_features
from tensor_zoo.expressivity.ranks import (
    Rows,
    matricization,
    matricization_rank,
    numerical_rank,
    resolve_rows,
)
from tensor_zoo.networks import TTNet
from tensor_zoo.networks.base import is_multilinear

EPS = torch.finfo(torch.float64).eps


@dataclass(frozen=True)
class CPRankBound:
    """A certified lower bound on one class's CP rank, and how it was obtained.

    Attributes:
        bound: CP rank of W_y >= bound (multilinear networks); for other networks: any CP
            (product) network with the same feature map that reproduces the class's scores on
            the grid needs width >= bound.
        method: "W (dense)", "W (CP Khatri-Rao QR)", "W sub-tensor" (other positions
            contracted with the anchor's feature vector) or "grid tensor" (scores on templates,
            through `net.contract`).
        positions: the positions kept (the others held at the anchor).
        rows: the kept positions on the row side of the matricization.
        tol: singular values above tol were counted (a numerical rank: see `cp_rank_lower_bound`).
        sigma_max: the largest singular value.
        smallest_counted: the smallest singular value counted (0 when bound = 0).
    """

    bound: int
    method: str
    positions: tuple[int, ...]
    rows: tuple[int, ...]
    tol: float
    sigma_max: float
    smallest_counted: float


def theorem1_bound(d: int, m: int, r: int) -> int:
    """min(m, r)^(d // 2): the CP rank that a generic TT tensor with d modes of size m and
    TT-ranks r reaches at least (Theorem 1, stated for even d). For odd d it returns
    q^((d - 1) / 2), which the odd/even matricization of `theorem1_witness` reaches as well (the
    last position adds a mode of rank one); the paper does not state the odd case.
    """
    if min(d, m, r) < 1:
        raise ValueError(f"d, m and r must be positive, got {(d, m, r)}.")
    return min(m, r) ** (d // 2)


def theorem1_witness(
    d: int, m: int, r: int, num_classes: int = 1, dtype: torch.dtype = torch.float64
) -> TTNet:
    """The paper's witness: a TTNet with bond ranks r whose odd/even matricization has rank
    exactly `theorem1_bound(d, m, r)` for every class.

    With q = min(m, r), Kronecker-delta cores make W[i_1, ..., i_d] = prod_{j < d // 2}
    [i_{2j} = i_{2j+1} < q] (and [i_d = 0] for odd d): position 2j writes its index into the bond,
    position 2j + 1 reads it back, so the odd/even matricization is a Kronecker product of k
    identity matrices of size q. Every class has this W. The network has d positions of one
    pixel (image_size (1, d), patch_size 1) and an identity feature map of width m; only its W
    matters here.
    """
    q = min(m, r)
    net = TTNet(
        in_channels=1,
        image_size=(1, d),
        patch_size=1,
        feature_dim=m,
        rank=r,
        num_classes=num_classes,
        feature_map="identity",
        append_one=False,
    ).to(dtype)
    diagonal = torch.arange(q)
    with torch.no_grad():
        for position, core in enumerate(net.cores):
            core.zero_()
            last = position == d - 1
            if position % 2 == 0 and not last:  # write: [a = 0] [i = b < q]
                core[0, diagonal, diagonal] = 1.0
            elif position % 2 == 1:  # read: [a = i < q] [b = 0], every class at the end
                core[diagonal, diagonal, 0 if not last else slice(None)] = 1.0
            else:  # odd d, the last position: [a = 0] [i = 0], every class
                core[0, 0, :] = 1.0
    return net


def _default_sub_grid(count: int, size: int, width: int, max_rows: int) -> tuple[range, int]:
    """The middle 2k positions and M <= size values each, M^k <= max_rows, chosen to maximise
    min(M, width)^k, Theorem 1's generic rank of the odd/even matricization (smaller k on ties).
    """
    best = (0, 1, min(size, max_rows))
    for half in range(1, count // 2 + 1):
        values = min(size, int(max_rows ** (1 / half) + 1e-9))
        if values < 2:
            break
        if min(values, width) ** half > best[0]:
            best = (min(values, width) ** half, half, values)
    _, half, values = best
    start = count // 2 - half
    return range(max(start, 0), min(count, start + 2 * half)), values


def cp_rank_lower_bound(
    net: nn.Module,
    positions: Sequence[int] | None = None,
    rows: Rows = "odd_even",
    templates: Tensor | None = None,
    anchor: Tensor | None = None,
    max_rows: int = 1024,
    tol: float | None = None,
    seed: int = 0,
    values_per_position: int | None = None,
) -> list[CPRankBound]:
    """A certified lower bound on the CP rank of each class's weight tensor, for any d.

    CP networks (by default): the whole W_y, exactly (`matricization_rank`, any rows).
    Other multilinear networks: the sub-tensor of W_y on `positions` (every other mode contracted
    with the feature vector of the anchor patch) is formed from the network's parameters, and
    the rank of its `rows` matricization is the bound; with all positions kept it is W_y
    itself. Other networks (generalized `xi`): the grid tensor of `templates` on `positions`.

    The rank is numerical: the default tol = sqrt(eps) * sigma_max (eps of float64, in which
    everything is computed) counts only singular values some 10^7 times above the rounding
    errors of the computation (about eps * sigma_max times a small factor), so a counted
    singular value is not rounding noise; a perturbation of W smaller than tol in the spectral
    norm of that matricization cannot lower the bound. Pass tol to choose another margin.

    Args:
        net: a network (TTNet, HTNet, CPNet, or any with the same parameters or a `contract`).
        positions: the positions kept (default: the middle 2k positions, k and M chosen with
            M^k <= max_rows to maximise min(M, r)^k, r the network's largest rank).
        rows: "odd_even" or "left_right" (counted within `positions`), or positions (a subset
            of `positions`) on the row side.
        templates: (M, n) or (d, M, n) patches for the grid tensor (networks without W; default:
            min(m, 8) N(0, 1) patches from `seed`). Unused for multilinear networks, whose kept
            modes run over all m basis vectors (the most a grid can show).
        anchor: (n,) or (d, n) patch for the positions not kept (default: an N(0, 1) patch from
            `seed`).
        max_rows: limits the default positions (the matrix decomposed has at most about
            max_rows^2 entries per class, so the bound is at most about max_rows).
        tol: absolute singular-value tolerance (default above).
        seed: for the default anchor, templates and directions.
        values_per_position: M, the values each kept mode runs over (multilinear networks; the
            default comes with the default positions, else m).

    Returns:
        One `CPRankBound` per class.
    """
    count = net.num_positions
    multilinear = is_multilinear(net)
    if positions is None and multilinear and network_format(net) == "cp":
        row_positions = resolve_rows(rows, count)  # exact on the whole W, any rows
        spectra = [r.singular_values for r in matricization_rank(net, row_positions)]
        method, positions = "W (CP Khatri-Rao QR)", tuple(range(count))
        return [_bound(v, tol, method, positions, row_positions) for v in spectra]
    if templates is None and not multilinear:
        templates = random_templates(net, min(net.feature_dim, 8), seed)
    size = net.feature_dim if multilinear else templates.shape[-2]
    if positions is None:
        width = max(getattr(net, "ranks", None) or [getattr(net, "rank", size)])
        positions, size = _default_sub_grid(count, size, width if multilinear else size, max_rows)
    size = values_per_position or size
    positions = tuple(sorted({int(p) for p in positions}))
    if isinstance(rows, str):
        row_slots = resolve_rows(rows, len(positions))
    else:
        row_slots = tuple(positions.index(p) for p in sorted(set(rows)) if p in positions)
        if len(row_slots) != len(set(rows)):
            raise ValueError(f"rows {rows!r} must be a subset of the positions {positions}.")
    if anchor is None:
        anchor = random_templates(net, 1, seed + 1)[0]
    if multilinear:
        anchors = anchor[None].expand(count, -1) if anchor.dim() == 1 else anchor
        fixed = template_features(net, anchors)
        everything = len(positions) == count
        basis = None
        if size < net.feature_dim:
            generator = torch.Generator().manual_seed(seed + 2)
            basis = torch.randn(size, net.feature_dim, generator=generator, dtype=torch.float64)
        tensors = restricted_tensor(net, positions, None if everything else fixed, basis)
        method = "W (dense)" if everything else "W sub-tensor"
        if basis is not None:
            method += f", modes on {size} random directions"
    else:
        tensors = grid_tensor(net, templates, positions, anchor).double()
        method = "grid tensor"
    row_positions = tuple(positions[slot] for slot in row_slots)
    return [
        _bound(
            torch.linalg.svdvals(matricization(tensor, row_slots)),
            tol,
            method,
            positions,
            row_positions,
        )
        for tensor in tensors
    ]


def _bound(
    singular: Tensor,
    tol: float | None,
    method: str,
    positions: tuple[int, ...],
    rows: tuple[int, ...],
) -> CPRankBound:
    """The numerical rank of a spectrum with tol (default sqrt(eps) sigma_max), as a bound."""
    top = float(singular.max()) if singular.numel() else 0.0
    bound, used = numerical_rank(singular, 1, EPS**0.5 * top if tol is None else tol)
    smallest = float(singular[singular > used].min()) if bound else 0.0
    return CPRankBound(bound, method, positions, rows, used, top, smallest)


def relu_shallow_width_bound(bound: CPRankBound, num_templates: int) -> int:
    """The width a generalized shallow network with xi = relu needs to reproduce a grid tensor.

    Khrulkov, Hrinchuk and Oseledets (ICLR 2019): one unit of a ReLU shallow network (a
    generalized CPNet, xi(a, b) = max(a, b, 0)) scores max(a_1, ..., a_d, 0), a_k depending on
    patch k only. On a grid of M templates, its (rows | columns) matricization is the matrix
    max(alpha_I, beta_J), alpha_I = max(0, the a_k of the row positions), beta_J likewise; alpha
    takes at most M |rows| distinct values (a maximum of entries is one of the M |rows|
    entries), and rows of the matrix with equal alpha are equal, so its rank is at most
    M min(|rows|, |columns|) (positions held at an anchor only add a constant inside the max).
    Ranks add up over units, hence width >= rank / (M min(|rows|, |columns|)): for the odd/even
    matricization of the full grid, the paper's factor 2 / (M T).

    Args:
        bound: a grid-tensor bound of `cp_rank_lower_bound` (its `bound` is the numerical rank
            of the `rows` matricization of the grid on `positions`).
        num_templates: M, the templates each kept position runs over.

    Returns:
        The smallest width a ReLU shallow network with the same feature map can have, if it
        reproduces the scores on the grid: ceil(rank / (M min(|rows|, |columns|))).
    """
    rows = len(bound.rows)
    columns = len(bound.positions) - rows
    if rows == 0 or columns == 0 or num_templates < 1:
        raise ValueError(
            f"The bound's matricization needs positions on both sides and num_templates >= 1, "
            f"got {rows} row and {columns} column positions, num_templates = {num_templates}."
        )
    return -(-bound.bound // (num_templates * min(rows, columns)))


def cp_parameter_count(net: nn.Module, width: int) -> int:
    """Trainable parameters of a CPNet of this width with the network's front end:
    d * m * width (factors) + C * width (weights) + the feature map's parameters."""
    front_end = sum(p.numel() for p in net.feature_map.parameters() if p.requires_grad)
    return net.num_positions * net.feature_dim * width + net.num_classes * width + front_end
