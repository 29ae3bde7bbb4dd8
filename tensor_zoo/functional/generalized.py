"""Generalized tensor networks: the product in every unit replaced by a binary operation xi.

Cohen and Shashua ("Convolutional rectifier networks as generalized tensor decompositions",
ICML 2016) and Khrulkov, Hrinchuk and Oseledets ("Generalized tensor models for recurrent
neural networks", ICLR 2019) replace the product a * b that combines two numbers in every unit
of a CP, TT or HT network by an associative and commutative operation xi(a, b):

- "product": xi(a, b) = a b, today's (multilinear) networks;
- "relu": xi(a, b) = max(a, b, 0), the rectifier unit (ReLU activation + max pooling in
  Cohen and Shashua, the ReLU RNN in Khrulkov et al.);
- "logsumexp": xi(a, b) = log(e^a + e^b), its smooth form.

(Both papers need xi associative and commutative so that a fold over many arguments is well
defined. x^2 + y^2, sometimes quoted beside them, is not associative:
xi(xi(1, 1), 0) = 4 but xi(1, xi(1, 0)) = 2; it is not offered.)

The units (features (B, d, m) in, logits (B, C) out; f_k = features[:, k], k = 1..d):

- CP: l_y = sum_a weights[y, a] xi_{k=1..d} <f_k, factors[k, :, a]>, xi folded over the d
  positions (a fold over one position is the value itself).
- TT: h_1[j] = sum_i G_1[0, i, j] f_1[i] (the boundary state h_0 = [1] enters linearly, as in
  the product network), then h_k[j] = sum_{l, i} G_k[l, i, j] xi(f_k[i], h_{k-1}[l]) for
  k = 2..d; the logits are h_d. With a label core (r_p, C, r_p) on bond p, the right part is
  swept from position d down to p + 1 the same way (g_d[l] = sum_i G_d[l, i, 0] f_d[i],
  g_k[l] = sum_{i, j} G_k[l, i, j] xi(f_k[i], g_{k+1}[j])) and
  l_y = sum_{l, r} label[l, y, r] xi(h_p[l], g_{p+1}[r]).
- HT: leaves u_k = f_k @ leaves[k] (linear); a full unit with children a, b gives
  z_j = sum_{p, q} T[p, q, j] xi(a_p, b_q); a CP-factored unit (Cohen's 1x1 convolution +
  pooling) gives z = xi(a U, b V) elementwise; an optional head is linear.

With xi = "product" these are exactly `cp_contract`, `tt_contract`, `ht_contract` without log
format (the networks call those for the product; these functions exist for the others and are
checked against them). No log format here: rescaling a state by s is exact only when every
argument of xi shares the scale and xi is positively homogeneous (max(s a, s b, 0) =
s max(a, b, 0) for s > 0), but each TT step combines the rescaled state with unscaled features
and each HT unit combines two children with different scales. max and log-sum-exp grow at most
additively with depth (the product is the operation that over- or underflows), so none is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

import torch
from torch import Tensor

Xi = Literal["product", "relu", "logsumexp"]
XI_NAMES: tuple[str, ...] = get_args(Xi)


def check_xi(xi: str) -> str:
    """Return `xi` if it names a supported operation, else raise a ValueError that lists them."""
    if xi not in XI_NAMES:
        raise ValueError(
            f"xi must be one of {list(XI_NAMES)} (the binary operation of every unit: "
            f"product = a*b, relu = max(a, b, 0), logsumexp = log(e^a + e^b)), got {xi!r}."
        )
    return xi


def xi_pair(xi: str, left: Tensor, right: Tensor) -> Tensor:
    """xi(left, right) elementwise, with broadcasting."""
    if xi == "product":
        return left * right
    if xi == "relu":
        return torch.maximum(left, right).clamp_min(0)
    if xi == "logsumexp":
        return torch.logaddexp(left, right)
    raise ValueError(check_xi(xi))


def xi_fold(xi: str, values: Tensor, dim: int) -> Tensor:
    """xi folded over `dim` (associative and commutative, so the order does not matter)."""
    if xi == "product":
        return values.prod(dim=dim)
    if xi == "relu":
        folded = values.amax(dim=dim)
        return folded.clamp_min(0) if values.shape[dim] > 1 else folded
    if xi == "logsumexp":
        return values.logsumexp(dim=dim)
    raise ValueError(check_xi(xi))


def cp_contract_xi(features: Tensor, factors: Tensor, weights: Tensor, xi: str) -> Tensor:
    """Generalized CP: l_y = sum_a weights[y, a] xi_k <f_k, factors[k, :, a]>.

    features (B, d, m), factors (d, m, r), weights (C, r) -> logits (B, C).
    """
    projections = torch.einsum("bdm,dmr->bdr", features, factors)  # (B, d, r)
    return xi_fold(xi, projections, dim=1) @ weights.T


def _tt_xi_sweep(features: Tensor, cores: Sequence[Tensor], xi: str, reverse: bool) -> Tensor:
    """The generalized TT sweep (left to right, or right to left): the final state (B, r)."""
    batch = features.shape[0]
    order = range(len(cores) - 1, -1, -1) if reverse else range(len(cores))
    state = None
    for position in order:
        feature, core = features[:, position], cores[position]
        if reverse:
            core = core.permute(2, 1, 0)  # (r_out, m, r_in): the sweep runs the other way
        if state is None:  # the boundary bond has size 1 and enters linearly
            state = feature @ core[0]
            continue
        combined = xi_pair(xi, state[:, :, None], feature[:, None, :])  # (B, r, m)
        state = combined.reshape(batch, -1) @ core.reshape(-1, core.shape[-1])
    if state is None:
        raise ValueError("A TT network needs at least one core.")
    return state


def tt_contract_xi(
    features: Tensor, cores: Sequence[Tensor], label_core: Tensor | None, xi: str
) -> Tensor:
    """Generalized TT (recurrent) network, see the module docstring; shapes as `tt_contract`.

    features (B, d, m); cores[k] (r_k, m, r_{k+1}), r_0 = 1; label_core None (r_d = C) or
    (r_p, C, r_p) on bond p = len(cores) // 2 (then r_d = 1). Returns logits (B, C).
    """
    if label_core is None:
        return _tt_xi_sweep(features, cores, xi, reverse=False)
    split = len(cores) // 2
    left = _tt_xi_sweep(features[:, :split], cores[:split], xi, reverse=False)  # (B, r_p)
    right = _tt_xi_sweep(features[:, split:], cores[split:], xi, reverse=True)  # (B, r_p)
    combined = xi_pair(xi, left[:, :, None], right[:, None, :])  # (B, r_p, r_p)
    return torch.einsum("blr,lyr->by", combined, label_core)


def ht_contract_xi(
    features: Tensor,
    leaves: Tensor,
    nodes: Sequence[Tensor | tuple[Tensor, Tensor]],
    head: Tensor | None,
    xi: str,
) -> Tensor:
    """Generalized HT (deep) network, see the module docstring; shapes as `ht_contract`.

    features (B, d, m), leaves (d, m, r_0); nodes[l] a full unit (n_l, r_l, r_l, r_{l+1}) or a
    pair (U, V) of (n_l, r_l, r_{l+1}); head (r_L, C) or None. Returns logits (B, C).
    """
    batch = features.shape[0]
    state = torch.einsum("bdm,dmr->bdr", features, leaves)  # (B, n, r)
    for level in nodes:
        left, right = state[:, 0::2], state[:, 1::2]
        if isinstance(level, Tensor):
            count, rank_out = level.shape[0], level.shape[-1]
            combined = xi_pair(xi, left[..., :, None], right[..., None, :])
            combined = combined.reshape(batch, count, -1).transpose(0, 1)  # (n, B, r * r)
            state = torch.bmm(combined, level.reshape(count, -1, rank_out)).transpose(0, 1)
        else:
            left_weight, right_weight = level
            state = xi_pair(
                xi,
                torch.einsum("bnp,npj->bnj", left, left_weight),
                torch.einsum("bnp,npj->bnj", right, right_weight),
            )
    if state.shape[1] != 1:
        raise ValueError(
            f"The HT nodes reduce {features.shape[1]} positions to {state.shape[1]}, not 1."
        )
    logits = state[:, 0]
    return logits if head is None else logits @ head
