"""Shared blocks: patch extraction and feature maps (they import nothing else of ours)."""

from tensor_zoo.layers.feature_maps import (
    FEATURE_MAPS,
    AffineFeatureMap,
    FeatureMap,
    FourierFeatureMap,
    RBFFeatureMap,
    build_feature_map,
)
from tensor_zoo.layers.patches import ORDERINGS, PatchExtractor, grid_shape, ordering_permutation

__all__ = [
    "FEATURE_MAPS",
    "ORDERINGS",
    "AffineFeatureMap",
    "FeatureMap",
    "FourierFeatureMap",
    "PatchExtractor",
    "RBFFeatureMap",
    "build_feature_map",
    "grid_shape",
    "ordering_permutation",
]
