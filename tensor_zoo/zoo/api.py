"""The user-facing zoo: `load`, `create_model`, `model_info` (and `list_models`, re-exported)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tensor_zoo.networks import TensorNetwork, build_network
from tensor_zoo.zoo.format import CONFIG_FILE, WEIGHTS_FILE, network_from_files
from tensor_zoo.zoo.hub import fetch_file, hub_location
from tensor_zoo.zoo.registry import (
    DATASETS,
    ModelName,
    default_network_config,
    published_entry,
)


def _local_files(path: Path) -> tuple[Path, Path]:
    """(config.json, model.safetensors) of a checkpoint folder or of its weights file."""
    folder = path if path.is_dir() else path.parent
    weights = path if path.is_file() else folder / WEIGHTS_FILE
    config = folder / CONFIG_FILE
    for required in (weights, config):
        if not required.is_file():
            raise FileNotFoundError(
                f"{required} does not exist. A checkpoint folder holds {WEIGHTS_FILE} and "
                f"{CONFIG_FILE} (as written by `tensor-zoo export`)."
            )
    if weights.suffix != ".safetensors":
        raise ValueError(
            f"{weights} is not a .safetensors file. tensor_zoo loads weights only from "
            f"safetensors; turn a training .ckpt into a checkpoint folder with "
            f"`tensor-zoo export`."
        )
    return config, weights


def load(
    name: str,
    path: str | os.PathLike | None = None,
    revision: str | None = None,
    local_files_only: bool = False,
    device: str = "cpu",
) -> TensorNetwork:
    """A published checkpoint as an eval-mode network; its files are verified first.

    The network takes float images (B, C, H, W) in [0, 1] at the dataset's size and returns
    logits (B, num_classes); normalisation is inside it. Files come from `path` (a checkpoint
    folder or its model.safetensors) if given, else the local checkpoints folder
    (`TENSOR_ZOO_CHECKPOINTS` or a source checkout's `checkpoints/`), else the Hugging Face
    Hub at the index's pinned revision (or `revision`). Published files must match the
    index's sha256; with `local_files_only=True` or `HF_HUB_OFFLINE=1` no network call is made.
    A name that is an existing folder is loaded like `path`.
    """
    if path is None and Path(name).is_dir():
        path = name
    if path is not None:
        config, weights = _local_files(Path(path))
    else:  # fetch_file refuses names without published weights
        config = fetch_file(name, CONFIG_FILE, revision, local_files_only)
        weights = fetch_file(name, WEIGHTS_FILE, revision, local_files_only)
    return network_from_files(config, weights).to(device)


def create_model(name: str, pretrained: bool = False, **kwargs: Any) -> TensorNetwork:
    """The network a name stands for; fresh weights unless `pretrained` (then as `load`).

    Keyword arguments override constructor arguments of fresh networks (e.g. dropout=0.2).
    """
    if pretrained:
        if kwargs:
            raise ValueError(
                f"Constructor overrides {sorted(kwargs)} cannot be applied to pretrained "
                f"weights; build with pretrained=False, or load and fine-tune."
            )
        return load(name)
    config = default_network_config(name)
    config["init_args"].update(kwargs)
    return build_network(config)


def model_info(name: str) -> dict[str, Any]:
    """What a name is: architecture and arguments, data, metrics, training, files and Hub."""
    entry = published_entry(name)
    if entry is None:
        parsed = ModelName.parse(name)
        spec = DATASETS[parsed.dataset]
        network = create_model(name)
        return {
            "name": name,
            "pretrained": False,
            "architecture": network.config,
            "dataset": spec.title,
            "classes": list(spec.classes),
            "input": {
                "shape": [spec.in_channels, spec.image_size, spec.image_size],
                "value_range": [0.0, 1.0],
                "mean": list(spec.mean),
                "std": list(spec.std),
            },
            "num_params": network.num_params,
        }
    config = entry["config"]
    repo_id, revision = hub_location(name, entry)
    hub = entry.get("hub") or {}
    return {
        "name": name,
        "pretrained": True,
        "architecture": config["architecture"],
        "dataset": config["dataset"]["title"],
        "classes": config["classes"],
        "input": config["input"],
        "num_params": config["num_params"],
        "metrics": config["metrics"],
        "training": config["training"],
        "files": entry["files"],
        "hub": {
            "repo_id": repo_id,
            "revision": revision,
            "uploaded": hub.get("repo_id") == repo_id and bool(hub.get("revision")),
        },
    }
