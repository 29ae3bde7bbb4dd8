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
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from tensor_zoo.networks import TensorNetwork, build_network
from tensor_zoo.zoo.registry import FORMAT_VERSION, current_umask

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CARD_FILE = "README.md"
GOLDEN_FILE = "golden.safetensors"
GOLDEN_SEED = 0
GOLDEN_BATCH = 4
GOLDEN_TOLERANCE = 1e-5  # relative to the largest golden logit: float32 weights, float64 maths


class CheckpointFormatError(ValueError):
    """A checkpoint's files do not fit together (wrong format version, keys or shapes)."""


def read_config(path: Path) -> dict[str, Any]:
    """Read and check a config.json: JSON, the format version, an architecture to build.

    Raises:
        CheckpointFormatError: the file is not such a config (what is wrong, what to do).
    """
    try:
        config = json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointFormatError(
            f"{path} is not valid JSON ({error}); a checkpoint's config.json is written by "
            f"`tensor-zoo export`. Restore or re-export the checkpoint."
        ) from error
    if not isinstance(config, dict):
        raise CheckpointFormatError(
            f"{path} holds a JSON {type(config).__name__}, not the object `tensor-zoo export` "
            f"writes. Restore or re-export the checkpoint."
        )
    if config.get("format_version") != FORMAT_VERSION:
        raise CheckpointFormatError(
            f"{path} has checkpoint format {config.get('format_version')!r}; this tensor_zoo "
            f"reads format {FORMAT_VERSION}. Upgrade tensor_zoo or re-export the checkpoint."
        )
    architecture = config.get("architecture")
    if not isinstance(architecture, dict) or not isinstance(architecture.get("init_args"), dict):
        raise CheckpointFormatError(
            f'{path} has no architecture {{"class_path", "init_args": {{...}}}}. Restore or '
            f"re-export the checkpoint."
        )
    return config


def read_safetensors(path: Path) -> dict[str, Tensor]:
    """The tensors of a safetensors file on the CPU; CheckpointFormatError when it is not one."""
    try:
        return load_file(str(path), device="cpu")
    except SafetensorError as error:
        raise CheckpointFormatError(
            f"{path} is not a readable safetensors file ({error}): truncated or corrupted. "
            f"Restore it, download it again or re-export the checkpoint."
        ) from error


def load_weights(network: TensorNetwork, weights_path: Path) -> TensorNetwork:
    """Load safetensors weights into `network`, strictly: every key, every shape."""
    state = read_safetensors(weights_path)
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
    try:
        network = build_network(config["architecture"])
    except (TypeError, ValueError) as error:
        raise CheckpointFormatError(
            f"{config_path} describes no network this tensor_zoo can build ({error}). Upgrade "
            f"tensor_zoo or re-export the checkpoint."
        ) from error
    return load_weights(network, weights_path).eval()


def check_golden(network: TensorNetwork, golden_path: Path) -> None:
    """Check that `network` reproduces the logits stored in a golden.safetensors file.

    Args:
        network: the loaded network (not changed: the check runs on a float64 copy).
        golden_path: a golden file {"images": (4, C, H, W), "logits": (4, num_classes)}.

    Raises:
        CheckpointFormatError: the file is unreadable, or the logits differ (weights changed,
            or weights and golden file come from different checkpoints).
    """
    golden = read_safetensors(golden_path)
    if set(golden) != {"images", "logits"}:
        raise CheckpointFormatError(
            f"{golden_path} holds {sorted(golden)}, not ['images', 'logits']. Re-export the "
            f"checkpoint."
        )
    try:
        with torch.no_grad():
            logits = copy.deepcopy(network).eval().double()(golden["images"].double())
    except (RuntimeError, ValueError) as error:
        raise CheckpointFormatError(
            f"{golden_path} does not fit the network ({error}). Re-export the checkpoint."
        ) from error
    expected = golden["logits"].double()
    tolerance = GOLDEN_TOLERANCE * max(1.0, float(expected.abs().max()))
    same = logits.shape == expected.shape and torch.allclose(logits, expected, 0, tolerance)
    if not same:
        raise CheckpointFormatError(
            f"The weights next to {golden_path} do not reproduce its golden logits: the files "
            f"were changed or come from different checkpoints. Restore or re-export them."
        )


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


@contextmanager
def atomic_folder(folder: Path, replace: bool = False) -> Iterator[Path]:
    """A temporary sibling folder to write into; it becomes `folder` when the block succeeds.

    An existing `folder` is kept until the new one is complete (`replace=True` is needed to
    replace it) and is restored if the swap fails; on any error the temporary folder goes.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    if folder.exists() and not replace:
        raise FileExistsError(f"{folder} exists; pass replace=True to replace it.")
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    staging.chmod(0o777 & ~current_umask())  # mkdtemp's 0o700 would hide the checkpoint
    backup = staging.with_name(f"{staging.name}.old")  # unique, like the staging folder
    try:
        yield staging
        if folder.exists():
            os.replace(folder, backup)
        try:
            os.replace(staging, folder)
        except OSError:
            if backup.exists():
                os.replace(backup, folder)
            raise
    finally:
        for leftover in (staging, backup):
            if leftover.is_dir():
                for path in leftover.iterdir():
                    path.unlink()
                leftover.rmdir()


def write_folder(folder: Path, network: TensorNetwork, config: dict[str, Any], card: str) -> None:
    """Write the four files of a checkpoint folder (into an existing, empty folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    state = {key: value.detach().contiguous() for key, value in network.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    (folder / CARD_FILE).write_text(card, encoding="utf-8")
    write_golden(network, folder / GOLDEN_FILE)
