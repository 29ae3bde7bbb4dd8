"""The reproduction report: figures and tables of the paper's experiments from the logged runs.

    python -m tensor_zoo.experiments report            # docs/reproduction.md, docs/figures/*.png
    python -m tensor_zoo.experiments report --quick    # tiny runs of every experiment, end to
                                                       # end, into a temporary folder (a check)
    python -m tensor_zoo.experiments report --only expressivity   # one section, the rest kept

Reads every `RUNS/<sweep>/<point>/summary.json` the sweep runner left (RUNS: runs/sweeps), draws
accuracy against rank and against parameter count (train dashed, test solid, one colour per
architecture, mean and spread over seeds), the toy decision boundaries, and writes the tables
with the paper's numbers beside ours. Experiments with no finished run are listed with the
command that runs them; no number is written that was not measured. Needs matplotlib.

The expressivity section (rank-bound histograms, the TT <-> HT rank table) is measured on
random networks, no run needed (`tensor_zoo.experiments.expressivity`); `--only expressivity`
regenerates it alone, keeping the other sections of the existing report. The zoo section
(`tensor_zoo.experiments.zoo_figure`) reads the index of published checkpoints, no run needed
either (`--only zoo`). New sections are
functions `(Results, figures folder, quick) -> markdown` added to SECTIONS.
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tensor_zoo.experiments.sweep import expand_grid, load_sweep, run_sweep

ROOT = Path(__file__).resolve().parents[2]
SWEEPS = ROOT / "recipes" / "sweeps"
COLOURS = {"CPNet": "tab:orange", "TTNet": "tab:blue", "HTNet": "tab:green"}
ARCHITECTURES = ("CPNet", "TTNet", "HTNet")


@dataclass
class Experiment:
    """One of the paper's experiments: its sweep files and what the paper reported.

    Args:
        key: short name, used in figure file names.
        title: section title.
        sweeps: sweep file stems in recipes/sweeps/.
        paper: the paper's numbers as markdown, quoted beside ours.
        quick_only: sub-grid of the quick check, {parameter: values}.
        quick_args: recipe arguments of the quick check (tiny runs).
        table_keys: the summary fields that make a row of the results table (seeds of one
            setting share a row).
        split: a summary field whose values get curves of their own in the figures.
        paper_best: the paper's best test accuracy by architecture, for the headline table.
    """

    key: str
    title: str
    sweeps: tuple[str, ...]
    paper: str
    quick_only: dict[str, list[str]] = field(default_factory=dict)
    quick_args: tuple[str, ...] = ()
    table_keys: tuple[str, ...] = ("architecture", "rank")
    split: str | None = None
    paper_best: dict[str, str] = field(default_factory=dict)


TINY = (
    "--trainer.max_epochs=1",
    "--trainer.limit_train_batches=3",
    "--trainer.limit_val_batches=2",
    "--trainer.limit_test_batches=2",
    "--trainer.logger=lightning.pytorch.loggers.CSVLogger",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
)
TINY_IMAGES = (*TINY, "--data.val_size=16", "--data.batch_size=8", "--data.download=false")
# The paper's MNIST claim, quoted in the sections at both feature sizes.
MNIST_CLAIM = (
    "TT and CP: train accuracy 1.0 and test **0.95** without regularisation, test **0.98** "
    "with dropout on each patch, already at ranks below 5"
)
# What the two MNIST sections share besides the claim: rows and curves by dropout, the paper's best.
MNIST_FIELDS: dict[str, Any] = {
    "table_keys": ("architecture", "dropout", "rank"),
    "split": "dropout",
    "paper_best": {"TTNet": "95% / 98% (dropout)", "CPNet": "95% / 98% (dropout)"},
}

EXPERIMENTS = (
    Experiment(
        "toy",
        "Toy sets: decision boundaries across ranks",
        ("toy",),
        "The paper shows the decision boundaries on `make_moons` and `make_circles` across ranks "
        "(a figure, no numbers).",
        {
            "model.network": ["tensor_zoo.TTNet"],
            "model.network.rank": ["1", "4"],
            "seed_everything": ["0"],
        },
        (*TINY, "--data.num_samples=200", "--data.val_size=32"),
        table_keys=("dataset", "architecture", "rank"),
    ),
    Experiment(
        "mnist",
        "MNIST at ranks 1 to 4, with and without per-patch dropout",
        ("mnist_low_rank",),
        f"{MNIST_CLAIM}.",
        {
            "model.network": ["tensor_zoo.CPNet", "tensor_zoo.TTNet"],
            "model.network.rank": ["1"],
            "seed_everything": ["0"],
        },
        TINY_IMAGES,
        **MNIST_FIELDS,
    ),
    Experiment(
        "mnist_m32",
        "MNIST at ranks 1 to 4 with feature size m = 32",
        ("mnist_low_rank_m32",),
        f"{MNIST_CLAIM} (the paper gives no feature size for MNIST; the section above uses "
        "m = 4, this one m = 32).",
        {
            "model.network": ["tensor_zoo.TTNet"],
            "model.network.rank": ["1"],
            "seed_everything": ["0"],
        },
        TINY_IMAGES,
        **MNIST_FIELDS,
    ),
    Experiment(
        "cifar10",
        "CIFAR-10 at feature size m = 4, no regularisation",
        ("cifar10_m4", "cifar10_m4_cp"),
        "Train accuracy against rank and against parameters for TT and CP at m = 4 (figures); "
        "best test accuracy **TT 0.45, CP 0.20**; CP sometimes worse at larger ranks.",
        {
            "model.network": ["tensor_zoo.TTNet", "tensor_zoo.HTNet", "tensor_zoo.CPNet"],
            "model.network.rank": ["1", "4"],
            "seed_everything": ["0"],
        },
        TINY_IMAGES,
        paper_best={"TTNet": "45%", "CPNet": "20%"},
    ),
)


@dataclass
class Results:
    """Finished runs by sweep, and every sweep's grid (for what is still to run).

    Args:
        runs: {sweep stem: [summary.json contents, with "folder" added]}.
        grids: {sweep stem: (finished points, points in the grid)}.
        runs_dir: where the runs were read.
    """

    runs: dict[str, list[dict[str, Any]]]
    grids: dict[str, tuple[int, int]]
    runs_dir: Path


def collect(runs_dir: str | Path) -> Results:
    """Read every finished run of the sweeps in recipes/sweeps/ from `runs_dir`."""
    runs_dir = Path(runs_dir)
    runs: dict[str, list[dict[str, Any]]] = {}
    grids = {}
    for sweep_file in sorted(SWEEPS.glob("*.yaml")):
        name = sweep_file.stem
        points = expand_grid(load_sweep(sweep_file), runs_dir, name)
        grids[name] = (sum(point.done for point in points), len(points))
        runs[name] = []
        for summary_file in sorted((runs_dir / name).glob("*/summary.json")):
            summary = json.loads(summary_file.read_text())
            summary["folder"] = str(summary_file.parent)
            runs[name].append(summary)
    return Results(runs, grids, runs_dir)


def mean_spread(values: list[float]) -> tuple[float, float]:
    """(mean, sample standard deviation; 0 for one value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def percent(values: list[float | None]) -> str:
    """'97.12%' for one value, '97.12 ± 0.30% (n = 3)' for several, '–' for none."""
    present = [v for v in values if v is not None]
    if not present:
        return "–"
    mean, spread = mean_spread(present)
    if len(present) == 1:
        return f"{100 * mean:.2f}%"
    return f"{100 * mean:.2f} ± {100 * spread:.2f}% (n = {len(present)})"


def grouped(runs: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[tuple, list[dict]]:
    """Runs grouped by the values of `keys` (seeds of one setting end up together)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for run in runs:
        groups[tuple(run.get(key) for key in keys)].append(run)
    return dict(sorted(groups.items(), key=lambda item: [str(v).zfill(12) for v in item[0]]))


def planned_epochs(sweep_stem: str) -> int | None:
    """The max_epochs a sweep's points are meant to train (its config file or recipe default)."""
    sweep = load_sweep(SWEEPS / f"{sweep_stem}.yaml")
    config = sweep["parameters"].get("config", {}).get("value")
    default = ROOT / "recipes" / "configs" / f"{Path(sweep['program']).stem}.yaml"
    for path in ([ROOT / config] if config else []) + [default]:
        epochs = (yaml.safe_load(path.read_text()).get("trainer") or {}).get("max_epochs")
        if epochs is not None:
            return int(epochs)
    return None


def accuracy_figure(
    runs: list[dict[str, Any]], x_key: str, title: str, path: Path, split_by: str | None = None
) -> None:
    """Train (dashed) and test (solid) accuracy against `x_key`, mean ± spread over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4.2))
    keys = ("architecture", split_by) if split_by else ("architecture",)
    for (architecture, *rest), group in grouped(runs, keys).items():
        by_x = grouped(group, (x_key,))
        xs = [x for (x,) in by_x]
        label = architecture + (f", {split_by} {rest[0]}" if split_by else "")
        marker = "o" if not rest or not rest[0] else "s"
        for metric, style in (("train_acc", "--"), ("test_acc", "-")):
            stats = [mean_spread([r[metric] for r in by_x[(x,)]]) for x in xs]
            axes.errorbar(
                xs,
                [m for m, _ in stats],
                yerr=[s for _, s in stats],
                linestyle=style,
                marker=marker,
                color=COLOURS.get(architecture),
                capsize=3,
                alpha=1.0 if metric == "test_acc" else 0.6,
                label=f"{label} ({'test' if metric == 'test_acc' else 'train'})",
            )
    axes.set_xscale("log", base=2 if x_key == "rank" else 10)
    if x_key == "rank":  # the ranks run, as plain numbers
        ranks = sorted({run["rank"] for run in runs})
        axes.set_xticks(ranks, [str(rank) for rank in ranks])
        axes.minorticks_off()
    axes.set_xlabel("rank" if x_key == "rank" else "parameters")
    axes.set_ylabel("accuracy")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def boundary_runs(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The toy runs the decision-boundary figure draws: seed 0 of one architecture (TT if it
    was run; at d = 2 all three are rank-r matrices), every (set, rank) of it."""
    chosen = [r for r in runs if r.get("seed") in (0, None)]
    preference = ("TTNet", "CPNet", "HTNet")
    architectures = sorted({r["architecture"] for r in chosen}, key=preference.index)
    return [r for r in chosen if r["architecture"] == architectures[0]] if chosen else []


def best_checkpoint(run: dict[str, Any]) -> Path | None:
    """The best-validation checkpoint a run saved (None if it kept none)."""
    checkpoints = sorted(Path(run["folder"]).rglob("best-*.ckpt"))
    return checkpoints[-1] if checkpoints else None


def decision_boundary_figure(runs: list[dict[str, Any]], path: Path) -> bool:
    """The toy decision boundaries: one panel per (set, rank) of `boundary_runs`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from tensor_zoo.data import ToyDataModule
    from tensor_zoo.lightning.module import TensorNetClassifier

    chosen = boundary_runs(runs)
    if not chosen:
        return False
    datasets = sorted({r["dataset"] for r in chosen}, reverse=True)
    ranks = sorted({r["rank"] for r in chosen})
    figure, axes = plt.subplots(
        len(datasets), len(ranks), figsize=(2.6 * len(ranks), 2.5 * len(datasets)), squeeze=False
    )
    for row, dataset in enumerate(datasets):
        for col, rank in enumerate(ranks):
            axis = axes[row][col]
            axis.set_xticks([])
            axis.set_yticks([])
            match = [r for r in chosen if r["dataset"] == dataset and r["rank"] == rank]
            checkpoint = best_checkpoint(match[0]) if match else None
            if checkpoint is None:
                axis.set_title(f"{dataset}, rank {rank}: not run", fontsize=8)
                continue
            model = TensorNetClassifier.load_from_checkpoint(checkpoint, map_location="cpu")
            model.eval()
            settings = match[0]["data"]
            data = ToyDataModule(
                dataset=dataset,
                num_samples=settings["num_samples"],
                noise=settings["noise"],
                val_size=settings["val_size"],
                seed=settings["seed"],
            )
            data.setup()
            points, labels = data.test_set.images.reshape(-1, 2), data.test_set.labels
            low, high = points.min(0).values - 0.3, points.max(0).values + 0.3
            xs = torch.linspace(float(low[0]), float(high[0]), 150)
            ys = torch.linspace(float(low[1]), float(high[1]), 150)
            grid_x, grid_y = torch.meshgrid(xs, ys, indexing="xy")
            grid = torch.stack([grid_x, grid_y], -1).reshape(-1, 1, 1, 2)
            with torch.no_grad():
                probability = model(grid).softmax(-1)[:, 1].reshape(grid_x.shape)
            axis.contourf(grid_x, grid_y, probability, levels=20, cmap="RdBu_r", alpha=0.7)
            axis.contour(grid_x, grid_y, probability, levels=[0.5], colors="k", linewidths=1)
            axis.scatter(
                points[:, 0], points[:, 1], c=labels, cmap="RdBu_r", s=3, edgecolors="none"
            )
            axis.set_title(
                f"{dataset}, rank {rank}: test {100 * match[0]['test_acc']:.1f}%", fontsize=8
            )
    figure.suptitle(f"{chosen[0]['architecture']} decision boundaries (seed 0)", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def settings_line(runs: list[dict[str, Any]]) -> str:
    """The settings the runs share, read from their summaries (never from the config files)."""

    def values(get: Callable[[dict], Any]) -> str:
        return ", ".join(sorted({str(get(r)) for r in runs}))

    model = lambda r: r["model"]  # noqa: E731
    machine = lambda r: (  # noqa: E731
        "{accelerator}, {cpus} CPUs, torch {torch}".format(**r["machine"])
        if "machine" in r
        else "not recorded"
    )
    parts = [
        f"batch {values(lambda r: r['data'].get('batch_size'))}",
        f"lr {values(lambda r: model(r)['lr'])} ({values(lambda r: model(r)['scheduler'])})",
        f"epochs {values(lambda r: r['max_epochs'])}",
        f"m = {values(lambda r: r['feature_dim'])}",
        f"d = {values(lambda r: r['num_positions'])}",
        f"patch ordering {values(lambda r: model(r)['network']['init_args'].get('ordering'))}",
        f"augmentation {values(lambda r: r['data'].get('augment'))}",
        f"label smoothing {values(lambda r: model(r)['label_smoothing'])}",
        f"weight decay {values(lambda r: model(r)['weight_decay'])}",
        f"gradient clipping {values(lambda r: r['gradient_clip_val'])}",
        f"seeds {values(lambda r: r['seed'])}",
        f"machine {values(machine)}",
    ]
    return "; ".join(parts)


def results_table(runs: list[dict[str, Any]], keys: tuple[str, ...], planned: int | None) -> str:
    """One row per setting: parameters, runs, train / best val / test accuracy, time."""
    keys = (*keys, "max_epochs")
    header = [*keys[:-1], "parameters", "epochs", "train acc", "best val acc", "test acc"]
    header.append("s / run")
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for values, group in grouped(runs, keys).items():
        epochs = sorted({r["max_epochs"] for r in group})
        reduced = planned is not None and max(epochs) < planned
        seconds = statistics.fmean(r["fit_seconds"] for r in group)
        row = [
            *(str(v) for v in values[:-1]),
            f"{group[0]['num_params']:,}",
            ", ".join(map(str, epochs)) + (f" (of {planned})" if reduced else ""),
            percent([r["train_acc"] for r in group]),
            percent([r["best_val_acc"] for r in group]),
            percent([r["test_acc"] for r in group]),
            f"{seconds:.0f}",
        ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def still_to_run(results: Results, sweeps: tuple[str, ...]) -> str:
    """Each sweep's progress and the exact command that runs (or finishes) it."""
    lines = []
    for sweep in sweeps:
        done, total = results.grids[sweep]
        state = "complete" if done == total else f"{done} of {total} grid points finished"
        state += " (reduced runs, if any, are not counted)"
        program = load_sweep(SWEEPS / f"{sweep}.yaml")["program"]
        data = "" if program.endswith("toy.py") else " (with the dataset files: `TENSOR_ZOO_DATA`)"
        lines.append(
            f"- `{sweep}`: {state}. Run or resume{data}: "
            f"`python -m tensor_zoo.experiments sweep recipes/sweeps/{sweep}.yaml`"
        )
    return "\n".join(lines)


def extra_arguments(runs: list[dict[str, Any]], sweeps: tuple[str, ...]) -> str:
    """How the runs were made: the sweep command and the extra arguments of reduced runs."""
    commands: dict[str, int] = defaultdict(int)
    for run in runs:
        point_file = Path(run["folder"]) / "point.json"
        record = json.loads(point_file.read_text()) if point_file.is_file() else {}
        extra = " ".join(record.get("extra_args", []))
        sweep = Path(run["folder"]).parent.name
        command = f"python -m tensor_zoo.experiments sweep recipes/sweeps/{sweep}.yaml"
        commands[command + (f" --only ... -- {extra}" if extra else "")] += 1
    lines = ["**How these runs were made** (count, command):", ""]
    lines += [f"- {count}: `{command}`" for command, count in sorted(commands.items())]
    return "\n".join(lines)


def experiment_section(experiment: Experiment, results: Results, figures: Path) -> str:
    """The markdown of one experiment: paper's numbers, ours, settings, figures, what is left."""
    runs = [run for sweep in experiment.sweeps for run in results.runs.get(sweep, [])]
    text = [f"## {experiment.title}", "", f"**Paper (KNO 2018).** {experiment.paper}", ""]
    if not runs:
        text += ["**Ours: not run yet.**", "", still_to_run(results, experiment.sweeps), ""]
        return "\n".join(text)
    dataset = ", ".join(sorted({r["dataset"] for r in runs}))
    if dataset == "CIFAR-10":
        dataset = "CIFAR-10 (JPEG copy)"
    text += [f"**Ours** ({dataset}; {settings_line(runs)}):", ""]
    planned = planned_epochs(experiment.sweeps[0])
    text += [results_table(runs, experiment.table_keys, planned), ""]
    text += [headline(experiment, runs), ""]
    if experiment.key == "toy":
        if decision_boundary_figure(runs, figures / "toy_decision_boundaries.png"):
            text += ["![toy decision boundaries](figures/toy_decision_boundaries.png)", ""]
    else:
        for x_key, what in (("rank", "rank"), ("num_params", "parameters")):
            name = f"{experiment.key}_accuracy_vs_{what}.png"
            accuracy_figure(
                runs, x_key, f"{dataset}: accuracy vs {what}", figures / name, experiment.split
            )
            text += [f"![{dataset} accuracy against {what}](figures/{name})", ""]
    text += [extra_arguments(runs, experiment.sweeps), ""]
    text += ["**Still to run** (grid points without a finished run):", ""]
    text += [still_to_run(results, experiment.sweeps), ""]
    return "\n".join(text)


def headline(experiment: Experiment, runs: list[dict[str, Any]]) -> str:
    """Best test accuracy per architecture (mean over seeds of the best setting) vs the paper."""
    paper = experiment.paper_best
    lines = [
        "| architecture | best setting | test acc (ours) | test acc (paper) |",
        "| --- | --- | --- | --- |",
    ]
    for architecture in ARCHITECTURES:
        mine = [r for r in runs if r["architecture"] == architecture]
        if not mine:
            continue
        settings = grouped(mine, ("dataset", "rank", "dropout", "max_epochs"))
        best_key = max(settings, key=lambda k: statistics.fmean(r["test_acc"] for r in settings[k]))
        dataset, rank, dropout, epochs = best_key
        where = f"{dataset}, rank {rank}, dropout {dropout}, {epochs} epochs"
        lines.append(
            f"| {architecture} | {where} | {percent([r['test_acc'] for r in settings[best_key]])}"
            f" | {paper.get(architecture, 'not reported')} |"
        )
    return "\n".join(lines)


def expressivity_section(results: Results, figures: Path, quick: bool = False) -> str:
    """The rank-bound histograms and Table 2, measured on random networks (no runs needed)."""
    from tensor_zoo.experiments.expressivity import expressivity_markdown

    return expressivity_markdown(figures, quick=quick)


def zoo_section(results: Results, figures: Path, quick: bool = False) -> str:
    """The published checkpoints across ranks, read from the zoo's index (no runs needed; the
    quick check draws the same, from the same index)."""
    from tensor_zoo.experiments.zoo_figure import zoo_markdown

    return zoo_markdown(figures)


# The headings of the sections that are not an experiment's (each experiment's is its title).
EXPRESSIVITY_TITLE = "Expressivity: rank-bound histograms and the TT <-> HT rank table"
ZOO_TITLE = "The zoo across ranks: test accuracy against parameters"

# Section name -> (results, figures folder, quick) -> markdown, in the report's order.
SECTIONS: dict[str, Callable[[Results, Path, bool], str]] = {
    **{
        e.key: lambda results, figures, quick, e=e: experiment_section(e, results, figures)
        for e in EXPERIMENTS
    },
    "expressivity": expressivity_section,
    "zoo": zoo_section,
}
# Section name -> its `## ` heading, by which `report --only` finds the sections it keeps.
HEADINGS: dict[str, str] = {
    **{experiment.key: f"## {experiment.title}" for experiment in EXPERIMENTS},
    "expressivity": f"## {EXPRESSIVITY_TITLE}",
    "zoo": f"## {ZOO_TITLE}",
}


def split_sections(markdown: str) -> tuple[str, list[str]]:
    """A report's text before its first `## ` section, and its sections in order."""
    parts = markdown.split("\n## ")
    return parts[0], ["## " + part.rstrip("\n") + "\n" for part in parts[1:]]


def write_report(
    results: Results, out: Path, quick: bool = False, only: list[str] | None = None
) -> Path:
    """Write `out/reproduction.md` and `out/figures/*.png`; returns the markdown's path.

    Args:
        results: the runs read by `collect`.
        out: the folder of reproduction.md and figures/.
        quick: mark the report as a quick check (and measure the expressivity section small).
        only: names of SECTIONS to regenerate; the other sections of the existing
            out/reproduction.md are kept as they are (None: every section).
    """
    path = out / "reproduction.md"
    kept: list[str] = []  # the existing sections, in SECTIONS' order ("" where absent)
    if only:
        unknown = sorted(set(only) - set(SECTIONS))
        if unknown:
            raise ValueError(f"no report section {unknown}: choose from {', '.join(SECTIONS)}.")
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: build the whole report once first.")
        by_heading = {
            section.split("\n", 1)[0]: section for section in split_sections(path.read_text())[1]
        }
        missing = [name for name in SECTIONS if HEADINGS[name] not in by_heading]
        if not set(missing) <= set(only):
            raise ValueError(
                f"{path} lacks the sections {', '.join(missing)} (it was built by another "
                f"version): build the whole report (without --only), or name them in --only."
            )
        kept = [by_heading.get(HEADINGS[name], "") for name in SECTIONS]
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    intro = [
        "# Reproduction: Khrulkov, Novikov, Oseledets (ICLR 2018)",
        "",
        "<!-- Generated by `python -m tensor_zoo.experiments report`; edit the generator, "
        "not this file. -->",
        "",
        "The paper's experiments in its own setting (Adam, batch 32, no regularisation unless "
        "stated), run by the sweep files in `recipes/sweeps/` and read back from their runs' "
        "`summary.json`. Accuracy is micro-averaged over the split; *train acc* is the running "
        "accuracy of the last training epoch (with dropout active where it is on), *best val "
        "acc* the best epoch's on the 5,000 held-out training images (toy: 200 points), *test "
        "acc* that of the best-validation checkpoint on the official test split (toy: 1,000 "
        "fresh points). *s / run*: wall-clock seconds of fitting on the machine that ran it "
        "(here a 2-core machine shared with other jobs, so an upper bound). Several seeds: "
        "mean ± sample standard deviation (n runs). An *epochs* "
        "entry `3 (of 20)` marks a reduced run. Data: MNIST is the original set; CIFAR-10 is a "
        "**JPEG-recompressed copy** (about quality 75) of the original images, so its numbers "
        "are for that copy. Differences from the paper: PyTorch instead of TensorFlow; the "
        "paper does not give epochs, initialisation, patch size (CIFAR-10) or m (MNIST), so the "
        "config files state the values chosen; our networks append a constant 1 to each "
        "feature vector and contract in log format (see the theory page). The `summary.json` "
        "and `point.json` of every sweep run, and the checkpoints the toy figure draws, are "
        "kept in `docs/results/sweeps/` (`tensor-zoo report --keep docs/results/sweeps` copies "
        "them from the runs): `tensor-zoo report --runs-dir docs/results/sweeps --only toy "
        "mnist mnist_m32 cifar10` rebuilds those sections and their figures from them (the zoo "
        "section reads the zoo's index, the expressivity section computes its own numbers).",
        "",
    ]
    if quick:
        intro += [
            "**Quick check: tiny runs (1 epoch, a few batches); the numbers mean nothing.**",
            "",
        ]
    body = []
    for index, (name, section) in enumerate(SECTIONS.items()):
        if only and name not in only:
            body.append(kept[index])
        else:
            body.append(section(results, figures, quick))
    path.write_text("\n".join(intro + body).rstrip() + "\n")
    return path


def run_quick(workdir: Path, progress: Callable[[str], None] | None = None) -> Results:
    """Tiny versions of every experiment, in this process, into `workdir/runs`."""
    for experiment in EXPERIMENTS:
        for sweep in experiment.sweeps:
            sweep_file = SWEEPS / f"{sweep}.yaml"
            parameters = load_sweep(sweep_file)["parameters"]
            only = {k: v for k, v in experiment.quick_only.items() if k in parameters}
            only = {
                k: [x for x in v if str(x) in {str(p) for p in parameters[k].get("values", [])}]
                or [str(parameters[k].get("values", [parameters[k].get("value")])[0])]
                for k, v in only.items()
            }
            run_sweep(
                sweep_file,
                workdir / "runs",
                list(experiment.quick_args),
                only,
                in_process=True,
                root=ROOT,
                progress=progress,
            )
    return collect(workdir / "runs")


RECORD_FILES = ("summary.json", "point.json")


def keep_records(runs_dir: str | Path, folder: str | Path) -> int:
    """Copy every finished run's summary.json and point.json from `runs_dir` into `folder`, in
    the same <sweep>/<point>/ layout (what the report reads, without W&B files), and the best
    checkpoints of the toy runs the decision-boundary figure draws (a few kB each: the figure
    needs the networks). Returns how many runs were copied."""
    runs_dir, folder = Path(runs_dir), Path(folder)
    copied = 0
    for summary in sorted(runs_dir.glob(f"*/*/{RECORD_FILES[0]}")):
        target = folder / summary.parent.relative_to(runs_dir)
        target.mkdir(parents=True, exist_ok=True)
        for name in RECORD_FILES:
            if (summary.parent / name).is_file():
                shutil.copy2(summary.parent / name, target / name)
        copied += 1
    for run in boundary_runs(collect(runs_dir).runs.get("toy", [])):
        checkpoint = best_checkpoint(run)
        if checkpoint is not None:
            target = folder / checkpoint.relative_to(runs_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(checkpoint, target)
    return copied


def main(
    *,
    runs_dir: str = "runs/sweeps",
    out: str | None = None,
    quick: bool = False,
    only: list[str] | None = None,
    keep: str | None = None,
) -> None:
    """Build docs/reproduction.md and its figures from the sweeps' runs.

    Args:
        runs_dir: where the sweeps' runs are.
        out: the folder to write reproduction.md and figures/ into (default: docs/; with
            --quick: a new temporary folder).
        quick: tiny runs of every experiment and their report, in a temporary folder (a check
            that the pipeline runs).
        only: regenerate only these sections (toy, mnist, mnist_m32, cifar10, expressivity,
            zoo), keeping the others of OUT/reproduction.md word for word.
        keep: also copy every finished run's summary.json and point.json into this folder
            (docs/results/sweeps: the record the report can be rebuilt from with --runs-dir).
    """
    start = time.perf_counter()
    if quick:
        folder = Path(out or tempfile.mkdtemp(prefix="tensor-zoo-report-"))
        results = run_quick(folder, progress=print)
        wanted = [sweep for experiment in EXPERIMENTS for sweep in experiment.sweeps]
        missing = [name for name in wanted if not results.runs[name]]
        path = write_report(results, folder, quick=True)
        print(f"Quick report: {path} ({time.perf_counter() - start:.0f} s)")
        if missing:
            sys.exit(
                f"report --quick: no finished run for {missing}; see their log.txt in {folder}"
            )
        return
    if keep:
        print(f"Kept the records of {keep_records(runs_dir, keep)} runs in {keep}")
    results = collect(runs_dir)
    try:
        path = write_report(results, Path(out or ROOT / "docs"), only=only)
    except (FileNotFoundError, ValueError) as error:
        sys.exit(f"report: {error}")
    done = {name: grid for name, grid in results.grids.items()}
    print(f"Wrote {path} from {runs_dir}: finished / grid points {json.dumps(done)}")
