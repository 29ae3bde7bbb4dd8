"""Constructor signatures: the flags jsonargparse builds from them, and the configs they give."""

import inspect

import pytest
from jsonargparse import ArgumentParser

from tensor_zoo import NETWORKS, TensorNetwork
from tensor_zoo.data import (
    CIFAR10DataModule,
    DigitsDataModule,
    FashionMNISTDataModule,
    MNISTDataModule,
    ToyDataModule,
)
from tensor_zoo.lightning.callbacks import (
    ExperimentSummary,
    ImagesPerSecond,
    SaveOnInterrupt,
    WandbTestReport,
)
from tensor_zoo.lightning.module import TensorNetClassifier
from tensor_zoo.networks.base import FRONT_END

COMMAND_LINE_CLASSES = [
    *NETWORKS.values(),
    TensorNetClassifier,
    MNISTDataModule,
    FashionMNISTDataModule,
    CIFAR10DataModule,
    ToyDataModule,
    DigitsDataModule,
    ImagesPerSecond,
    WandbTestReport,
    ExperimentSummary,
    SaveOnInterrupt,
]


def flags(component: type) -> dict[str, str | None]:
    """The `--x.*` flags LightningCLI's parser makes for a class, with their help texts."""
    parser = ArgumentParser()
    parser.add_class_arguments(component, "x")
    return {
        action.dest.removeprefix("x."): action.help
        for action in parser._actions
        if action.dest.startswith("x.")
    }


@pytest.mark.parametrize("component", COMMAND_LINE_CLASSES, ids=lambda c: c.__name__)
def test_every_command_line_flag_is_documented(component):
    undocumented = [name for name, text in flags(component).items() if not text]
    assert undocumented == [], f"{component.__name__}: no `Args:` entry for {undocumented}"


@pytest.mark.parametrize("network", NETWORKS.values(), ids=lambda c: c.__name__)
def test_the_command_line_reaches_the_front_end_through_kwargs(network):
    """A network declares only its own arguments; jsonargparse follows **kwargs to the base."""
    own = [
        name
        for name, parameter in inspect.signature(network).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    assert list(flags(network)) == [*own, *FRONT_END]


def test_front_end_arguments_are_keyword_only_and_recorded():
    with pytest.raises(TypeError):
        NETWORKS["TTNet"](1, 28)
    net = NETWORKS["CPNet"](image_size=(4, 8), patch_size=4, rank=2, input_mean=(0.5,))
    assert net.shared_args() == {
        name: parameter.default
        for name, parameter in inspect.signature(TensorNetwork).parameters.items()
    } | {"image_size": [4, 8], "patch_size": 4, "ordering": "raster", "input_mean": [0.5]}


def test_a_network_that_leaves_an_argument_out_of_its_config_fails():
    class Forgetful(NETWORKS["CPNet"]):
        def __init__(self, *, width: int = 2, **kwargs) -> None:
            super().__init__(**kwargs)  # CPNet records rank and xi, never width

    with pytest.raises(TypeError, match=r"missing: \['width'\]"):
        Forgetful(image_size=4, patch_size=2)
