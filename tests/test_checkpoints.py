"""Every shipped checkpoint: files match the index, the config rebuilds it, golden logits hold."""

import inspect
import json

import pytest
import torch
import yaml
from safetensors.torch import load_file

import tensor_zoo
from tensor_zoo.zoo.hub import sha256_file, source_checkout_checkpoints
from tensor_zoo.zoo.registry import PACKAGED_INDEX, read_index

SHIPPED = read_index(PACKAGED_INDEX)["models"]
FOLDER = source_checkout_checkpoints()


@pytest.fixture(autouse=True)
def _packaged_index_offline(monkeypatch):
    monkeypatch.delenv("TENSOR_ZOO_INDEX", raising=False)
    monkeypatch.delenv("TENSOR_ZOO_CHECKPOINTS", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_the_first_checkpoints_are_shipped():
    assert {"tt-mnist-r16", "tt-cifar10-r16", "tt-digits-r16"} <= set(SHIPPED)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_files_match_the_index(name):
    for filename, recorded in SHIPPED[name]["files"].items():
        path = FOLDER / name / filename
        assert sha256_file(path) == recorded["sha256"], path
        assert path.stat().st_size == recorded["size"], path
    assert json.loads((FOLDER / name / "config.json").read_text()) == SHIPPED[name]["config"]


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_config_rebuilds_the_model_and_golden_logits_hold(name):
    model = tensor_zoo.load(name)
    config = SHIPPED[name]["config"]
    assert model.num_params == config["num_params"]
    stored = config["architecture"]["init_args"]
    rebuilt = model.config["init_args"]
    assert list(rebuilt.items())[: len(stored)] == list(stored.items())
    # arguments added after the checkpoint was published take their defaults
    defaults = inspect.signature(type(model)).parameters
    assert {key: rebuilt[key] for key in rebuilt if key not in stored} == {
        key: defaults[key].default for key in rebuilt if key not in stored
    }
    golden = load_file(str(FOLDER / name / "golden.safetensors"))
    assert golden["images"].shape[1:] == tuple(config["input"]["shape"])
    with torch.no_grad():
        logits = model.double()(golden["images"].double())
    torch.testing.assert_close(logits, golden["logits"], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_card_states_the_measured_accuracy_and_command(name):
    card = (FOLDER / name / "README.md").read_text()
    meta = yaml.safe_load(card.split("---\n", 2)[1])
    config = SHIPPED[name]["config"]
    claimed = meta["model-index"][0]["results"][0]["metrics"][0]["value"]
    assert claimed == pytest.approx(config["metrics"]["test/acc"], abs=1e-4)
    assert config["training"]["command"] in card
    assert config["dataset"]["title"] in card


def test_the_package_ships_the_checkpoints():
    """tensor_zoo/zoo/checkpoints links checkpoints/: wheels carry them (package data)."""
    from tensor_zoo.zoo.hub import packaged_checkpoints

    assert packaged_checkpoints().resolve() == FOLDER.resolve()
    pyproject = (FOLDER.parent / "pyproject.toml").read_text()
    assert '"tensor_zoo.zoo" = ["index.json", "checkpoints/*/*"]' in pyproject
