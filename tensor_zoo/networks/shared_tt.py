"""Shared-core TT network: one core reused at every position, i.e. an RNN with a single cell."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from tensor_zoo.functional import Xi, check_xi, tt_to_dense
from tensor_zoo.networks.base import TensorNetwork, require_multilinear
from tensor_zoo.networks.tt import (
    LabelSite,
    generalized_lr_scale,
    init_generalized_inner_core,
    init_generalized_tt,
    tt_logits,
)


class SharedTTNet(TensorNetwork):
    """TT network whose inner positions all use the same core `core` (r, m, r): a true RNN.

    It is exactly the TTNet whose d cores are `tt_cores()` (same contraction, same `label_site`
    and `xi` semantics, see TTNet), with the weights tied. Parameters (besides the feature map):

    - `boundary_cores=True`: `first_core` (1, m, r) at position 1, `core` (r, m, r) at positions
      2..d-1, `last_core` at position d: (r, m, num_classes) with `label_site="last"`, (r, m, 1)
      with `label_site="middle"`. Needs d >= 3.
    - `boundary_cores=False`: `core` at every position, with a learned initial state
      `initial_state` (r,) (position 1's core is sum_l initial_state[l] core[l]) and, with
      `label_site="last"`, a read-out `head` (r, num_classes) (position d's core is core @ head),
      with `label_site="middle"`, a right boundary state `final_state` (r,) (position d's core
      is core @ final_state). For xi = "product" this is the RNN h_0 = initial_state,
      h_k = core(f(x_k), h_{k-1}), logits = h_d @ head; for other xi the initial state enters
      linearly, through position 1's core, as TTNet's boundary does.
    - `label_site="middle"`: `label_core` (r, num_classes, r) on bond p = d // 2.

    Khrulkov, Novikov and Oseledets (ICLR 2018) prove the exponential expressivity gap for TT
    networks with independent cores; it also holds with equal cores (OpenReview U5BQ9dmh78,
    2024), which is the network here. Storage O(m r^2) whatever d is.

    Args:
        rank: the hidden width r (one bond size: the core is shared).
        label_site: where the class index sits: "last" or "middle" (see TTNet).
        boundary_cores: give positions 1 and d cores of their own (needs d >= 3); else the
            shared core everywhere, with learned boundary states and a read-out.
        xi: the binary operation of the units: "product", "relu" or "logsumexp" (see TTNet).
        **kwargs: the front end's arguments (in_channels, image_size, patch_size,
            feature_dim, num_classes, ...): see `TensorNetwork`.
    """

    def __init__(
        self,
        *,
        rank: int = 16,
        label_site: LabelSite = "last",
        boundary_cores: bool = True,
        xi: Xi = "product",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.xi = check_xi(xi)
        d, m = self.num_positions, self.feature_dim
        if not isinstance(rank, int) or rank < 1:
            raise ValueError(
                f"SharedTTNet rank must be a positive int (one bond size), got {rank!r}."
            )
        if label_site not in ("last", "middle"):
            raise ValueError(f"label_site must be 'last' or 'middle', got {label_site!r}.")
        needed = 3 if boundary_cores else (2 if label_site == "middle" else 1)
        if d < needed:
            raise ValueError(
                f"SharedTTNet with boundary_cores={boundary_cores} and label_site={label_site!r} "
                f"needs at least {needed} positions (patches), got {d}; use TTNet or smaller "
                f"patches."
            )
        self.rank = rank
        self.label_site = label_site
        self.boundary_cores = boundary_cores
        last = self.num_classes if label_site == "last" else 1
        self.core = nn.Parameter(torch.empty(rank, m, rank))
        self.first_core = self.last_core = self.initial_state = None
        self.head = self.final_state = None
        if boundary_cores:
            self.first_core = nn.Parameter(torch.empty(1, m, rank))
            self.last_core = nn.Parameter(torch.empty(rank, m, last))
        else:
            self.initial_state = nn.Parameter(torch.empty(rank))
            if label_site == "last":
                self.head = nn.Parameter(torch.empty(rank, self.num_classes))
            else:
                self.final_state = nn.Parameter(torch.empty(rank))
        self.label_core = None
        if label_site == "middle":
            self.label_core = nn.Parameter(torch.empty(rank, self.num_classes, rank))
        self.reset_parameters()
        self.record_config(rank=rank, label_site=label_site, boundary_cores=boundary_cores, xi=xi)

    def tt_cores(self) -> list[Tensor]:
        """The d per-position cores (r_k, m, r_{k+1}) of the equivalent TTNet, `core` repeated."""
        d = self.num_positions
        if self.boundary_cores:
            return [self.first_core, *[self.core] * (d - 2), self.last_core]
        first = torch.einsum("l,lij->ij", self.initial_state, self.core)[None]  # (1, m, r)
        end = self.head if self.head is not None else self.final_state[:, None]  # (r, C or 1)
        if d == 1:
            return [first @ end]
        return [first, *[self.core] * (d - 2), self.core @ end]

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Near-identity, like TTNet's, with the shared core's noise 1/sqrt(d) times smaller.

        The same noise acts at every position, so it adds up coherently (d times) rather than
        as a random walk (sqrt(d) times): its std is noise_std(r) / sqrt(d), which keeps the
        logits O(1) at d = 16 and 64. Other xi: `init_generalized_tt`, the shared noise
        1/sqrt(d) times smaller for the same reason, N(0, 1) boundary states, an
        N(0, 1 / r) head.
        """
        if self.xi != "product":
            noise_scale = 1.0 / self.num_positions
            if self.boundary_cores:
                cores = [self.first_core, self.core, self.last_core]
                init_generalized_tt(cores, self.label_core, noise_scale)
            else:
                init_generalized_inner_core(self.core, noise_scale)
                if self.label_core is not None:
                    nn.init.normal_(self.label_core, std=1.0 / self.rank)
            for vector in (self.initial_state, self.final_state):
                if vector is not None:
                    nn.init.normal_(vector, std=1.0)
            if self.head is not None:
                nn.init.normal_(self.head, std=self.rank**-0.5)
            return
        r, constant, d = self.rank, self.constant_channel, self.num_positions
        if constant is None:  # as TTNet without the constant feature: variance-preserving
            nn.init.normal_(self.core, std=(r * self.feature_dim) ** -0.5)
        else:
            nn.init.normal_(self.core, std=self.noise_std(r) / d**0.5)
            self.core[:, constant] += torch.eye(r)
        if self.initial_state is not None:
            self.initial_state.fill_(r**-0.5)  # position 1 starts as ones / sqrt(r), as TTNet
        if self.final_state is not None:
            self.final_state.fill_(r**-0.5)
        if self.head is not None:
            nn.init.normal_(self.head, std=1.0 if constant is not None else r**-0.5)
        if self.first_core is not None:
            self._reset_boundary_cores(constant)
        if self.label_core is not None:
            nn.init.normal_(self.label_core, std=1.0)

    def _reset_boundary_cores(self, constant: int | None) -> None:
        r = self.rank
        if constant is None:
            nn.init.normal_(self.first_core, std=self.feature_dim**-0.5)
            nn.init.normal_(self.last_core, std=(r * self.feature_dim) ** -0.5)
            return
        nn.init.normal_(self.first_core, std=self.noise_std(1))
        self.first_core[:, constant] = r**-0.5
        nn.init.normal_(self.last_core, std=self.noise_std(r))
        if self.label_site == "last":
            nn.init.normal_(self.last_core[:, constant], std=1.0)  # the class read-out
        else:
            self.last_core[:, constant] = r**-0.5

    def lr_scales(self) -> dict[str, float]:
        """Other xi than the product: the cores' steps 1/sqrt(m) as large, as TTNet's."""
        if self.xi == "product":
            return {}
        names = ("core", "first_core", "last_core")
        return {name: generalized_lr_scale(self.feature_dim) for name in names}

    def contract(self, features: Tensor) -> Tensor:
        return tt_logits(features, self.tt_cores(), self.label_core, self.xi, self.log_format)

    def full_tensor(self) -> Tensor:
        require_multilinear(self, "full_tensor()")
        return tt_to_dense(self.tt_cores(), self.label_core)
