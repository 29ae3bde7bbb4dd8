"""tensor_zoo.expressivity and the format conversions, against tensorly and brute force."""

import itertools
import math
import subprocess
import sys
from functools import partial

import numpy as np
import pytest
import tensorly
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tensorly.decomposition import parafac, tensor_train

from tensor_zoo import CPNet, HTNet, SharedTTNet, TTNet
from tensor_zoo.expressivity import (
    cp_parameter_count,
    cp_rank_lower_bound,
    dense_weights,
    grid_tensor,
    ht_ranks,
    matricization,
    matricization_rank,
    random_templates,
    relu_shallow_width_bound,
    theorem1_bound,
    theorem1_witness,
    tt_ranks,
)
from tensor_zoo.functional import tt_contract

tensorly.set_backend("numpy")
TINY = {"in_channels": 1, "patch_size": 1, "num_classes": 3}
SETTINGS = settings(max_examples=12, deadline=None)


def random_net(cls, d, m, r, seed=0, **extra):
    """A float64 network on a (1, d) image with every parameter N(0, 1) (generic)."""
    torch.manual_seed(seed)
    net = cls(image_size=(1, d), feature_dim=m, rank=r, feature_map="tanh", **TINY, **extra)
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.normal_()
    return net.double().eval()


def class_cores(net, label):
    """Class `label`'s TT cores as numpy arrays (label_site="last")."""
    cores = [core.detach().numpy() for core in net.tt_cores()]
    cores[-1] = cores[-1][:, :, label : label + 1]
    return cores


# --- matricizations and TT / HT ranks against brute force and tensorly -----------------------


def test_matricization_puts_the_row_modes_first_in_order():
    W = torch.randn(2, 3, 4, 5)
    matrix = matricization(W, [3, 1])
    assert matrix.shape == (15, 8)
    for i, j, k, n in itertools.product(range(2), range(3), range(4), range(5)):
        assert matrix[j * 5 + n, i * 4 + k] == W[i, j, k, n]
    assert matricization(W, "odd_even").shape == (2 * 4, 3 * 5)
    assert matricization(W, "left_right").shape == (2 * 3, 4 * 5)


@pytest.mark.parametrize(("d", "m", "r"), [(4, 3, 2), (5, 2, 3), (6, 3, 4)])
def test_tt_ranks_of_a_network_are_tensorlys_minimal_tt_ranks(d, m, r):
    net = random_net(TTNet, d, m, r)
    for label, result in enumerate(tt_ranks(net)):
        assert result.method == "TT orthogonalisation"
        dense = tensorly.tt_to_tensor(class_cores(net, label))
        np.testing.assert_allclose(dense, net.full_tensor()[label].detach().numpy(), rtol=1e-10)
        expected = [min(r, m**k, m ** (d - k)) for k in range(1, d)]  # generic cores
        assert list(result.ranks) == expected
        assert tt_ranks(torch.from_numpy(dense)).ranks == result.ranks
        # tensorly's TT-SVD with these ranks is exact; one rank less somewhere is not
        exact = tensorly.tt_to_tensor(tensor_train(dense, [1, *result.ranks, 1]))
        np.testing.assert_allclose(exact, dense, rtol=1e-8, atol=1e-8 * np.abs(dense).max())
        fewer = [1, *result.ranks, 1]
        fewer[d // 2] -= 1
        short = tensorly.tt_to_tensor(tensor_train(dense, fewer))
        assert np.linalg.norm(short - dense) > 1e-6 * np.linalg.norm(dense)


@SETTINGS
@given(
    d=st.sampled_from([2, 4, 8]),
    m=st.integers(2, 3),
    r=st.integers(1, 3),
    seed=st.integers(0, 10**6),
    node_type=st.sampled_from(["full", "cp"]),
)
def test_ht_ranks_from_the_tree_equal_dense_ranks(d, m, r, seed, node_type):
    net = random_net(HTNet, d, m, r, seed, node_type=node_type)
    W = net.full_tensor().detach()
    for label, result in enumerate(ht_ranks(net)):
        assert result.method == "HT orthogonalisation"
        assert result.ranks == ht_ranks(W[label]).ranks


RANK_CASES = [
    (TTNet, {}),
    (TTNet, {"label_site": "middle"}),
    (HTNet, {}),
    (HTNet, {"node_type": "cp"}),
    (CPNet, {}),
]


@SETTINGS
@given(
    case=st.sampled_from(RANK_CASES),
    m=st.integers(2, 3),
    r=st.integers(1, 3),
    seed=st.integers(0, 10**6),
    rows=st.sampled_from(["odd_even", "left_right", (0, 1), (4, 5, 6, 7), (2, 3), (1, 6)]),
)
def test_matricization_ranks_of_networks_equal_dense_ranks(case, m, r, seed, rows):
    cls, extra = case
    net = random_net(cls, 8, m, r, seed, **extra)
    W = net.full_tensor().detach()
    assert torch.allclose(dense_weights(net), W, rtol=1e-10, atol=1e-12)
    for label, result in enumerate(matricization_rank(net, rows)):
        expected = matricization_rank(W[label], rows)
        assert result.rank == expected.rank, (result.method, rows)
        assert torch.allclose(
            result.singular_values[: result.rank], expected.singular_values[: result.rank]
        )


def test_large_networks_are_never_expanded_and_odd_even_is_refused_with_advice():
    net = TTNet(image_size=28, patch_size=7, feature_dim=32, rank=16).double()  # 32^16 entries
    assert [r.rank for r in matricization_rank(net, "left_right")] == [16] * 10
    assert all(r.ranks == (16,) * 15 for r in tt_ranks(net))
    with pytest.raises(ValueError, match="cp_rank_lower_bound"):
        matricization_rank(net, "odd_even")


# --- Theorem 1 and the paper's measurements -------------------------------------------------


@SETTINGS
@given(
    half=st.integers(1, 4),
    m=st.integers(2, 4),
    r=st.integers(1, 4),
    seed=st.integers(0, 10**6),
)
def test_theorem1_holds_on_random_tt_networks(half, m, r, seed):
    d = 2 * half
    if m**d > 6561:  # keep the dense matricization small: d = 8 needs m <= 3
        m = 3 if d == 8 else m
    net = random_net(TTNet, d, m, r, seed)
    for result in matricization_rank(net, "odd_even"):
        assert result.rank >= theorem1_bound(d, m, r) == min(m, r) ** half


@pytest.mark.parametrize(("d", "m", "r"), [(2, 3, 2), (4, 3, 2), (5, 3, 3), (6, 2, 3), (8, 3, 3)])
def test_the_witness_reaches_theorem1_exactly(d, m, r):
    witness = theorem1_witness(d, m, r, num_classes=2)
    assert all(rank <= r for rank in witness.ranks)
    bound = theorem1_bound(d, m, r)
    assert [result.rank for result in matricization_rank(witness, "odd_even")] == [bound] * 2
    assert [b.bound for b in cp_rank_lower_bound(witness)] == [bound] * 2
    W = witness.full_tensor()[0]  # brute force: prod_j [i_2j = i_2j+1 < q]
    q = min(m, r)
    for index in itertools.product(range(m), repeat=d):
        pairs = all(index[2 * j] == index[2 * j + 1] < q for j in range(d // 2))
        assert W[index] == float(pairs and (d % 2 == 0 or index[-1] == 0))


@pytest.mark.parametrize(
    ("d", "m", "r", "measured"), [(4, 3, 2, 6), (6, 3, 2, 18), (6, 3, 3, 27), (8, 2, 2, 16)]
)
def test_the_odd_even_ranks_measured_in_the_paper_notes(d, m, r, measured):
    for seed in range(3):
        net = random_net(TTNet, d, m, r, seed)
        ranks = {result.rank for result in matricization_rank(net, "odd_even")}
        assert ranks == {measured} and measured >= theorem1_bound(d, m, r)


def test_theorem2_tt_to_ht_needs_r_squared_and_ht_to_tt_r_to_the_ceil_half_log_d():
    tt = random_net(TTNet, 8, 4, 2)
    assert max(max(result.level_max) for result in ht_ranks(tt)) == 4  # r^2
    ht = random_net(HTNet, 8, 3, 3)
    assert max(max(result.ranks) for result in tt_ranks(ht)) == 9  # r^ceil(log2(8) / 2)


# --- grid tensors and the CP-rank bound ------------------------------------------------------


def test_grid_tensor_is_the_score_of_every_template_combination():
    net = random_net(TTNet, 4, 3, 2)
    templates = random_templates(net, 2)
    grid = grid_tensor(net, templates)
    assert grid.shape == (3, 2, 2, 2, 2)
    for combination in itertools.product(range(2), repeat=4):
        images = templates[list(combination), 0].reshape(1, 1, 1, 4)
        torch.testing.assert_close(grid[(slice(None), *combination)], net(images)[0])
    features = net.feature_map(templates[None])[0].detach()  # multilinear: W x_k F
    expected = torch.einsum("yabcd,ia,jb,kc,ld->yijkl", net.full_tensor(), *[features] * 4)
    torch.testing.assert_close(grid, expected.detach())
    anchor = templates[1]
    sub = grid_tensor(net, templates, positions=[1, 2], anchor=anchor)  # others held at anchor
    torch.testing.assert_close(sub, grid[:, 1, :, :, 1])
    per_position = torch.randn(4, 2, 1, dtype=torch.float64)  # (d, M, n): M templates a position
    grid = grid_tensor(net, per_position, chunk_size=3)
    for combination in itertools.product(range(2), repeat=4):
        patches = [per_position[k, j, 0] for k, j in enumerate(combination)]
        images = torch.stack(patches).reshape(1, 1, 1, 4)
        torch.testing.assert_close(grid[(slice(None), *combination)], net(images)[0])
    with pytest.raises(ValueError, match="sub-grid"):
        grid_tensor(net, random_templates(net, 40), max_combinations=10**6)


@pytest.mark.parametrize("cls", [TTNet, SharedTTNet, HTNet, CPNet])
def test_generalized_networks_get_grid_bounds_and_no_weight_tensor(cls):
    """xi = max(a, b, 0) (Khrulkov et al. 2019): no W, so only grid tensors answer."""
    net = random_net(cls, 4, 3, 2, xi="relu")
    fit = partial(CPNet.fit, rank=2)
    needs_w = (matricization_rank, tt_ranks, ht_ranks, HTNet.from_tt, TTNet.round, fit)
    for function in needs_w:
        with pytest.raises(ValueError, match="xi='relu'"):
            function(net)
    templates = random_templates(net, 3)
    grid = grid_tensor(net, templates)
    for combination in itertools.product(range(3), repeat=4):
        images = templates[list(combination), 0].reshape(1, 1, 1, 4)
        torch.testing.assert_close(grid[(slice(None), *combination)], net(images)[0])
    bounds = cp_rank_lower_bound(net, templates=templates)
    assert {b.method for b in bounds} == {"grid tensor"}
    for bound, tensor in zip(bounds, grid, strict=True):
        expected = matricization_rank(tensor.double(), "odd_even", tol=bound.tol).rank
        assert 1 <= bound.bound == expected


def test_relu_shallow_width_bound_is_reached_and_never_exceeds_a_relu_cp_width():
    """A ReLU shallow unit's grid matricization has rank <= M min(|rows|, |columns|)."""
    # one unit, T = 2, M = 4 interleaved values: max(x_i, y_j, 0) has full rank 4 = M * 1
    net = CPNet(
        in_channels=1,
        image_size=(1, 2),
        patch_size=1,
        feature_dim=1,
        rank=1,
        num_classes=1,
        feature_map="identity",
        append_one=False,
        xi="relu",
    ).double()
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.fill_(1.0)
        net.feature_map.linear.bias.zero_()
    values = torch.tensor([[1.0, 3.0, 5.0, 7.0], [2.0, 4.0, 6.0, 8.0]], dtype=torch.float64)
    (bound,) = cp_rank_lower_bound(net, positions=[0, 1], templates=values[..., None])
    assert bound.bound == 4 and relu_shallow_width_bound(bound, 4) == 1
    for width, seed in itertools.product((1, 2, 3), range(3)):  # random ReLU CPNets, T = 6
        net = random_net(CPNet, 6, 3, width, seed, xi="relu")
        templates = random_templates(net, 3, seed)
        for bound in cp_rank_lower_bound(net, positions=range(6), templates=templates):
            assert bound.bound <= width * 3 * 3
            assert relu_shallow_width_bound(bound, 3) <= width
    with pytest.raises(ValueError, match="both sides"):
        relu_shallow_width_bound(bound, 0)


@SETTINGS
@given(
    case=st.sampled_from(RANK_CASES),
    d=st.integers(2, 8),
    m=st.integers(2, 3),
    r=st.integers(1, 3),
    seed=st.integers(0, 10**6),
)
def test_the_cp_bound_never_exceeds_the_cp_rank_nor_the_full_matricization(case, d, m, r, seed):
    cls, extra = case
    if cls is HTNet:
        d = 2 ** max(1, d.bit_length() - 1)
    net = random_net(cls, d, m, r, seed, **extra)
    full = matricization_rank(net, "odd_even")
    sub = cp_rank_lower_bound(net, positions=range(d // 2 - d // 4, d // 2 + (d + 2) // 4))
    for whole, part in zip(full, sub, strict=True):
        assert part.bound <= whole.rank
        if cls is CPNet:
            assert whole.rank <= r
    if cls is CPNet:  # the default for CP: its exact rank, generic = r when r <= m^(d/2)
        assert [b.bound for b in cp_rank_lower_bound(net)] == [min(r, m ** (d // 2))] * 3


def test_cp_parameter_count_is_a_cp_network_of_that_width():
    net = TTNet(image_size=28, patch_size=7, feature_dim=8, rank=4)
    assert cp_parameter_count(net, 37) == CPNet(**net.shared_args(), rank=37).num_params


# --- conversions -----------------------------------------------------------------------------


def assert_same_scores(a, b, d):
    images = torch.rand(6, 1, 1, d, dtype=torch.float64)
    with torch.no_grad():
        actual, expected = a(images), b(images)
    scale = float(expected.abs().max())
    torch.testing.assert_close(actual, expected, rtol=1e-6, atol=1e-6 * scale)


@pytest.mark.parametrize("label_site", ["last", "middle"])
@pytest.mark.parametrize("d", [2, 4, 8])
def test_ht_from_tt_is_exact_with_widths_r_squared(label_site, d):
    tt = random_net(TTNet, d, 3, 2, label_site=label_site)
    ht = HTNet.from_tt(tt).eval()
    assert_same_scores(ht, tt, d)
    classes = 3 if label_site == "last" else 1
    assert max(ht.ranks) <= max(2 * 2, 2 * classes)
    assert ht.config["init_args"]["ordering"] == tt.config["init_args"]["ordering"]


@pytest.mark.parametrize("node_type", ["full", "cp"])
@pytest.mark.parametrize("d", [2, 4, 8])
def test_tt_from_ht_is_exact_with_minimal_ranks(node_type, d):
    ht = random_net(HTNet, d, 3, 2, node_type=node_type)
    tt = TTNet.from_ht(ht).eval()
    assert_same_scores(tt, ht, d)
    depth = d.bit_length() - 1
    assert max(max(result.ranks) for result in tt_ranks(tt)) <= 2 ** math.ceil(depth / 2)
    # minimal: the widths are W's TT-ranks (the class as an extra mode, all classes together)
    stacked = ht.full_tensor().detach().movedim(0, -1)
    assert list(tt.ranks) == list(tt_ranks(stacked).ranks)[: d - 1]


@pytest.mark.parametrize("label_site", ["last", "middle"])
def test_round_is_exact_by_default_and_keeps_its_error_bound(label_site):
    small = random_net(TTNet, 6, 3, 2, label_site=label_site)
    big = TTNet(**small.shared_args(), rank=5, label_site=label_site).double().eval()
    with torch.no_grad():  # the same W with bonds padded from 2 to 5
        for core, value in zip(big.cores, small.cores, strict=True):
            core.zero_()
            core[: value.shape[0], :, : value.shape[2]] = value
        if label_site == "middle":
            big.label_core.zero_()
            big.label_core[:2, :, :2] = small.label_core
    big.copy_front_end(small)
    rounded = big.round()
    assert_same_scores(rounded, small, 6)
    assert rounded.ranks == [2] * 5  # back to the minimal ranks
    assert rounded.rounding.error_bound < 1e-10 * rounded.rounding.norm
    truncated = small.round(max_rank=1)
    assert truncated.ranks == [1] * 5
    error = torch.linalg.vector_norm(truncated.full_tensor() - small.full_tensor())
    assert error <= truncated.rounding.error_bound * (1 + 1e-9)
    assert truncated.rounding.relative_error_bound > 0.01
    for tol in (0.05, 0.3, 0.6):
        within = small.round(tol=tol)
        error = torch.linalg.vector_norm(within.full_tensor() - small.full_tensor())
        norm = within.rounding.norm
        assert error <= within.rounding.error_bound + 1e-12 * norm
        assert within.rounding.error_bound <= tol * norm


def test_cp_fit_recovers_a_cp_network_and_reports_its_residual():
    cp = random_net(CPNet, 4, 3, 2)
    fitted = CPNet.fit(cp, 2).eval()
    assert fitted.fit_report.residual < 1e-8
    assert_same_scores(fitted, cp, 4)
    factors = [fitted.weights.detach().numpy(), *fitted.factors.detach().numpy()]
    W = cp.full_tensor().detach().numpy()
    rebuilt = tensorly.cp_to_tensor((np.ones(2), factors))  # the residual, measured by tensorly
    assert np.linalg.norm(rebuilt - W) / np.linalg.norm(W) < 1e-8
    tt = random_net(TTNet, 4, 3, 2)
    under = CPNet.fit(tt, 3)
    W = tt.full_tensor().detach().numpy()
    rebuilt = tensorly.cp_to_tensor(
        (np.ones(3), [under.weights.detach().numpy(), *under.factors.detach().numpy()])
    )
    measured = np.linalg.norm(rebuilt - W) / np.linalg.norm(W)
    assert measured == pytest.approx(under.fit_report.residual, rel=1e-9)
    tensorly_error = np.linalg.norm(tensorly.cp_to_tensor(parafac(W, 3, n_iter_max=500)) - W)
    assert measured < 1.5 * tensorly_error / np.linalg.norm(W)  # as good as tensorly's ALS


def test_fit_on_a_dense_tensor_takes_the_network_arguments():
    W = random_net(CPNet, 3, 2, 2).full_tensor().detach()
    fitted = CPNet.fit(W, 2, image_size=(1, 3), patch_size=1, in_channels=1, feature_dim=2)
    torch.testing.assert_close(fitted.full_tensor().detach(), W, rtol=1e-7, atol=1e-9)
    with pytest.raises(ValueError, match="d = 3 modes"):
        CPNet.fit(W, 2, image_size=(1, 4), patch_size=1, in_channels=1, feature_dim=2)


def test_tt_cores_is_what_the_contraction_uses():
    net = random_net(TTNet, 4, 3, 2)
    features = torch.rand(5, 4, 3, dtype=torch.float64)
    torch.testing.assert_close(net.contract(features), tt_contract(features, net.tt_cores()))


# --- the command line -------------------------------------------------------------------------


def test_certify_prints_ranks_and_a_certified_bound_for_a_published_checkpoint():
    result = subprocess.run(
        [sys.executable, "-m", "tensor_zoo.cli", "certify", "tt-digits-r16", "--max-rows", "256"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    lines = result.stdout.splitlines()
    assert lines[0].startswith("tt-digits-r16: TTNet, d = 16 positions, m = 8 features")
    assert "TT-ranks of W_y (every class): [8, 16, 16" in result.stdout
    bounds = [int(part.split()[-1]) for part in lines[4].split(",")]
    assert len(bounds) == 10 and min(bounds) > 128  # beyond any CP network of width 128
    width = max(bounds)
    net = CPNet(in_channels=1, image_size=8, patch_size=2, feature_dim=8, rank=width)
    assert f"= {net.num_params:,} parameters" in lines[5]


def test_conversions_refuse_forms_too_large_to_build():
    tt = TTNet(in_channels=3, image_size=32, patch_size=4, feature_dim=4, rank=16)  # d = 64
    with pytest.raises(ValueError, match=r"widths \[256, 256"):
        HTNet.from_tt(tt)
    ht = HTNet(image_size=28, patch_size=7, feature_dim=4, rank=16)  # d = 16
    with pytest.raises(ValueError, match="smaller ranks"):
        TTNet.from_ht(ht)
