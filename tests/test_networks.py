import warnings

import pytest
import torch
from conftest import VARIANTS, brute_force_logits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tensor_zoo import CPNet, HTNet, TTNet, build_network
from tensor_zoo.networks.base import TensorNetwork

TINY = {"in_channels": 1, "patch_size": 1, "num_classes": 3}


def randomize(net: TensorNetwork) -> TensorNetwork:
    """Break the near-identity structure so that every parameter matters."""
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.normal_()
    return net


@pytest.mark.parametrize(("cls", "extra"), VARIANTS)
@pytest.mark.parametrize(
    ("image_size", "feature_dim", "rank"),
    [((1, 2), 3, 2), ((2, 2), 3, 3), ((2, 2), 2, [2, 3, 4]), ((1, 4), 3, [3, 2])],
)
@pytest.mark.parametrize("log_format", [True, False])
def test_logits_equal_the_dense_contraction(cls, extra, image_size, feature_dim, rank, log_format):
    num_positions = image_size[0] * image_size[1]
    if cls is CPNet and not isinstance(rank, int):
        rank = max(rank)
    if cls is TTNet and isinstance(rank, list):
        rank = (rank * 3)[: num_positions - 1]
    if cls is HTNet and isinstance(rank, list):
        rank = (rank * 3)[: num_positions.bit_length() - 1]
    net = cls(
        image_size=image_size,
        feature_dim=feature_dim,
        rank=rank,
        log_format=log_format,
        **TINY,
        **extra,
    )
    net = randomize(net.double()).eval()
    images = torch.rand(7, 1, *image_size, dtype=torch.float64)
    expected = brute_force_logits(net, images)
    assert net.full_tensor().shape == (3, *[feature_dim] * num_positions)
    torch.testing.assert_close(net(images), expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("feature_map", ["relu", "rbf", "fourier", "tanh"])
@pytest.mark.parametrize(("cls", "extra"), VARIANTS)
def test_exact_on_six_positions_with_every_feature_map(cls, extra, feature_map):
    size = (2, 4) if cls is HTNet else (2, 3)  # HT needs 2^L positions: d = 8 there, 6 elsewhere
    net = cls(image_size=size, feature_dim=3, rank=2, feature_map=feature_map, **TINY, **extra)
    net = randomize(net.double()).eval()
    images = torch.rand(4, 1, *size, dtype=torch.float64)
    torch.testing.assert_close(net(images), brute_force_logits(net, images), rtol=1e-9, atol=1e-12)


CONVERSIONS = [
    pytest.param(lambda cp: TTNet.from_cp(cp), id="tt-last"),
    pytest.param(lambda cp: TTNet.from_cp(cp, label_site="middle"), id="tt-middle"),
    pytest.param(lambda cp: HTNet.from_cp(cp), id="ht-full"),
    pytest.param(lambda cp: HTNet.from_cp(cp, node_type="cp"), id="ht-cp"),
]


@pytest.mark.parametrize("convert", CONVERSIONS)
@pytest.mark.parametrize("size", [(2, 2), (1, 2), (2, 4)])
def test_cp_converts_exactly(convert, size):
    cp = randomize(
        CPNet(image_size=size, feature_dim=3, rank=3, feature_map="tanh", **TINY).double()
    ).eval()
    converted = convert(cp).eval()
    assert converted.ranks[0] == 3
    images = torch.rand(6, 1, *size, dtype=torch.float64)
    torch.testing.assert_close(converted(images), cp(images), rtol=1e-9, atol=1e-12)
    if size != (2, 4):  # the dense check too, where m^d is tiny
        torch.testing.assert_close(
            converted(images), brute_force_logits(converted, images), rtol=1e-9, atol=1e-12
        )
        torch.testing.assert_close(converted.full_tensor(), cp.full_tensor(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(("cls", "extra"), VARIANTS)
@pytest.mark.parametrize(
    ("num_positions", "image_size", "patch_size"), [(4, 8, 4), (64, 32, 4), (1024, 32, 1)]
)
def test_logits_at_init_are_finite_and_of_order_one(
    cls, extra, num_positions, image_size, patch_size
):
    net = cls(
        in_channels=3,
        image_size=image_size,
        patch_size=patch_size,
        feature_dim=8,
        rank=16,
        num_classes=10,
        input_mean=[0.5] * 3,
        input_std=[0.25] * 3,
        **extra,
    )
    assert net.num_positions == num_positions
    with torch.no_grad():
        logits = net(torch.rand(32, 3, image_size, image_size))
    assert torch.isfinite(logits).all()
    assert 0.1 <= logits.std().item() <= 10
    # the logits depend on the input, not only on the class
    assert logits.std(dim=0).mean().item() > 0.05


@pytest.mark.parametrize(("cls", "extra"), VARIANTS)
def test_long_products_stay_finite_in_log_format(cls, extra):
    """Cores that grow every product by 10x over d = 1024 positions: float32 overflows at 1e38."""
    net = cls(
        in_channels=1, image_size=32, patch_size=1, feature_dim=3, rank=4, num_classes=2, **extra
    )
    plain = cls(
        in_channels=1,
        image_size=32,
        patch_size=1,
        feature_dim=3,
        rank=4,
        num_classes=2,
        log_format=False,
        **extra,
    )
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.mul_(1.001)
        plain.load_state_dict(net.state_dict())
    images = torch.rand(4, 1, 32, 32)
    logits = net(images)
    assert torch.isfinite(logits).all()
    with torch.no_grad():
        reference = plain.double()(images.double())
    torch.testing.assert_close(logits.double(), reference, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize(("cls", "extra"), VARIANTS)
def test_d64_network_trains_without_overflow(cls, extra):
    net = cls(
        in_channels=3,
        image_size=32,
        patch_size=4,
        feature_dim=8,
        rank=8,
        num_classes=10,
        input_mean=[0.5] * 3,
        input_std=[0.29] * 3,
        **extra,
    )
    optimizer = torch.optim.Adam(net.parameter_groups(lr=3e-3))
    images, labels = torch.rand(64, 3, 32, 32), torch.randint(0, 10, (64,))
    losses = []
    for _ in range(50):
        loss = torch.nn.functional.cross_entropy(net(images), labels)
        optimizer.zero_grad()
        loss.backward()
        grads = [p.grad for p in net.parameters() if p.grad is not None]
        assert all(torch.isfinite(g).all() for g in grads)
        optimizer.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert min(losses[-10:]) < 0.5 * losses[0]  # it memorises 64 random labels


@pytest.mark.parametrize(("cls", "extra"), VARIANTS)
def test_public_api_and_config_round_trip(cls, extra):
    net = cls(
        in_channels=1, image_size=28, patch_size=7, feature_dim=8, rank=16, num_classes=10, **extra
    )
    images = torch.rand(5, 1, 28, 28)
    assert net(images).shape == (5, 10)
    assert net.features(images).shape == (5, 16, 8)
    assert net.num_params == sum(p.numel() for p in net.parameters())
    rebuilt = build_network(net.config)
    assert type(rebuilt) is cls
    rebuilt.load_state_dict(net.state_dict(), strict=True)
    torch.testing.assert_close(rebuilt(images), net(images))


def test_parameter_names_and_shapes_are_the_documented_format():
    """docs/checkpoint-format.md describes exactly these names and shapes."""
    tt = TTNet(image_size=28, patch_size=7, feature_dim=8, rank=[4, 5] * 7 + [6], num_classes=10)
    shapes = {name: tuple(t.shape) for name, t in tt.state_dict().items()}
    assert shapes["cores.0"] == (1, 8, 4) and shapes["cores.1"] == (4, 8, 5)
    assert shapes["cores.15"] == (6, 8, 10)
    assert shapes["feature_map.linear.weight"] == (7, 49) and shapes["input_mean"] == (1,)
    ht = HTNet(image_size=28, patch_size=7, feature_dim=8, rank=[3, 4, 5, 6], num_classes=10)
    shapes = {name: tuple(t.shape) for name, t in ht.state_dict().items()}
    assert shapes["leaves"] == (16, 8, 3)
    assert [shapes[f"nodes.{i}"] for i in range(4)] == [
        (8, 3, 3, 4),
        (4, 4, 4, 5),
        (2, 5, 5, 6),
        (1, 6, 6, 10),
    ]
    conv = HTNet(image_size=28, patch_size=7, feature_dim=8, rank=[3, 4, 5, 6], node_type="cp")
    shapes = {name: tuple(t.shape) for name, t in conv.state_dict().items()}
    assert [shapes[f"left.{i}"] for i in range(4)] == [(8, 3, 4), (4, 4, 5), (2, 5, 6), (1, 6, 6)]
    assert shapes["head"] == (6, 10)
    cp = CPNet(image_size=28, patch_size=7, feature_dim=8, rank=16, feature_map="rbf")
    shapes = {name: tuple(t.shape) for name, t in cp.state_dict().items()}
    assert shapes == {
        "input_mean": (1,),
        "input_std": (1,),
        "feature_map.templates": (7, 49),
        "feature_map.log_bandwidth": (7,),
        "factors": (16, 8, 16),
        "weights": (10, 16),
    }


def test_ht_rejects_a_number_of_patches_that_is_not_a_power_of_two():
    with pytest.raises(ValueError, match="power-of-two number of patches"):
        HTNet(image_size=28, patch_size=4, ordering="raster")  # 7 x 7 = 49 patches


def test_rank_list_of_wrong_length_is_reported():
    with pytest.raises(ValueError, match="list of 15 positive ints"):
        TTNet(image_size=28, patch_size=7, rank=[4, 4])


def test_integer_images_are_refused_with_advice():
    net = TTNet(image_size=28, patch_size=7)
    with pytest.raises(TypeError, match=r"images.float\(\) / 255"):
        net(torch.zeros(1, 1, 28, 28, dtype=torch.uint8))


def test_build_network_refuses_unknown_classes():
    with pytest.raises(ValueError, match=r"Unknown network class 'os\.system'"):
        build_network({"class_path": "os.system", "init_args": {}})


SMALL = {"in_channels": 1, "image_size": 8, "patch_size": 2, "feature_dim": 3, "rank": 2}


@pytest.mark.parametrize(("cls", "extra"), VARIANTS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_images_of_another_float_dtype_are_cast_to_the_network(cls, extra, dtype):
    net = cls(**SMALL, **extra).eval()
    images = torch.rand(3, 1, 8, 8)
    expected = net(images.to(dtype).float())
    torch.testing.assert_close(net(images.to(dtype)), expected)


@pytest.mark.parametrize(("cls", "extra"), VARIANTS)
def test_an_empty_batch_gives_empty_logits(cls, extra):
    net = cls(**SMALL, num_classes=4, **extra)
    images = torch.zeros(0, 1, 8, 8, requires_grad=True)
    logits = net(images)
    assert logits.shape == (0, 4)
    logits.sum().backward()  # a training step on it does not fail either
    assert images.grad.shape == images.shape


BAD_ARGUMENTS = [
    ({"rank": "16"}, TypeError, r"rank must be an int"),
    ({"rank": True}, TypeError, r"rank must be an int"),
    ({"rank": 16.0}, TypeError, r"rank must be an int"),
    ({"rank": [2.5] * 15}, TypeError, r"rank must be an int"),
    ({"patch_size": 7.0}, TypeError, r"patch_size must be an int, got 7\.0"),
    ({"in_channels": 0}, ValueError, r"in_channels must be at least 1, got 0"),
    ({"num_classes": True}, TypeError, r"num_classes must be an int"),
    ({"image_size": "28"}, TypeError, r"image_size must be an int or \(height, width\)"),
    ({"image_size": [28, 28, 28]}, TypeError, r"image_size must be an int or \(height, width\)"),
    ({"stride": 3.5}, TypeError, r"stride must be an int"),
    ({"dropout": "0.1"}, TypeError, r"dropout must be a number"),
    ({"append_one": "no"}, TypeError, r"append_one must be True or False"),
    ({"input_mean": [float("nan")]}, ValueError, r"input_mean values must be finite"),
    ({"input_std": [float("inf")]}, ValueError, r"input_std values must be finite and positive"),
    ({"input_mean": "0"}, TypeError, r"input_mean must be a list of 1 numbers"),
]


@pytest.mark.parametrize(("cls", "extra"), VARIANTS)
@pytest.mark.parametrize(("arguments", "error", "message"), BAD_ARGUMENTS)
def test_constructor_arguments_of_the_wrong_type_or_value_are_named(
    cls, extra, arguments, error, message
):
    if cls is HTNet and "rank" in arguments and isinstance(arguments["rank"], list):
        arguments = {"rank": [2.5] * 4}
    with pytest.raises(error, match=message):
        cls(**{**extra, **arguments})


@pytest.mark.parametrize(
    ("name", "transform"),
    [("[0, 255] floats", lambda x: x * 255), ("normalised twice", lambda x: (x - 0.13) / 0.31)],
)
def test_images_far_outside_the_training_range_warn_once(name, transform):
    net = TTNet(**SMALL, input_mean=[0.13], input_std=[0.31]).eval()
    images = torch.rand(4, 1, 8, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # images in [0, 1]: no warning
        net(images)
        net.train()(images)
    net.eval()
    with pytest.warns(UserWarning, match="standard deviations from the mean") as record:
        net(transform(images))
        net(transform(images))
    assert len([w for w in record if "standard deviations" in str(w.message)]) == 1


def test_the_range_check_stays_out_of_torch_export():
    net = CPNet(**SMALL, input_mean=[0.5], input_std=[0.25]).eval()
    images = torch.rand(2, 1, 8, 8)
    exported = torch.export.export(net, (images,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.testing.assert_close(
        exported.module()(images[:1].repeat(3, 1, 1, 1)), net(images[:1].repeat(3, 1, 1, 1))
    )


# ------------------------------------------------------------------ properties (hypothesis)

PROPERTY_NETS = {
    pytest_param.id: pytest_param.values[0](
        **SMALL, num_classes=3, input_mean=[0.3], input_std=[0.3], **pytest_param.values[1]
    ).eval()
    for pytest_param in VARIANTS
}
FLOAT_DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    variant=st.sampled_from(sorted(PROPERTY_NETS)),
    batch=st.integers(0, 5),
    dtype=st.sampled_from(FLOAT_DTYPES),
    seed=st.integers(0, 2**16),
)
def test_any_batch_of_images_in_range_gives_finite_per_image_logits(variant, batch, dtype, seed):
    net = PROPERTY_NETS[variant]
    images = torch.rand(batch, 1, 8, 8, generator=torch.Generator().manual_seed(seed)).to(dtype)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("error")  # images in [0, 1] never warn
        logits = net(images)
        assert logits.shape == (batch, 3) and logits.dtype == torch.float32
        assert torch.isfinite(logits).all()
        for index in range(batch):  # every image is scored on its own
            torch.testing.assert_close(logits[index : index + 1], net(images[index : index + 1]))


@settings(max_examples=30, deadline=None)
@given(scale=st.floats(300.0, 1e4), shift=st.floats(-1e3, 1e3))
def test_any_input_far_outside_the_training_range_warns(scale, shift):
    net = TTNet(**SMALL, num_classes=3, input_mean=[0.3], input_std=[0.3]).eval()
    images = torch.rand(2, 1, 8, 8) * scale + shift
    with pytest.warns(UserWarning, match="standard deviations"), torch.no_grad():
        net(images)


INT_ARGUMENTS = ["in_channels", "patch_size", "feature_dim", "num_classes", "rank", "stride"]
NOT_INTS = st.one_of(
    st.booleans(),
    st.floats(allow_nan=True),
    st.text(max_size=3),
    st.none(),
    st.lists(st.floats(), max_size=2),
    st.integers(max_value=0),
)


@settings(max_examples=60, deadline=None)
@given(
    cls=st.sampled_from([CPNet, TTNet, HTNet]),
    name=st.sampled_from(INT_ARGUMENTS),
    value=NOT_INTS,
)
def test_any_non_positive_int_argument_is_refused_by_name(cls, name, value):
    if name == "stride" and value is None:
        return  # None is stride's default: patches without overlap
    with pytest.raises((TypeError, ValueError)) as info:
        cls(**{**SMALL, name: value})
    assert name in str(info.value)


@settings(max_examples=25, deadline=None)
@given(
    cls=st.sampled_from([CPNet, TTNet, HTNet]),
    grid=st.sampled_from([(1, 2), (2, 2), (2, 4), (4, 4)]),
    patch_size=st.integers(1, 3),
    feature_dim=st.integers(2, 4),
    rank=st.integers(1, 4),
    num_classes=st.integers(1, 4),
    channels=st.integers(1, 3),
)
def test_any_valid_configuration_builds_and_round_trips(
    cls, grid, patch_size, feature_dim, rank, num_classes, channels
):
    net = cls(
        in_channels=channels,
        image_size=[side * patch_size for side in grid],
        patch_size=patch_size,
        feature_dim=feature_dim,
        rank=rank,
        num_classes=num_classes,
        input_mean=[0.5] * channels,
        input_std=[0.2] * channels,
        **({"ordering": "raster"} if cls is HTNet else {}),
    )
    images = torch.rand(2, channels, grid[0] * patch_size, grid[1] * patch_size)
    rebuilt = build_network(net.config)
    rebuilt.load_state_dict(net.state_dict())
    torch.testing.assert_close(rebuilt.eval()(images), net.eval()(images))


def test_each_architecture_has_its_own_default_patch_order_and_the_config_names_it():
    tiny = {"image_size": 4, "patch_size": 1, "feature_dim": 2, "rank": 2, "num_classes": 2}
    assert HTNet(**tiny).config["init_args"]["ordering"] == "zorder"
    assert HTNet(**tiny, ordering=None).patches.ordering == "zorder"
    assert TTNet(**tiny).config["init_args"]["ordering"] == "raster"
    assert CPNet(**tiny).config["init_args"]["ordering"] == "raster"
    assert HTNet(**tiny, ordering="raster").config["init_args"]["ordering"] == "raster"
