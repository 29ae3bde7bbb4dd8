"""Every recipe through its real command line, in a subprocess, on fixture files."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_data import make_idx_dataset, write_cifar_fixture

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
FAST = [
    "--trainer.max_epochs=1",
    "--trainer.limit_train_batches=3",
    "--trainer.limit_val_batches=2",
    "--trainer.limit_test_batches=2",
    "--trainer.enable_progress_bar=false",
    "--data.val_size=16",
    "--data.batch_size=8",
    "--data.download=false",
    "--trainer.log_every_n_steps=1",
]
CSV = ["--trainer.logger=lightning.pytorch.loggers.CSVLogger", "--trainer.logger.save_dir=csv"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    make_idx_dataset(root / "mnist")
    make_idx_dataset(root / "fashion-mnist")
    write_cifar_fixture(root / "cifar10", "binary")
    return root


def run_recipe(name, args, cwd, data_root, timeout=300):
    env = {key: value for key, value in os.environ.items() if not key.startswith("WANDB_")}
    env.update(HOME=str(cwd), TENSOR_ZOO_CACHE=str(cwd / "cache"), TENSOR_ZOO_DATA=str(data_root))
    result = subprocess.run(
        [sys.executable, str(RECIPES / f"{name}.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def fit_in_process(name, args, cwd, data_root, monkeypatch):
    """A recipe run in this process (no interpreter start-up), its environment isolated."""
    from tensor_zoo.data import CIFAR10DataModule, FashionMNISTDataModule, MNISTDataModule
    from tensor_zoo.lightning.cli import run_recipe as run_in_process

    modules = {
        "mnist": MNISTDataModule,
        "fashion_mnist": FashionMNISTDataModule,
        "cifar10": CIFAR10DataModule,
    }
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("TENSOR_ZOO_CACHE", str(cwd / "cache"))
    monkeypatch.setenv("TENSOR_ZOO_DATA", str(data_root))
    run_in_process(modules[name], RECIPES / "configs" / f"{name}.yaml", args)


def csv_keys(cwd):
    (metrics,) = list(Path(cwd, "csv").rglob("metrics.csv"))
    with open(metrics) as stream:
        return set(next(csv.reader(stream)))


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10"])
def test_fit_through_the_cli_logs_to_wandb_offline(name, tmp_path, data_root):
    result = run_recipe(name, ["fit", *FAST], tmp_path, data_root)
    assert "W&B: no login found, so this run is logged offline" in result.stderr
    (run_dir,) = list(tmp_path.glob(f"runs/{name}/wandb/offline-run-*"))
    assert list(run_dir.glob("run-*.wandb"))
    (last,) = list(tmp_path.glob(f"runs/{name}/**/checkpoints/last.ckpt"))
    assert (last.parent.parent / "config.yaml").is_file()  # the run's own, beside its weights
    assert not (tmp_path / "runs" / name / "config.yaml").exists()


def test_no_subcommand_fits_then_tests_with_a_csv_logger(tmp_path, data_root):
    result = run_recipe(
        "mnist",
        [*FAST, *CSV, "--model.network=HTNet", "--model.network.rank=4"],
        tmp_path,
        data_root,
    )
    assert "test/acc" in result.stdout
    keys = csv_keys(tmp_path)
    assert {
        "train/loss_step",
        "val/loss",
        "val/acc",
        "test/acc",
        "test/loss",
        "train/images_per_s",
    } <= keys
    assert any(key.startswith("lr-AdamW") for key in keys)
    (checkpoint,) = list(tmp_path.glob("csv/**/last.ckpt"))
    hparams = torch.load(checkpoint, map_location="cpu", weights_only=False)["hyper_parameters"]
    assert (
        hparams["network"]["class_path"].endswith("HTNet")
        and hparams["network"]["init_args"]["rank"] == 4
    )


def test_two_devices_fit_then_test_the_last_weights_when_no_validation_ran(tmp_path, data_root):
    args = [*FAST, *CSV, "--trainer.devices=2", "--trainer.max_steps=2"]  # stops before validation
    result = run_recipe("mnist", args, tmp_path, data_root)
    output = result.stdout + result.stderr
    assert "MEMBER: 1/2" in output and "MEMBER: 2/2" in output
    assert "so there is no best checkpoint: testing the last weights" in result.stderr
    assert "test/acc" in csv_keys(tmp_path)


def test_ckpt_path_resumes_from_the_saved_step_with_a_new_lr(tmp_path, data_root):
    run_recipe("mnist", ["fit", *FAST, "--trainer.logger=false"], tmp_path, data_root)  # README
    (last,) = list(tmp_path.glob("runs/mnist/version_0/checkpoints/last.ckpt"))
    assert (last.parent.parent / "config.yaml").is_file()
    assert torch.load(last, map_location="cpu", weights_only=False)["global_step"] == 3
    args = ["fit", *FAST, *CSV, "--trainer.max_epochs=2", "--model.lr=0.001", f"--ckpt_path={last}"]
    result = run_recipe("mnist", args, tmp_path, data_root)
    assert "Restoring states from the checkpoint" in result.stdout + result.stderr
    assert (
        "Resuming with new settings (they apply from the resumed step on): lr 0.003 -> 0.001"
        in result.stderr
    )
    (resumed,) = list(tmp_path.glob("csv/**/last.ckpt"))
    assert torch.load(resumed, map_location="cpu", weights_only=False)["global_step"] == 6


def test_expected_failures_are_one_message_before_any_logger_run(tmp_path, monkeypatch, capsys):
    """In-process: no data, then a resume the checkpoint refuses."""
    with pytest.raises(SystemExit) as info:
        fit_in_process("mnist", ["fit", *FAST], tmp_path, tmp_path / "nothing", monkeypatch)
    assert info.value.code == 1
    error = capsys.readouterr().err
    assert error.startswith("Error: MNIST was not found.") and "Traceback" not in error
    assert not (tmp_path / "runs").exists()  # no empty W&B run

    make_idx_dataset(tmp_path / "nothing" / "mnist")
    no_logger = ["fit", *FAST, "--trainer.logger=false"]
    fit_in_process("mnist", no_logger, tmp_path, tmp_path / "nothing", monkeypatch)
    (last,) = list(tmp_path.glob("runs/mnist/version_0/checkpoints/last.ckpt"))
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        fit_in_process(
            "mnist",
            [*no_logger, "--model.network.rank=4", f"--ckpt_path={last}"],
            tmp_path,
            tmp_path / "nothing",
            monkeypatch,
        )
    assert info.value.code == 1
    error = capsys.readouterr().err
    assert error.startswith("Error: The checkpoint holds another network") and "rank: 16" in error
    assert len(list(tmp_path.glob("runs/mnist/version_*"))) == 2  # runs never share a folder

    ctrl_c = ["--trainer.callbacks+=test_lightning.CtrlC", "--trainer.callbacks.step=2"]
    with pytest.raises(SystemExit) as info:  # a real SIGINT during step 2
        fit_in_process("mnist", [*no_logger, *ctrl_c], tmp_path, tmp_path / "nothing", monkeypatch)
    assert info.value.code == 130
    error = capsys.readouterr().err
    saved = Path("runs", "mnist", "version_2", "checkpoints", "last.ckpt")
    assert (tmp_path / saved).is_file()
    assert f"Interrupted at step 2; the run was saved to {saved}. Resume with:\n" in error
    assert error.rstrip().endswith(
        f"fit {' '.join(no_logger[1:])} {' '.join(ctrl_c)} --ckpt_path={saved}"
    )


def test_print_config_is_complete_and_reusable(tmp_path, data_root, monkeypatch, capsys):
    with pytest.raises(SystemExit) as info:
        fit_in_process(
            "cifar10",
            ["fit", "--print_config", "--model.network=CPNet"],
            tmp_path,
            data_root,
            monkeypatch,
        )
    assert info.value.code == 0
    printed = capsys.readouterr().out
    config = tmp_path / "config.yaml"
    config.write_text(printed)
    assert "class_path: tensor_zoo.networks.cp.CPNet" in printed or "CPNet" in printed
    run_recipe("cifar10", ["fit", f"--config={config}", *FAST, *CSV], tmp_path, data_root)
    assert "test/acc" not in csv_keys(tmp_path)  # fit only


def test_testing_sends_a_confusion_matrix_and_sample_predictions_to_wandb(tmp_path, data_root):
    run_recipe("mnist", FAST, tmp_path, data_root)
    (files,) = list(tmp_path.glob("runs/mnist/wandb/offline-run-*/files"))
    tables = [path.name for path in files.rglob("*.table.json")]
    assert any(name.startswith("confusion_matrix") for name in tables), tables
    assert any(name.startswith("sample_predictions") for name in tables), tables


def test_two_device_test_accuracy_counts_each_image_once(tmp_path, monkeypatch):
    """21 test images on 2 processes: the padded default sampler would score 22."""
    make_idx_dataset(tmp_path / "data" / "mnist", test=21)
    fit_in_process("mnist", ["fit", *FAST, *CSV], tmp_path, tmp_path / "data", monkeypatch)
    (last,) = list(tmp_path.glob("csv/**/last.ckpt"))
    accuracies = {}
    for devices in (1, 2):
        save_dir = f"--trainer.logger.save_dir=test{devices}"
        args = ["test", *FAST, *CSV, save_dir, "--trainer.limit_test_batches=1.0"]
        run_recipe(
            "mnist",
            [*args, f"--trainer.devices={devices}", f"--ckpt_path={last}"],
            tmp_path,
            tmp_path / "data",
        )
        (metrics,) = list(tmp_path.glob(f"test{devices}/**/metrics.csv"))
        with open(metrics) as stream:
            accuracies[devices] = float(next(csv.DictReader(stream))["test/acc"])
    assert accuracies[1] == pytest.approx(accuracies[2], abs=1e-6)
    assert round(accuracies[1] * 21, 4).is_integer()


def test_generalized_and_shared_core_networks_through_the_recipe_flags(tmp_path, data_root):
    """The README's flags: --model.network=SharedTTNet --model.network.init_args.xi=relu."""
    args = ["fit", *FAST, *CSV, "--model.network=SharedTTNet", "--model.network.init_args.xi=relu"]
    run_recipe("mnist", args, tmp_path, data_root)
    (checkpoint,) = list(tmp_path.glob("csv/**/last.ckpt"))
    network = torch.load(checkpoint, map_location="cpu", weights_only=False)["hyper_parameters"]
    assert network["network"]["class_path"] == "tensor_zoo.SharedTTNet"
    assert network["network"]["init_args"]["xi"] == "relu"


def test_ht_recipes_use_the_quad_tree_whatever_the_other_networks_use(
    tmp_path, data_root, monkeypatch
):
    """Switching the MNIST recipe (TT, raster order) to HTNet must not carry raster over."""
    from tensor_zoo.lightning import TensorNetClassifier

    fit_in_process(
        "mnist", ["fit", *FAST, *CSV, "--model.network=HTNet"], tmp_path, data_root, monkeypatch
    )
    (last,) = list(tmp_path.glob("csv/**/last.ckpt"))
    network = TensorNetClassifier.load_from_checkpoint(last).network
    assert type(network).__name__ == "HTNet"
    assert network.config["init_args"]["ordering"] == "zorder"
    assert network.patches.ordering == "zorder"
