"""`tensor-zoo list | info | eval | predict | export | publish | certify | onnx`: the zoo,
from a shell. Each function is a command; `tensor_zoo.cli` builds its options from the signature
and the `Args:` docstring."""

from __future__ import annotations

import functools
import itertools
import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import torch

from tensor_zoo.cli import PositiveInt, one_of
from tensor_zoo.networks import TensorNetwork
from tensor_zoo.zoo.api import load, model_info
from tensor_zoo.zoo.export import export_checkpoint
from tensor_zoo.zoo.format import CONFIG_FILE
from tensor_zoo.zoo.hub import hub_org, local_checkpoints_dir, sha256_file
from tensor_zoo.zoo.preprocess import transforms
from tensor_zoo.zoo.registry import (
    ARCHITECTURES,
    ZOO_DATASETS,
    ModelName,
    UnknownModelError,
    index_path,
    list_models,
    read_index,
    write_index,
)

log = logging.getLogger(__name__)


Architecture = Annotated[str, one_of(ARCHITECTURES, "architecture")]
Dataset = Annotated[str, one_of(ZOO_DATASETS, "dataset")]


def list_command(
    pattern: str | None = None,
    *,
    all_: bool = False,
    arch: Architecture | None = None,
    dataset: Dataset | None = None,
    sort: Literal["name", "accuracy", "params"] = "name",
) -> None:
    """List published checkpoints: parameters and measured test accuracy.

    One line per model, filtered by name, architecture and dataset, in the order asked for.

    Args:
        pattern: a shell-style pattern of names, e.g. "tt-*".
        all_: also list architectures without published weights (no accuracy).
        arch: only this architecture: cp (shallow), tt (recurrent) or ht (deep).
        dataset: only the models of this dataset.
        sort: by name (architecture, dataset, rank), by test accuracy (best first; models
            without weights last) or by parameters (fewest first).
    """
    parsed = {name: ModelName.parse(name) for name in list_models(pattern, pretrained=not all_)}
    names = [
        name
        for name, model in parsed.items()
        if arch in (None, model.arch) and dataset in (None, model.dataset)
    ]
    infos = [model_info(name) for name in names]
    if sort == "accuracy":
        infos.sort(key=lambda info: -info["metrics"]["test/acc"] if info["pretrained"] else 1)
    elif sort == "params":
        infos.sort(key=lambda info: info["num_params"])
    if not infos:
        hint = "" if all_ else " (--all also lists architectures without published weights)"
        print(f"No model matches{hint}.", file=sys.stderr)
    width = max((len(info["name"]) for info in infos), default=0) + 2  # names line up
    for info in infos:
        name = info["name"]
        if info["pretrained"]:
            metrics = info["metrics"]
            print(
                f"{name:<{width}}{info['num_params']:>10,} params  "
                f"{metrics['test/acc']:.2%} on {metrics['measured_on']}"
            )
        else:
            print(f"{name:<{width}}{info['num_params']:>10,} params  (no published weights)")


def info_command(name: str) -> None:
    """Everything known about a model name, as JSON.

    Args:
        name: a published checkpoint, or any `{arch}-{dataset}-r{rank}`.
    """
    print(json.dumps(model_info(name), indent=2))


def load_with_card(name: str, path: str | None) -> tuple[TensorNetwork, dict]:
    """The network and what its card says: the folder's own config.json when `path` is given."""
    return load(name, path=path), model_info(name, path=path)


def eval_command(
    name: str,
    *,
    path: str | None = None,
    data_root: str | None = None,
    batch_size: PositiveInt = 500,
    limit: PositiveInt | None = None,
) -> None:
    """Measure a checkpoint's test accuracy beside the number its card claims.

    The test split is its dataset's official one (scikit-learn digits: the fixed held-out one).

    Args:
        name: the published checkpoint.
        path: a local checkpoint folder instead of the published one.
        data_root: where the dataset is (else TENSOR_ZOO_DATA, then the cache).
        batch_size: images per forward pass.
        limit: only the first LIMIT test images.
    """
    from tensor_zoo.zoo.evaluate import evaluate

    network, info = load_with_card(name, path)
    metrics = evaluate(network, info["dataset_key"], data_root, batch_size, limit)
    count = int(metrics["images"])
    line = f"{name}: test accuracy {metrics['test/acc']:.2%} on {count:,} test images"
    if info["pretrained"]:
        claimed = info["metrics"]
        line += (
            f"; the card claims {claimed['test/acc']:.2%} on {claimed['measured_on']} "
            f"(difference {round(100 * (metrics['test/acc'] - claimed['test/acc']), 2) + 0:+.2f} "
            "points)"
        )
    print(line)


def predict_command(
    name: str, images: list[str], *, top: PositiveInt = 3, path: str | None = None
) -> None:
    """Top classes of image files, with their probabilities.

    PNG (8 or 16-bit), JPEG, GIF, WebP, BMP or TIFF; grayscale, RGB, RGBA or palette: each is
    converted to the model's channels and size.

    Args:
        name: the published checkpoint.
        images: the image files.
        top: how many classes to show.
        path: a local checkpoint folder instead of the published one.
    """
    network, info = load_with_card(name, path)
    classes = info["classes"]
    preprocess = transforms(network)
    batch = torch.stack([preprocess.read(image) for image in images])
    with torch.no_grad():
        probabilities = network(batch).softmax(-1)
    best = probabilities.topk(min(top, len(classes)), dim=-1)
    for image, values, indices in zip(images, best.values, best.indices, strict=True):
        ranked = ", ".join(
            f"{classes[i]} {v:.1%}" for v, i in zip(values.tolist(), indices.tolist(), strict=True)
        )
        print(f"{image}: {ranked}")


@functools.wraps(export_checkpoint)  # its parameters and `Args:` are the command's options
def export_command(*args: Any, **kwargs: Any) -> None:
    folder = export_checkpoint(*args, **kwargs)
    config = json.loads((folder / CONFIG_FILE).read_text())
    print(
        f"Wrote {folder}: test accuracy {config['metrics']['test/acc']:.2%} on "
        f"{config['metrics']['measured_on']}; index {kwargs.get('index') or index_path()} "
        "updated."
    )


def publish_command(
    name: str,
    *,
    repo: str | None = None,
    folder: Path | None = None,
    token: str | None = None,
    private: bool = False,
    dry_run: bool = False,
    index: Path | None = None,
) -> None:
    """Upload a checkpoint folder to the Hugging Face Hub and pin the commit in the index.

    The repo is created if needed; every file is checked against the index first.

    Args:
        name: the exported checkpoint.
        repo: ORG/NAME on the Hub (default: $TENSOR_ZOO_HUB_ORG/NAME).
        folder: the checkpoint folder (default: the local checkpoints folder/NAME).
        token: a write token (default: HF_TOKEN or the saved login).
        private: create the repo private.
        dry_run: list what would be uploaded, send nothing.
        index: the index file to update (default: the one in use).
    """
    from tensor_zoo.zoo.hub import publish_folder

    repo_id = repo or f"{hub_org()}/{name}"
    folder = folder or (local_checkpoints_dir() or Path("checkpoints")) / name
    index_file = index or index_path()
    recorded = read_index(index_file)
    if name not in recorded["models"]:
        raise UnknownModelError(
            f"{name!r} is not in {index_file}; export it first (tensor-zoo export)."
        )
    entry = recorded["models"][name]
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
    if dry_run:
        print(f"Would upload to {repo_id} (dry run, nothing sent):")
        for filename, expected in entry["files"].items():
            print(f"  {filename:<20}{expected['size']:>12,} bytes  sha256 {expected['sha256']}")
        return
    revision = publish_folder(folder, repo_id, token, private)
    recorded["models"][name]["hub"] = {"repo_id": repo_id, "revision": revision}
    write_index(recorded, index_file)
    print(f"Uploaded {name} to {repo_id} at revision {revision}; pinned in {index_file}.")


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


def certify_command(name: str, *, path: str | None = None, max_rows: PositiveInt = 1024) -> None:
    """Ranks of a checkpoint and a certified bound on an equivalent shallow network's width.

    How expressive a published checkpoint is: its TT / HT ranks, a certified lower bound on the
    CP rank of each class's weight tensor, and the size of the smallest CP (shallow) network
    that could compute the same scores (docs/expressivity.md).

    Args:
        name: the published checkpoint.
        path: a local checkpoint folder instead of the published one.
        max_rows: the size of the sub-grid matricization (the bound is at most this).
    """
    from tensor_zoo.expressivity import (
        cp_parameter_count,
        cp_rank_lower_bound,
        ht_ranks,
        is_multilinear,
        theorem1_bound,
        tt_ranks,
    )
    from tensor_zoo.expressivity.formats import network_format

    network = load(name, path=path)
    classes = model_info(name)["classes"]
    count, size, kind = network.num_positions, network.feature_dim, network_format(network)
    front_end = sum(p.numel() for p in network.feature_map.parameters())
    print(
        f"{name}: {type(network).__name__}, d = {count} positions, m = {size} features, "
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
        bounds = cp_rank_lower_bound(network, max_rows=max_rows)
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


def onnx_command(name: str, out: str, *, path: str | None = None) -> None:
    """Export a checkpoint to ONNX (dynamic batch), checked in onnxruntime.

    The graph's input is `images` (batch, C, H, W) in [0, 1], its output `logits`.

    Args:
        name: the published checkpoint.
        out: the .onnx file to write.
        path: a local checkpoint folder instead of the published one.
    """
    from tensor_zoo.zoo.onnx_export import export_onnx

    network = load(name, path=path)
    try:
        difference = export_onnx(network, out)
    except ImportError as error:
        sys.exit(
            f"tensor-zoo onnx: {error.name or error} is not installed; the ONNX export needs "
            f'onnx, onnxscript and onnxruntime: pip install "tensor-zoo[onnx]".'
        )
    print(
        f"Wrote {out}: onnxruntime's logits differ from torch's by at most "
        f"{difference:.1e} (relative)."
    )
