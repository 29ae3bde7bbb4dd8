"""The zoo without the Hub: names, export from a real training checkpoint, strict loading."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

import tensor_zoo
from tensor_zoo.zoo import CheckpointFormatError, ChecksumError, UnknownModelError
from tensor_zoo.zoo.evaluate import data_module_for, evaluate
from tensor_zoo.zoo.hub import sha256_file
from tensor_zoo.zoo.registry import DATASETS, read_index

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
NAME = "tt-mnist-r2"  # the checkpoint of the `exported` fixture (conftest)


@pytest.fixture
def zoo_env(exported, monkeypatch):
    """Point the zoo at the exported index and checkpoints folder; never at a network."""
    monkeypatch.setenv("TENSOR_ZOO_INDEX", str(exported["index"]))
    monkeypatch.setenv("TENSOR_ZOO_CHECKPOINTS", str(exported["root"] / "checkpoints"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return exported


def test_names_patterns_and_unknown_names():
    every = tensor_zoo.list_models(pretrained=False)
    assert "tt-cifar10-r16" in every and "cp-fashion-mnist-r8" in every
    assert tensor_zoo.list_models("ht-mnist-*", pretrained=False) == [
        "ht-mnist-r8", "ht-mnist-r16", "ht-mnist-r32",
    ]  # fmt: skip
    with pytest.raises(UnknownModelError, match="Did you mean 'tt-cifar10-r16'"):
        tensor_zoo.create_model("tt-cifar-r16")
    with pytest.raises(UnknownModelError, match="'tt-mnist-r7' has no published weights"):
        tensor_zoo.load("tt-mnist-r7", local_files_only=True)


def test_create_model_builds_the_recipe_architecture_with_overrides():
    network = tensor_zoo.create_model("ht-cifar10-r8", dropout=0.0)
    args = network.config["init_args"]
    assert type(network).__name__ == "HTNet" and args["rank"] == 8 and args["dropout"] == 0.0
    assert network(torch.rand(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("dataset", ["mnist", "fashion_mnist", "cifar10"])
def test_registry_defaults_agree_with_the_recipe_configs(dataset):
    config = yaml.safe_load((RECIPES / "configs" / f"{dataset}.yaml").read_text())
    recipe_args = config["model"]["network"]["init_args"]
    network = tensor_zoo.create_model(f"tt-{dataset.replace('_', '-')}-r16")
    for key, value in recipe_args.items():
        expected = network.config["init_args"][key]
        assert value == pytest.approx(expected) if isinstance(value, list) else value == expected


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_registry_datasets_agree_with_the_data_modules(dataset):
    """The registry repeats each data module's facts (the zoo may not import Lightning)."""
    spec = DATASETS[dataset]
    data = data_module_for(dataset)
    assert spec.classes == data.classes and spec.mean == data.mean and spec.std == data.std
    assert (spec.in_channels, spec.image_size, spec.image_size) == data.image_shape


def test_export_measures_and_records_everything(exported):
    folder, network = exported["folder"], exported["network"]
    config = json.loads((folder / "config.json").read_text())
    measured = evaluate(network, "mnist", str(exported["root"] / "data"), progress=False)
    assert config["metrics"]["test/acc"] == pytest.approx(measured["test/acc"], abs=1e-6)
    assert config["metrics"]["images"] == 30
    assert config["architecture"] == json.loads(json.dumps(network.config))
    assert config["classes"] == list(DATASETS["mnist"].classes)
    assert config["input"]["shape"] == [1, 28, 28] and config["input"]["mean"] == [0.1307]
    assert config["num_params"] == network.num_params
    assert config["training"]["command"].startswith("python recipes/mnist.py")
    entry = read_index(exported["index"])["models"][NAME]
    for filename, recorded in entry["files"].items():
        assert sha256_file(folder / filename) == recorded["sha256"]
        assert (folder / filename).stat().st_size == recorded["size"]
    assert entry["hub"] == {"repo_id": None, "revision": None}


def test_model_card_has_hub_front_matter_and_the_facts(exported):
    card = (exported["folder"] / "README.md").read_text()
    _, front, body = card.split("---\n", 2)
    meta = yaml.safe_load(front)
    assert meta["library_name"] == "tensor-zoo" and meta["datasets"] == ["mnist"]
    assert "tensor-train" in meta["tags"] and meta["metrics"] == ["accuracy"]
    result = meta["model-index"][0]["results"][0]
    config = json.loads((exported["folder"] / "config.json").read_text())
    assert result["metrics"][0]["value"] == pytest.approx(config["metrics"]["test/acc"], abs=1e-4)
    assert "python recipes/mnist.py --model.network.rank=2" in body
    assert "Expressive power of recurrent neural networks" in body and "## Limitations" in body


def test_load_by_name_and_by_path_give_the_trained_network(zoo_env):
    images = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        expected = zoo_env["network"](images)
        by_name = tensor_zoo.load(NAME)
        by_path = tensor_zoo.load(NAME, path=zoo_env["folder"])
        by_weights_file = tensor_zoo.load(str(zoo_env["folder"]))
        for model in (by_name, by_path, by_weights_file):
            assert not model.training
            torch.testing.assert_close(model(images), expected)
    assert tensor_zoo.list_models() == [NAME]
    info = tensor_zoo.model_info(NAME)
    assert info["pretrained"] and info["hub"]["uploaded"] is False
    assert info["files"]["model.safetensors"]["sha256"] == sha256_file(
        zoo_env["folder"] / "model.safetensors"
    )
    fresh = tensor_zoo.create_model(NAME)
    assert fresh.config == by_name.config
    assert not torch.equal(fresh.cores[0], by_name.cores[0])


def test_golden_logits_are_reproduced(zoo_env):
    golden = load_file(str(zoo_env["folder"] / "golden.safetensors"))
    model = tensor_zoo.load(NAME).double()
    with torch.no_grad():
        torch.testing.assert_close(model(golden["images"].double()), golden["logits"])


def test_a_changed_local_file_is_refused_and_kept(zoo_env, tmp_path, monkeypatch):
    copy = tmp_path / "checkpoints" / NAME
    copy.mkdir(parents=True)
    for path in zoo_env["folder"].iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    state = load_file(str(copy / "model.safetensors"))
    state["cores.0"] = state["cores.0"] + 1
    save_file(state, str(copy / "model.safetensors"))
    monkeypatch.setenv("TENSOR_ZOO_CHECKPOINTS", str(tmp_path / "checkpoints"))
    with pytest.raises(ChecksumError, match="differs from the published checkpoint"):
        tensor_zoo.load(NAME)
    assert (copy / "model.safetensors").is_file()


def test_weights_must_match_every_key_and_shape(zoo_env, tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "config.json").write_bytes((zoo_env["folder"] / "config.json").read_bytes())
    state = load_file(str(zoo_env["folder"] / "model.safetensors"))
    state.pop("cores.1")
    state["cores.0"] = torch.zeros(1, 4, 3)
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointFormatError) as info:
        tensor_zoo.load(NAME, path=folder)
    assert "missing keys ['cores.1']" in str(info.value) and "cores.0: file (1, 4, 3)" in str(
        info.value
    )


def test_pickled_training_checkpoints_are_not_loaded(zoo_env, tmp_path):
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"not read")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="only from safetensors"):
        tensor_zoo.load(NAME, path=ckpt)


def run_cli(args, env_overrides, cwd):
    import os

    env = {**os.environ, **env_overrides}
    return subprocess.run(
        [sys.executable, "-m", "tensor_zoo.cli", *args], capture_output=True, text=True,
        env=env, cwd=cwd, timeout=300,
    )  # fmt: skip


def test_command_line_list_info_eval_predict_and_dry_run(zoo_env, tmp_path):
    from torchvision.io import write_png

    env = {
        "TENSOR_ZOO_INDEX": str(zoo_env["index"]), "HF_HUB_OFFLINE": "1",
        "TENSOR_ZOO_CHECKPOINTS": str(zoo_env["root"] / "checkpoints"),
        "TENSOR_ZOO_DATA": str(zoo_env["root"] / "data"),
    }  # fmt: skip
    listed = run_cli(["list"], env, tmp_path)
    assert listed.returncode == 0 and listed.stdout.startswith(NAME), listed.stderr
    info = json.loads(run_cli(["info", NAME], env, tmp_path).stdout)
    assert info["architecture"]["class_path"] == "tensor_zoo.TTNet"
    evaluated = run_cli(["eval", NAME], env, tmp_path)
    claimed = info["metrics"]["test/acc"]
    assert f"test accuracy {claimed:.2%} on 30 test images" in evaluated.stdout, evaluated.stderr
    assert "the card claims" in evaluated.stdout and "+0.00 points" in evaluated.stdout
    image = tmp_path / "digit.png"
    write_png((torch.rand(1, 28, 28) * 255).to(torch.uint8), str(image))
    predicted = run_cli(["predict", NAME, str(image), "--top", "2"], env, tmp_path)
    assert predicted.returncode == 0, predicted.stderr
    assert predicted.stdout.startswith(f"{image}: ") and predicted.stdout.count("%") == 2
    missing = run_cli(["predict", NAME, str(tmp_path / "nope.png")], env, tmp_path)
    assert missing.returncode != 0 and "nope.png does not exist" in missing.stderr
    (tmp_path / "text.png").write_text("not an image")
    garbage = run_cli(["predict", NAME, str(tmp_path / "text.png")], env, tmp_path)
    assert "Cannot read" in garbage.stderr and "Traceback" not in garbage.stderr
    dry = run_cli(["publish", NAME, "--repo", "someone/x", "--dry-run"], env, tmp_path)
    assert "Would upload to someone/x" in dry.stdout and "model.safetensors" in dry.stdout
    unknown = run_cli(["info", "tt-mnst-r16"], env, tmp_path)
    assert unknown.returncode != 0 and "Did you mean 'tt-mnist-r16'" in unknown.stderr
    assert "Traceback" not in unknown.stderr
