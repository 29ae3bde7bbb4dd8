from typing import get_args

import pytest
import torch

from tensor_zoo.layers import FEATURE_MAPS, FeatureMapName, FourierFeatureMap, build_feature_map


@pytest.mark.parametrize("name", sorted(FEATURE_MAPS))
@pytest.mark.parametrize("append_one", [True, False])
def test_feature_maps_shape_and_constant(name, append_one):
    feature_map = build_feature_map(name, in_features=12, out_features=5, append_one=append_one)
    features = feature_map(torch.randn(4, 7, 12))
    assert features.shape == (4, 7, 5)
    assert torch.isfinite(features).all()
    if append_one:
        assert torch.equal(features[..., -1], torch.ones(4, 7))


def test_affine_map_is_sigma_of_affine():
    feature_map = build_feature_map("relu", 3, 4, append_one=True)
    x = torch.randn(2, 5, 3)
    expected = torch.relu(x @ feature_map.linear.weight.T + feature_map.linear.bias)
    torch.testing.assert_close(feature_map(x)[..., :3], expected)


@pytest.mark.parametrize("name", ["relu", "identity"])
@pytest.mark.parametrize("training", [True, False])
def test_the_constant_as_an_output_of_the_linear_layer_changes_nothing(name, training):
    """relu and identity maps make the constant an m-th output of the linear layer: the same
    features, dropout masks and gradients in float64 as sigma(A x + b), dropout, then the pad."""
    feature_map = build_feature_map(name, 6, 5, append_one=True, dropout=0.3).double()
    feature_map.train(training)
    x = torch.randn(8, 7, 6, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(8, 7, 5, dtype=torch.float64)
    results = []
    for forward in (feature_map.forward, super(type(feature_map), feature_map).forward):
        torch.manual_seed(0)
        features = forward(x)
        grads = torch.autograd.grad((features * weights).sum(), [x, *feature_map.parameters()])
        results.append((features, grads))
    (fused, fused_grads), (plain, plain_grads) = results
    torch.testing.assert_close(fused, plain, rtol=1e-12, atol=1e-12)
    assert torch.equal(fused[..., -1], torch.ones(8, 7, dtype=torch.float64))
    for fused_grad, plain_grad in zip(fused_grads, plain_grads, strict=True):
        torch.testing.assert_close(fused_grad, plain_grad, rtol=1e-12, atol=1e-12)
    if training:  # whole patches dropped, in both
        assert (plain[..., :-1] == 0).all(-1).any()


def test_rbf_map_peaks_at_its_templates():
    feature_map = build_feature_map("rbf", 6, 4, append_one=False)
    at_templates = feature_map(feature_map.templates.detach()[None])[0]
    torch.testing.assert_close(torch.diagonal(at_templates), torch.ones(4))
    assert (at_templates <= 1).all()


def test_fourier_map_is_fixed_and_reproducible():
    first, second = FourierFeatureMap(4, 9, seed=3), FourierFeatureMap(4, 9, seed=3)
    assert not any(p.requires_grad for p in first.parameters())
    assert set(first.state_dict()) == {"frequencies", "phases"}
    x = torch.randn(2, 3, 4)
    torch.testing.assert_close(first(x), second(x))


def test_dropout_drops_whole_patches_but_never_the_constant():
    feature_map = build_feature_map("identity", 3, 4, append_one=True, dropout=0.5)
    x = torch.randn(64, 16, 3)
    feature_map.train()
    features = feature_map(x)
    assert torch.equal(features[..., -1], torch.ones(64, 16))
    dropped = (features[..., :-1] == 0).all(-1)
    assert 0.3 < dropped.float().mean() < 0.7
    feature_map.eval()
    torch.testing.assert_close(
        feature_map(x)[..., :-1], x @ feature_map.linear.weight.T + feature_map.linear.bias
    )


def test_unknown_feature_map_lists_the_known_ones():
    with pytest.raises(ValueError, match="expected one of"):
        build_feature_map("softmax", 3, 4)


def test_the_feature_map_names_of_the_signatures_are_the_described_ones():
    assert tuple(FEATURE_MAPS) == get_args(FeatureMapName)
