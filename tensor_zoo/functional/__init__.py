"""Pure functions on tensors: contractions of the three formats and their dense forms."""

from tensor_zoo.functional.contraction import (
    cp_contract,
    ht_contract,
    rescale,
    restore_scale,
    tt_contract,
)
from tensor_zoo.functional.dense import cp_to_dense, ht_to_dense, tt_to_dense
from tensor_zoo.functional.tt_engine import choose_contraction, tt_boundary_product

__all__ = [
    "choose_contraction",
    "cp_contract",
    "cp_to_dense",
    "ht_contract",
    "ht_to_dense",
    "rescale",
    "restore_scale",
    "tt_boundary_product",
    "tt_contract",
    "tt_to_dense",
]
