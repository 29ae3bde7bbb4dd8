"""The TT contraction strategies: same logits and gradients as the sequential sweep."""

import pytest
import torch

from tensor_zoo import TTNet, build_network
from tensor_zoo.functional import tt_contract
from tensor_zoo.functional.tt_engine import choose_contraction, scan_group_size, transfer_form

STRATEGIES = ["scan", "tree", "chunked"]


def random_train(
    positions: int, label_site: str, generator: torch.Generator, feature_dim: int = 3
) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor | None]:
    """Features, cores with random per-bond ranks in 1..5, and a label core (middle site)."""
    classes = 4
    ranks = torch.randint(1, 6, (positions - 1,), generator=generator).tolist()
    bonds = [1, *ranks, classes if label_site == "last" else 1]
    cores = [
        (
            0.6 * torch.randn(bonds[k], feature_dim, bonds[k + 1], generator=generator).double()
        ).requires_grad_()
        for k in range(positions)
    ]
    label_core = None
    if label_site == "middle":
        middle = bonds[positions // 2]
        label_core = torch.randn(middle, classes, middle, generator=generator).double()
        label_core.requires_grad_()
    features = torch.randn(3, positions, feature_dim, generator=generator).double()
    return features, cores, label_core


def logits_and_gradients(features, cores, label_core, log_format, contraction):
    logits = tt_contract(features, cores, label_core, log_format, contraction, chunk_size=5)
    inputs = [*cores, features] + ([label_core] if label_core is not None else [])
    weights = torch.linspace(-1, 1, logits.numel(), dtype=logits.dtype).view_as(logits)
    return logits, torch.autograd.grad((logits * weights).sum(), inputs)


def assert_relatively_close(actual, expected, tolerance=1e-10):
    scale = expected.abs().max().clamp_min(1e-300)
    assert ((actual - expected).abs().max() / scale).item() <= tolerance


@pytest.mark.parametrize("contraction", STRATEGIES)
@pytest.mark.parametrize("log_format", [True, False])
@pytest.mark.parametrize(
    ("positions", "label_site"),
    [
        (positions, label_site)
        for positions in (1, 2, 3, 7, 64, 784, 1024)
        for label_site in ("last", "middle")
        if positions >= 2 or label_site == "last"  # a middle label site needs two positions
    ],
)
def test_every_strategy_equals_the_sweep_in_float64(positions, label_site, log_format, contraction):
    generator = torch.Generator().manual_seed(positions)
    features, cores, label_core = random_train(positions, label_site, generator)
    feature_copy = features.clone().requires_grad_()
    features.requires_grad_()
    expected, expected_grads = logits_and_gradients(
        features, cores, label_core, log_format, "sequential"
    )
    logits, grads = logits_and_gradients(feature_copy, cores, label_core, log_format, contraction)
    assert torch.isfinite(expected).all()
    assert_relatively_close(logits, expected)
    for grad, expected_grad in zip(grads, expected_grads, strict=True):
        assert_relatively_close(grad, expected_grad)


@pytest.mark.parametrize("label_site", ["last", "middle"])
def test_network_strategies_agree_with_uniform_ranks(label_site):
    """The networks' own cores (uniform rank, class on the last core or in the middle)."""
    nets = {
        contraction: TTNet(
            image_size=(4, 16),
            patch_size=1,
            feature_dim=2,
            feature_map="identity",
            rank=6,
            label_site=label_site,
            contraction=contraction,
        ).double()
        for contraction in ("sequential", "scan", "tree", "chunked", "auto")
    }
    state = nets["sequential"].state_dict()
    images = torch.rand(5, 1, 4, 16, dtype=torch.float64)
    expected = nets["sequential"](images)
    expected_grads = torch.autograd.grad(expected.square().sum(), nets["sequential"].parameters())
    for contraction, net in nets.items():
        net.load_state_dict(state)
        logits = net(images)
        torch.testing.assert_close(logits, expected, rtol=1e-10, atol=0)
        grads = torch.autograd.grad(logits.square().sum(), net.parameters())
        for grad, expected_grad in zip(grads, expected_grads, strict=True):
            assert_relatively_close(grad, expected_grad)
        assert net.config["init_args"]["contraction"] == contraction


@pytest.mark.parametrize("contraction", ["scan", "tree"])
def test_forward_and_backward_stay_finite_at_4096_positions(contraction):
    net = TTNet(
        image_size=64,
        patch_size=1,
        feature_dim=2,
        feature_map="identity",
        rank=8,
        label_site="middle",
        contraction=contraction,
    )
    images = torch.rand(4, 1, 64, 64)
    logits = net(images)
    logits.sum().backward()
    assert torch.isfinite(logits).all()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())


@pytest.mark.parametrize("contraction", ["scan", "tree"])
def test_pixel_level_training_at_lr_1e_2_does_not_diverge(contraction):
    """TorchMPS's scores reach 1e22 here; the log format keeps ours bounded and learning."""
    torch.manual_seed(0)
    net = TTNet(
        image_size=28,
        patch_size=1,
        feature_dim=2,
        feature_map="identity",
        rank=10,
        label_site="middle",
        contraction=contraction,
    )
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    images = torch.rand(16, 1, 28, 28)
    labels = torch.randint(0, 10, (16,))
    losses = []
    for _ in range(8):
        loss = torch.nn.functional.cross_entropy(net(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert max(losses) < 1e3
    assert min(losses[-3:]) < losses[0]


def test_auto_picks_the_scan_on_cpu_for_long_sequences_and_the_sweep_for_short_ones():
    for training in (True, False):
        assert choose_contraction(100, 784, 10, 2, training) == "scan"
        assert choose_contraction(1000, 196, 20, 2, training) == "scan"
    assert choose_contraction(batch=256, positions=4, rank=16, feature_dim=8) == "sequential"
    assert choose_contraction(batch=256, positions=64, rank=16, feature_dim=16) == "sequential"
    # short sequences with m >= 2 R (CIFAR-10: m = 32, R = 16): the scan in training only
    assert choose_contraction(batch=128, positions=64, rank=16, feature_dim=32) == "scan"
    cifar_inference = choose_contraction(256, positions=64, rank=16, feature_dim=32, training=False)
    assert cifar_inference == "sequential"
    # on other devices, the tree (or chunked, for large B d R^2) for long sequences
    assert choose_contraction(100, 784, 10, 2, device_type="cuda") == "tree"
    assert choose_contraction(4000, 2**16, 4, 2, device_type="cuda") == "chunked"
    assert choose_contraction(1000, 784, 10, 2, False, device_type="cuda") == "sequential"


def test_the_scan_merges_sites_only_while_it_pays():
    assert scan_group_size(rank=10, feature_dim=2, batch=200) == 2
    assert scan_group_size(rank=16, feature_dim=32, batch=256) == 1


def test_a_traced_scan_becomes_the_tree():
    """torch.export cannot trace the scan's autograd.Function: the same numbers by the tree."""
    torch.manual_seed(0)
    net = TTNet(
        image_size=(4, 40),
        patch_size=1,
        feature_dim=2,
        feature_map="identity",
        rank=4,
        label_site="middle",
        contraction="scan",
    ).eval()
    images = torch.rand(3, 1, 4, 40)
    exported = torch.export.export(net, (images,))
    targets = {str(node.target) for node in exported.graph.nodes}
    assert not any("Scan" in target for target in targets)
    torch.testing.assert_close(exported.module()(images), net(images))


def test_stacked_cores_load_per_position_state_and_save_it():
    """Uniform ranks are stored as one stacked parameter; the state dict stays per position."""
    net = TTNet(image_size=(2, 8), patch_size=1, feature_dim=2, rank=3, label_site="middle")
    names = [name for name, _ in net.named_parameters()]
    assert names[:3] == ["first_core", "inner_cores", "last_core"]
    state = net.state_dict()
    assert [state[f"cores.{k}"].shape for k in (0, 1, 15)] == [(1, 2, 3), (3, 2, 3), (3, 2, 1)]
    assert not {"first_core", "inner_cores", "last_core"} & set(state)
    torch.testing.assert_close(state["cores.5"], net.inner_cores[4].detach())
    state["cores.5"] = state["cores.5"] + 1  # saved cores are copies, not views
    assert not torch.equal(state["cores.5"], net.inner_cores[4])
    other = TTNet(image_size=(2, 8), patch_size=1, feature_dim=2, rank=3, label_site="middle")
    other.load_state_dict(state)
    torch.testing.assert_close(other.inner_cores[4], state["cores.5"])
    torch.testing.assert_close(other.cores[15], state["cores.15"])
    ragged = TTNet(image_size=(2, 8), patch_size=1, feature_dim=2, rank=[3, 2] * 7 + [3])
    assert "cores" in dict(ragged.named_children())  # mixed ranks: one parameter per core


def test_old_configs_without_contraction_load_with_auto():
    net = TTNet(image_size=8, patch_size=4)
    config = {**net.config, "init_args": dict(net.config["init_args"])}
    del config["init_args"]["contraction"]
    assert build_network(config).contraction == "auto"


def test_unknown_contraction_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="'auto', 'sequential', 'scan', 'tree', 'chunked'"):
        TTNet(image_size=8, patch_size=4, contraction="parallel")


@pytest.mark.parametrize("label_site", ["last", "middle"])
@pytest.mark.parametrize(("feature_dim", "rank"), [(2, 12), (16, 12)])
def test_both_forms_of_the_scan_equal_the_sweep(feature_dim, rank, label_site):
    """m^k < R: the scan forms (M R, B) per step (`_Scan`); m^k >= R: it runs over transfer
    matrices from one GEMM (`_TransferScan`)."""
    assert transfer_form(rank, feature_dim ** scan_group_size(rank, feature_dim, 6)) == (
        feature_dim > rank
    )
    generator = torch.Generator().manual_seed(rank)
    classes, positions = 4, 64
    bonds = [1, *[rank] * (positions - 1), classes if label_site == "last" else 1]
    cores = [
        (
            torch.randn(bonds[k], feature_dim, bonds[k + 1], generator=generator).double() / 4
        ).requires_grad_()
        for k in range(positions)
    ]
    label_core = None
    if label_site == "middle":
        label_core = torch.randn(rank, classes, rank, generator=generator).double()
        label_core.requires_grad_()
    features = torch.randn(6, positions, feature_dim, generator=generator).double()
    expected, expected_grads = logits_and_gradients(
        features.requires_grad_(), cores, label_core, True, "sequential"
    )
    logits, grads = logits_and_gradients(
        features.detach().requires_grad_(), cores, label_core, True, "scan"
    )
    assert_relatively_close(logits, expected)
    for grad, expected_grad in zip(grads, expected_grads, strict=True):
        assert_relatively_close(grad, expected_grad)
    if feature_dim > rank:  # the features' gradient comes back in their own (B, d, m) layout
        assert grads[positions].is_contiguous()
