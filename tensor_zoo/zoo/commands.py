"""`tensor-zoo list | info | eval | predict | export | publish | certify | onnx`: the zoo,
from a shell."""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import sys
from pathlib import Path

import torch

from tensor_zoo.cli import CommandParser
from tensor_zoo.networks import TensorNetwork
from tensor_zoo.zoo.api import load, model_info
from tensor_zoo.zoo.format import CONFIG_FILE
from tensor_zoo.zoo.hub import hub_org, local_checkpoints_dir, sha256_file
from tensor_zoo.zoo.preprocess import transforms
from tensor_zoo.zoo.registry import (
    UnknownModelError,
    index_path,
    list_models,
    read_index,
    write_index,
)

log = logging.getLogger(__name__)


def list_command(argv: list[str]) -> None:
    parser = CommandParser(
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
    parser = CommandParser(
        prog="tensor-zoo info", description="Everything known about a model name, as JSON."
    )
    parser.add_argument("name")
    args = parser.parse_args(argv)
    print(json.dumps(model_info(args.name), indent=2))


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def load_with_card(name: str, path: str | None) -> tuple[TensorNetwork, dict]:
    """The network and what its card says: the folder's own config.json when `path` is given."""
    return load(name, path=path), model_info(name, path=path)


def eval_command(argv: list[str]) -> None:
    from tensor_zoo.zoo.evaluate import evaluate

    parser = CommandParser(
        prog="tensor-zoo eval",
        description="Test accuracy of a published checkpoint on its dataset's test split, "
        "beside the number its card claims.",
    )
    parser.add_argument("name")
    parser.add_argument("--path", help="a local checkpoint folder instead of the published one")
    parser.add_argument("--data-root", help="where the dataset is (else TENSOR_ZOO_DATA, cache)")
    parser.add_argument("--batch-size", type=positive_int, default=500)
    parser.add_argument("--limit", type=positive_int, help="only the first LIMIT test images")
    args = parser.parse_args(argv)
    network, info = load_with_card(args.name, args.path)
    metrics = evaluate(network, info["dataset_key"], args.data_root, args.batch_size, args.limit)
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


def predict_command(argv: list[str]) -> None:
    parser = CommandParser(
        prog="tensor-zoo predict",
        description="Top classes of image files (PNG 8/16-bit, JPEG, GIF, WebP, BMP, TIFF; "
        "grayscale, RGB, RGBA or palette: converted to the model's channels and size).",
    )
    parser.add_argument("name")
    parser.add_argument("images", nargs="+", metavar="IMAGE")
    parser.add_argument("--top", type=positive_int, default=3, help="how many classes to show")
    parser.add_argument("--path", help="a local checkpoint folder instead of the published one")
    args = parser.parse_args(argv)
    network, info = load_with_card(args.name, args.path)
    classes = info["classes"]
    preprocess = transforms(network)
    batch = torch.stack([preprocess.read(path) for path in args.images])
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

    parser = CommandParser(
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
    parser.add_argument(
        "--force", action="store_true", help="replace an existing folder and index entry"
    )
    args = parser.parse_args(argv)
    folder = export_checkpoint(
        args.ckpt, args.name, args.command, args.out, args.data_root, args.data_variant,
        args.data_note, args.training_note, args.index, epochs=args.epochs,
        wall_time_s=args.wall_time_s, force=args.force,
    )  # fmt: skip
    config = json.loads((folder / CONFIG_FILE).read_text())
    print(
        f"Wrote {folder}: test accuracy {config['metrics']['test/acc']:.2%} on "
        f"{config['metrics']['measured_on']}; index {args.index or index_path()} updated."
    )


def publish_command(argv: list[str]) -> None:
    from tensor_zoo.zoo.hub import publish_folder

    parser = CommandParser(
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


def _compact(values: list[int] | tuple[int, ...], count: int | None = None) -> str:
    """A list for a terminal: "[16] * 63" when constant, "all 16" / "0, 2, ..., 62" for
    positions (count = d), else the list itself."""
    values = list(values)
    if count is not None and values == list(range(count)):
        return f"all {count}"
    if len(values) > 4 and len(set(values)) == 1:
        return f"[{values[0]}] * {len(values)}"
    steps = {b - a for a, b in itertools.pairwise(values)}
    if count is not None and len(values) > 4 and len(steps) == 1:
        return f"{values[0]}, {values[1]}, ..., {values[-1]}"
    return str(values)


def _ranks_line(label: str, per_class: list[tuple[int, ...]]) -> str:
    """One line for per-class rank tuples: once when all classes agree, else the maximum."""
    if all(ranks == per_class[0] for ranks in per_class):
        return f"{label} (every class): {_compact(per_class[0])}"
    maxima = [max(column) for column in zip(*per_class, strict=True)]
    return f"{label} (max over classes): {_compact(maxima)}"


def certify_command(argv: list[str]) -> None:
    from tensor_zoo.expressivity import (
        cp_parameter_count,
        cp_rank_lower_bound,
        ht_ranks,
        is_multilinear,
        theorem1_bound,
        tt_ranks,
    )
    from tensor_zoo.expressivity.formats import network_format

    parser = CommandParser(
        prog="tensor-zoo certify",
        description="How expressive a published checkpoint is: its TT / HT ranks, a certified "
        "lower bound on the CP rank of each class's weight tensor, and the size of the smallest "
        "CP (shallow) network that could compute the same scores (docs/expressivity.md).",
    )
    parser.add_argument("name")
    parser.add_argument("--path", help="a local checkpoint folder instead of the published one")
    parser.add_argument(
        "--max-rows", type=int, default=1024, help="sub-grid matricization size (bound <= this)"
    )
    args = parser.parse_args(argv)
    network = load(args.name, path=args.path)
    classes = model_info(args.name)["classes"]
    count, size, kind = network.num_positions, network.feature_dim, network_format(network)
    front_end = sum(p.numel() for p in network.feature_map.parameters())
    print(
        f"{args.name}: {type(network).__name__}, d = {count} positions, m = {size} features, "
        f"C = {len(classes)} classes; {network.num_params:,} parameters "
        f"({front_end:,} in the feature map)"
    )
    widths = getattr(network, "ranks", None) or [getattr(network, "rank", None)]
    print(f"widths (bond / level ranks): {_compact(widths)}")
    multilinear = is_multilinear(network)
    if not multilinear:
        print(f"no weight tensor (xi={network.xi!r}): bounds from grid tensors of its scores")
    elif kind == "tt":
        line = _ranks_line("TT-ranks of W_y", [r.ranks for r in tt_ranks(network)])
        print(f"{line}  [TT orthogonalisation, numpy tolerance]")
    elif kind == "ht":
        line = _ranks_line("HT-ranks of W_y per level", [r.level_max for r in ht_ranks(network)])
        print(f"{line}  [HT orthogonalisation, numpy tolerance; leaves first]")
    try:
        bounds = cp_rank_lower_bound(network, max_rows=args.max_rows)
    except ValueError as error:
        sys.exit(f"tensor-zoo certify: {error}")
    first = bounds[0]
    print(
        f"certified CP-rank lower bound per class [{first.method}; positions "
        f"{_compact(first.positions, count)}; rows {_compact(first.rows, count)}; singular "
        f"values > sqrt(eps) sigma_max]:"
    )
    print("  " + ", ".join(f"{c} {b.bound}" for c, b in zip(classes, bounds, strict=True)))
    width = max(b.bound for b in bounds)
    print(
        f"smallest CP network with the same scores: width >= {width}, so >= "
        f"{count} * {size} * {width} + {len(classes)} * {width} + {front_end:,} = "
        f"{cp_parameter_count(network, width):,} parameters (this network: "
        f"{network.num_params:,})"
    )
    rank = max(widths) if multilinear and kind in ("tt", "ht") and widths[0] else None
    if rank is not None:
        generic = theorem1_bound(count, size, rank)
        print(
            f"for a generic {kind.upper()} of this shape the paper's bound is min(m, r)^(d/2) = "
            f"{min(size, rank)}^{count // 2} = {generic:.4g} (Theorem 1 and Table 2; this "
            f"checkpoint is certified only up to the sub-grid's size)"
        )


def onnx_command(argv: list[str]) -> None:
    from tensor_zoo.zoo.onnx_export import export_onnx

    parser = CommandParser(
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
    "certify": certify_command,
    "onnx": onnx_command,
}
