"""Tensor-train and CP linear algebra on plain tensors: orthogonalisation, rounding, ALS.

A chain is a list of cores (r_k, n_k, r_{k+1}); it stands for the tensor
T[a, i_1, ..., i_d, b] = G_1[a, i_1, :] G_2[:, i_2, :] ... G_d[:, i_d, b] whose boundary bonds
r_0 (a) and r_d (b) are kept as they are (callers fold a class index into a mode, or use 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class RoundedChain:
    """What `tt_round` returns.

    Attributes:
        cores: the new cores; cores[k] (s_k, n_k, s_{k+1}), s_0 and s_d unchanged.
        singular_values: for each inner bond k = 1..d-1, the singular values (descending) of
            the matricization (modes before k | modes from k on) met by the sweep, before that
            bond was truncated (exact for the input chain when nothing was truncated earlier).
        error_bound: an upper bound on ||T - T_rounded||_F: the root of the sum over bonds of
            the squared discarded singular values (Oseledets 2011, Theorem 2.2).
        norm: ||T||_F of the input chain.
    """

    cores: list[Tensor]
    singular_values: list[Tensor]
    error_bound: float
    norm: float


def right_orthogonalize(cores: Sequence[Tensor]) -> list[Tensor]:
    """The same chain with cores 2..d right-orthonormal (rows of (r_k, n_k r_{k+1}) orthonormal).

    Bonds shrink to min(r_k, n_k r_{k+1}) where they exceed it; the tensor is unchanged.
    """
    cores = list(cores)
    for index in range(len(cores) - 1, 0, -1):
        rank_in, size, rank_out = cores[index].shape
        q, r = torch.linalg.qr(cores[index].reshape(rank_in, size * rank_out).T)
        cores[index] = q.T.reshape(-1, size, rank_out)
        cores[index - 1] = torch.tensordot(cores[index - 1], r.T, dims=1)
    return cores


def tt_round(
    cores: Sequence[Tensor], max_rank: int | None = None, tol: float | None = None
) -> RoundedChain:
    """TT-SVD rounding of a chain (Oseledets 2011, Algorithm 2): right-orthogonalise, then SVD
    every bond from left to right and keep the leading singular values.

    Args:
        cores: the chain, cores[k] (r_k, n_k, r_{k+1}).
        max_rank: keep at most this many singular values per bond (None: no cap).
        tol: relative accuracy: each bond drops the largest tail whose norm is at most
            tol * ||T||_F / sqrt(d - 1), so that ||T - T_rounded||_F <= tol * ||T||_F when
            max_rank does not bind. None or 0: drop nothing (the chain is only orthogonalised).

    Returns:
        A `RoundedChain`; its `error_bound` holds whatever max_rank and tol removed.
    """
    cores = right_orthogonalize(cores)
    norm = float(torch.linalg.vector_norm(cores[0]))
    bonds = len(cores) - 1
    threshold = (tol or 0.0) * norm / max(bonds, 1) ** 0.5
    spectra, discarded = [], 0.0
    for index in range(bonds):
        rank_in, size, rank_out = cores[index].shape
        u, s, vh = torch.linalg.svd(cores[index].reshape(rank_in * size, rank_out), False)
        tails = s.flip(0).square().cumsum(0).sqrt().flip(0)  # tails[j] = ||s[j:]||
        keep = int((tails > threshold).sum()) if threshold > 0 else len(s)
        keep = max(1, min(keep, max_rank or keep))
        spectra.append(s)
        discarded += float(s[keep:].square().sum())
        cores[index] = u[:, :keep].reshape(rank_in, size, keep)
        carried = s[:keep, None] * vh[:keep]
        cores[index + 1] = torch.tensordot(carried, cores[index + 1], dims=1)
    return RoundedChain(cores, spectra, discarded**0.5, norm)


def tt_svd(dense: Tensor, max_rank: int | None = None, tol: float | None = None) -> list[Tensor]:
    """A dense tensor (n_1, ..., n_d) -> chain cores[k] (r_k, n_k, r_{k+1}), r_0 = r_d = 1.

    Args:
        dense: the tensor.
        max_rank: as in `tt_round` (None: no cap).
        tol: as in `tt_round` (None: exact, no truncation).
    """
    shape = dense.shape
    cores, rest = [], dense.reshape(1, -1)
    for size in shape[:-1]:
        rank_in = rest.shape[0]
        u, s, vh = torch.linalg.svd(rest.reshape(rank_in * size, -1), False)
        cores.append(u.reshape(rank_in, size, -1))
        rest = s[:, None] * vh
    cores.append(rest.reshape(rest.shape[0], shape[-1], 1))
    if max_rank is None and not tol:
        return cores
    return tt_round(cores, max_rank, tol).cores


@dataclass(frozen=True)
class CPFit:
    """What `cp_als` returns.

    Attributes:
        factors: one (n_k, rank) matrix per mode of the tensor.
        residual: ||X - [[factors]]||_F / ||X||_F at the end.
        iterations: ALS sweeps done.
    """

    factors: list[Tensor]
    residual: float
    iterations: int


def cp_reconstruct(factors: Sequence[Tensor]) -> Tensor:
    """CP factors (n_k, R), k = 1..N -> the dense tensor (n_1, ..., n_N)."""
    dense = factors[0]
    for factor in factors[1:]:
        dense = torch.einsum("...a,ia->...ia", dense, factor)
    return dense.sum(-1)


def _khatri_rao(factors: Sequence[Tensor]) -> Tensor:
    """(n_k, R) matrices -> (prod n_k, R), the first matrix's index varying slowest."""
    product = factors[0]
    for factor in factors[1:]:
        product = torch.einsum("ia,ja->ija", product, factor).reshape(-1, factor.shape[1])
    return product


def cp_als(
    dense: Tensor,
    rank: int,
    num_iterations: int = 500,
    tol: float = 1e-12,
    generator: torch.Generator | None = None,
) -> CPFit:
    """Alternating least squares for a rank-`rank` CP decomposition of a small dense tensor.

    Args:
        dense: X (n_1, ..., n_N), N >= 2; every mode is unfolded, so keep it small.
        rank: R, the number of rank-one terms.
        num_iterations: at most this many sweeps.
        tol: stop when the relative residual changes by less than this between sweeps.
        generator: for the random N(0, 1) start (None: torch's global one).
    """
    factors = [
        torch.randn(size, rank, generator=generator, dtype=dense.dtype).to(dense.device)
        for size in dense.shape
    ]
    norm = torch.linalg.vector_norm(dense)
    residual, iterations = float("inf"), 0
    while iterations < num_iterations:
        iterations += 1
        for mode in range(dense.dim()):
            others = [factors[k] for k in range(dense.dim()) if k != mode]
            gram = torch.ones(rank, rank, dtype=dense.dtype, device=dense.device)
            for other in others:
                gram = gram * (other.T @ other)
            unfolded = dense.movedim(mode, 0).reshape(dense.shape[mode], -1)
            factors[mode] = torch.linalg.lstsq(gram, (unfolded @ _khatri_rao(others)).T).solution.T
        previous = residual
        residual = float(torch.linalg.vector_norm(dense - cp_reconstruct(factors)) / norm)
        if abs(previous - residual) < tol:
            break
    return CPFit(factors, residual, iterations)
