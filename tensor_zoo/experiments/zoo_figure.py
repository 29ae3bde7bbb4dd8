"""The zoo across ranks in the reproduction report: test accuracy against parameters.

Reads the index of published checkpoints (`tensor_zoo.zoo.registry.read_index`: the packaged
`tensor_zoo/zoo/index.json`, or the file `TENSOR_ZOO_INDEX` names), so every checkpoint added
to the index shows up at the next `report --only zoo`; nothing here lists checkpoints. Draws
one panel per dataset (test accuracy against parameter count, log x, one line per architecture,
ranks annotated; a site layout such as `pixels` gets its own marker and line) and writes one
table per dataset with the paper's numbers and the targets of issue 10 beside ours.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tensor_zoo.datasets import DATASETS, SITE_LAYOUTS
from tensor_zoo.experiments.report import ARCHITECTURES, COLOURS, ZOO_TITLE
from tensor_zoo.layers.patches import grid_shape
from tensor_zoo.zoo.registry import PACKAGED_INDEX, ModelName, index_path, read_index

FIGURE = "zoo_accuracy_vs_parameters.png"
SHORT = {"CPNet": "CP", "TTNet": "TT", "HTNet": "HT"}

# KNO 2018's best test accuracies, by dataset key and architecture (no HT results, no
# Fashion-MNIST); the settings they were measured in are in PAPER_SETTINGS.
PAPER = {
    "mnist": {
        "CPNet": "95% (98% with per-patch dropout)",
        "TTNet": "95% (98% with per-patch dropout)",
    },
    "cifar10": {"CPNet": "20%", "TTNet": "45%"},
}
PAPER_SETTINGS = {
    "mnist": "the paper's MNIST numbers are at ranks below 5, test accuracy without and with "
    "dropout on each patch",
    "cifar10": "the paper's CIFAR-10 numbers are at feature size m = 4 without regularisation "
    "(the original images; ours are a JPEG copy)",
}
# Other tensor-network classifiers' published test accuracy, for context.
ELSEWHERE = {
    "mnist": "an MPS on the pixels about 99% (Stoudenmire & Schwab 2016); deep tensor "
    "networks about 99.5% (2022)",
    "fashion-mnist": "deep tensor networks about 92% (2022)",
}
# The targets of issue 10 (test split): by dataset key, {architecture, or None for the best
# checkpoint of any architecture: lowest accuracy to reach}.
TARGETS: dict[str, dict[str | None, float]] = {
    "mnist": {None: 0.992},
    "fashion-mnist": {None: 0.91},
    "cifar10": {"TTNet": 0.72, "HTNet": 0.70, "CPNet": 0.66},
}


@dataclass(frozen=True)
class ZooPoint:
    """One published checkpoint, as its index entry records it.

    Args:
        name: the model name (`tt-mnist-r16`).
        architecture: the network class name ("TTNet").
        dataset: the dataset key ("mnist").
        dataset_title: the dataset in prose, as the card names it ("CIFAR-10 (JPEG copy)").
        layout: the site layout of the name ("pixels"), None for the recipe's patches.
        rank: the network's rank.
        sites: the number of sites d (patches or pixels).
        patch_size: the side of a square patch (1: one site per pixel).
        num_params: trainable parameters.
        test_acc: the measured test accuracy the card records, in [0, 1].
        epochs: training epochs (None: not recorded).
        wall_time_s: training wall time in seconds (None: not recorded).
        hardware: the machine it was trained on, in words.
        seed: the training seed (None: not recorded).
        data_note: the card's note on the data copy (None: none).
    """

    name: str
    architecture: str
    dataset: str
    dataset_title: str
    layout: str | None
    rank: int
    sites: int
    patch_size: int
    num_params: int
    test_acc: float
    epochs: int | None
    wall_time_s: float | None
    hardware: str
    seed: int | None
    data_note: str | None

    @property
    def line(self) -> str:
        """The figure line and table group it belongs to: "TT", or "TT, pixels"."""
        return SHORT.get(self.architecture, self.architecture) + (
            f", {self.layout}" if self.layout else ""
        )


def zoo_points(index: dict[str, Any]) -> list[ZooPoint]:
    """The published checkpoints of an index, in the order of the dataset table, then
    architecture (CP, TT, HT), site layout (the recipe's patches first) and parameter count.

    Args:
        index: an index of published checkpoints, as `read_index()` returns it.
    """
    points = []
    for name, entry in index["models"].items():
        config = entry["config"]
        init_args = config["architecture"]["init_args"]
        training = config.get("training") or {}
        points.append(
            ZooPoint(
                name=name,
                architecture=config["architecture"]["class_path"].rsplit(".", 1)[-1],
                dataset=config["dataset"]["key"],
                dataset_title=config["dataset"]["title"],
                layout=ModelName.parse(name).layout,
                rank=int(init_args["rank"]),
                sites=math.prod(
                    grid_shape(
                        init_args["image_size"], init_args["patch_size"], init_args.get("stride")
                    )
                ),
                patch_size=int(init_args["patch_size"]),
                num_params=int(config["num_params"]),
                test_acc=float(config["metrics"]["test/acc"]),
                epochs=training.get("epochs"),
                wall_time_s=training.get("wall_time_s"),
                hardware=training.get("hardware") or "not recorded",
                seed=(training.get("hyper_parameters") or {}).get("seed"),
                data_note=config["dataset"].get("note"),
            )
        )
    datasets = list(DATASETS)

    def order(point: ZooPoint) -> tuple:
        known = point.dataset in DATASETS
        return (
            datasets.index(point.dataset) if known else len(datasets),
            point.dataset,
            ARCHITECTURES.index(point.architecture)
            if point.architecture in ARCHITECTURES
            else len(ARCHITECTURES),
            point.layout or "",
            point.num_params,
        )

    return sorted(points, key=order)


def by_dataset(points: list[ZooPoint]) -> dict[str, list[ZooPoint]]:
    """The points grouped by dataset key, in the points' order."""
    groups: dict[str, list[ZooPoint]] = defaultdict(list)
    for point in points:
        groups[point.dataset].append(point)
    return dict(groups)


def zoo_figure(points: list[ZooPoint], path: Path) -> None:
    """One panel per dataset: test accuracy (%) against parameters (log x), a line per
    architecture and site layout, each point annotated with its rank, the targets dashed.

    Args:
        points: the checkpoints (`zoo_points`), at least one.
        path: the PNG to write.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    groups = by_dataset(points)
    columns = min(len(groups), 2)
    rows = -(-len(groups) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(5.4 * columns, 4.2 * rows), squeeze=False)
    panels = list(axes.flat)
    for axis in panels[len(groups) :]:
        axis.set_visible(False)
    for axis, (dataset, members) in zip(panels, groups.items(), strict=False):
        lines: dict[str, list[ZooPoint]] = defaultdict(list)
        for point in members:
            lines[point.line].append(point)
        for label, line in lines.items():
            colour = COLOURS.get(line[0].architecture)
            layout = line[0].layout
            axis.plot(
                [p.num_params for p in line],
                [100 * p.test_acc for p in line],
                linestyle=":" if layout else "-",
                marker="*" if layout else "o",
                markersize=11 if layout else 6,
                color=colour,
                label=label + (f" (d = {line[0].sites} sites)" if layout else ""),
            )
            for p in line:
                axis.annotate(
                    f"r{p.rank}",
                    (p.num_params, 100 * p.test_acc),
                    textcoords="offset points",
                    xytext=(4, 4),
                    fontsize=7,
                    color=colour,
                )
        for architecture, target in TARGETS.get(dataset, {}).items():
            axis.axhline(
                100 * target,
                linestyle="--",
                linewidth=0.8,
                color=COLOURS.get(architecture, "grey") if architecture else "grey",
                alpha=0.7,
                label=f"target {SHORT[architecture] + ' ' if architecture else ''}"
                f"≥ {100 * target:g}%",
            )
        axis.set_xscale("log")
        axis.xaxis.set_minor_formatter(NullFormatter())  # 3x10^5 labels would overlap
        axis.margins(x=0.15, y=0.12)  # room for the rank labels
        bottom, top = axis.get_ylim()
        axis.set_ylim(bottom, min(top, 100.0))
        axis.set_xlabel("parameters")
        axis.set_ylabel("test accuracy (%)")
        count = f"{len(members)} checkpoint" + ("s" if len(members) > 1 else "")
        axis.set_title(f"{members[0].dataset_title} ({count})", fontsize=10)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, loc="best")
    figure.suptitle("The zoo: test accuracy against parameters (one run each)", fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def minutes(seconds: float | None) -> str:
    """'3.4 min', or 'not recorded'."""
    return "not recorded" if seconds is None else f"{seconds / 60:.1f} min"


def sites_text(point: ZooPoint) -> str:
    """'16 patches of 7×7', or '784 pixels (layout pixels)'."""
    if point.patch_size == 1:
        return f"{point.sites} pixels" + (f" (layout {point.layout})" if point.layout else "")
    size = point.patch_size
    return f"{point.sites} patches of {size}×{size}"


def checkpoints_table(points: list[ZooPoint]) -> str:
    """One row per checkpoint of a dataset."""
    lines = [
        "| name | architecture | sites | rank | parameters | test acc | epochs | "
        "training wall time | hardware |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for p in points:
        lines.append(
            f"| `{p.name}` | {p.architecture} | {sites_text(p)} | {p.rank} | "
            f"{p.num_params:,} | {p.test_acc:.2%} | {p.epochs or 'not recorded'} | "
            f"{minutes(p.wall_time_s)} | {p.hardware} |"
        )
    return "\n".join(lines)


def best_table(dataset: str, points: list[ZooPoint]) -> str:
    """The best checkpoint of each architecture (and site layout) beside the paper's number."""
    lines = [
        "| architecture | best checkpoint | test acc (ours) | test acc (paper, KNO 2018) |",
        "| --- | --- | ---: | --- |",
    ]
    best: dict[str, ZooPoint] = {}
    for point in points:
        if point.line not in best or point.test_acc > best[point.line].test_acc:
            best[point.line] = point
    for label, point in best.items():
        paper = PAPER.get(dataset, {}).get(point.architecture) if not point.layout else None
        lines.append(
            f"| {label} | `{point.name}` | {point.test_acc:.2%} | {paper or 'not reported'} |"
        )
    return "\n".join(lines)


def targets_lines(dataset: str, title: str, points: list[ZooPoint]) -> list[str]:
    """One bullet per target of issue 10 for this dataset: met or not, by which checkpoint."""
    lines = []
    for architecture, target in TARGETS.get(dataset, {}).items():
        which = f"{SHORT[architecture]} " if architecture else ""
        mine = [p for p in points if architecture in (None, p.architecture)]
        if not mine:
            lines.append(f"- best {title} {which}≥ {target:.1%}: **not met** (no checkpoint yet)")
            continue
        top = max(mine, key=lambda p: p.test_acc)
        state = "**met**" if top.test_acc >= target else "**not met**"
        lines.append(
            f"- best {title} {which}≥ {target:.1%}: {state} (best: `{top.name}`, "
            f"{top.test_acc:.2%})"
        )
    return lines or ["- no target for this dataset"]


def zoo_markdown(figures: Path) -> str:
    """The report's zoo section: the figure (written into `figures`) and one table per dataset.

    Args:
        figures: the folder of the report's figures.
    """
    path = index_path()
    points = zoo_points(read_index(path))
    where = (
        "`tensor_zoo/zoo/index.json`"
        if path == PACKAGED_INDEX
        else "the index `TENSOR_ZOO_INDEX` names"
    )
    text = [
        f"## {ZOO_TITLE}",
        "",
        f"Every published checkpoint of {where} ({len(points)} checkpoints), with the test "
        "accuracy its card records (measured by `tensor-zoo eval` on the dataset's test split, "
        "the card says which) and the training wall time and "
        "machine recorded with its run. These are our recipes' settings (patches, feature "
        "map, dropout, augmentation and epochs as each card's command and config say), not the "
        "paper's: the sections above reproduce the paper's setting. Each checkpoint is a "
        "**single training run** ("
        + seeds_text(points)
        + "), so no spread over seeds is given, and small differences between neighbouring points "
        "may be within the variation between seeds, which was not measured here. The wall "
        "times are as logged on the machine each row names; a run that shared its machine with "
        "other jobs took longer than it would on an idle one (the [zoo page](zoo.md) gives "
        "each run's note). Regenerate this section "
        "alone with `tensor-zoo report --only zoo`.",
        "",
    ]
    if not points:
        return "\n".join([*text, "**No published checkpoint in the index yet.**", ""])
    zoo_figure(points, figures / FIGURE)
    text += [f"![test accuracy against parameters, per dataset](figures/{FIGURE})", ""]
    layouts = sorted({p.layout for p in points if p.layout})
    text += [
        "Solid lines join the checkpoints of one architecture on its recipe's patches, in "
        "order of parameter count; a star on a dotted line is a site layout of its own, not a "
        "point of the patch networks' curve"
        + "".join(f"; `{key}`: {SITE_LAYOUTS[key].description}" for key in layouts)
        + ". Dashed horizontal lines: the targets of issue 10.",
        "",
    ]
    for dataset, members in by_dataset(points).items():
        title = members[0].dataset_title
        text += [f"### {title}", "", checkpoints_table(members), ""]
        text += [best_table(dataset, members), ""]
        if dataset in PAPER_SETTINGS:
            text += [f"Paper's setting: {PAPER_SETTINGS[dataset]}.", ""]
        if dataset in ELSEWHERE:
            text += [f"Other tensor-network classifiers, for context: {ELSEWHERE[dataset]}.", ""]
        text += ["Targets (issue 10, test split):", "", *targets_lines(dataset, title, members)]
        text += [""]
        notes = sorted({p.data_note for p in members if p.data_note})
        text += [
            f"Data: {' '.join(notes) or f'{title}, the original set (no copy note on its cards).'}"
        ]
        text += [""]
    return "\n".join(text)


def seeds_text(points: list[ZooPoint]) -> str:
    """'seed 0' or 'seeds 0, 1', with the checkpoints whose card records none."""
    seeds = sorted({p.seed for p in points if p.seed is not None})
    text = ("seed " if len(seeds) == 1 else "seeds ") + ", ".join(map(str, seeds))
    unrecorded = [f"`{p.name}`" for p in points if p.seed is None]
    if unrecorded:
        text += ("; " if seeds else "") + f"not recorded for {', '.join(unrecorded)}"
    return text
