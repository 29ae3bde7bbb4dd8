"""Shared blocks: patch extraction and feature maps (they import nothing else of ours)."""

from tensor_zoo.layers.feature_maps import (
    FEATURE_MAPS,
    AffineFeatureMap,
    FeatureMap,
    FeatureMapName,
    FourierFeatureMap,
    RBFFeatureMap,
    build_feature_map,
)
from tensor_zoo.layers.patches import (
    ORDERINGS,
    Ordering,
    PatchExtractor,
    grid_shape,
    ordering_permutation,
)

__all__ = [
    "FEATURE_MAPS",
    "ORDERINGS",
    "AffineFeatureMap",
    "FeatureMap",
    "FeatureMapName",
    "FourierFeatureMap",
    "Ordering",
    "PatchExtractor",
    "RBFFeatureMap",
    "build_feature_map",
    "grid_shape",
    "ordering_permutation",
]
