"""The user-facing zoo: `load`, `create_model`, `model_info` (and `list_models`, re-exported)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch

from tensor_zoo.networks import TensorNetwork, build_network
from tensor_zoo.zoo.format import (
    CONFIG_FILE,
    GOLDEN_FILE,
    WEIGHTS_FILE,
    CheckpointFormatError,
    check_golden,
    network_from_files,
    read_config,
)
from tensor_zoo.zoo.hub import fetch_file, hub_location
from tensor_zoo.zoo.registry import (
    ZOO_DATASETS,
    ModelName,
    UnknownModelError,
    default_network_config,
    published_entry,
)

log = logging.getLogger(__name__)


def _local_files(path: Path) -> tuple[Path, Path]:
    """(config.json, model.safetensors) of a checkpoint folder or of its weights file."""
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist. Give a checkpoint folder (model.safetensors and "
            f"config.json, as written by `tensor-zoo export`) or its model.safetensors file."
        )
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


def _check_name(name: object) -> str:
    """A model name as given, refused when it is not a non-empty string."""
    if not isinstance(name, str) or not name.strip():
        raise UnknownModelError(
            f"A model name is a non-empty string such as 'tt-mnist-r16', got {name!r}; "
            f"`tensor_zoo.list_models()` lists the published ones. A local checkpoint folder "
            f"loads with load(path=FOLDER)."
        )
    return name


def _load_folder(name: str | None, path: Path) -> TensorNetwork:
    """A local checkpoint folder, checked against its own golden logits."""
    config_path, weights = _local_files(path)
    config = read_config(config_path)
    if name is not None and config.get("name") not in (None, name):
        raise ValueError(
            f"{config_path} is the checkpoint {config.get('name')!r}, not {name!r}. Give its "
            f"own name, or no name: load(path={str(path)!r})."
        )
    network = network_from_files(config_path, weights)
    golden = config_path.parent / GOLDEN_FILE
    if golden.is_file():
        check_golden(network, golden)
        log.info("%s reproduces the golden logits of %s", weights, golden)
    else:
        log.warning(
            "Could not verify %s: there is no %s next to it (no sha256 is known for a local "
            "folder either). Load it only if you trust where it came from.",
            weights,
            GOLDEN_FILE,
        )
    return network


def load(
    name: str | None = None,
    path: str | os.PathLike | None = None,
    revision: str | None = None,
    local_files_only: bool = False,
    device: str = "cpu",
) -> TensorNetwork:
    """A published or local checkpoint as an eval-mode network; its files are verified first.

    The network takes float images (B, C, H, W) in [0, 1] at the dataset's size and returns
    logits (B, num_classes); normalisation is inside it (`tensor_zoo.zoo.preprocess` turns
    image files and arrays into that input).

    Args:
        name: a published name (`tensor_zoo.list_models()`). Its files come from the local
            checkpoints folder (`TENSOR_ZOO_CHECKPOINTS` or a source checkout's
            `checkpoints/`), else the Hugging Face Hub at the index's pinned revision (or
            `revision`), and must match the index's sha256. A name never reads as a path.
        path: a local checkpoint folder (or its model.safetensors) to load instead; its
            weights must reproduce its own golden.safetensors (a warning says when the folder
            has none). With `name` too, the folder's config.json must carry that name.
        revision: a Hub revision instead of the pinned one.
        local_files_only: no network call (as `HF_HUB_OFFLINE=1`).
        device: where the returned network lives.
    """
    if path is not None:
        if name is not None:
            _check_name(name)
        if not str(path).strip():
            raise FileNotFoundError("path is empty; give a checkpoint folder.")
        return _load_folder(name, Path(path)).to(device)
    name = _check_name(name)
    # fetch_file refuses names without published weights
    config = fetch_file(name, CONFIG_FILE, revision, local_files_only)
    weights = fetch_file(name, WEIGHTS_FILE, revision, local_files_only)
    return network_from_files(config, weights).to(device)


def create_model(name: str, pretrained: bool = False, **kwargs: Any) -> TensorNetwork:
    """The network a name stands for, as `timm.create_model(name, pretrained=...)`.

        net = tensor_zoo.create_model("tt-mnist-r16", pretrained=True)  # published weights
        fresh = tensor_zoo.create_model("ht-cifar10-r64", dropout=0.2)  # any rank, new weights

    Args:
        name: `{arch}-{dataset}-r{rank}` (`tensor_zoo.list_models(pretrained=False)`).
        pretrained: True: the published weights, verified and in eval mode, exactly as
            `load(name)`; a name without published weights raises UnknownModelError naming
            the published checkpoints closest to it. False (default): fresh weights, in train
            mode, with the published checkpoint's configuration when there is one, else the
            dataset's recipe defaults (`tensor_zoo.datasets`) at that rank.
        **kwargs: constructor arguments that override the name's (e.g. `dropout=0.2`); fresh
            networks only (pretrained weights fix the shapes).
    """
    if pretrained:
        if kwargs:
            raise ValueError(
                f"Constructor overrides {sorted(kwargs)} cannot be applied to pretrained "
                f"weights; build with pretrained=False, or load and fine-tune."
            )
        return load(name)
    config = default_network_config(_check_name(name))
    config["init_args"].update(kwargs)
    return build_network(config)


def count_parameters(config: dict[str, Any]) -> int:
    """Trainable parameters of the network a config describes, from shapes alone.

    The network is built with its parameter tensors on the meta device, so even a network
    of billions of parameters costs no memory.

    Args:
        config: {"class_path", "init_args"}, as `net.config`.
    """
    with torch.device("meta"):
        return build_network(config).num_params


def model_info(name: str | None = None, path: str | os.PathLike | None = None) -> dict[str, Any]:
    """What a name (or a local checkpoint folder) is: architecture, data, metrics, files, Hub.

    Args:
        name: a published name, or any `{arch}-{dataset}-r{rank}` (then no weights exist and
            the parameters are counted without building the network).
        path: a local checkpoint folder: its own config.json (its card) is described.
    """
    if path is not None:
        config_path, _ = _local_files(Path(path))
        return _describe(read_config(config_path), pretrained=True)
    name = _check_name(name)
    entry = published_entry(name)
    if entry is None:
        parsed = ModelName.parse(name)
        spec = ZOO_DATASETS[parsed.dataset]
        architecture = default_network_config(name)
        return {
            "name": name,
            "pretrained": False,
            "architecture": architecture,
            "dataset": spec.title,
            "dataset_key": spec.key,
            "classes": list(spec.classes),
            "input": {
                "shape": list(spec.image_shape),
                "value_range": [0.0, 1.0],
                "mean": list(spec.mean),
                "std": list(spec.std),
            },
            "num_params": count_parameters(architecture),
        }
    repo_id, revision = hub_location(name, entry)
    hub = entry.get("hub") or {}
    return {
        **_describe(entry["config"], pretrained=True),
        "files": entry["files"],
        "hub": {
            "repo_id": repo_id,
            "revision": revision,
            "uploaded": hub.get("repo_id") == repo_id and bool(hub.get("revision")),
        },
    }


def _describe(config: dict[str, Any], pretrained: bool) -> dict[str, Any]:
    """The model_info fields that a checkpoint's config.json holds."""
    try:
        return {
            "name": config["name"],
            "pretrained": pretrained,
            "architecture": config["architecture"],
            "dataset": config["dataset"]["title"],
            "dataset_key": config["dataset"]["key"],
            "classes": config["classes"],
            "input": config["input"],
            "num_params": config["num_params"],
            "metrics": config["metrics"],
            "training": config["training"],
        }
    except (KeyError, TypeError) as error:
        raise CheckpointFormatError(
            f"The config.json of {config.get('name', 'this checkpoint')!r} lacks {error}; "
            f"re-export the checkpoint (`tensor-zoo export`)."
        ) from error
