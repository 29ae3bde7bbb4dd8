"""One table of dataset facts (`tensor_zoo.datasets`): every consumer reads it, none copies it."""

import dataclasses
import importlib.util
import logging
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_data import make_idx_dataset

import tensor_zoo
from tensor_zoo.bench import CONFIGS
from tensor_zoo.data import DATA_MODULES, MNISTDataModule
from tensor_zoo.datasets import DATASETS
from tensor_zoo.networks import build_network
from tensor_zoo.zoo import transforms
from tensor_zoo.zoo.evaluate import data_module_for
from tensor_zoo.zoo.registry import (
    PACKAGED_INDEX,
    ZOO_DATASETS,
    ModelName,
    UnknownModelError,
    architecture_config,
    read_index,
)

ROOT = Path(__file__).resolve().parents[1]
RECIPES = {"mnist": "mnist", "fashion_mnist": "fashion-mnist", "cifar10": "cifar10", "toy": "toy"}
INPUT_FACTS = {"in_channels", "image_size", "num_classes", "input_mean", "input_std"}


def test_the_table_imports_nothing_but_the_standard_library():
    """Loaded from its file alone (no tensor_zoo package around it): no torch, no numpy."""
    path = ROOT / "tensor_zoo" / "datasets.py"
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('facts', {str(path)!r})\n"
        "module = sys.modules['facts'] = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "print(len(module.DATASETS), sorted(m for m in ('torch', 'numpy') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == [str(len(DATASETS)), "[]"]


def test_every_dataset_has_one_data_module_that_reports_the_tables_own_facts():
    assert set(DATA_MODULES) == set(DATASETS)
    for key, module in DATA_MODULES.items():
        spec = DATASETS[key]
        assert module.spec is spec  # the very object, not a copy
        data = module(batch_size=4) if key in ("digits", "toy") else module(download=False)
        assert data.name == spec.title and data.classes is spec.classes
        assert data.mean is spec.mean and data.std is spec.std
        assert data.image_shape == spec.image_shape and data.num_classes == len(spec.classes)
        assert data.max_value == spec.max_value


@pytest.mark.parametrize("key", sorted(ZOO_DATASETS))
def test_the_zoo_builds_and_describes_names_from_the_table(key):
    spec = DATASETS[key]
    assert ZOO_DATASETS[key] is spec
    name = f"tt-{key}-r3"  # never published: built from the table alone
    network = tensor_zoo.create_model(name)
    expected = {**spec.network_defaults(), "rank": 3}
    assert {key: network.config["init_args"][key] for key in expected} == expected
    info = tensor_zoo.model_info(name)
    assert info["dataset"] == spec.title and info["classes"] == list(spec.classes)
    assert info["input"]["shape"] == list(spec.image_shape)
    assert (info["input"]["mean"], info["input"]["std"]) == (list(spec.mean), list(spec.std))
    preprocess = transforms(name)
    assert (preprocess.channels, *preprocess.image_size) == spec.image_shape
    assert type(data_module_for(key)) is DATA_MODULES[key]


def test_ht_names_keep_the_quad_tree_whatever_order_the_dataset_gives_the_others():
    assert DATASETS["digits"].recipe_args["ordering"] == "snake"
    assert architecture_config("tt", "digits", 4)["init_args"]["ordering"] == "snake"
    assert "ordering" not in architecture_config("ht", "digits", 4)["init_args"]
    assert tensor_zoo.create_model("ht-digits-r4").patches.ordering == "zorder"


def test_no_consumer_can_change_the_table_for_the_others():
    spec = DATASETS["cifar10"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.mean = (0.5, 0.5, 0.5)
    with pytest.raises(TypeError):
        spec.recipe_args["patch_size"] = 8
    defaults = spec.network_defaults()
    defaults["patch_size"] = 8  # a copy
    assert spec.network_defaults()["patch_size"] == spec.recipe_args["patch_size"] == 4


def test_the_toy_sets_have_facts_but_no_model_names():
    assert "toy" in DATASETS and "toy" not in ZOO_DATASETS
    with pytest.raises(tensor_zoo.zoo.UnknownModelError, match="dataset in"):
        tensor_zoo.create_model("tt-toy-r4")


def test_the_benchmark_sizes_are_the_datasets():
    for key in ("mnist", "cifar10"):
        spec = DATASETS[key]
        patch_size = spec.recipe_args["patch_size"]
        assert CONFIGS[key] == {
            "in_channels": spec.in_channels,
            "image_size": spec.image_size,
            "patch_size": patch_size,
        }


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_recipe_configs_leave_the_input_facts_to_the_table(recipe):
    config = yaml.safe_load((ROOT / "recipes" / "configs" / f"{recipe}.yaml").read_text())
    written = set(config["model"]["network"].get("init_args", {}))
    assert not written & (INPUT_FACTS | set(DATASETS[RECIPES[recipe]].recipe_args))


CHECKPOINT_CONFIGS = {  # a recipe config over its recipe's own -> the published network it trains
    "mnist_pixels": ("mnist", "tt-mnist-pixels-r20"),
    "mnist_p4": ("mnist", "tt-mnist-p4-r16"),
    "fashion_mnist_p4m64": ("fashion_mnist", "tt-fashion-mnist-p4m64-r16"),
    "cifar10_tt_r32": ("cifar10", "tt-cifar10-r32"),
    "cifar10_ht_r32": ("cifar10", "ht-cifar10-r32"),
}


@pytest.mark.parametrize("layered", [*CHECKPOINT_CONFIGS, "paper_mnist", "paper_cifar10"])
def test_layered_recipe_configs_leave_the_input_facts_to_the_table(layered):
    config = yaml.safe_load((ROOT / "recipes" / "configs" / f"{layered}.yaml").read_text())
    assert not set(config["model"]["network"]["init_args"]) & INPUT_FACTS


def printed_config(recipe: str, args: list[str], monkeypatch, tmp_path, capsys) -> dict:
    """The config `python recipes/{recipe}.py ARGS --print_config` prints, through the real
    recipe CLI in this process (in tmp_path, not pytest's arguments)."""
    from tensor_zoo.lightning.cli import run_recipe

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [f"recipes/{recipe}.py"])
    config = ROOT / "recipes" / "configs" / f"{recipe}.yaml"
    with pytest.raises(SystemExit) as info:
        run_recipe(DATA_MODULES[RECIPES[recipe]], config, [*args, "--print_config"])
    assert info.value.code == 0
    return yaml.safe_load(capsys.readouterr().out)


@pytest.mark.parametrize(("recipe", "network"), [("fashion_mnist", "TTNet"), ("toy", "HTNet")])
def test_recipes_print_the_tables_network_arguments(recipe, network, tmp_path, monkeypatch, capsys):
    """`--print_config` of the real recipe CLI: the table's values, also after a class switch."""
    args = ["fit", f"--model.network={network}"]
    printed = printed_config(recipe, args, monkeypatch, tmp_path, capsys)["model"]["network"]
    assert printed["class_path"] == f"tensor_zoo.{network}"
    defaults = DATASETS[RECIPES[recipe]].network_defaults()
    assert {key: printed["init_args"][key] for key in defaults} == defaults


def test_the_pixel_recipe_builds_what_the_pixels_layout_names(tmp_path, monkeypatch, capsys):
    """recipes/configs/mnist_pixels.yaml (over mnist.yaml) and `tt-mnist-pixels-r20` of the
    layout table are the same network."""
    pixels = ROOT / "recipes" / "configs" / "mnist_pixels.yaml"
    args = ["fit", "--config", str(pixels)]
    printed = printed_config("mnist", args, monkeypatch, tmp_path, capsys)["model"]["network"]
    named = build_network(architecture_config("tt", "mnist", 20, "pixels"))
    assert build_network(printed).config == named.config
    assert named.num_positions == 28 * 28 and named.config["init_args"]["feature_dim"] == 2
    assert named.config["init_args"]["label_site"] == "middle"


@pytest.mark.parametrize("layered", sorted(CHECKPOINT_CONFIGS))
def test_the_checkpoint_configs_build_the_networks_they_published(
    layered, tmp_path, monkeypatch, capsys
):
    """`python recipes/{recipe}.py --config recipes/configs/{layered}.yaml`: the network the
    config builds over its recipe's config is the published one, argument for argument, and the
    config's epochs are the card's."""
    recipe, name = CHECKPOINT_CONFIGS[layered]
    layer = ROOT / "recipes" / "configs" / f"{layered}.yaml"
    printed = printed_config(recipe, ["fit", "--config", str(layer)], monkeypatch, tmp_path, capsys)
    published = PUBLISHED[name]["config"]
    assert (
        build_network(printed["model"]["network"]).config
        == build_network(published["architecture"]).config
    )
    assert printed["trainer"]["max_epochs"] == published["training"]["epochs"]
    assert ModelName.parse(name).dataset == RECIPES[recipe]


def test_layout_names_parse_beside_hyphenated_dataset_names():
    assert ModelName.parse("tt-mnist-pixels-r20") == ModelName("tt", "mnist", 20, "pixels")
    assert ModelName.parse("cp-fashion-mnist-pixels-r4") == ModelName(
        "cp", "fashion-mnist", 4, "pixels"
    )
    assert ModelName.parse("tt-fashion-mnist-r16") == ModelName("tt", "fashion-mnist", 16)
    cp = architecture_config("cp", "mnist", 8, "pixels")["init_args"]
    assert cp["patch_size"] == 1 and "label_site" not in cp  # the TT-only argument stays TT's
    assert ModelName.parse("ht-fashion-mnist-p7s3-r16") == ModelName(
        "ht", "fashion-mnist", 16, "p7s3"
    )
    ht = tensor_zoo.create_model("ht-fashion-mnist-p7s3-r4")
    assert ht.num_positions == 64 and ht.patches.ordering == "zorder"  # an 8 x 8 quad-tree
    assert tensor_zoo.create_model("tt-mnist-p4-r4").num_positions == 49
    p4m64 = ModelName.parse("tt-fashion-mnist-p4m64-r16")  # not p4 with a stray "m64"
    assert p4m64 == ModelName("tt", "fashion-mnist", 16, "p4m64")
    assert tensor_zoo.create_model("tt-mnist-p4m64-r4").patches.ordering == "snake"
    with pytest.raises(UnknownModelError, match="layout in \\['p4', 'p4m64', 'p7s3', 'pixels'\\]"):
        ModelName.parse("tt-mnist-pixel-r20")


def test_a_short_copy_of_an_official_dataset_is_reported(tmp_path, caplog):
    make_idx_dataset(tmp_path / "mnist", train=30, test=10)
    data = MNISTDataModule(root=str(tmp_path), download=False, val_size=5)
    with caplog.at_level(logging.WARNING, logger="tensor_zoo.data.base"):
        data.setup()
    expected = "MNIST holds 30 training and 10 test images here, not the official 60,000 and"
    assert expected in caplog.text


def test_the_official_sizes_pass_without_a_word(tmp_path, caplog):
    class ThirtyTenMNIST(MNISTDataModule):  # a dataset whose official split is 30 / 10
        spec = dataclasses.replace(DATASETS["mnist"], train_size=30, test_size=10)

    make_idx_dataset(tmp_path / "mnist", train=30, test=10)
    data = ThirtyTenMNIST(root=str(tmp_path), download=False, val_size=5)
    with caplog.at_level(logging.WARNING, logger="tensor_zoo.data.base"):
        data.setup()
    assert len(data.test_set) == 10 and "official" not in caplog.text


def test_the_docs_table_of_input_formats_is_generated_from_the_table():
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    assert hooks.DATASETS_MARKER in (ROOT / "docs" / "getting-started.md").read_text()
    rows = hooks.datasets_table().splitlines()[2:]
    assert len(rows) == len(ZOO_DATASETS)
    for row, spec in zip(rows, ZOO_DATASETS.values(), strict=True):
        _, height, width = spec.image_shape
        assert row.startswith(f"| {spec.title} | {spec.in_channels} (")
        assert row.endswith(f"| {height} × {width} | {spec.pixels} |")


PUBLISHED = read_index(PACKAGED_INDEX)["models"]
RECIPE_COMMANDS = {
    name: shlex.split(entry["config"]["training"]["command"])
    for name, entry in PUBLISHED.items()
    if "recipes/" in entry["config"]["training"]["command"]
}


@pytest.mark.parametrize("name", sorted(RECIPE_COMMANDS))
def test_the_commands_on_the_cards_still_build_the_published_networks(
    name, tmp_path, monkeypatch, capsys
):
    """The command a card gives, run through today's recipe (`--print_config` added): the
    network it builds is the published one, argument for argument (arguments added to the
    constructors since then at their defaults)."""
    words = [  # the card's paths are relative to the repository root; the test runs elsewhere
        str(ROOT / word) if word.startswith("recipes/configs/") else word
        for word in RECIPE_COMMANDS[name]
    ]
    script = next(index for index, word in enumerate(words) if word.endswith(".py"))
    recipe = Path(words[script]).stem
    printed = printed_config(recipe, words[script + 1 :], monkeypatch, tmp_path, capsys)
    printed = printed["model"]["network"]
    published = build_network(PUBLISHED[name]["config"]["architecture"])  # new arguments filled
    assert build_network(printed).config == published.config


def test_the_demo_on_the_digits_card_still_builds_the_published_network():
    """`tensor-zoo demo` (the command on tt-digits-r16's card) builds its network from the table."""
    from tensor_zoo.demo import PUBLISHED as DEMO_NAME

    assert PUBLISHED[DEMO_NAME]["config"]["training"]["command"].startswith("tensor-zoo demo")
    published = build_network(PUBLISHED[DEMO_NAME]["config"]["architecture"])
    assert build_network(architecture_config("tt", "digits", 16)).config == published.config
