"""`tensor-zoo list | info | eval | predict | export | publish | onnx`: the zoo from the shell."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import torch

from tensor_zoo.zoo.api import load, model_info
from tensor_zoo.zoo.format import CONFIG_FILE
from tensor_zoo.zoo.hub import hub_org, local_checkpoints_dir, sha256_file
from tensor_zoo.zoo.registry import (
    ModelName,
    UnknownModelError,
    index_path,
    list_models,
    read_index,
    write_index,
)

log = logging.getLogger(__name__)


def list_command(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="tensor-zoo list", description="List published checkpoints (or all architectures)."
    )
    parser.add_argument("pattern", nargs="?", help='shell-style pattern, e.g. "tt-*"')
    parser.add_argument(
        "--all", action="store_true", help="also list architectures without published weights"
    )
    args = parser.parse_args(argv)
    for name in list_models(args.pattern, pretrained=not args.all):
        info = model_info(name)
        if info["pretrained"]:
            metrics = info["metrics"]
            print(
                f"{name:<22}{info['num_params']:>10,} params  "
                f"{metrics['test/acc']:.2%} on {metrics['measured_on']}"
            )
        else:
            print(f"{name:<22}{info['num_params']:>10,} params  (no published weights)")


def info_command(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="tensor-zoo info", description="Everything known about a model name, as JSON."
    )
    parser.add_argument("name")
    args = parser.parse_args(argv)
    print(json.dumps(model_info(args.name), indent=2))


def eval_command(argv: list[str]) -> None:
    from tensor_zoo.zoo.evaluate import evaluate

    parser = argparse.ArgumentParser(
        prog="tensor-zoo eval",
        description="Test accuracy of a published checkpoint on its dataset's test split, "
        "beside the number its card claims.",
    )
    parser.add_argument("name")
    parser.add_argument("--path", help="a local checkpoint folder instead of the published one")
    parser.add_argument("--data-root", help="where the dataset is (else TENSOR_ZOO_DATA, cache)")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--limit", type=int, help="only the first LIMIT test images")
    args = parser.parse_args(argv)
    network = load(args.name, path=args.path)
    info = model_info(args.name)
    dataset = ModelName.parse(args.name).dataset
    metrics = evaluate(network, dataset, args.data_root, args.batch_size, args.limit)
    count = int(metrics["images"])
    line = f"{args.name}: test accuracy {metrics['test/acc']:.2%} on {count:,} test images"
    if info["pretrained"]:
        claimed = info["metrics"]
        line += (
            f"; the card claims {claimed['test/acc']:.2%} on {claimed['measured_on']} "
            f"(difference {round(100 * (metrics['test/acc'] - claimed['test/acc']), 2) + 0:+.2f} "
            "points)"
        )
    print(line)


def read_image(path: str, channels: int, size: tuple[int, int]) -> torch.Tensor:
    """An image file -> float (C, H, W) in [0, 1] with the model's channels and size."""
    from torchvision.io import ImageReadMode, decode_image
    from torchvision.transforms.v2.functional import resize

    if not Path(path).is_file():
        raise FileNotFoundError(f"{path} does not exist; give the paths of image files.")
    mode = ImageReadMode.GRAY if channels == 1 else ImageReadMode.RGB
    try:
        image = decode_image(path, mode=mode)
    except RuntimeError as error:
        raise ValueError(
            f"Cannot read {path} as an image ({str(error).splitlines()[-1]}); "
            f"give PNG, JPEG, GIF or WebP files."
        ) from error
    if tuple(image.shape[-2:]) != size:
        log.warning("Resizing %s from %s to %s", path, tuple(image.shape[-2:]), size)
        image = resize(image, list(size), antialias=True)
    return image.float() / 255


def predict_command(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="tensor-zoo predict", description="Top classes of image files (PNG, JPEG)."
    )
    parser.add_argument("name")
    parser.add_argument("images", nargs="+", metavar="IMAGE")
    parser.add_argument("--top", type=int, default=3, help="how many classes to show")
    parser.add_argument("--path", help="a local checkpoint folder instead of the published one")
    args = parser.parse_args(argv)
    network = load(args.name, path=args.path)
    info = model_info(args.name)
    classes = info["classes"]
    channels = network.patches.in_channels
    try:
        images = [read_image(p, channels, network.patches.image_size) for p in args.images]
    except ValueError as error:
        sys.exit(f"tensor-zoo predict: {error}")
    batch = torch.stack(images)
    with torch.no_grad():
        probabilities = network(batch).softmax(-1)
    top = probabilities.topk(min(args.top, len(classes)), dim=-1)
    for path, values, indices in zip(args.images, top.values, top.indices, strict=True):
        ranked = ", ".join(
            f"{classes[i]} {v:.1%}" for v, i in zip(values.tolist(), indices.tolist(), strict=True)
        )
        print(f"{path}: {ranked}")


def export_command(argv: list[str]) -> None:
    from tensor_zoo.zoo.export import export_checkpoint

    parser = argparse.ArgumentParser(
        prog="tensor-zoo export",
        description="Turn a recipe's .ckpt into checkpoints/NAME/ (safetensors, config, card, "
        "golden outputs), measuring its test metrics, and record it in the index.",
    )
    parser.add_argument("ckpt", help="the training checkpoint (best-*.ckpt of a recipe run)")
    parser.add_argument("name", help="{arch}-{dataset}-r{rank}, e.g. tt-mnist-r16")
    parser.add_argument("--command", required=True, help="the exact command that trained it")
    parser.add_argument("--out", help="parent folder (default: the local checkpoints folder)")
    parser.add_argument("--data-root", help="where the dataset is (else TENSOR_ZOO_DATA, cache)")
    parser.add_argument("--data-variant", help='a non-original data copy, e.g. "JPEG copy"')
    parser.add_argument("--data-note", help="a sentence on that copy, for the card")
    parser.add_argument("--training-note", help="sentences about the run, for the card")
    parser.add_argument("--index", type=Path, help="the index to update (default: in use)")
    parser.add_argument("--epochs", type=int, help="epochs, if the run folder does not say")
    parser.add_argument("--wall-time-s", type=float, help="training seconds, likewise")
    args = parser.parse_args(argv)
    folder = export_checkpoint(
        args.ckpt, args.name, args.command, args.out, args.data_root, args.data_variant,
        args.data_note, args.training_note, args.index, epochs=args.epochs,
        wall_time_s=args.wall_time_s,
    )  # fmt: skip
    config = json.loads((folder / CONFIG_FILE).read_text())
    print(
        f"Wrote {folder}: test accuracy {config['metrics']['test/acc']:.2%} on "
        f"{config['metrics']['measured_on']}; index {args.index or index_path()} updated."
    )


def publish_command(argv: list[str]) -> None:
    from tensor_zoo.zoo.hub import publish_folder

    parser = argparse.ArgumentParser(
        prog="tensor-zoo publish",
        description="Upload checkpoints/NAME/ to a Hub repo (created if needed) and pin the "
        "commit in the index.",
    )
    parser.add_argument("name")
    parser.add_argument("--repo", help="ORG/NAME on the Hub (default: $TENSOR_ZOO_HUB_ORG/NAME)")
    parser.add_argument("--folder", type=Path, help="default: the local checkpoints folder/NAME")
    parser.add_argument("--token", help="a write token (default: HF_TOKEN or the saved login)")
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--dry-run", action="store_true", help="list what would be uploaded")
    parser.add_argument("--index", type=Path, help="the index to update (default: in use)")
    args = parser.parse_args(argv)
    repo_id = args.repo or f"{hub_org()}/{args.name}"
    folder = args.folder or (local_checkpoints_dir() or Path("checkpoints")) / args.name
    index_file = args.index or index_path()
    index = read_index(index_file)
    if args.name not in index["models"]:
        raise UnknownModelError(
            f"{args.name!r} is not in {index_file}; export it first (tensor-zoo export)."
        )
    entry = index["models"][args.name]
    for filename, expected in entry["files"].items():
        path = folder / filename
        if not path.is_file() or sha256_file(path) != expected["sha256"]:
            sys.exit(
                f"tensor-zoo publish: {path} is missing or differs from the index (sha256 "
                f"{expected['sha256']}). Re-export the checkpoint (tensor-zoo export) first."
            )
    extra = sorted(p.name for p in folder.iterdir() if p.is_file() and p.name not in entry["files"])
    if extra:
        sys.exit(f"tensor-zoo publish: {folder} has files the index does not list: {extra}.")
    if args.dry_run:
        print(f"Would upload to {repo_id} (dry run, nothing sent):")
        for filename, expected in entry["files"].items():
            print(f"  {filename:<20}{expected['size']:>12,} bytes  sha256 {expected['sha256']}")
        return
    revision = publish_folder(folder, repo_id, args.token, args.private)
    index["models"][args.name]["hub"] = {"repo_id": repo_id, "revision": revision}
    write_index(index, index_file)
    print(f"Uploaded {args.name} to {repo_id} at revision {revision}; pinned in {index_file}.")


def onnx_command(argv: list[str]) -> None:
    from tensor_zoo.zoo.onnx_export import export_onnx

    parser = argparse.ArgumentParser(
        prog="tensor-zoo onnx",
        description="Export a published checkpoint to ONNX (dynamic batch; input `images` "
        "(batch, C, H, W) in [0, 1], output `logits`) and check it in onnxruntime.",
    )
    parser.add_argument("name")
    parser.add_argument("out", help="the .onnx file to write")
    parser.add_argument("--path", help="a local checkpoint folder instead of the published one")
    args = parser.parse_args(argv)
    network = load(args.name, path=args.path)
    try:
        difference = export_onnx(network, args.out)
    except ImportError as error:
        sys.exit(
            f"tensor-zoo onnx: {error.name or error} is not installed; the ONNX export needs "
            f'onnx, onnxscript and onnxruntime: pip install "tensor-zoo[onnx]".'
        )
    print(
        f"Wrote {args.out}: onnxruntime's logits differ from torch's by at most "
        f"{difference:.1e} (relative)."
    )


COMMANDS = {
    "list": list_command,
    "info": info_command,
    "eval": eval_command,
    "predict": predict_command,
    "export": export_command,
    "publish": publish_command,
    "onnx": onnx_command,
}
