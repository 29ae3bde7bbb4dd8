"""Contract the feature sequence with a CP, TT or HT weight tensor: pure functions, batched.

Every function takes features (B, d, m) and the format's factors and returns logits (B, C),
l_y = <W_y, f(x_1) (x) ... (x) f(x_d)>, without forming W.

Log format (`log_format=True`): a product of d factors over- or underflows for long sequences,
so intermediate results are divided by their largest magnitude (per sample) and the log of
that scale is carried alongside. The scale is put back in the last step (`restore_scale`):
softmax is not scale-invariant, so nothing stripped for stability may stay stripped. The
scales are detached: since value / s * s == value, treating s as a constant gives the exact
gradient at no extra cost.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from tensor_zoo.functional.tt_engine import (
    DEFAULT_CHUNK_SIZE,
    TTContraction,
    resolve_contraction,
    scan_products,
    tt_boundary_product,
)


def rescale(values: Tensor, dim: int = -1) -> tuple[Tensor, Tensor]:
    """Divide by the (detached) max magnitude over `dim`; return (values / s, log s)."""
    scale = values.detach().abs().amax(dim=dim, keepdim=True)
    scale = scale.clamp_min(torch.finfo(values.dtype).tiny)
    return values / scale, scale.log()


def restore_scale(values: Tensor, log_scale: Tensor) -> Tensor:
    """Put the stripped scale back: values * exp(log_scale) (log_scale broadcasts)."""
    return values * log_scale.exp()


def cp_contract(
    features: Tensor, factors: Tensor, weights: Tensor, log_format: bool = True
) -> Tensor:
    """CP (shallow) network: `l_y = sum_a weights[y, a] prod_k <f(x_k), factors[k, :, a]>`.

    features (B, d, m), factors (d, m, r), weights (C, r) -> logits (B, C).
    """
    projections = torch.einsum("bdm,dmr->bdr", features, factors)  # (B, d, r)
    if not log_format:
        return projections.prod(dim=1) @ weights.T
    tiny = torch.finfo(projections.dtype).tiny
    log_abs = projections.abs().clamp_min(tiny).log().sum(dim=1)  # (B, r)
    sign = projections.sign().prod(dim=1)
    log_scale = log_abs.detach().amax(dim=-1, keepdim=True)
    terms = sign * torch.exp(log_abs - log_scale)
    return restore_scale(terms @ weights.T, log_scale)


def _tt_step_left(state: Tensor, feature: Tensor, core: Tensor) -> Tensor:
    """state (B, r_in), feature (B, m), core (r_in, m, r_out) -> (B, r_out)."""
    batch = state.shape[0]
    outer = (state[:, :, None] * feature[:, None, :]).reshape(batch, -1)
    return outer @ core.reshape(-1, core.shape[-1])


def _tt_step_right(state: Tensor, feature: Tensor, core: Tensor) -> Tensor:
    """state (B, r_out), feature (B, m), core (r_in, m, r_out) -> (B, r_in)."""
    batch = state.shape[0]
    outer = (feature[:, :, None] * state[:, None, :]).reshape(batch, -1)
    return outer @ core.permute(1, 2, 0).reshape(-1, core.shape[0])


def _tt_sweep(
    features: Tensor, cores: Sequence[Tensor], log_format: bool, reverse: bool
) -> tuple[Tensor, Tensor]:
    """Sweep the cores (left to right, or right to left) from a boundary state of ones."""
    batch = features.shape[0]
    boundary = cores[-1].shape[-1] if reverse else cores[0].shape[0]
    state = features.new_ones(batch, boundary)
    log_scale = features.new_zeros(batch, 1)
    # unbind, not indexing: the backward of one select per position allocates and fills a
    # zero tensor of the whole (B, d, m) features (and of a stacked core block) every time;
    # unbind's backward is one stack
    steps = zip(features.unbind(1), list(cores), strict=True)
    step = _tt_step_right if reverse else _tt_step_left
    for feature, core in reversed(list(steps)) if reverse else steps:
        state = step(state, feature, core)
        if log_format:
            state, step_log_scale = rescale(state)
            log_scale = log_scale + step_log_scale
    return state, log_scale


def tt_contract(
    features: Tensor,
    cores: Sequence[Tensor],
    label_core: Tensor | None = None,
    log_format: bool = True,
    contraction: TTContraction = "auto",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Tensor:
    """TT (recurrent) network: h_k = G_k(f(x_k), h_{k-1}), the score is the last state.

    features (B, d, m); cores[k] (r_k, m, r_{k+1}) with r_0 = 1.
    - label_core None: the last core carries the class, r_d = C.
    - label_core (r_p, C, r_p): a label site on bond p = len(cores) // 2; all other bonds
      end in 1, and l_y = h_left^T label_core[:, y, :] h_right.
    `contraction` picks how the chain is multiplied out (same numbers up to rounding):
    "sequential" (the sweep), "scan" (the sweep as one hand-differentiated op over merged
    sites, `tt_engine.scan_products`), "tree" (transfer matrices and a balanced tree of batched
    matmuls, `tt_engine`), "chunked" (tree within chunks of `chunk_size` positions, bounded
    memory), "auto" (`tt_engine.choose_contraction` on the shapes). Returns logits (B, C).
    """
    strategy = resolve_contraction(contraction, features, cores)

    def sweep(part: Tensor, part_cores: Sequence[Tensor], reverse: bool) -> tuple[Tensor, Tensor]:
        if strategy == "sequential":
            return _tt_sweep(part, part_cores, log_format, reverse)
        return tt_boundary_product(part, part_cores, log_format, reverse, strategy, chunk_size)

    split = len(cores) // 2
    if strategy == "scan" and label_core is None:
        [(state, log_scale)] = scan_products([(features, cores, False)], log_format)
    elif label_core is None:
        state, log_scale = sweep(features, cores, reverse=False)
    if label_core is None:
        return restore_scale(state, log_scale) if log_format else state
    if strategy == "scan":
        halves = [
            (features[:, :split], cores[:split], False),
            (features[:, split:], cores[split:], True),
        ]
        (left, left_log), (right, right_log) = scan_products(halves, log_format)
    else:
        left, left_log = sweep(features[:, :split], cores[:split], reverse=False)
        right, right_log = sweep(features[:, split:], cores[split:], reverse=True)
    logits = torch.einsum("bl,lyr,br->by", left, label_core, right)
    return restore_scale(logits, left_log + right_log) if log_format else logits


def ht_contract(
    features: Tensor,
    leaves: Tensor,
    nodes: Sequence[Tensor | tuple[Tensor, Tensor]],
    head: Tensor | None = None,
    log_format: bool = True,
) -> Tensor:
    """HT (deep) network: a binary tree over the d = 2^L positions, consecutive pairs first.

    features (B, d, m), leaves (d, m, r_0). nodes[l] is level l + 1 (d / 2^(l+1) nodes):
    - a full bilinear unit, a tensor (n_l, r_l, r_l, r_{l+1}): z_j = sum_pq a_p b_q T[p, q, j];
    - or CP-factored (Cohen's 1x1 convolution + product pooling), a pair (U, V) of
      (n_l, r_l, r_{l+1}): z = (a U) * (b V).
    head (r_L, C) is an optional linear output layer after the root. Returns logits (B, C).
    """
    batch = features.shape[0]
    state = torch.einsum("bdm,dmr->bdr", features, leaves)  # (B, n, r)
    log_scale = features.new_zeros(batch, state.shape[1], 1)
    if log_format:
        state, log_scale = rescale(state)
    for level in nodes:
        left, right = state[:, 0::2], state[:, 1::2]
        if isinstance(level, Tensor):
            count, rank_out = level.shape[0], level.shape[-1]
            outer = (left[..., :, None] * right[..., None, :]).reshape(batch, count, -1)
            state = torch.bmm(outer.transpose(0, 1), level.reshape(count, -1, rank_out))
            state = state.transpose(0, 1)
        else:
            left_weight, right_weight = level
            state = torch.einsum("bnp,npj->bnj", left, left_weight) * torch.einsum(
                "bnp,npj->bnj", right, right_weight
            )
        if log_format:
            log_scale = log_scale[:, 0::2] + log_scale[:, 1::2]
            state, step_log_scale = rescale(state)
            log_scale = log_scale + step_log_scale
    if state.shape[1] != 1:
        raise ValueError(
            f"The HT nodes reduce {features.shape[1]} positions to {state.shape[1]}, not 1."
        )
    logits = state[:, 0]
    if head is not None:
        logits = logits @ head
    return restore_scale(logits, log_scale[:, 0]) if log_format else logits
