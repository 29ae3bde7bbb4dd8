"""Expressive power you can measure: matricization ranks, TT / HT ranks, grid tensors, and
certified lower bounds on the width of an equivalent shallow (CP) network.

Plain torch on top of `tensor_zoo.networks`; see docs/expressivity.md for the theory.
"""

from tensor_zoo.expressivity.bounds import (
    CPRankBound,
    cp_parameter_count,
    cp_rank_lower_bound,
    relu_shallow_width_bound,
    theorem1_bound,
    theorem1_witness,
)
from tensor_zoo.expressivity.formats import dense_weights
from tensor_zoo.expressivity.grid import grid_tensor, random_templates
from tensor_zoo.expressivity.ranks import (
    HTRanks,
    MatricizationRank,
    TTRanks,
    ht_ranks,
    matricization,
    matricization_rank,
    tt_ranks,
)
from tensor_zoo.networks.base import is_multilinear

__all__ = [
    "CPRankBound",
    "HTRanks",
    "MatricizationRank",
    "TTRanks",
    "cp_parameter_count",
    "cp_rank_lower_bound",
    "dense_weights",
    "grid_tensor",
    "ht_ranks",
    "is_multilinear",
    "matricization",
    "matricization_rank",
    "random_templates",
    "relu_shallow_width_bound",
    "theorem1_bound",
    "theorem1_witness",
    "tt_ranks",
]
