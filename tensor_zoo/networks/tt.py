"""TT network (recurrent): h_k = G_k(f(x_k), h_{k-1}) with bilinear units, score = h_d.

With xi != "product", the generalized TT network (the ReLU RNN for xi = "relu").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor, nn

from tensor_zoo.functional import Xi, check_xi, tt_contract, tt_contract_xi, tt_round, tt_to_dense
from tensor_zoo.functional.tt_engine import CONTRACTIONS, CoreBlocks, TTContraction
from tensor_zoo.networks.base import (
    TensorNetwork,
    expand_ranks,
    require_multilinear,
    tiled_identity,
)
from tensor_zoo.networks.cp import CPNet

if TYPE_CHECKING:
    from tensor_zoo.networks.ht import HTNet

LabelSite = Literal["last", "middle"]

# TTNet.from_ht goes through a TT whose cores have up to this many entries before rounding.
FROM_HT_CORE_LIMIT = 2**24


@dataclass(frozen=True)
class TTRounding:
    """What `TTNet.round` did, kept on the rounded network as `net.rounding`.

    Attributes:
        error_bound: upper bound on ||W - W_rounded||_F, W (C, m, ..., m) all classes together.
        relative_error_bound: error_bound / ||W||_F.
        norm: ||W||_F of the network that was rounded.
        ranks_before, ranks_after: the bond ranks r_1..r_{d-1}.
    """

    error_bound: float
    relative_error_bound: float
    norm: float
    ranks_before: list[int]
    ranks_after: list[int]


class TTNet(TensorNetwork):
    """Recurrent network whose weight tensor is a tensor train; TT-ranks = hidden widths.

    Parameters (besides the feature map): `cores.k` (r_k, m, r_{k+1}) for k = 0..d-1, r_0 = 1.
    With `label_site="last"` the last core carries the class (r_d = num_classes); with
    `label_site="middle"` r_d = 1 and `label_core` (r_p, num_classes, r_p) sits on bond
    p = d // 2. `rank` is an int or the list of the d - 1 bond ranks r_1..r_{d-1}.

    Generalized TT network (Khrulkov, Hrinchuk and Oseledets, "Generalized tensor models for
    recurrent neural networks", ICLR 2019): `xi` replaces the product in every unit by an
    associative, commutative operation, "relu" (xi(a, b) = max(a, b, 0): the ReLU RNN) or
    "logsumexp" (log(e^a + e^b)). With G_k = `cores.{k-1}`:
    h_1[j] = sum_i G_1[0, i, j] f(x_1)[i] (the boundary state h_0 = [1] enters linearly, as in
    the product network) and h_k[j] = sum_{i, l} G_k[l, i, j] xi(f(x_k)[i], h_{k-1}[l]) for
    k = 2..d; logits = h_d. With `label_site="middle"` the right part is swept from position d
    down the same way and logits[y] = sum_{l, r} label_core[l, y, r] xi(h_L[l], h_R[r]).
    `log_format` only applies to the product (see `tensor_zoo.functional.generalized`), and
    `full_tensor()` only exists for the product: other networks have no weight tensor.

    `contraction` says how the chain is multiplied out: "sequential" (the sweep, one small
    GEMM per position), "scan" (the sweep as one hand-differentiated op over merged sites),
    "tree" (transfer matrices multiplied in a balanced tree: log2 d batched matmuls), "chunked"
    (tree per chunk, bounded memory) or "auto" (chosen from batch size, d, rank, m and device;
    see `tensor_zoo.functional.tt_engine.choose_contraction`). All give the same logits and
    gradients up to rounding.

    Args:
        rank: the TT-rank (hidden width) of every bond, or the list of the d - 1 bond ranks
            r_1..r_{d-1}.
        label_site: where the class index sits: "last" (on the last core: the RNN reads the
            classes out of its final state) or "middle" (a label core on bond d // 2).
        xi: the binary operation of the units: "product" (the TT network), "relu" (the ReLU
            RNN) or "logsumexp" (generalized TT networks).
        contraction: how the chain of cores is multiplied out: "auto", "sequential", "scan",
            "tree" or "chunked" (the same numbers; only speed and memory differ).
        **kwargs: the front end's arguments (in_channels, image_size, patch_size,
            feature_dim, num_classes, ...): see `TensorNetwork`.
    """

    appended_arguments = ("contraction",)

    def __init__(
        self,
        *,
        rank: int | list[int] = 16,
        label_site: LabelSite = "last",
        xi: Xi = "product",
        contraction: TTContraction = "auto",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.xi = check_xi(xi)
        if contraction not in CONTRACTIONS:
            raise ValueError(
                f"contraction must be one of {', '.join(map(repr, CONTRACTIONS))}, "
                f"got {contraction!r}."
            )
        self.contraction = contraction
        d, m = self.num_positions, self.feature_dim
        if label_site not in ("last", "middle"):
            raise ValueError(f"label_site must be 'last' or 'middle', got {label_site!r}.")
        if label_site == "middle" and d < 2:
            raise ValueError("label_site='middle' needs at least 2 positions (patches).")
        self.label_site = label_site
        self.ranks = expand_ranks(rank, d - 1, f"one per bond between the {d} positions")
        last = self.num_classes if label_site == "last" else 1
        bonds = [1, *self.ranks, last]
        if d >= 3 and len(set(self.ranks)) == 1:  # uniform interior: stored stacked
            inner_rank = self.ranks[0]
            self.first_core = nn.Parameter(torch.empty(1, m, inner_rank))
            self.inner_cores = nn.Parameter(torch.empty(d - 2, inner_rank, m, inner_rank))
            self.last_core = nn.Parameter(torch.empty(inner_rank, m, last))
            self.register_state_dict_post_hook(_cores_per_position)
            self.register_load_state_dict_pre_hook(_cores_stacked)
        else:
            self.cores = nn.ParameterList(
                nn.Parameter(torch.empty(bonds[k], m, bonds[k + 1])) for k in range(d)
            )
        self.label_core = None
        if label_site == "middle":
            middle = self.ranks[d // 2 - 1]
            self.label_core = nn.Parameter(torch.empty(middle, self.num_classes, middle))
        self.reset_parameters()
        self.record_config(rank=rank, label_site=label_site, xi=xi, contraction=contraction)

    @property
    def cores(self) -> Sequence[Tensor]:
        """The d cores (r_k, m, r_{k+1}) in position order (the label core apart: `label_core`).

        Storage: with one rank on every inner bond (and d >= 3) the cores are three parameters,
        `first_core` (1, m, r), `inner_cores` (d - 2, r, m, r) and `last_core` (r, m, r_d), and
        this is a `CoreBlocks` of views of them (in-place changes under `torch.no_grad()` reach
        the parameters); otherwise an `nn.ParameterList`. One stacked parameter makes the
        optimizer step, gradient accumulation and the engine's stacking one op instead of d.
        `state_dict()` has the per-position names `cores.{k}` either way
        (docs/checkpoint-format.md), and `load_state_dict` takes them.
        """
        if "cores" in self._modules:
            return self._modules["cores"]
        return CoreBlocks([self.first_core[None], self.inner_cores, self.last_core[None]])

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Near-identity cores: h stays close to a unit vector whatever d is (TorchMPS-style).

        Other xi: see `init_generalized_tt`.
        """
        if self.xi != "product":
            init_generalized_tt(list(self.cores), self.label_core, self.num_positions**-0.5)
            return
        constant = self.constant_channel
        last_index = len(self.cores) - 1
        for index, core in enumerate(self.cores):
            rank_in, _, rank_out = core.shape
            if constant is None:
                nn.init.normal_(core, std=(rank_in * self.feature_dim) ** -0.5)
                continue
            nn.init.normal_(core, std=self.noise_std(rank_in))
            if index == last_index and self.label_core is None:
                nn.init.normal_(core[:, constant], std=1.0)  # the class read-out of h_{d-1}
            elif index == last_index:
                core[:, constant] = rank_in**-0.5  # the right sweep starts from ones / sqrt(r)
            else:
                core[:, constant] = tiled_identity(rank_in, rank_out) * (rank_in / rank_out) ** 0.5
        if self.label_core is not None:
            nn.init.normal_(self.label_core, std=1.0)

    def lr_scales(self) -> dict[str, float]:
        """Other xi than the product: each core's step 1/sqrt(m) as large (generalized_lr_scale)."""
        if self.xi == "product":
            return {}
        if "cores" in self._modules:
            names = [f"cores.{k}" for k in range(len(self.cores))]
        else:
            names = list(STACKED_CORES)
        return dict.fromkeys(names, generalized_lr_scale(self.feature_dim))

    def tt_cores(self) -> Sequence[Tensor]:
        """The d cores (r_k, m, r_{k+1}), position order (the label core apart: `label_core`)."""
        return self.cores

    def contract(self, features: Tensor) -> Tensor:
        return tt_logits(
            features, self.tt_cores(), self.label_core, self.xi, self.log_format, self.contraction
        )

    def full_tensor(self) -> Tensor:
        require_multilinear(self, "full_tensor()")
        return tt_to_dense(self.tt_cores(), self.label_core)

    def _with_cores(
        self, cores: list[Tensor], label_core: Tensor | None, front_end: TensorNetwork
    ) -> TTNet:
        """A TTNet with these cores (bond ranks read from them) and the front end of another."""
        ranks = [core.shape[-1] for core in cores[:-1]]
        net = type(self)(**front_end.shared_args(), rank=ranks, label_site=self.label_site)
        net = net.to(dtype=cores[0].dtype, device=cores[0].device)
        net.copy_front_end(front_end)
        with torch.no_grad():
            for core, value in zip(net.cores, cores, strict=True):
                core.copy_(value)
            if label_core is not None:
                net.label_core.copy_(label_core)
        return net

    def round(self, max_rank: int | None = None, tol: float | None = None) -> TTNet:
        """TT-SVD rounding: a network with bond ranks as small as `max_rank` and `tol` allow.

        The class index is treated as one more mode (of the last core with label_site="last",
        of the label core on bond d // 2 with "middle"), so one set of bonds serves all classes.
        The bound on what was lost is returned on the new network as `net.rounding` (a
        `TTRounding`): ||W - W_rounded||_F <= net.rounding.error_bound, hence every logit moves
        by at most error_bound * prod_k ||f(x_k)||_2 (Cauchy-Schwarz). Feature map and
        normalisation are kept.

        Args:
            max_rank: at most this many singular values per bond (None: no cap).
            tol: relative Frobenius accuracy ||W - W_rounded||_F <= tol ||W||_F (None: drop only
                what is zero to working precision, 100 eps ||W||_F in all).
        """
        require_multilinear(self, "TTNet.round")
        cores = [core.detach() for core in self.tt_cores()]
        split, size = len(cores) // 2, self.feature_dim
        if self.label_core is None:
            last = cores[-1]
            chain = [*cores[:-1], last.reshape(last.shape[0], -1, 1)]
        else:
            chain = [*cores[:split], self.label_core.detach(), *cores[split:]]
        if tol is None:
            tol = 100 * torch.finfo(cores[0].dtype).eps
        rounded = tt_round(chain, max_rank, tol)
        new, label_core = rounded.cores, None
        if self.label_core is None:
            new[-1] = new[-1].reshape(new[-1].shape[0], size, self.num_classes)
        else:  # the label core must be square: pad its smaller bond with zeros
            label_core = new.pop(split)
            width = max(label_core.shape[0], label_core.shape[2])
            left, right = width - label_core.shape[0], width - label_core.shape[2]
            label_core = nn.functional.pad(label_core, (0, right, 0, 0, 0, left))
            new[split - 1] = nn.functional.pad(new[split - 1], (0, left))
            new[split] = nn.functional.pad(new[split], (0, 0, 0, 0, 0, right))
        net = self._with_cores(new, label_core, self)
        net.rounding = TTRounding(
            rounded.error_bound,
            rounded.error_bound / max(rounded.norm, torch.finfo(torch.float64).tiny),
            rounded.norm,
            list(self.ranks),
            list(net.ranks),
        )
        return net

    @classmethod
    def from_ht(cls, ht: HTNet) -> TTNet:
        """The exact TT form of an HT network (same positions, same logits), label_site="last".

        Built in two steps: first the TT whose state after k positions is the outer product of
        the outputs of the complete subtrees among them (bond k = prod of their widths, up to
        r^(log2 d - 1)), then rounded to working precision (`round`), which leaves the minimal
        ranks, the ranks of the (first k | rest, class) matricizations of W: per class at most
        r^ceil(log2(d) / 2) for HT width r (the paper's Theorem 2); the class, one more mode
        here, can widen the last bonds. Refuses when a core of the first step would have
        more than FROM_HT_CORE_LIMIT entries (e.g. d = 16, r = 16): use a smaller network.
        """
        require_multilinear(ht, "TTNet.from_ht")
        leaves = ht.leaves.detach()
        levels = []
        for level in ht.levels():
            if isinstance(level, tuple):  # CP-factored units as full ones
                level = torch.einsum("npj,nqj->npqj", *level)
            levels.append(level.detach())
        size, cores = ht.feature_dim, []
        stack: list[tuple[int, int]] = []  # (level, width) of the complete subtrees so far
        for position in range(ht.num_positions):
            widths = [width for _, width in stack]
            state = math.prod(widths)
            if state * size * state * leaves.shape[-1] > FROM_HT_CORE_LIMIT:
                raise ValueError(
                    f"TTNet.from_ht: the intermediate TT core at position {position} would have "
                    f"{state} x {size} x {state * leaves.shape[-1]} entries (more than "
                    f"{FROM_HT_CORE_LIMIT}); convert a network with fewer positions or smaller "
                    f"ranks."
                )
            # core[old..., i, new..., c]: identity on the old stack entries times the leaf
            identity = torch.eye(state, dtype=leaves.dtype, device=leaves.device)
            core = torch.einsum("ab,ic->aibc", identity, leaves[position])
            core = core.reshape(state, size, *widths, -1)
            stack.append((0, leaves.shape[-1]))
            while len(stack) > 1 and stack[-1][0] == stack[-2][0]:
                level, _ = stack.pop()
                unit = levels[level][position >> (level + 1)]  # (r_l, r_l, r_{l+1})
                core = torch.tensordot(core, unit, dims=2)
                stack[-1] = (level + 1, unit.shape[-1])
            new_state = math.prod(width for _, width in stack)
            cores.append(core.reshape(state, size, new_state))
        if ht.head is not None:
            cores[-1] = torch.tensordot(cores[-1], ht.head.detach(), dims=1)
        template = cls(**ht.shared_args(), rank=1)
        return template._with_cores(cores, None, ht).round()

    @classmethod
    def from_cp(cls, cp: CPNet, label_site: LabelSite = "last") -> TTNet:
        """The exact TT form of a CP network: rank r, diagonal cores, same logits."""
        require_multilinear(cp, "TTNet.from_cp")
        net = cls(**cp.shared_args(), rank=cp.rank, label_site=label_site)
        net = net.to(dtype=cp.factors.dtype, device=cp.factors.device)
        net.copy_front_end(cp)
        eye = torch.eye(cp.rank, dtype=cp.factors.dtype, device=cp.factors.device)
        with torch.no_grad():
            last = len(net.cores) - 1
            for index, (core, factor) in enumerate(zip(net.cores, cp.factors, strict=True)):
                if index == 0:
                    core.copy_(factor[None])
                elif index == last and label_site == "last":
                    core.copy_(torch.einsum("ia,ya->aiy", factor, cp.weights))
                elif index == last:
                    core.copy_(factor.T[:, :, None])
                else:
                    core.copy_(torch.einsum("ia,ab->aib", factor, eye))
            if net.label_core is not None:
                net.label_core.copy_(torch.einsum("ya,ab->ayb", cp.weights, eye))
        return net


STACKED_CORES = ("first_core", "inner_cores", "last_core")


def _cores_per_position(
    module: TTNet, state: dict[str, Tensor], prefix: str, local_metadata: dict
) -> None:
    """state_dict post-hook: the stacked cores under their per-position names `cores.{k}`.

    The file format stays what it always was (and older versions of the library read new
    files). Without `keep_vars` each core is its own copy, so that safetensors (which refuses
    tensors sharing memory) can write them.
    """
    items = list(state.items())
    state.clear()
    position = 0
    for key, value in items:
        name = key[len(prefix) :] if key.startswith(prefix) else None
        if name not in STACKED_CORES:
            state[key] = value
            continue
        cores = value.unbind(0) if name == "inner_cores" else [value]
        for core in cores:
            state[f"{prefix}cores.{position}"] = core if value.requires_grad else core.clone()
            position += 1


def _cores_stacked(
    module: TTNet,
    state: dict[str, Tensor],
    prefix: str,
    local_metadata: dict,
    strict: bool,
    missing_keys: list[str],
    unexpected_keys: list[str],
    error_msgs: list[str],
) -> None:
    """load_state_dict pre-hook: per-position cores `cores.{k}` into the stacked parameters.

    Left as they are when a core is missing or has another shape: load_state_dict then
    reports the stacked names as missing and the per-position ones as unexpected.
    """
    count = module.inner_cores.shape[0] + 2
    keys = [f"{prefix}cores.{k}" for k in range(count)]
    if not all(key in state for key in keys):
        return
    expected = [module.first_core.shape] + [module.inner_cores.shape[1:]] * (count - 2)
    expected.append(module.last_core.shape)
    if any(state[key].shape != shape for key, shape in zip(keys, expected, strict=True)):
        return
    cores = [state.pop(key) for key in keys]
    state[f"{prefix}first_core"] = cores[0]
    state[f"{prefix}inner_cores"] = torch.stack(cores[1:-1])
    state[f"{prefix}last_core"] = cores[-1]


def tt_logits(
    features: Tensor,
    cores: Sequence[Tensor],
    label_core: Tensor | None,
    xi: str,
    log_format: bool,
    contraction: TTContraction = "auto",
) -> Tensor:
    """The TT network's logits (B, C) for its cores: `tt_contract` (multiplied out as
    `contraction` says), or `tt_contract_xi` (always a sweep)."""
    if xi != "product":
        return tt_contract_xi(features, cores, label_core, xi)
    return tt_contract(features, cores, label_core, log_format, contraction)


def generalized_lr_scale(feature_dim: int) -> float:
    """Step multiplier 1/sqrt(m) for the cores of a TT network with xi != "product".

    A unit sums m terms xi(f_i, h_l) per state; with the product most vanish (relu features
    are sparse), with max(f_i, h_l, 0) or log(e^f_i + e^h_l) none does, so full Adam steps on all
    of them move the state too far. The scale is empirical. Measured (relu TT, 1 epoch of MNIST with
    the recipe, m = 32: validation accuracy 50% at lr 3e-3, 82% at 1e-3; digits, m = 8, 30
    epochs at lr 5e-3: 73.6% test accuracy unscaled, 88.9% with this scale).
    """
    return feature_dim**-0.5


@torch.no_grad()
def init_generalized_tt(
    cores: Sequence[Tensor], label_core: Tensor | None, noise_scale: float
) -> None:
    """Cores for xi != "product": inner units start as an averaging memory plus small noise.

    `cores` in position order (a shared core once). The first core (and, with a label core,
    the last one, where the right sweep starts) is linear in f: N(0, 1 / m). Inner cores start
    as G[l, i, j] = [l == j] / m, so h_k[j] = mean_i xi(f_k[i], h_{k-1}[j]): each state keeps
    its value and mixes in the features (for relu, mean_i max(f_i, h_j, 0) >= h_j; this plays
    the part of the identity recurrence of IRNNs, Le, Jaitly and Hinton 2015), plus
    N(0, 1 / (r_in m)) noise times `noise_scale` (1 / sqrt(d) for TTNet: independent noise at d
    positions adds O(1) in total). A class read-out at the last core is N(0, 1 / (r_in m)), a
    label core N(0, 1 / r_p^2). Measured (rank 16, m = 8): logit std within [0.1, 10] for
    d = 4 to 1024. On the digits (d = 16, rank 8, 30 epochs, lr 5e-3) a relu TT reached 73.6%
    test accuracy from this start, 60.3% from variance-preserving random cores.
    """
    last = len(cores) - 1
    for index, core in enumerate(cores):
        rank_in, feature_dim, _ = core.shape
        if index == 0 or (index == last and label_core is not None):
            nn.init.normal_(core, std=feature_dim**-0.5)
        elif index == last:
            nn.init.normal_(core, std=(rank_in * feature_dim) ** -0.5)
        else:
            init_generalized_inner_core(core, noise_scale)
    if label_core is not None:
        nn.init.normal_(label_core, std=1.0 / label_core.shape[0])


@torch.no_grad()
def init_generalized_inner_core(core: Tensor, noise_scale: float) -> None:
    """G[l, i, j] = [l == j mod r_in] / m + N(0, 1 / (r_in m)) * noise_scale (see above)."""
    rank_in, feature_dim, rank_out = core.shape
    nn.init.normal_(core, std=noise_scale * (rank_in * feature_dim) ** -0.5)
    core += tiled_identity(rank_in, rank_out)[:, None, :] / feature_dim
