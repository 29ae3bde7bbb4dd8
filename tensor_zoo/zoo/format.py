"""The checkpoint folder: model.safetensors + config.json + README.md (card) + golden outputs.

    checkpoints/<name>/
      model.safetensors    the network's state_dict (weights and normalisation buffers)
      config.json          format version, architecture + constructor args, preprocessing,
                           classes, measured metrics, how it was trained
      README.md            Hub-style model card (YAML front matter, then prose)
      golden.safetensors   a fixed input (4, C, H, W) and the logits it must give

Weights are read only from safetensors (never pickle) and must match the architecture key for
key and shape for shape.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from tensor_zoo.networks import TensorNetwork, build_network
from tensor_zoo.zoo.registry import FORMAT_VERSION

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CARD_FILE = "README.md"
GOLDEN_FILE = "golden.safetensors"
GOLDEN_SEED = 0
GOLDEN_BATCH = 4


class CheckpointFormatError(ValueError):
    """A checkpoint's files do not fit together (wrong format version, keys or shapes)."""


def read_config(path: Path) -> dict[str, Any]:
    """Read and check a config.json."""
    config = json.loads(Path(path).read_text(encoding="utf-8"))
    if config.get("format_version") != FORMAT_VERSION:
        raise CheckpointFormatError(
            f"{path} has checkpoint format {config.get('format_version')!r}; this tensor_zoo "
            f"reads format {FORMAT_VERSION}. Upgrade tensor_zoo or re-export the checkpoint."
        )
    return config


def load_weights(network: TensorNetwork, weights_path: Path) -> TensorNetwork:
    """Load safetensors weights into `network`, strictly: every key, every shape."""
    state = load_file(str(weights_path), device="cpu")
    expected = network.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = [
        f"{key}: file {tuple(state[key].shape)}, model {tuple(expected[key].shape)}"
        for key in sorted(set(state) & set(expected))
        if state[key].shape != expected[key].shape
    ]
    if missing or unexpected or mismatched:
        raise CheckpointFormatError(
            f"{weights_path} does not fit the architecture in its config.json: "
            f"missing keys {missing}, unexpected keys {unexpected}, shape mismatches "
            f"{mismatched}. The weights and config.json come from different checkpoints; "
            f"re-export them together (`tensor-zoo export`)."
        )
    network.load_state_dict(state, strict=True)
    return network


def network_from_files(config_path: Path, weights_path: Path) -> TensorNetwork:
    """Rebuild the network from config.json and load its weights; returned in eval mode."""
    config = read_config(config_path)
    network = build_network(config["architecture"])
    return load_weights(network, weights_path).eval()


def golden_input(network: TensorNetwork) -> Tensor:
    """The fixed test input (4, C, H, W) in [0, 1] that golden logits are computed on."""
    channels = network.patches.in_channels
    height, width = network.patches.image_size
    generator = torch.Generator().manual_seed(GOLDEN_SEED)
    return torch.rand(GOLDEN_BATCH, channels, height, width, generator=generator)


def write_golden(network: TensorNetwork, path: Path) -> None:
    """Store the fixed input and the network's logits on it (float64 for the comparison)."""
    images = golden_input(network)
    with torch.no_grad():
        logits = copy.deepcopy(network).eval().double()(images.double())
    save_file({"images": images.contiguous(), "logits": logits.contiguous()}, str(path))


def write_folder(folder: Path, network: TensorNetwork, config: dict[str, Any], card: str) -> None:
    """Write the four files of a checkpoint folder."""
    folder.mkdir(parents=True, exist_ok=True)
    state = {key: value.detach().contiguous() for key, value in network.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    (folder / CARD_FILE).write_text(card, encoding="utf-8")
    write_golden(network, folder / GOLDEN_FILE)
