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
from tensor_zoo.functional.generalized import (
    XI_NAMES,
    Xi,
    check_xi,
    cp_contract_xi,
    ht_contract_xi,
    tt_contract_xi,
)
from tensor_zoo.functional.tt_engine import choose_contraction, tt_boundary_product

__all__ = [
    "XI_NAMES",
    "CPFit",
    "RoundedChain",
    "Xi",
    "check_xi",
    "choose_contraction",
    "cp_als",
    "cp_contract",
    "cp_contract_xi",
    "cp_reconstruct",
    "cp_to_dense",
    "ht_contract",
    "ht_contract_xi",
    "ht_to_dense",
    "rescale",
    "restore_scale",
    "right_orthogonalize",
    "tt_boundary_product",
    "tt_contract",
    "tt_contract_xi",
    "tt_round",
    "tt_svd",
    "tt_to_dense",
]
