"""The zoo without the Hub: names, export from a real training checkpoint, strict loading."""

import json
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from safetensors.torch import load_file, save_file

import tensor_zoo
from tensor_zoo.zoo import (
    CheckpointFormatError,
    ChecksumError,
    IndexFileError,
    UnknownModelError,
)
from tensor_zoo.zoo.evaluate import evaluate
from tensor_zoo.zoo.export import export_checkpoint
from tensor_zoo.zoo.hub import sha256_file
from tensor_zoo.zoo.registry import LISTED_RANKS, read_index

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
    names = tensor_zoo.list_models("ht-mnist-*", pretrained=False)  # published + fresh ranks
    assert {"ht-mnist-r8", "ht-mnist-r16", "ht-mnist-r32"} <= set(names)
    assert set(tensor_zoo.list_models("ht-mnist-*")) <= set(names)
    assert all(name.startswith("ht-mnist-r") for name in names)
    assert names == sorted(names, key=lambda name: int(name.rsplit("-r", 1)[1]))
    with pytest.raises(UnknownModelError, match="Did you mean 'tt-cifar10-r16'"):
        tensor_zoo.create_model("tt-cifar-r16")
    with pytest.raises(UnknownModelError, match="'tt-mnist-r7' has no published weights"):
        tensor_zoo.load("tt-mnist-r7", local_files_only=True)


def test_create_model_builds_the_recipe_architecture_with_overrides():
    network = tensor_zoo.create_model("ht-cifar10-r8", dropout=0.0)
    args = network.config["init_args"]
    assert type(network).__name__ == "HTNet" and args["rank"] == 8 and args["dropout"] == 0.0
    assert network(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_create_model_pretrained_is_load_and_names_what_exists_when_nothing_is(zoo_env):
    """timm's `create_model(name, pretrained=True)`: the published weights, or a clear no."""
    images = torch.rand(2, 1, 28, 28)
    pretrained = tensor_zoo.create_model(NAME, pretrained=True)
    assert not pretrained.training
    with torch.no_grad():
        torch.testing.assert_close(pretrained(images), zoo_env["network"](images))
    fresh = tensor_zoo.create_model(NAME)  # pretrained=False: today's fresh weights
    assert fresh.training and fresh.config == pretrained.config
    assert not torch.equal(fresh.cores[0], pretrained.cores[0])
    for name, listing in (
        ("tt-mnist-r7", "the published tt-mnist checkpoints are tt-mnist-r2."),
        ("cp-mnist-r3", "the published mnist checkpoints are tt-mnist-r2."),
        ("ht-cifar10-r8", "the published checkpoints are tt-mnist-r2."),
    ):
        with pytest.raises(UnknownModelError) as error:
            tensor_zoo.create_model(name, pretrained=True)
        assert str(error.value) == (
            f"{name!r} has no published weights; {listing} create_model({name!r}) builds it "
            f"with fresh weights (pretrained=False)."
        )
    with pytest.raises(ValueError, match="cannot be applied to pretrained weights"):
        tensor_zoo.create_model(NAME, pretrained=True, dropout=0.5)


def test_list_models_takes_one_pattern_or_several_like_timms_filter(zoo_env):
    assert tensor_zoo.list_models() == tensor_zoo.list_models(pretrained=True) == [NAME]
    assert tensor_zoo.list_models(["cp-*", "TT-MNIST-R2"]) == [NAME]
    several = tensor_zoo.list_models(["cp-mnist-*", "ht-digits-*"], pretrained=False)
    kinds = ("cp-mnist", "ht-digits")
    assert several == [f"{kind}-r{rank}" for kind in kinds for rank in sorted(LISTED_RANKS)]
    assert NAME in tensor_zoo.list_models("tt-mnist-*", pretrained=False)
    assert tensor_zoo.list_models([]) == []


def test_export_measures_and_records_everything(exported):
    folder, network = exported["folder"], exported["network"]
    config = json.loads((folder / "config.json").read_text())
    measured = evaluate(network, "mnist", str(exported["root"] / "data"), progress=False)
    assert config["metrics"]["test/acc"] == pytest.approx(measured["test/acc"], abs=1e-6)
    assert config["metrics"]["images"] == 30
    assert config["architecture"] == json.loads(json.dumps(network.config))
    assert config["classes"] == [str(digit) for digit in range(10)]
    assert config["input"]["shape"] == [1, 28, 28] and config["input"]["mean"] == [0.1307]
    assert config["dataset"]["hub_id"] == "mnist" and config["dataset"]["title"] == "MNIST"
    assert config["num_params"] == network.num_params
    assert config["training"]["command"].startswith("python recipes/mnist.py")
    entry = read_index(exported["index"])["models"][NAME]
    for filename, recorded in entry["files"].items():
        assert sha256_file(folder / filename) == recorded["sha256"]
        assert (folder / filename).stat().st_size == recorded["size"]
    assert entry["hub"] == {"repo_id": None, "revision": None}


def test_export_flags_override_what_a_resumed_run_folder_records(exported, tmp_path):
    """A run resumed into another folder records only its own epochs: the flags win."""
    run = tmp_path / "resumed"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(exported["root"] / "run" / "checkpoints" / "best.ckpt", run / "checkpoints")
    (run / "metrics.csv").write_text("epoch,train/epoch_seconds\n10,30.0\n11,31.0\n")
    (run / "config.yaml").write_text("trainer:\n  max_epochs: 12\n")
    common = dict(
        command="python recipes/mnist.py",
        out=tmp_path / "out",
        data_root=str(exported["root"] / "data"),
        index=tmp_path / "index.json",
        progress=False,
    )
    recorded = export_checkpoint(run / "checkpoints" / "best.ckpt", "tt-mnist-r2", **common)
    training = json.loads((recorded / "config.json").read_text())["training"]
    assert (training["epochs"], training["wall_time_s"]) == (12, 61.0)
    given = export_checkpoint(
        run / "checkpoints" / "best.ckpt",
        "tt-mnist-r2",
        epochs=20,
        wall_time_s=1421.0,
        force=True,
        **common,
    )
    training = json.loads((given / "config.json").read_text())["training"]
    assert (training["epochs"], training["wall_time_s"]) == (20, 1421.0)


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
        by_weights_file = tensor_zoo.load(path=zoo_env["folder"] / "model.safetensors")
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


def run_cli(args, env_overrides, cwd, monkeypatch, capsys):
    """`tensor-zoo ARGS` in this process: (exit status, stdout, stderr)."""
    from tensor_zoo.cli import main

    for key, value in env_overrides.items():
        monkeypatch.setenv(key, str(value))
    monkeypatch.chdir(cwd)
    capsys.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
        if isinstance(exit_.code, str):
            print(exit_.code, file=sys.stderr)
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out, err)


@pytest.fixture
def cli(zoo_env, tmp_path, monkeypatch, capsys):
    """Run `tensor-zoo` in-process against the exported zoo (offline, fixture data)."""
    env = {
        "TENSOR_ZOO_INDEX": zoo_env["index"],
        "HF_HUB_OFFLINE": "1",
        "TENSOR_ZOO_CHECKPOINTS": zoo_env["root"] / "checkpoints",
        "TENSOR_ZOO_DATA": zoo_env["root"] / "data",
    }
    return lambda *args: run_cli(args, env, tmp_path, monkeypatch, capsys)


def test_command_line_list_info_eval_predict_and_dry_run(cli, tmp_path):
    from torchvision.io import write_png

    listed = cli("list")
    assert listed.returncode == 0 and listed.stdout.startswith(NAME), listed.stderr
    info = json.loads(cli("info", NAME).stdout)
    assert info["architecture"]["class_path"] == "tensor_zoo.TTNet"
    evaluated = cli("eval", NAME)
    claimed = info["metrics"]["test/acc"]
    assert f"test accuracy {claimed:.2%} on 30 test images" in evaluated.stdout, evaluated.stderr
    assert "the card claims" in evaluated.stdout and "+0.00 points" in evaluated.stdout
    image = tmp_path / "digit.png"
    write_png((torch.rand(1, 28, 28) * 255).to(torch.uint8), str(image))
    predicted = cli("predict", NAME, str(image), "--top", "2")
    assert predicted.returncode == 0, predicted.stderr
    assert predicted.stdout.startswith(f"{image}: ") and predicted.stdout.count("%") == 2
    missing = cli("predict", NAME, str(tmp_path / "nope.png"))
    assert missing.returncode != 0 and "nope.png does not exist" in missing.stderr
    (tmp_path / "text.png").write_text("not an image")
    garbage = cli("predict", NAME, str(tmp_path / "text.png"))
    assert "Cannot read" in garbage.stderr and "Traceback" not in garbage.stderr
    dry = cli("publish", NAME, "--repo", "someone/x", "--dry-run")
    assert "Would upload to someone/x" in dry.stdout and "model.safetensors" in dry.stdout
    unknown = cli("info", "tt-mnst-r16")
    assert unknown.returncode != 0 and "Did you mean 'tt-mnist-r16'" in unknown.stderr
    assert "Traceback" not in unknown.stderr


def test_the_console_script_runs_as_a_module(zoo_env, tmp_path):
    """One real subprocess: `python -m tensor_zoo.cli` (the rest run in-process)."""
    import os

    env = {**os.environ, "TENSOR_ZOO_INDEX": str(zoo_env["index"]), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "tensor_zoo.cli", "info", "TT-MNST-R16"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Did you mean 'tt-mnist-r16'" in result.stderr


def copy_folder(source: Path, target: Path) -> Path:
    target.mkdir(parents=True)
    for path in source.iterdir():
        (target / path.name).write_bytes(path.read_bytes())
    return target


def test_a_folder_named_like_a_published_model_is_not_loaded(zoo_env, tmp_path, monkeypatch):
    planted = copy_folder(zoo_env["folder"], tmp_path / NAME)
    state = load_file(str(planted / "model.safetensors"))
    save_file({key: value * 3 for key, value in state.items()}, str(planted / "model.safetensors"))
    monkeypatch.chdir(tmp_path)
    images = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(tensor_zoo.load(NAME)(images), zoo_env["network"](images))
    with pytest.raises(UnknownModelError, match="Unknown model"):
        tensor_zoo.load(str(planted))  # a path is never a name
    with pytest.raises(UnknownModelError, match="non-empty string"):
        tensor_zoo.load("")


def test_a_local_folder_is_checked_against_its_golden_logits(zoo_env, tmp_path, caplog):
    folder = copy_folder(zoo_env["folder"], tmp_path / "mine")
    state = load_file(str(folder / "model.safetensors"))
    state["cores.0"] = state["cores.0"] * 1.01
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointFormatError, match="do not reproduce its golden logits"):
        tensor_zoo.load(path=folder)
    (folder / "golden.safetensors").unlink()
    with caplog.at_level("WARNING"):
        tensor_zoo.load(path=folder)
    assert "Could not verify" in caplog.text and "golden.safetensors" in caplog.text
    with pytest.raises(ValueError, match="is the checkpoint 'tt-mnist-r2', not 'tt-mnist-r4'"):
        tensor_zoo.load("tt-mnist-r4", path=folder)


def test_names_are_forgiving_in_suggestions_and_strict_in_use(zoo_env, monkeypatch, tmp_path):
    with pytest.raises(UnknownModelError, match="Did you mean 'tt-mnist-r16'"):
        tensor_zoo.create_model("TT-MNIST-R16")
    assert tensor_zoo.list_models("TT-*") == [NAME]
    monkeypatch.setenv("TENSOR_ZOO_CHECKPOINTS", str(tmp_path / "typo"))
    with pytest.raises(FileNotFoundError, match=r"TENSOR_ZOO_CHECKPOINTS is .*typo.*not a folder"):
        tensor_zoo.load(NAME)
    monkeypatch.setenv("TENSOR_ZOO_INDEX", str(tmp_path / "no-such-index.json"))
    with pytest.raises(IndexFileError, match=r"no-such-index.json does not exist.*TENSOR_ZOO_"):
        tensor_zoo.list_models()


def lagrange_at(points: dict[int, int], x: int) -> int:
    """The polynomial through `points` ({x_i: y_i}), evaluated exactly at x."""
    total = Fraction(0)
    for xi, yi in points.items():
        term = Fraction(yi)
        for xj in points:
            if xj != xi:
                term *= Fraction(x - xj, xi - xj)
        total += term
    return int(total)


@pytest.mark.parametrize("arch", ["cp", "tt", "ht"])
def test_model_info_counts_huge_networks_without_building_them(arch):
    """Parameters are a cubic in the rank at most: 4 small real networks give the oracle."""
    import resource

    small = {
        r: tensor_zoo.create_model(f"{arch}-cifar10-r4", rank=r).num_params for r in range(1, 5)
    }
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    info = tensor_zoo.model_info(f"{arch}-cifar10-r1000")  # TT: ~2e9 parameters, HT: ~6e10
    assert info["num_params"] == lagrange_at(small, 1000)
    assert info["num_params"] > 2_000_000
    growth_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_kib) / 1024
    assert growth_mib < 200  # building the TT network would take 8 GB


def test_cli_errors_are_one_line_and_debug_shows_the_traceback(cli, zoo_env, tmp_path):
    for args, message in [
        (("eval", NAME, "--limit", "0"), "--limit: must be at least 1, got 0"),
        (("eval", NAME, "--batch-size", "0"), "--batch-size: must be at least 1, got 0"),
        (("predict", NAME, "x.png", "--top", "0"), "--top: must be at least 1, got 0"),
    ]:
        result = cli(*args)
        assert result.returncode == 2 and message in result.stderr, result.stderr
    broken = copy_folder(zoo_env["folder"], tmp_path / "broken")
    (broken / "config.json").write_text('{"format_version": 1, "architecture": ')
    result = cli("eval", NAME, "--path", str(broken))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "config.json is not valid JSON" in result.stderr and result.stderr.count("\n") == 1
    (broken / "config.json").write_bytes((zoo_env["folder"] / "config.json").read_bytes())
    weights = (zoo_env["folder"] / "model.safetensors").read_bytes()
    (broken / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    result = cli("predict", NAME, "x.png", "--path", str(broken))
    assert "not a readable safetensors file" in result.stderr and result.returncode == 1
    (broken / "config.json").write_text('{"format_version": 1, "architecture": []}')
    result = cli("info", NAME, "--path", str(broken))  # argparse: no --path for info
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "unrecognized arguments: --path" in result.stderr and "usage:" not in result.stderr
    result = cli("eval")  # a missing argument: one line too, not usage + error
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "the following arguments are required: name" in result.stderr
    with pytest.raises(CheckpointFormatError):
        cli("eval", NAME, "--path", str(broken), "--debug")


def test_predict_and_eval_with_path_use_the_folders_own_card(cli, zoo_env, tmp_path):
    folder = copy_folder(zoo_env["folder"], tmp_path / "relabelled")
    config = json.loads((folder / "config.json").read_text())
    config["classes"] = [f"class {digit}" for digit in "abcdefghij"]
    config["metrics"]["test/acc"] = 0.125
    (folder / "config.json").write_text(json.dumps(config))
    image = tmp_path / "digit.png"
    Image.fromarray((np.random.default_rng(0).random((28, 28)) * 255).astype(np.uint8)).save(image)
    predicted = cli("predict", NAME, str(image), "--path", str(folder))
    assert predicted.stdout.count("class ") == 3, predicted.stderr
    evaluated = cli("eval", NAME, "--path", str(folder))
    assert "the card claims 12.50%" in evaluated.stdout, evaluated.stderr


def test_predict_reads_a_sixteen_bit_png_as_what_it_shows(cli, zoo_env, tmp_path):
    golden = load_file(str(zoo_env["folder"] / "golden.safetensors"))["images"][0, 0]
    eight = (golden * 255).round().to(torch.uint8).numpy()
    Image.fromarray(eight).save(tmp_path / "8.png")
    Image.fromarray(eight.astype(np.uint16) * 257).save(tmp_path / "16.png")
    result = cli("predict", NAME, str(tmp_path / "8.png"), str(tmp_path / "16.png"), "--top", "3")
    lines = result.stdout.splitlines()
    assert len(lines) == 2, result.stderr
    assert lines[0].split(": ", 1)[1] == lines[1].split(": ", 1)[1]


def test_export_refuses_an_existing_name_and_never_leaves_half_a_state(cli, zoo_env, tmp_path):
    ckpt = zoo_env["root"] / "run" / "checkpoints" / "best.ckpt"
    before = {p.name: p.read_bytes() for p in zoo_env["folder"].iterdir()}
    args = ("export", str(ckpt), NAME, "--command", "x", "--out", str(zoo_env["folder"].parent))
    refused = cli(*args, "--index", str(zoo_env["index"]))
    assert refused.returncode == 1 and "already exists" in refused.stderr
    assert "--force" in refused.stderr
    unwritable = tmp_path / "no-such-folder" / "index.json"  # the index write fails
    failed = cli(
        *args, "--index", str(unwritable), "--force", "--data-root", str(zoo_env["root"] / "data")
    )
    assert failed.returncode == 1 and "Traceback" not in failed.stderr, failed.stderr
    assert "no-such-folder" in failed.stderr  # it got as far as writing the index
    assert {p.name: p.read_bytes() for p in zoo_env["folder"].iterdir()} == before
    assert sorted(p.name for p in zoo_env["folder"].parent.iterdir()) == [NAME]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.sampled_from(["list", "info", "eval", "predict"]),
    st.lists(
        st.one_of(
            st.sampled_from(
                [NAME, "--top", "--limit", "--batch-size", "--path", "-1", "0", "", "x"]
            ),
            st.text(max_size=12),
        ),
        max_size=4,
    ),
)
def test_any_command_line_ends_in_output_or_one_line_error(cli, command, args):
    result = cli(command, *args)
    assert "Traceback" not in result.stderr
    if result.returncode == 1:
        assert result.stderr.strip().count("\n") == 0 and result.stderr.startswith(
            f"tensor-zoo {command}: "
        )


def test_export_refuses_a_file_that_is_not_a_recipe_checkpoint(cli, tmp_path):
    not_a_run = tmp_path / "weights.ckpt"
    torch.save({"state_dict": {}}, not_a_run)
    result = cli("export", str(not_a_run), "tt-mnist-r4", "--command", "x", "--out", str(tmp_path))
    assert result.returncode == 1 and "is not a training checkpoint of a tensor_zoo recipe" in (
        result.stderr
    )
    assert not (tmp_path / "tt-mnist-r4").exists()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.one_of(
        st.text(max_size=20),
        st.sampled_from([NAME, NAME.upper(), f" {NAME}", ".", "..", "/", "~", "checkpoints"]),
        st.builds(
            "{}-{}-r{}".format,
            st.sampled_from(["tt", "cp", "ht", "TT", "xx"]),
            st.sampled_from(["mnist", "cifar10", "digits", "MNIST", "cifar"]),
            st.integers(0, 64),
        ),
    )
)
def test_any_name_loads_the_published_model_or_is_refused_as_unknown(zoo_env, name):
    try:
        model = tensor_zoo.load(name, local_files_only=True)
    except UnknownModelError as error:
        assert (
            "Unknown model" in str(error)
            or "has no published weights" in str(error)
            or ("non-empty string" in str(error))
        )
        return
    assert name == NAME and model.config == zoo_env["network"].config


def test_one_line_names_foreign_errors_and_trusts_our_own():
    from tensor_zoo.cli import one_line

    try:
        tensor_zoo.load("")
    except UnknownModelError as ours:
        assert one_line(ours).startswith("A model name is a non-empty string")
    try:
        json.loads("{")
    except json.JSONDecodeError as foreign:
        line = one_line(foreign)
        assert line.startswith("JSONDecodeError: ") and line.endswith("--debug for the traceback)")


def test_a_missing_local_path_is_named_as_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope does not exist\. Give a checkpoint folder"):
        tensor_zoo.load(path=tmp_path / "nope")


def test_create_model_puts_ht_on_its_quad_tree_whatever_the_dataset_order():
    """digits' recipe order is snake (for TT); an HT of digits still pairs 2 x 2 blocks."""
    assert tensor_zoo.create_model("tt-digits-r4").patches.ordering == "snake"
    assert tensor_zoo.create_model("ht-digits-r4").patches.ordering == "zorder"
