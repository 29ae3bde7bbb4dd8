"""Turn a recipe's training checkpoint (.ckpt) into a published checkpoint folder + index entry.

The test metrics are measured here, on the dataset's test split, not copied from the log.
The training details come from the run folder Lightning wrote next to the checkpoint
(`config.yaml`, and `metrics.csv` for the epoch times when a CSV logger was used).
"""

from __future__ import annotations

import csv
import datetime
import logging
import os
import platform
from pathlib import Path
from typing import Any

import torch
import yaml

import tensor_zoo
from tensor_zoo.networks import build_network
from tensor_zoo.zoo.card import render_card
from tensor_zoo.zoo.evaluate import evaluate
from tensor_zoo.zoo.format import (
    CARD_FILE,
    CONFIG_FILE,
    GOLDEN_FILE,
    WEIGHTS_FILE,
    atomic_folder,
    write_folder,
)
from tensor_zoo.zoo.hub import local_checkpoints_dir, sha256_file
from tensor_zoo.zoo.registry import (
    ARCHITECTURES,
    FORMAT_VERSION,
    ZOO_DATASETS,
    ModelName,
    read_index,
    write_index,
)
from tensor_zoo.zoo.registry import index_path as default_index_path

log = logging.getLogger(__name__)


def hardware_description() -> str:
    """CPU model, core count and torch threads (and the GPU, when one was used)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    threads = torch.get_num_threads()
    text = f"{cpu}, {os.cpu_count()} cores, torch {threads} thread{'s' if threads > 1 else ''}"
    if torch.cuda.is_available():
        text += f", {torch.cuda.get_device_name()}"
    return text


def _run_details(ckpt_path: Path) -> dict[str, Any]:
    """Epochs and epoch wall times from the run folder holding the checkpoint, when there."""
    run_dir = ckpt_path.resolve().parent.parent
    details: dict[str, Any] = {}
    config_file = run_dir / "config.yaml"
    if config_file.is_file():
        run_config = yaml.safe_load(config_file.read_text())
        trainer = run_config.get("trainer", {})
        details["epochs"] = trainer.get("max_epochs")
        details["devices"] = trainer.get("devices")
        details["batch_size"] = run_config.get("data", {}).get("batch_size")
        details["seed"] = run_config.get("seed_everything")
    metrics_file = run_dir / "metrics.csv"
    if metrics_file.is_file():
        with open(metrics_file) as stream:
            seconds = [
                float(r["train/epoch_seconds"])
                for r in csv.DictReader(stream)
                if r.get("train/epoch_seconds")
            ]
        if seconds:
            details["epoch_seconds"] = [round(s, 2) for s in seconds]
            details["wall_time_s"] = round(sum(seconds), 1)
    return details


def _epochs_done(checkpoint: dict[str, Any], epochs: int | None) -> int:
    """Epochs trained when the checkpoint was written (1-based, at most `epochs`).

    ModelCheckpoint saves during epoch k (0-based "epoch" = k); `trainer.save_checkpoint`
    after fit stores the epoch counter already advanced to `epochs`.
    """
    done = int(checkpoint["epoch"]) + 1
    return min(done, epochs) if epochs else done


def export_checkpoint(
    ckpt_path: str | os.PathLike,
    name: str,
    *,
    command: str,
    out: str | os.PathLike | None = None,
    data_root: str | None = None,
    data_variant: str | None = None,
    data_note: str | None = None,
    training_note: str | None = None,
    index: Path | None = None,
    epochs: int | None = None,
    wall_time_s: float | None = None,
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Turn a recipe's training .ckpt into a checkpoint folder and an index entry.

    Writes OUT/NAME/ (safetensors weights, config, card, golden outputs), measuring the test
    metrics itself. An existing folder or index entry of that name is replaced only with
    `force`. The folder and the index are each written whole or not at all: a failure leaves
    the old state.

    Args:
        ckpt_path: the training checkpoint (best-*.ckpt or last.ckpt of a recipe run).
        name: `{arch}-{dataset}-r{rank}`, e.g. tt-mnist-r16.
        command: the exact command that trained it (shown on the card).
        out: the parent folder (default: the local checkpoints folder).
        data_root: where the dataset is (else TENSOR_ZOO_DATA, then the cache).
        data_variant: a non-original copy of the data, e.g. "JPEG copy"; it then appears in
            the dataset's name everywhere.
        data_note: a sentence on that copy, for the card.
        training_note: sentences about the run, for the card.
        index: the index file to update (default: the one in use).
        epochs: the epochs trained (default: what the run folder records); give it for a
            run resumed into another folder.
        wall_time_s: the training seconds (default: the sum of the run folder's logged epoch
            times); give it for a run resumed into another folder.
        force: replace an existing folder and index entry.
        progress: show a progress bar while measuring.

    Returns:
        The checkpoint folder.
    """
    ckpt_path = Path(ckpt_path)
    parsed = ModelName.parse(name)
    folder = Path(out) if out else (local_checkpoints_dir() or Path("checkpoints"))
    folder = folder / name
    recorded = read_index(index, missing_ok=True)
    if not force and (folder.exists() or name in recorded["models"]):
        where = folder if folder.exists() else (index or default_index_path())
        raise FileExistsError(
            f"{name} already exists ({where}). Pick another name, or replace it with "
            f"--force (force=True)."
        )
    if not ckpt_path.is_file():
        raise FileNotFoundError(f"{ckpt_path} does not exist; give a recipe's training .ckpt.")
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)  # no pickle code
    missing = {"hyper_parameters", "state_dict", "epoch", "global_step"} - set(
        checkpoint if isinstance(checkpoint, dict) else ()
    )
    if missing or "network" not in (checkpoint.get("hyper_parameters") or {}):
        raise ValueError(
            f"{ckpt_path} is not a training checkpoint of a tensor_zoo recipe (it lacks "
            f"{sorted(missing) or ['hyper_parameters.network']}); export the best-*.ckpt or "
            f"last.ckpt that a recipe run wrote."
        )
    network_config = checkpoint["hyper_parameters"]["network"]
    class_name = network_config["class_path"].rsplit(".", 1)[-1]
    rank = network_config["init_args"].get("rank")
    if class_name != ARCHITECTURES[parsed.arch] or rank != parsed.rank:
        raise ValueError(
            f"{ckpt_path} holds a {class_name} of rank {rank!r}, but the name {name!r} says "
            f"{ARCHITECTURES[parsed.arch]} of rank {parsed.rank}. Pick the matching name."
        )
    network = build_network(network_config)
    prefix = "network."
    state = {
        k[len(prefix) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)
    }
    network.load_state_dict(state, strict=True)
    network.eval()

    spec = ZOO_DATASETS[parsed.dataset]
    metrics = evaluate(network, parsed.dataset, data_root, progress=progress)
    title = f"{spec.title} ({data_variant})" if data_variant else spec.title
    count = int(metrics["images"])
    details = _run_details(ckpt_path)
    if epochs is None:  # given epochs and wall time win over what the run folder records
        epochs = details.get("epochs")
    if wall_time_s is None:
        wall_time_s = details.get("wall_time_s")
    hyper = {k: v for k, v in checkpoint["hyper_parameters"].items() if k != "network"}
    for key in ("batch_size", "seed", "devices"):
        if details.get(key) is not None:
            hyper[key] = details[key]
    config: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "architecture": network.config,
        "dataset": {
            "key": parsed.dataset,
            "title": title,
            "hub_id": spec.hub_id,
            "description": f"the {title} training set (a fixed-seed validation split held out) "
            f"and {spec.test_split} ({count:,} images)",
            "note": data_note,
        },
        "classes": list(spec.classes),
        "input": {
            "shape": [spec.in_channels, *network.patches.image_size],
            "dtype": "float32",
            "value_range": [0.0, 1.0],
            "mean": network.config["init_args"]["input_mean"],
            "std": network.config["init_args"]["input_std"],
            "normalised_by_model": True,
        },
        "num_params": network.num_params,
        "metrics": {
            **{key: round(value, 6) for key, value in metrics.items() if key != "images"},
            "images": count,
            "measured_on": f"the {title} test split ({count:,} images)",
            "torch_version": torch.__version__.split("+")[0],
            "date": datetime.date.today().isoformat(),
        },
        "training": {
            "command": command,
            "epochs": epochs,
            "checkpoint_epoch": _epochs_done(checkpoint, epochs),
            "global_step": int(checkpoint["global_step"]),
            "wall_time_s": wall_time_s,
            "epoch_seconds": details.get("epoch_seconds"),
            "hardware": hardware_description(),
            "hyper_parameters": hyper,
            "tensor_zoo_version": tensor_zoo.__version__,
            "training_note": training_note,
        },
    }
    with atomic_folder(folder, replace=force) as staging:
        write_folder(staging, network, config, render_card(config))
        files = {
            filename: {
                "sha256": sha256_file(staging / filename),
                "size": (staging / filename).stat().st_size,
            }
            for filename in (WEIGHTS_FILE, CONFIG_FILE, CARD_FILE, GOLDEN_FILE)
        }
        recorded["models"][name] = {
            "files": files,
            "hub": {"repo_id": None, "revision": None},
            "config": config,
        }
        write_index(recorded, index)  # fails before the folder is swapped in
    log.info("Exported %s to %s (test accuracy %.2f%%)", name, folder, 100 * metrics["test/acc"])
    return folder
