"""Pure functions on tensors: contractions of the three formats, their dense forms, and TT / CP
linear algebra (orthogonalisation, rounding, TT-SVD, ALS)."""

from tensor_zoo.functional.contraction import (
    cp_contract,
    ht_contract,
    rescale,
    restore_scale,
    tt_contract,
)
from tensor_zoo.functional.decompositions import (
    CPFit,
    RoundedChain,
    cp_als,
    cp_reconstruct,
    right_orthogonalize,
    tt_round,
    tt_svd,
)
from tensor_zoo.functional.dense import cp_to_dense, ht_to_dense, tt_to_dense

__all__ = [
    "CPFit",
    "RoundedChain",
    "cp_als",
    "cp_contract",
    "cp_reconstruct",
    "cp_to_dense",
    "ht_contract",
    "ht_to_dense",
    "rescale",
    "restore_scale",
    "right_orthogonalize",
    "tt_contract",
    "tt_round",
    "tt_svd",
    "tt_to_dense",
]
