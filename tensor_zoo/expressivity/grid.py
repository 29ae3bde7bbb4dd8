"""Grid tensors: a network's scores on every combination of template patches.

Given M template patches (the same at every position, or M per position), the grid tensor is

    Gamma[y, j_1, ..., j_d] = score_y(x_1 = t_{j_1}, ..., x_d = t_{j_d}),

(Cohen and Shashua 2016; Khrulkov, Hrinchuk and Oseledets 2019). It is computed through the
network's own feature map and `net.contract`, so it exists for learned feature maps and for
networks whose contraction is not multilinear (generalized `xi` networks). For a multilinear
network, Gamma_y = W_y x_1 F x_2 F ... x_d F with F (M, m) the templates' feature vectors, so
every matricization rank of Gamma_y is at most that of W_y, with equality when F has rank m.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

# Largest number of template combinations grid_tensor evaluates.
MAX_COMBINATIONS = 2**20


def random_templates(net: nn.Module, count: int, seed: int = 0) -> Tensor:
    """(count, n) N(0, 1) patch vectors (n = net.patches.patch_dim), float64.

    Patches are taken after the network's input normalisation, where N(0, 1) pixels are typical.
    Real patches: `net.patches((images - net.input_mean[:, None, None]) /
    net.input_std[:, None, None])` gives (B, d, n).
    """
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(count, net.patches.patch_dim, generator=generator, dtype=torch.float64)


def template_features(net: nn.Module, templates: Tensor) -> Tensor:
    """Patches (..., n) -> f(patches) (..., m) through the network's feature map in eval mode."""
    feature_map = net.feature_map
    training = feature_map.training
    dtype = next(net.parameters()).dtype
    try:
        feature_map.eval()
        with torch.no_grad():
            return feature_map(templates.to(dtype)[None]).squeeze(0)
    finally:
        feature_map.train(training)


def grid_tensor(
    net: nn.Module,
    templates: Tensor,
    positions: Sequence[int] | None = None,
    anchor: Tensor | None = None,
    chunk_size: int = 4096,
    max_combinations: int = MAX_COMBINATIONS,
) -> Tensor:
    """The network's scores on every combination of templates: (C, M, ..., M).

    Args:
        net: any network with `feature_map` and `contract(features (B, d, m)) -> (B, C)`.
        templates: (M, n) patch vectors used at every position, or (d, M, n), M per position.
            They are patches as `net.patches` returns them (after input normalisation).
        positions: the positions that run over the templates (default: all d, the full grid).
            A sub-grid: the other positions are held at `anchor`.
        anchor: (n,) or (d, n): the patch of the positions outside `positions` (default: the
            first template of each position).
        chunk_size: template combinations per call of `net.contract`.
        max_combinations: refuse grids with more than this many combinations (M^k).

    Returns:
        Gamma (C, M, ..., M), one mode per position in `positions` (in increasing order), in
        the network's dtype.
    """
    count = net.num_positions
    positions = list(range(count)) if positions is None else sorted({int(p) for p in positions})
    if templates.dim() == 2:
        templates = templates[None].expand(count, *templates.shape)
    if templates.dim() != 3 or templates.shape[0] != count:
        raise ValueError(
            f"templates must be (M, n) or (d, M, n) with d = {count}, got {tuple(templates.shape)}."
        )
    size = templates.shape[1]
    combinations = size ** len(positions)
    if combinations > max_combinations:
        raise ValueError(
            f"The grid has {size}^{len(positions)} = {combinations:.3g} template combinations "
            f"(more than {max_combinations}). Use a sub-grid: positions=[...] with fewer "
            f"positions (the others are held at an anchor patch), or fewer templates."
        )
    features = template_features(net, templates)  # (d, M, m)
    if anchor is None:
        base = features[:, 0]
    else:
        anchor = anchor[None].expand(count, -1) if anchor.dim() == 1 else anchor
        base = template_features(net, anchor)  # (d, m)
    index = torch.arange(combinations)
    scores = []
    with torch.no_grad():
        for chunk in index.split(chunk_size):
            batch = base[None].repeat(len(chunk), 1, 1)
            for slot, position in enumerate(positions):
                digit = (chunk // size ** (len(positions) - 1 - slot)) % size
                batch[:, position] = features[position, digit]
            scores.append(net.contract(batch))
    return torch.cat(scores).T.reshape(-1, *[size] * len(positions))
