"""TT contraction engines: a hand-differentiated scan, and a balanced tree of matmuls.

The scan (`scan_products`, `_Scan`) is the sequential sweep without autograd's bookkeeping:
runs of k sites merged into one (`scan_group_size`: k = 2 at m = 2, 1 at m >= 8), one matmul
and one reduction per step forward and backward, the gradients of all cores and features
formed in one batched op at the end, and the two halves of a middle label site moving in the
same steps. On a CPU it is the fastest for long sequences (see `choose_contraction`). Where the
merged feature is at least as wide as the rank (`transfer_form`), it sweeps instead over
transfer matrices formed by one batched GEMM (`_TransferScan`).

The tree: the sequential sweep of `tt_contract` is d small dependent GEMMs, each followed by a
rescale: for long sequences the cost is Python and autograd overhead per position, not
arithmetic. Here the features are first contracted into the cores in one batched GEMM, giving
the d transfer matrices T_k[b] = sum_i f_i(x_k) G_k[:, i, :] (each (R, R)), and their product
is formed in ceil(log2 d) levels of one batched matmul each (pairs (2j, 2j + 1); an odd one
out waits for the next level). This costs R / m + 1 times the sweep's FLOPs (matrix-matrix
instead of vector-matrix products) in ~log2 d large ops instead of ~6 d small ones.

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

import operator
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal, overload

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable
from torch.nn import functional as F

TTContraction = Literal["auto", "sequential", "scan", "tree", "chunked"]
CONTRACTIONS: tuple[str, ...] = ("auto", "sequential", "scan", "tree", "chunked")

# `auto`, measured on the 2-core development machine under load from other jobs, one thread,
# TorchMPS's shapes (README, "Performance"): the sweep costs a fixed overhead per position
# (Python, autograd), the tree R / k times the sweep's arithmetic (k sites merged per
# transfer matrix, `group_size`). Tree vs sweep, images/s: B 100, R 10, k 3, training 2.1x;
# B 100, R 20, k 4, training 1.0-1.2x; B 1000, R 10, inference 0.35x. So the tree is used
# while B R^3 / k, its extra work per position, stays below these (training, inference):
TREE_MIN_POSITIONS = 8
TREE_MAX_WORK = {True: 2e5, False: 5e4}
# Positions from which `auto` takes the scan on the CPU (see `choose_contraction`).
SCAN_MIN_POSITIONS = 128
# Transfer matrices alive at once (numbers) before `auto` switches from tree to chunked.
CHUNKED_ABOVE_NUMBERS = 2**27
DEFAULT_CHUNK_SIZE = 64
# Short sequences take the scan on the CPU in training when m >= this times R (see
# `choose_contraction`).
SCAN_WIDE_FEATURES = 2
# The fixed cost of one step of the scan, in multiply-adds (see `scan_group_size`).
SCAN_STEP_COST = 6e4
# The backward of the scan's transfer-matrix form handles this many numbers of transfer
# matrix gradients at a time (see `_TransferScan`).
TRANSFER_CHUNK_NUMBERS = 2**18
# The scan rescales its state after every this many steps (see `_Scan`).
SCAN_RESCALE_EVERY = 2


def choose_contraction(
    batch: int,
    positions: int,
    rank: int,
    feature_dim: int,
    training: bool = True,
    device_type: str = "cpu",
) -> str:
    """The strategy `auto` uses for (B, d, R, m): "sequential", "scan", "tree" or "chunked".

    On the CPU, sequences of at least SCAN_MIN_POSITIONS positions take the scan (measured on
    the 2-core development machine at TorchMPS's shapes, d = 196 and 784: 2-4x the tree's
    images/s in training, 2x the sweep's in inference). Shorter ones (d >= TREE_MIN_POSITIONS)
    take the scan in training when m >= SCAN_WIDE_FEATURES R, where it runs over transfer
    matrices (`transfer_form`). Measured on that machine (one thread, under load, contraction
    forward and backward, B = 128, d = 64, median of 7): m = 32, R = 16: scan 24 ms, sweep 32 ms,
    tree 43 ms (d = 16: 8.0, 9.8 and 9.4 ms; d = 8: 2.3, 6.8 and 2.4 ms); m = 16, R = 16: 19 vs
    21 ms (a tie); m = 32, R = 32: 118 vs 97 ms (the sweep wins); in inference the sweep wins
    (B = 256, m = 32, R = 16: 14 ms, scan 25, tree 20). Everything else keeps the rule below. On
    other devices (not measured for the scan) the rule below: the tree for long sequences.

    Args:
        batch: B, the batch size.
        positions: d, the number of cores in the sweep.
        rank: R, the largest bond dimension (boundaries included).
        feature_dim: m, the size of each feature vector.
        training: whether gradients will be taken (autograd makes the sweep's per-position
            overhead larger, so the tree wins for larger B R^3).
        device_type: where the contraction runs ("cpu", "cuda", ...).
    """
    if device_type == "cpu" and positions >= SCAN_MIN_POSITIONS:
        return "scan"
    wide = feature_dim >= SCAN_WIDE_FEATURES * rank and positions >= TREE_MIN_POSITIONS
    if device_type == "cpu" and training and wide:
        return "scan"
    group = group_size(rank, feature_dim)
    if positions < TREE_MIN_POSITIONS or batch * rank**3 / group > TREE_MAX_WORK[training]:
        return "sequential"
    if batch * positions * rank * rank / group > CHUNKED_ABOVE_NUMBERS:
        return "chunked"
    return "tree"


class CoreBlocks(Sequence[Tensor]):
    """d TT cores held as a few blocks of equal-shaped cores, block i (n_i, r, m, r') = n_i cores.

    A network that stores its uniform interior as one (d - 2, r, m, r) parameter hands its cores
    over as `CoreBlocks([first[None], interior, last[None]])`: the engine pads and stacks them
    in one op per block (`stack_padded`) instead of one per position, and autograd accumulates
    one gradient per block. Indexing gives a view of one core, slicing (step 1) a `CoreBlocks`.

    Args:
        blocks: tensors (n_i, r_i, m, r'_i), in position order; empty blocks are dropped.
    """

    def __init__(self, blocks: Sequence[Tensor]) -> None:
        self.blocks = [block for block in blocks if block.shape[0]]
        self._length = sum(block.shape[0] for block in self.blocks)

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[Tensor]:
        for block in self.blocks:
            yield from block.unbind(0)

    @overload
    def __getitem__(self, index: int) -> Tensor: ...

    @overload
    def __getitem__(self, index: slice) -> CoreBlocks: ...

    def __getitem__(self, index: int | slice) -> Tensor | CoreBlocks:
        if isinstance(index, slice):
            start, stop, step = index.indices(self._length)
            if step != 1:
                raise ValueError(f"CoreBlocks slices take step 1, got {step}.")
            blocks, offset = [], 0
            for block in self.blocks:
                low, high = max(start - offset, 0), min(stop - offset, block.shape[0])
                if low < high:
                    blocks.append(block[low:high])
                offset += block.shape[0]
            return CoreBlocks(blocks)
        position = operator.index(index) + (self._length if index < 0 else 0)
        if not 0 <= position < self._length:
            raise IndexError(f"core index {index} out of range for {self._length} cores")
        for block in self.blocks:
            if position < block.shape[0]:
                return block[position]
            position -= block.shape[0]
        raise AssertionError("unreachable")


def _pieces(cores: Sequence[Tensor]) -> list[tuple[Tensor, tuple[int, int]]]:
    """(tensor, (r_in, r_out)) per block of `cores` (per core for a plain sequence)."""
    if isinstance(cores, CoreBlocks):
        return [(block, (block.shape[1], block.shape[-1])) for block in cores.blocks]
    return [(core, (core.shape[0], core.shape[-1])) for core in cores]


def padded_rank(cores: Sequence[Tensor]) -> int:
    """R: the largest bond dimension of `cores` (r_0 and r_d included)."""
    return max(max(bonds) for _, bonds in _pieces(cores))


def stack_padded(cores: Sequence[Tensor], rank: int, bonds_first: bool = False) -> Tensor:
    """cores[k] (r_k, m, r_{k+1}) -> (d, R, m, R), each core zero-padded at the end of its bonds;
    with `bonds_first`, (d, R, R, m) (the transfer scan's layout), in the same one copy.

    Cores already (R, m, R) are stacked as they are; `CoreBlocks` in one op per block.
    """
    if isinstance(cores, CoreBlocks):
        blocks = [
            block
            if block.shape[1] == rank and block.shape[-1] == rank
            else F.pad(block, (0, rank - block.shape[-1], 0, 0, 0, rank - block.shape[1]))
            for block in cores.blocks
        ]
        if bonds_first:
            blocks = [block.transpose(-1, -2) for block in blocks]
            if len(blocks) == 1:
                return blocks[0].contiguous()
        return blocks[0] if len(blocks) == 1 else torch.cat(blocks)
    padded = [
        core
        if core.shape[0] == rank and core.shape[-1] == rank
        else F.pad(core, (0, rank - core.shape[-1], 0, 0, 0, rank - core.shape[0]))
        for core in cores
    ]
    return torch.stack([core.transpose(-1, -2) for core in padded] if bonds_first else padded)


def scan_group_size(rank: int, feature_dim: int, batch: int) -> int:
    """k for the scan: how many consecutive sites one step takes (see `merged_sites`).

    A step costs m^k R^2 B multiply-adds plus a fixed overhead (a few small ops), so per site
    (m^k R^2 B + SCAN_STEP_COST) / k; k in 1..3 minimises it. SCAN_STEP_COST was fitted on the
    2-core development machine: at m = 2, k = 2 was fastest for R = 10 and 20, B = 100 (training)
    and 1000 (inference); at m >= 8 merging never paid.
    """
    costs = {k: (feature_dim**k * rank * rank * batch + SCAN_STEP_COST) / k for k in (1, 2, 3)}
    return min(costs, key=costs.get)


def transfer_form(rank: int, merged_dim: int) -> bool:
    """Whether the scan runs over precomputed transfer matrices (`_TransferScan`): when a
    (merged) site's features are at least as many as the rank, M >= R, a step of `_Scan` forms
    M R B numbers, a step over transfer matrices R R B, and all transfer matrices come from one
    large GEMM instead of n small ones."""
    return merged_dim >= rank


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


def identity_cores(stacked: Tensor, count: int) -> Tensor:
    """`count` identity sites (core I on feature 0, zero elsewhere) shaped like the stacked cores
    (d, R, m, R): (count, R, m, R), of their dtype and device."""
    rank, feature_dim = stacked.shape[1], stacked.shape[2]
    identity = stacked.new_zeros(count, rank, feature_dim, rank)
    identity[:, :, 0, :] = torch.eye(rank, dtype=stacked.dtype, device=stacked.device)
    return identity


def merged_sites(
    features: Tensor, stacked: Tensor, group: int, sites: int | None = None
) -> tuple[Tensor, Tensor]:
    """Merge each run of `group` consecutive sites into one site of dimension m^group.

    features (B, d, m), stacked cores (d, R, m, R) -> features (B, n, m^k), cores (n, R, m^k, R),
    n = ceil(d / k). The merged core is the product of the k cores (batch-independent, computed
    once); the merged feature is the outer product of the k features, so its transfer matrix is
    the product of the k transfer matrices. A last incomplete run is completed by identity
    sites (core I on feature 0, feature e_0): multiplying by I is exact. With `sites` (a
    multiple of `group`, at least d), identity sites are appended up to that many.
    """
    batch, positions, feature_dim = features.shape
    rank = stacked.shape[1]
    missing = -positions % group if sites is None else sites - positions
    if group == 1 and not missing:
        return features, stacked
    if missing:
        stacked = torch.cat([stacked, identity_cores(stacked, missing)])
        unit = features.new_zeros(batch, missing, feature_dim)
        unit[:, :, 0] = 1
        features = torch.cat([features, unit], dim=1)
    if group == 1:
        return features, stacked
    count = (positions + missing) // group
    stacked = stacked.unflatten(0, (count, group))
    features = features.unflatten(1, (count, group))
    cores, merged = stacked[:, 0], features[:, :, 0]
    for site in range(1, group):
        cores = torch.einsum("nasb,nbtc->nastc", cores, stacked[:, site])
        cores = cores.reshape(count, rank, -1, rank)
        merged = (merged[..., :, None] * features[:, :, site, None, :]).reshape(batch, count, -1)
    return merged, cores


def merged_columns(columns: Tensor, group: int, sites: int) -> Tensor:
    """`merged_sites` for the features alone, batch last: (d, m, B) -> (sites / k, m^k, B).

    Identity sites (feature e_0) are appended up to `sites`. With the batch innermost, the
    outer products are contiguous broadcasts (10x faster than with m innermost at m = 2).
    """
    positions, feature_dim, batch = columns.shape
    if sites > positions:
        unit = columns.new_zeros(sites - positions, feature_dim, batch)
        unit[:, 0] = 1
        columns = torch.cat([columns, unit])
    if group == 1:  # a view: the gradient keeps the features' own memory layout
        return columns
    columns = columns.unflatten(0, (sites // group, group))
    merged = columns[:, 0]
    for site in range(1, group):
        merged = merged[:, :, None] * columns[:, site, None]
        merged = merged.reshape(sites // group, -1, batch)
    return merged


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


class _Scan(torch.autograd.Function):
    """The sweep over merged sites, run without autograd and differentiated by hand.

    weights (n, S, R, M, R): the cores of n (merged) sites of S independent chains; features
    (n, S, M, B), batch last. Each chain starts from e_0 and takes n steps
    h_j[l, b] = sum_{i, c} h_{j-1}[i, b] f_j[c, b] W_j[i, c, l], each one (M R, R) @ (R, B)
    matmul and one reduction over c. The transfer matrices (R, R) per sample are never formed:
    only (M R, B) per step, so nothing of size n S R^2 B is allocated. Log format: after every
    SCAN_RESCALE_EVERY-th step (and the last) the state is divided by its max magnitude, as the
    tree does per level (between two rescales the state passes at most 2 k sites). Backward:
    per step one matmul and one reduction; the gradients of all weights and features then come
    from one batched matmul and one reduction. Autograd would record ~6 nodes per step instead.
    """

    @staticmethod
    def forward(ctx, weights: Tensor, features: Tensor, log_format: bool) -> tuple[Tensor, Tensor]:
        count, sides, rank, width, _ = weights.shape
        batch = features.shape[-1]
        keep = any(ctx.needs_input_grad)
        # states[j]: the (rescaled) state before step j; only two buffers without gradients
        states = weights.new_empty(count + 1 if keep else 2, sides, rank, batch)
        states[0].zero_()
        states[0, :, 0] = 1
        scales = weights.new_ones(count, sides, 1, batch)
        # (M R_out, R_in): the left factor of step j's matmul
        left = weights.permute(0, 1, 3, 4, 2).reshape(count, sides, width * rank, rank).unbind(0)
        step_features = features[:, :, :, None].unbind(0)
        buffers, step_scales = states.unbind(0), scales.unbind(0)
        tiny = torch.finfo(weights.dtype).tiny
        mixed = weights.new_empty(sides, width * rank, batch)
        rescaled = _rescaled_steps(count) if log_format else ()
        for step in range(count):
            state, new = (step, step + 1) if keep else (step % 2, (step + 1) % 2)
            torch.bmm(left[step], buffers[state], out=mixed)
            product = mixed.view(sides, width, rank, batch).mul_(step_features[step])
            torch.sum(product, dim=1, out=buffers[new])
            if step in rescaled:
                _rescale_(buffers[new], step_scales[step], tiny)
        ctx.log_format = log_format
        if keep:
            ctx.save_for_backward(weights, features, states, scales)
        return _scan_result(ctx, buffers[new], scales, log_format)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_state: Tensor, _: Tensor) -> tuple[Tensor, Tensor | None, None]:
        weights, features, states, scales = ctx.saved_tensors
        count, sides, rank, width, _ = weights.shape
        batch = features.shape[-1]
        flat = weights.view(count, sides, rank * width, rank).unbind(0)
        step_features = features[:, :, None].unbind(0)
        grads = torch.empty_like(states[1:])  # grads[j]: d loss / d (output of step j, unscaled)
        mixed = weights.new_empty(count, sides, rank, width, batch)  # W_j g_j
        step_grads, step_mixed = grads.unbind(0), mixed.view(count, sides, -1, batch).unbind(0)
        step_scales = scales.unbind(0)
        step_grads[-1].copy_(grad_state)
        rescaled = _rescaled_steps(count) if ctx.log_format else ()
        for step in range(count - 1, -1, -1):
            if step in rescaled:
                step_grads[step].div_(step_scales[step])
            torch.bmm(flat[step], step_grads[step], out=step_mixed[step])
            if step:
                torch.linalg.vecdot(
                    mixed[step], step_features[step], dim=2, out=step_grads[step - 1]
                )
        grad_weights = grad_features = None
        if ctx.needs_input_grad[0]:
            inputs = states[:-1, :, :, None] * features[:, :, None]  # (n, S, R, M, B)
            grad_weights = torch.matmul(
                inputs.view(count, sides, rank * width, batch), grads.transpose(-1, -2)
            ).view_as(weights)
        if ctx.needs_input_grad[1]:
            grad_features = torch.linalg.vecdot(mixed, states[:-1, :, :, None], dim=2)
        return grad_weights, grad_features, None


class _TransferScan(torch.autograd.Function):
    """The scan's sweep over transfer matrices, differentiated by hand.

    weights (n, S, R, R, M) (W_j[i, c, l] as [i, l, c]), features (n, S, M, B), batch last,
    for n sites of S independent chains. The transfer matrices T_j[i, l, b] =
    sum_c W_j[i, c, l] f_j[c, b] come from one batched GEMM; each chain starts from e_0 and
    takes n steps h_j[l, b] = sum_i h_{j-1}[i, b] T_j[i, l, b]: one broadcast multiply and one
    reduction over R R B numbers, where `_Scan` forms M R B per step. Rescaled as `_Scan`
    (after every SCAN_RESCALE_EVERY-th step and the last). Backward: per step one multiply and
    one reduction; then, a chunk of sites at a time (TRANSFER_CHUNK_NUMBERS numbers, so that the
    chunk stays in cache), the gradients of the transfer matrices (an outer product) and from
    them those of the weights and features (two batched GEMMs): the (n, S, R, R, B) gradient of
    all transfer matrices is never allocated. The features' gradient is written batch first,
    in the memory layout the features came in (B, d, m), so that the feature map's elementwise
    backward runs on contiguous memory (on a strided gradient ReLU's took 1.3 ms instead of
    0.04 ms at the CIFAR-10 shape).
    """

    @staticmethod
    def forward(ctx, weights: Tensor, features: Tensor, log_format: bool) -> tuple[Tensor, Tensor]:
        count, sides, rank, _, width = weights.shape
        batch = features.shape[-1]
        flat_weights = weights.reshape(count, sides, rank * rank, width)
        matrices = torch.matmul(flat_weights, features).view(count, sides, rank, rank, batch)
        keep = any(ctx.needs_input_grad)
        states = matrices.new_empty(count + 1 if keep else 2, sides, rank, batch)
        states[0].zero_()
        states[0, :, 0] = 1
        scales = matrices.new_ones(count, sides, 1, batch)
        buffers, step_scales = states.unbind(0), scales.unbind(0)
        columns = states[:, :, :, None].unbind(0)  # buffers as (S, R, 1, B), made once
        tiny = torch.finfo(matrices.dtype).tiny
        product = matrices.new_empty(sides, rank, rank, batch)
        rescaled = _rescaled_steps(count) if log_format else ()
        for step, matrix in enumerate(matrices.unbind(0)):
            state, new = (step, step + 1) if keep else (step % 2, (step + 1) % 2)
            torch.mul(matrix, columns[state], out=product)
            torch.sum(product, dim=1, out=buffers[new])
            if step in rescaled:
                _rescale_(buffers[new], step_scales[step], tiny)
        ctx.log_format = log_format
        if keep:
            ctx.save_for_backward(flat_weights, features, matrices, states, scales)
        return _scan_result(ctx, buffers[new], scales, log_format)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_state: Tensor, _: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
        flat_weights, features, matrices, states, scales = ctx.saved_tensors
        count, sides, rank, _, batch = matrices.shape
        grads = torch.empty_like(states[1:])  # grads[j]: d loss / d (output of step j, unscaled)
        step_grads, step_scales = grads.unbind(0), scales.unbind(0)
        rows = grads[:, :, None].unbind(0)  # step_grads as (S, 1, R, B), made once
        step_matrices = matrices.unbind(0)
        product = matrices.new_empty(sides, rank, rank, batch)
        step_grads[-1].copy_(grad_state)
        rescaled = _rescaled_steps(count) if ctx.log_format else ()
        for step in range(count - 1, -1, -1):
            if step in rescaled:
                step_grads[step].div_(step_scales[step])
            if step:
                torch.mul(step_matrices[step], rows[step], out=product)
                torch.sum(product, dim=2, out=step_grads[step - 1])
        needs_weights, needs_features = ctx.needs_input_grad[:2]
        grad_weights = torch.empty_like(flat_weights) if needs_weights else None
        grad_features = None
        if needs_features:  # batch first in memory, as the features came
            grad_features = features.new_empty(batch, count, sides, features.shape[2]).permute(
                1, 2, 3, 0
            )
        chunk = max(1, min(count, TRANSFER_CHUNK_NUMBERS // (sides * rank * rank * batch)))
        outer = matrices.new_empty(chunk, sides, rank * rank, batch)
        for start in range(0, count, chunk):
            stop = min(start + chunk, count)
            part = outer[: stop - start]
            torch.mul(
                states[start:stop, :, :, None], grads[start:stop, :, None],
                out=part.view(stop - start, sides, rank, rank, batch),
            )  # fmt: skip
            if needs_weights:
                torch.matmul(
                    part, features[start:stop].transpose(-1, -2), out=grad_weights[start:stop]
                )
            if needs_features:  # (B, R R) @ (R R, M) per site, then rows of M into place
                per_sample = torch.matmul(part.transpose(-1, -2), flat_weights[start:stop])
                grad_features[start:stop].copy_(per_sample.transpose(-1, -2))
        if needs_weights:
            grad_weights = grad_weights.view(count, sides, rank, rank, -1)
        return grad_weights, grad_features, None


def _rescaled_steps(count: int) -> frozenset[int]:
    """The steps (of `count`) after which the scan rescales its state: every
    SCAN_RESCALE_EVERY-th and the last."""
    every = range(SCAN_RESCALE_EVERY - 1, count, SCAN_RESCALE_EVERY)
    return frozenset([*every, count - 1])


def _rescale_(state: Tensor, scale: Tensor, tiny: float) -> None:
    """Divide a scan state (sides, R, B) in place by its largest magnitude per column, written
    into `scale` (sides, 1, B) and kept at least `tiny`."""
    torch.amax(state.abs(), dim=1, keepdim=True, out=scale)
    scale.clamp_min_(tiny)
    state.div_(scale)


def _scan_result(
    ctx: Any, state: Tensor, scales: Tensor, log_format: bool
) -> tuple[Tensor, Tensor]:
    """A scan's outputs: the last state and the log of its accumulated scale (constant for
    autograd: the backward rescales with the saved scales)."""
    log_scale = scales.log().sum(dim=0) if log_format else torch.zeros_like(scales[0])
    ctx.mark_non_differentiable(log_scale)
    return state.clone(), log_scale


def scan_products(
    sides: Sequence[tuple[Tensor, Sequence[Tensor], bool]], log_format: bool
) -> list[tuple[Tensor, Tensor]]:
    """Boundary products of one or more TT chains by one hand-differentiated sweep (`_Scan`).

    Each side is (features (B, d_s, m), cores (r_k, m, r_{k+1}), reverse) as in
    `tt_boundary_product`. Runs of `scan_group_size` sites are merged into one (`merged_sites`),
    a reversed side is turned into a forward one (cores in reverse order, bonds swapped), every
    side is padded with identity sites to the same number of merged sites, and the sides move
    together: both halves of a middle label site take the same n steps. Returns
    (state (B, r), log scale (B, 1)) per side, as `tt_boundary_product` does.
    """
    rank = max(padded_rank(cores) for _, cores, _ in sides)
    features = sides[0][0]
    group = scan_group_size(rank, features.shape[-1], len(sides) * features.shape[0])
    count = max(-(-len(cores) // group) for _, cores, _ in sides)
    transfer = transfer_form(rank, features.shape[-1] ** group)
    # unmerged sites for the transfer form: the cores go straight into its (R, R, m) layout
    bonds_first = transfer and group == 1
    merged_features, merged_cores = [], []
    for features, cores, reverse in sides:
        stacked = stack_padded(cores, rank, bonds_first)
        columns = features.permute(1, 2, 0)  # (d_s, m, B): batch last from here
        if group > 1:  # contiguous outer products in merged_columns
            columns = columns.contiguous()
        if reverse:  # the bonds swap: (R_in, R_out) are dims 1, 2 bonds first, else 1, 3
            columns, stacked = (
                columns.flip(0),
                stacked.flip(0).transpose(1, 2 if bonds_first else 3),
            )
        merged_features.append(merged_columns(columns, group, count * group))
        if bonds_first:
            merged_cores.append(_identity_padded(stacked, count))
        else:
            merged_cores.append(merged_sites(features[:1], stacked, group, count * group)[1])
    features = _side_by_side(merged_features)  # (n, S, M, B)
    weights = _side_by_side(merged_cores)  # (n, S, R, R, M) bonds first, else (n, S, R, M, R)
    if transfer:
        # (n, S, R, R, M) @ (n, S, M, B) inside: every transfer matrix in one batched GEMM
        weights = weights if bonds_first else weights.transpose(-1, -2)
        state, log_scale = _TransferScan.apply(weights, features, log_format)
    else:
        state, log_scale = _Scan.apply(weights.contiguous(), features.contiguous(), log_format)
    results = []
    for index, (_, cores, reverse) in enumerate(sides):
        size = cores[0].shape[0] if reverse else cores[-1].shape[-1]
        results.append((state[index, :size].T, log_scale[index].T))
    return results


def _identity_padded(stacked: Tensor, sites: int) -> Tensor:
    """Cores bonds first (d, R, R, m) followed by identity sites up to `sites`, as
    `merged_sites` does for (d, R, m, R)."""
    missing = sites - stacked.shape[0]
    if not missing:
        return stacked
    identity = identity_cores(stacked.transpose(-1, -2), missing).transpose(-1, -2)
    return torch.cat([stacked, identity])


def _side_by_side(tensors: list[Tensor]) -> Tensor:
    """Stack the sides' tensors (n, ...) on dim 1; one side as a view, without a copy."""
    return tensors[0].unsqueeze(1) if len(tensors) == 1 else torch.stack(tensors, dim=1)


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
    """Check `contraction` and turn "auto" into a strategy for these shapes (and device).

    While tracing (`tracing`), "scan" becomes "tree".
    """
    if contraction not in CONTRACTIONS:
        raise ValueError(
            f"contraction must be one of {', '.join(map(repr, CONTRACTIONS))}, got {contraction!r}."
        )
    if contraction == "scan" and tracing():
        return "tree"
    if contraction != "auto":
        return contraction
    batch, positions, feature_dim = features.shape
    if not isinstance(batch, int):  # a symbolic batch (torch.export): decide without it
        batch = 1
    training = torch.is_grad_enabled() and (
        features.requires_grad or any(piece.requires_grad for piece, _ in _pieces(cores))
    )
    rank = padded_rank(cores)
    choice = choose_contraction(batch, positions, rank, feature_dim, training, features.device.type)
    return "tree" if choice == "scan" and tracing() else choice


def tracing() -> bool:
    """True while torch.compile, torch.export, TorchScript or ONNX export trace the code.

    The scan (a Python loop of in-place ops inside an autograd.Function) is not traceable:
    `resolve_contraction` gives the tree instead, which has the same numbers.
    """
    return (
        torch.compiler.is_compiling()
        or torch.jit.is_tracing()
        or torch.jit.is_scripting()
        or torch.onnx.is_in_onnx_export()
    )
