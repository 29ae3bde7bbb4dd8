"""Generalized networks (xi) and the shared-core TT, against per-sample pure-Python oracles."""

import math
from functools import reduce
from pathlib import Path

import pytest
import torch
from conftest import brute_force_logits
from test_lightning import fit_tiny
from test_networks import randomize

from tensor_zoo import CPNet, HTNet, SharedTTNet, TTNet, build_network
from tensor_zoo.functional import (
    XI_NAMES,
    cp_contract,
    cp_contract_xi,
    ht_contract,
    ht_contract_xi,
    tt_contract,
    tt_contract_xi,
)

TINY = {"in_channels": 1, "patch_size": 1, "num_classes": 3}
XI_OPERATIONS = {
    "product": lambda a, b: a * b,
    "relu": lambda a, b: max(a, b, 0.0),
    "logsumexp": lambda a, b: math.log(math.exp(a) + math.exp(b)),
}
GENERALIZED = [
    pytest.param(CPNet, {}, id="cp"),
    pytest.param(TTNet, {}, id="tt-last"),
    pytest.param(TTNet, {"label_site": "middle"}, id="tt-middle"),
    pytest.param(HTNet, {}, id="ht-full"),
    pytest.param(HTNet, {"node_type": "cp"}, id="ht-cp"),
    pytest.param(SharedTTNet, {}, id="shared-last"),
    pytest.param(SharedTTNet, {"label_site": "middle"}, id="shared-middle"),
    pytest.param(SharedTTNet, {"boundary_cores": False}, id="shared-rnn-last"),
    pytest.param(
        SharedTTNet, {"boundary_cores": False, "label_site": "middle"}, id="shared-rnn-mid"
    ),
]


def dot(vector, column):
    return sum(v * c for v, c in zip(vector, column, strict=True))


def cp_oracle(net, f, xi):
    """score_y = sum_a lambda_ya xi_k <f_k, v_ka>, one sample, python floats."""
    op, factors, weights = XI_OPERATIONS[xi], net.factors.tolist(), net.weights.tolist()
    terms = [
        reduce(op, [dot(f[k], [row[a] for row in factors[k]]) for k in range(len(f))])
        for a in range(net.rank)
    ]
    return [dot(row, terms) for row in weights]


def tt_oracle(cores, label, f, xi):
    """h_1 = f_1 G_1[0], h_k[j] = sum_{l,i} G_k[l, i, j] xi(f_k[i], h_{k-1}[l]), one sample."""
    op = XI_OPERATIONS[xi]
    cores = [core.tolist() for core in cores]

    def step(core, feature, state, forward):
        rank_in, m, rank_out = len(core), len(core[0]), len(core[0][0])
        if forward:  # h[j] = sum_{l, i} core[p][i][j] xi(f[i], state[p])
            return [
                sum(
                    core[p][i][j] * op(feature[i], state[p])
                    for p in range(rank_in)
                    for i in range(m)
                )
                for j in range(rank_out)
            ]
        return [  # g[p] = sum_{i, j} core[p][i][j] xi(f[i], state[j])
            sum(core[p][i][j] * op(feature[i], state[j]) for j in range(rank_out) for i in range(m))
            for p in range(rank_in)
        ]

    def first(core, feature, forward):
        if forward:
            return [dot(feature, [row[j] for row in core[0]]) for j in range(len(core[0][0]))]
        return [dot(feature, [row[0] for row in core[p]]) for p in range(len(core))]

    if label is None:
        state = first(cores[0], f[0], True)
        for k in range(1, len(cores)):
            state = step(cores[k], f[k], state, True)
        return state
    split = len(cores) // 2
    left = first(cores[0], f[0], True)
    for k in range(1, split):
        left = step(cores[k], f[k], left, True)
    right = first(cores[-1], f[-1], False)
    for k in range(len(cores) - 2, split - 1, -1):
        right = step(cores[k], f[k], right, False)
    label = label.tolist()
    rank = len(left)
    return [
        sum(label[p][y][r] * op(left[p], right[r]) for p in range(rank) for r in range(rank))
        for y in range(len(label[0]))
    ]


def ht_oracle(net, f, xi):
    """Leaves linear, z_j = sum_pq T[p, q, j] xi(a_p, b_q) or z = xi(aU, bV), one sample."""
    op, leaves = XI_OPERATIONS[xi], net.leaves.tolist()
    states = [
        [dot(f[k], [row[p] for row in leaves[k]]) for p in range(len(leaves[k][0]))]
        for k in range(len(f))
    ]
    for level in net.levels():
        nxt = []
        for n in range(len(states) // 2):
            a, b = states[2 * n], states[2 * n + 1]
            if isinstance(level, tuple):
                left, right = level[0][n].tolist(), level[1][n].tolist()
                nxt.append(
                    [
                        op(dot(a, [row[j] for row in left]), dot(b, [row[j] for row in right]))
                        for j in range(len(left[0]))
                    ]
                )
            else:
                unit = level[n].tolist()
                pairs = [(p, q) for p in range(len(a)) for q in range(len(b))]
                nxt.append(
                    [
                        sum(unit[p][q][j] * op(a[p], b[q]) for p, q in pairs)
                        for j in range(len(unit[0][0]))
                    ]
                )
        states = nxt
    (root,) = states
    if net.head is None:
        return root
    head = net.head.tolist()
    return [dot(root, [row[y] for row in head]) for y in range(len(head[0]))]


def oracle_logits(net, images):
    features = net.features(images).tolist()
    rows = []
    for f in features:
        if isinstance(net, CPNet):
            rows.append(cp_oracle(net, f, net.xi))
        elif isinstance(net, HTNet):
            rows.append(ht_oracle(net, f, net.xi))
        else:
            rows.append(tt_oracle(net.tt_cores(), net.label_core, f, net.xi))
    return torch.tensor(rows, dtype=torch.float64)


def tiny_net(cls, extra, xi, size, **kwargs):
    net = cls(
        image_size=size, feature_dim=3, rank=2, xi=xi, feature_map="tanh", **TINY, **extra, **kwargs
    )
    with torch.no_grad():  # randomize, but keep logsumexp's exponentials in range
        for parameter in net.parameters():
            parameter.normal_(std=0.7)
    return net.double().eval()


@pytest.mark.parametrize("xi", XI_NAMES)
@pytest.mark.parametrize(("cls", "extra"), GENERALIZED)
@pytest.mark.parametrize("size", [(1, 4), (2, 4)])
def test_logits_equal_the_per_sample_oracle(cls, extra, xi, size):
    if cls is SharedTTNet and size == (1, 4) and extra.get("boundary_cores", True) is False:
        size = (1, 3)  # also an odd d: a shared core with its boundary folded in at both ends
    net = tiny_net(cls, extra, xi, size)
    images = torch.rand(3, 1, *size, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(net(images), oracle_logits(net, images), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("cls", "extra"), GENERALIZED)
def test_the_oracle_agrees_with_the_dense_tensor_for_the_product(cls, extra):
    """The oracle's product case is the definition l = <W, f_1 (x) ... (x) f_d>."""
    net = tiny_net(cls, extra, "product", (2, 2))
    images = torch.rand(3, 1, 2, 2, dtype=torch.float64)
    with torch.no_grad():
        expected = brute_force_logits(net, images)
    torch.testing.assert_close(oracle_logits(net, images), expected, rtol=1e-10, atol=1e-12)


def test_generalized_contractions_with_the_product_equal_the_product_ones():
    features = torch.rand(5, 4, 3, dtype=torch.float64)
    factors, weights = torch.randn(4, 3, 2, dtype=torch.float64), torch.randn(3, 2).double()
    torch.testing.assert_close(
        cp_contract_xi(features, factors, weights, "product"),
        cp_contract(features, factors, weights, log_format=False),
    )
    cores = [torch.randn(a, 3, b, dtype=torch.float64) for a, b in [(1, 2), (2, 3), (3, 2), (2, 1)]]
    label = torch.randn(3, 3, 3, dtype=torch.float64)
    torch.testing.assert_close(
        tt_contract_xi(features, cores, label, "product"),
        tt_contract(features, cores, label, log_format=False),
    )
    leaves = torch.randn(4, 3, 2, dtype=torch.float64)
    nodes = [torch.randn(2, 2, 2, 3, dtype=torch.float64), torch.randn(1, 3, 3, 4).double()]
    torch.testing.assert_close(
        ht_contract_xi(features, leaves, nodes, None, "product"),
        ht_contract(features, leaves, nodes, None, log_format=False),
    )


@pytest.mark.parametrize(("cls", "extra"), GENERALIZED)
def test_product_is_the_default_and_keeps_the_old_config(cls, extra):
    default = cls(image_size=(2, 4), feature_dim=3, rank=2, **TINY, **extra)
    explicit = cls(image_size=(2, 4), feature_dim=3, rank=2, xi="product", **TINY, **extra)
    assert default.xi == "product" and "xi" not in default.config["init_args"]
    assert explicit.config == default.config
    explicit.load_state_dict(default.state_dict())
    images = torch.rand(4, 1, 2, 4)
    assert torch.equal(explicit(images), default(images))


@pytest.mark.parametrize("xi", ["relu", "logsumexp"])
@pytest.mark.parametrize(("cls", "extra"), GENERALIZED)
def test_config_round_trip_and_no_weight_tensor(cls, extra, xi):
    net = cls(image_size=(2, 4), feature_dim=3, rank=2, xi=xi, **TINY, **extra)
    assert net.config["init_args"]["xi"] == xi
    rebuilt = build_network(net.config)
    assert type(rebuilt) is cls and rebuilt.xi == xi
    rebuilt.load_state_dict(net.state_dict(), strict=True)
    images = torch.rand(4, 1, 2, 4)
    assert torch.equal(rebuilt(images), net(images))
    with pytest.raises(ValueError, match=rf"full_tensor\(\) needs .* xi={xi!r}.*grid"):
        net.full_tensor()


def test_unknown_xi_and_non_multilinear_conversions_are_refused():
    with pytest.raises(ValueError, match=r"xi must be one of \['product', 'relu', 'logsumexp'\]"):
        TTNet(image_size=28, patch_size=7, xi="square_sum")
    cp = CPNet(image_size=(2, 2), feature_dim=3, rank=2, xi="relu", **TINY)
    with pytest.raises(ValueError, match=r"TTNet\.from_cp needs a multilinear network"):
        TTNet.from_cp(cp)
    with pytest.raises(ValueError, match=r"HTNet\.from_cp needs a multilinear network"):
        HTNet.from_cp(cp)


# test_networks covers the product networks other than SharedTTNet
NEW_AT_INIT = [
    pytest.param(case.values[0], case.values[1], xi, id=f"{case.id}-{xi}")
    for case in GENERALIZED
    for xi in XI_NAMES
    if xi != "product" or case.values[0] is SharedTTNet
]


@pytest.mark.parametrize(("cls", "extra", "xi"), NEW_AT_INIT)
@pytest.mark.parametrize(("image_size", "patch_size"), [(28, 7), (32, 4)])  # d = 16, 64
def test_logits_at_init_are_of_order_one(cls, extra, xi, image_size, patch_size):
    net = cls(
        in_channels=3,
        image_size=image_size,
        patch_size=patch_size,
        feature_dim=8,
        rank=16,
        num_classes=10,
        input_mean=[0.5] * 3,
        input_std=[0.25] * 3,
        xi=xi,
        **extra,
    )
    with torch.no_grad():
        logits = net(torch.rand(32, 3, image_size, image_size))
    assert torch.isfinite(logits).all()
    assert 0.1 <= logits.std().item() <= 10
    # and they depend on the input (less for logsumexp: its states drift up like log k, and a
    # feature f moves log(e^f + e^h) by about e^(f - h); 0.047 measured for the d = 64 RNN)
    assert logits.std(dim=0).mean().item() > (0.02 if xi == "logsumexp" else 0.05)


@pytest.mark.parametrize("label_site", ["last", "middle"])
@pytest.mark.parametrize("boundary_cores", [True, False])
def test_shared_tt_equals_the_ttnet_with_the_core_copied(label_site, boundary_cores):
    shared = SharedTTNet(
        image_size=(2, 3),
        feature_dim=3,
        rank=3,
        label_site=label_site,
        boundary_cores=boundary_cores,
        **TINY,
    )
    shared = randomize(shared.double()).eval()
    cores = shared.tt_cores()
    assert len(cores) == 6 and all(core is shared.core for core in cores[1:-1])
    tt = TTNet(image_size=(2, 3), feature_dim=3, rank=3, label_site=label_site, **TINY).double()
    tt.copy_front_end(shared)
    with torch.no_grad():
        for target, core in zip(tt.cores, cores, strict=True):
            target.copy_(core)
        if shared.label_core is not None:
            tt.label_core.copy_(shared.label_core)
    images = torch.rand(5, 1, 2, 3, dtype=torch.float64)
    torch.testing.assert_close(shared(images), tt.eval()(images), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(shared.full_tensor(), tt.full_tensor(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(shared(images), brute_force_logits(shared, images))


def test_shared_tt_without_boundary_cores_is_the_rnn_with_initial_state_and_head():
    """h_0 = initial_state, h_k[j] = sum_{l,i} core[l, i, j] f_k[i] h_{k-1}[l]; h_d head."""
    net = randomize(
        SharedTTNet(image_size=(1, 5), feature_dim=3, rank=4, boundary_cores=False, **TINY).double()
    ).eval()
    images = torch.rand(4, 1, 1, 5, dtype=torch.float64)
    features = net.features(images)
    state = net.initial_state.expand(4, -1)
    for k in range(5):
        state = torch.einsum("bl,bi,lij->bj", state, features[:, k], net.core)
    torch.testing.assert_close(net(images), state @ net.head)


def test_shared_tt_parameters_and_position_count():
    net = SharedTTNet(image_size=28, patch_size=7, feature_dim=8, rank=6, num_classes=10)
    shapes = {name: tuple(t.shape) for name, t in net.named_parameters()}
    assert shapes == {
        "feature_map.linear.weight": (7, 49),
        "feature_map.linear.bias": (7,),
        "core": (6, 8, 6),
        "first_core": (1, 8, 6),
        "last_core": (6, 8, 10),
    }
    rnn = SharedTTNet(
        image_size=28,
        patch_size=7,
        feature_dim=8,
        rank=6,
        boundary_cores=False,
        label_site="middle",
    )
    assert {name for name, _ in rnn.named_parameters()} >= {
        "core",
        "initial_state",
        "final_state",
        "label_core",
    }
    assert [tuple(c.shape) for c in rnn.tt_cores()][::15] == [(1, 8, 6), (6, 8, 1)]
    with pytest.raises(ValueError, match="needs at least 3 positions"):
        SharedTTNet(image_size=(1, 2), feature_dim=3, rank=2, **TINY)


@pytest.mark.parametrize(
    ("cls", "extra"),
    [
        pytest.param(TTNet, {"xi": "relu"}, id="tt-relu"),
        pytest.param(HTNet, {"xi": "relu"}, id="ht-relu"),
        pytest.param(CPNet, {"xi": "relu"}, id="cp-relu"),
        pytest.param(SharedTTNet, {}, id="shared"),
        pytest.param(SharedTTNet, {"xi": "relu", "label_site": "middle"}, id="shared-relu"),
    ],
)
def test_a_lightning_trainer_fits_generalized_and_shared_networks(cls, extra, tmp_path):
    trainer, _, before, after = fit_tiny(cls, extra, tmp_path)
    assert after["val/loss"] < 0.7 * before["val/loss"]
    assert after["val/acc"] > 0.6  # chance: 1/3
    trainer.save_checkpoint(tmp_path / "model.ckpt")
    from tensor_zoo.lightning import TensorNetClassifier

    restored = TensorNetClassifier.load_from_checkpoint(tmp_path / "model.ckpt", map_location="cpu")
    assert type(restored.network) is cls and restored.network.xi == extra.get("xi", "product")


def test_shared_tt_tensors_are_the_documented_format():
    """docs/checkpoint-format.md's SharedTTNet table names every tensor, with its shape."""
    doc = Path(__file__).resolve().parents[1] / "docs" / "checkpoint-format.md"
    section = doc.read_text().split("## SharedTTNet")[1].split("\n## ")[0]
    documented = {
        "core": "(r, m, r)",
        "first_core": "(1, m, r)",
        "last_core": "(r, m, K)",
        "initial_state": "(r,)",
        "head": "(r, K)",
        "final_state": "(r,)",
        "label_core": "(r, K, r)",
    }
    seen = set()
    for boundary_cores in (True, False):
        for label_site in ("last", "middle"):
            net = SharedTTNet(
                image_size=28,
                patch_size=7,
                feature_dim=8,
                rank=6,
                boundary_cores=boundary_cores,
                label_site=label_site,
            )
            for name, tensor in net.state_dict().items():
                if name.startswith(("feature_map.", "input_")):
                    continue
                seen.add(name)
                assert f"`{name}`" in section and documented[name] in section, name
                sizes = {"r": 6, "m": 8, "K": 10}
                shape = documented[name].strip("()").rstrip(",").split(", ")
                if name == "last_core" and label_site == "middle":
                    shape = ["r", "m", "1"]
                assert tuple(tensor.shape) == tuple(sizes.get(s, 1) for s in shape), name
    assert seen == set(documented)
