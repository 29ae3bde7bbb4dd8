"""Parallel-in-sequence TT contraction: transfer matrices, then a balanced tree of matmuls.

The sequential sweep of `tt_contract` is d small dependent GEMMs, each followed by a rescale:
for long sequences the cost is Python and autograd overhead per position, not arithmetic.
Here the features are first contracted into the cores in one batched GEMM, giving the d
transfer matrices T_k[b] = sum_i f_i(x_k) G_k[:, i, :] (each (R, R)), and their product is
formed in ceil(log2 d) levels of one batched matmul each (pairs (2j, 2j + 1); an odd one out
waits for the next level). This costs R / m + 1 times the sweep's FLOPs (matrix-matrix instead
of vector-matrix products) in ~log2 d large ops instead of ~6 d small ones.

Ranks: every core is zero-padded to (R, m, R), R the largest bond (boundaries included). Zero
rows and columns stay exactly zero through the products, so the padded product holds the exact
product in its top-left block: the result is exact, not approximate.

Log format: each level divides every matrix by its largest magnitude (detached) and carries
the log of the scale, summed pairwise like the matrices; the scale is put back before the
output, as in the sweep (see `contraction.py`).

`chunked` bounds memory: the sequence is cut into chunks of `chunk_size` positions, each chunk's
product is formed by the tree, and a (B, R) state sweeps over the chunks: the transfer
matrices of one chunk at a time are alive (B * chunk_size * R^2 numbers instead of B * d * R^2).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
from torch import Tensor
from torch.nn import functional as F

TTContraction = Literal["auto", "sequential", "tree", "chunked"]
CONTRACTIONS: tuple[str, ...] = ("auto", "sequential", "tree", "chunked")

# `auto`, measured on the 2-core development machine under load from other jobs, one thread,
# TorchMPS's shapes (README, "Performance"): the sweep costs a fixed overhead per position
# (Python, autograd), the tree R / k times the sweep's arithmetic (k sites merged per
# transfer matrix, `group_size`). Tree vs sweep, images/s: B 100, R 10, k 3, training 2.1x;
# B 100, R 20, k 4, training 1.0-1.2x; B 1000, R 10, inference 0.35x. So the tree is used
# while B R^3 / k, its extra work per position, stays below these (training, inference):
TREE_MIN_POSITIONS = 8
TREE_MAX_WORK = {True: 2e5, False: 5e4}
# Transfer matrices alive at once (numbers) before `auto` switches from tree to chunked.
CHUNKED_ABOVE_NUMBERS = 2**27
DEFAULT_CHUNK_SIZE = 64


def choose_contraction(
    batch: int, positions: int, rank: int, feature_dim: int, training: bool = True
) -> str:
    """The strategy `auto` uses for (B, d, R, m): "sequential", "tree" or "chunked".

    Args:
        batch: B, the batch size.
        positions: d, the number of cores in the sweep.
        rank: R, the largest bond dimension (boundaries included).
        feature_dim: m, the size of each feature vector.
        training: whether gradients will be taken (autograd makes the sweep's per-position
            overhead larger, so the tree wins for larger B R^3).
    """
    group = group_size(rank, feature_dim)
    if positions < TREE_MIN_POSITIONS or batch * rank**3 / group > TREE_MAX_WORK[training]:
        return "sequential"
    if batch * positions * rank * rank / group > CHUNKED_ABOVE_NUMBERS:
        return "chunked"
    return "tree"


def padded_rank(cores: Sequence[Tensor]) -> int:
    """R: the largest bond dimension of `cores` (r_0 and r_d included)."""
    return max(max(core.shape[0], core.shape[-1]) for core in cores)


def stack_padded(cores: Sequence[Tensor], rank: int) -> Tensor:
    """cores[k] (r_k, m, r_{k+1}) -> (d, R, m, R), each core zero-padded at the end of its bonds.

    Cores already (R, m, R) are stacked as they are (one op for the uniform interior).
    """
    padded = [
        core
        if core.shape[0] == rank and core.shape[-1] == rank
        else F.pad(core, (0, rank - core.shape[-1], 0, 0, 0, rank - core.shape[0]))
        for core in cores
    ]
    return torch.stack(padded)


def group_size(rank: int, feature_dim: int) -> int:
    """k: how many consecutive sites to merge into one transfer matrix (see `merged_sites`).

    Per site, merging k sites costs m^k R^2 / k multiply-adds per sample for the merged transfer
    matrices (one large GEMM) and R^3 / k for the tree (many tiny matmuls, which run at about
    half the GEMM's rate here: weight 2). k minimises (m^k R^2 + 2 R^3) / k; measured at
    B = 100, m = 2: R = 10 and R = 20 both train fastest at k = 4 (of 1, 3..7), as the model says.
    """
    costs = {
        k: (feature_dim**k * rank * rank + 2 * rank**3) / k
        for k in range(1, 9)
        if feature_dim**k <= 4 * rank * rank
    }
    return min(costs, key=costs.get) if costs else 1


def merged_sites(features: Tensor, stacked: Tensor, group: int) -> tuple[Tensor, Tensor]:
    """Merge each run of `group` consecutive sites into one site of dimension m^group.

    features (B, d, m), stacked cores (d, R, m, R) -> features (B, n, m^k), cores (n, R, m^k, R),
    n = ceil(d / k). The merged core is the product of the k cores (batch-independent, computed
    once); the merged feature is the outer product of the k features, so its transfer matrix is
    the product of the k transfer matrices. A last incomplete run is completed by identity
    sites (core I on feature 0, feature e_0): multiplying by I is exact.
    """
    if group == 1:
        return features, stacked
    batch, positions, feature_dim = features.shape
    rank = stacked.shape[1]
    missing = -positions % group
    if missing:
        identity = stacked.new_zeros(missing, rank, feature_dim, rank)
        identity[:, :, 0, :] = torch.eye(rank, dtype=stacked.dtype, device=stacked.device)
        stacked = torch.cat([stacked, identity])
        unit = features.new_zeros(batch, missing, feature_dim)
        unit[:, :, 0] = 1
        features = torch.cat([features, unit], dim=1)
    count = (positions + missing) // group
    stacked = stacked.unflatten(0, (count, group))
    features = features.unflatten(1, (count, group))
    cores, merged = stacked[:, 0], features[:, :, 0]
    for site in range(1, group):
        cores = torch.einsum("nasb,nbtc->nastc", cores, stacked[:, site])
        cores = cores.reshape(count, rank, -1, rank)
        merged = (merged[..., :, None] * features[:, :, site, None, :]).reshape(batch, count, -1)
    return merged, cores


def transfer_matrices(features: Tensor, stacked: Tensor, group: int = 1) -> Tensor:
    """features (B, d, m), stacked cores (d, R, m, R) -> T (n, B, R, R), T_j = sum_i f_i G_j[:, i].

    With `group` = k > 1, T_j is the product of the transfer matrices of sites jk..jk + k - 1
    (n = ceil(d / k), see `merged_sites`). One batched GEMM over the sites:
    (n, B, m^k) @ (n, m^k, R * R).
    """
    features, stacked = merged_sites(features, stacked, group)
    positions, rank, feature_dim, _ = stacked.shape
    weights = stacked.permute(0, 2, 1, 3).reshape(positions, feature_dim, rank * rank)
    products = torch.bmm(features.transpose(0, 1), weights)  # (n, B, R * R)
    return products.reshape(positions, features.shape[0], rank, rank)


def _rescale_matrices(matrices: Tensor) -> tuple[Tensor, Tensor]:
    """Divide each (R, R) matrix by its detached max magnitude; return it and the log scale."""
    scale = matrices.detach().abs().amax(dim=(-2, -1), keepdim=True)
    scale = scale.clamp_min(torch.finfo(matrices.dtype).tiny)
    return matrices / scale, scale.log()[..., 0, 0]


def tree_product(matrices: Tensor, log_format: bool) -> tuple[Tensor, Tensor]:
    """Ordered product T_0 T_1 ... T_{n-1} of matrices (n, B, R, R) by a balanced pairwise tree.

    Returns the product (B, R, R) and its log scale (B,) (zeros without log format): the true
    product is product * exp(log_scale). Each level multiplies the pairs (2j, 2j + 1) in one
    batched matmul and rescales the products; at an odd count the last matrix is multiplied
    into a right-hand `tail` instead of being copied into the next level. The leaves are not
    rescaled (one transfer matrix cannot overflow where its inputs do not).
    """
    log_scale = matrices.new_zeros(matrices.shape[:2])
    tail = tail_log = None
    while matrices.shape[0] > 1:
        count = matrices.shape[0]
        pairs = count // 2
        if count % 2:  # the odd one out: tail <- T_last @ tail
            matrices, odd = matrices.split([count - 1, 1])
            log_scale, odd_log = log_scale.split([count - 1, 1])
            tail = odd[0] if tail is None else torch.bmm(odd[0], tail)
            tail_log = odd_log[0] if tail_log is None else tail_log + odd_log[0]
            if log_format:
                tail, step_log = _rescale_matrices(tail)
                tail_log = tail_log + step_log
        # unbind, not slices: a slice's backward allocates a zero tensor of the whole level
        left, right = matrices.unflatten(0, (pairs, 2)).unbind(1)
        matrices = torch.matmul(left, right)
        log_scale = log_scale.unflatten(0, (pairs, 2)).sum(dim=1)
        if log_format:
            matrices, step_log = _rescale_matrices(matrices)
            log_scale = log_scale + step_log
    product, log_scale = matrices[0], log_scale[0]
    if tail is not None:
        product, log_scale = torch.bmm(product, tail), log_scale + tail_log
    return product, log_scale


def chunked_product(
    matrices_of: Callable[[int, int], Tensor],
    positions: int,
    chunk_size: int,
    log_format: bool,
    reverse: bool,
) -> tuple[Tensor, Tensor]:
    """Boundary row (or column) of the product of the transfer matrices, chunk by chunk.

    `matrices_of(start, stop)` gives the transfer matrices (n, B, R, R) of positions
    start..stop - 1. Returns e_0^T T_0 ... T_{d-1} (B, R), or with `reverse` T_0 ... T_{d-1} e_0,
    and its log scale (B,).
    """
    starts = list(range(0, positions, chunk_size))
    if reverse:
        starts.reverse()
    state = log_scale = None
    for start in starts:
        product, product_log = tree_product(
            matrices_of(start, min(start + chunk_size, positions)), log_format
        )
        if state is None:
            state = product[:, :, 0] if reverse else product[:, 0, :]
            log_scale = product_log
        elif reverse:
            state = torch.bmm(product, state[:, :, None])[:, :, 0]
            log_scale = log_scale + product_log
        else:
            state = torch.bmm(state[:, None, :], product)[:, 0, :]
            log_scale = log_scale + product_log
        if log_format:
            scale = state.detach().abs().amax(dim=-1, keepdim=True)
            scale = scale.clamp_min(torch.finfo(state.dtype).tiny)
            state, log_scale = state / scale, log_scale + scale.log()[:, 0]
    return state, log_scale


def tt_boundary_product(
    features: Tensor,
    cores: Sequence[Tensor],
    log_format: bool,
    reverse: bool,
    contraction: Literal["tree", "chunked"] = "tree",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> tuple[Tensor, Tensor]:
    """The sweep's result without the sweep: e_0^T T_0 ... T_{d-1} (or T_0 ... T_{d-1} e_0).

    Args:
        features: (B, d, m).
        cores: d cores, cores[k] (r_k, m, r_{k+1}).
        log_format: rescale per tree level and return the log scale.
        reverse: return the first column (the right-to-left sweep from r_d = 1) instead of the
            first row (the left-to-right sweep from r_0 = 1).
        contraction: "tree" (one tree over all d) or "chunked" (tree per chunk, sweep over chunks).
        chunk_size: positions per chunk for "chunked".

    Returns:
        state (B, r_d) (or (B, r_0) with `reverse`) and its log scale (B, 1): the same as the
        sequential sweep, up to rounding.
    """
    rank = padded_rank(cores)
    group = group_size(rank, features.shape[-1])
    size = cores[0].shape[0] if reverse else cores[-1].shape[-1]
    if contraction == "tree":
        matrices = transfer_matrices(features, stack_padded(cores, rank), group)
        product, log_scale = tree_product(matrices, log_format)
        state = product[:, :, 0] if reverse else product[:, 0, :]
    elif contraction == "chunked":

        def matrices_of(start: int, stop: int) -> Tensor:
            return transfer_matrices(
                features[:, start:stop], stack_padded(cores[start:stop], rank), group
            )

        chunk_size = max(group, chunk_size // group * group)
        state, log_scale = chunked_product(matrices_of, len(cores), chunk_size, log_format, reverse)
    else:
        raise ValueError(f"contraction must be 'tree' or 'chunked' here, got {contraction!r}.")
    return state[:, :size], log_scale[:, None]


def resolve_contraction(contraction: str, features: Tensor, cores: Sequence[Tensor]) -> str:
    """Check `contraction` and turn "auto" into a strategy for these shapes."""
    if contraction not in CONTRACTIONS:
        raise ValueError(
            f"contraction must be one of {', '.join(map(repr, CONTRACTIONS))}, got {contraction!r}."
        )
    if contraction != "auto":
        return contraction
    batch, positions, feature_dim = features.shape
    if not isinstance(batch, int):  # a symbolic batch (torch.export): decide without it
        batch = 1
    training = torch.is_grad_enabled() and (
        features.requires_grad or any(core.requires_grad for core in cores)
    )
    return choose_contraction(batch, positions, padded_rank(cores), feature_dim, training)
