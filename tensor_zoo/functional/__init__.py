"""Pure functions on tensors: contractions of the three formats and their dense forms."""

from tensor_zoo.functional.contraction import (
    cp_contract,
    ht_contract,
    rescale,
    restore_scale,
    tt_contract,
)
from tensor_zoo.functional.dense import cp_to_dense, ht_to_dense, tt_to_dense

__all__ = [
    "cp_contract",
    "cp_to_dense",
    "ht_contract",
    "ht_to_dense",
    "rescale",
    "restore_scale",
    "tt_contract",
    "tt_to_dense",
]
