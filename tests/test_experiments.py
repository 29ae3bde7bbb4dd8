"""The paper's experiments: sweep files, the local runner, W&B offline runs and the report."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_data import make_idx_dataset, write_cifar_fixture

from tensor_zoo.experiments import report
from tensor_zoo.experiments.report import (
    HEADINGS,
    SECTIONS,
    collect,
    split_sections,
    write_report,
)
from tensor_zoo.experiments.sweep import expand_grid, load_sweep, run_sweep
from tensor_zoo.experiments.wandb_offline import read_offline_run
from tensor_zoo.zoo.registry import PACKAGED_INDEX, read_index, write_index

ROOT = Path(__file__).resolve().parents[1]
SWEEPS = sorted((ROOT / "recipes" / "sweeps").glob("*.yaml"))
TINY = [
    "--trainer.max_epochs=1",
    "--trainer.limit_train_batches=3",
    "--trainer.limit_val_batches=2",
    "--trainer.limit_test_batches=2",
    "--trainer.enable_progress_bar=false",
    "--data.num_samples=200",
    "--data.val_size=32",
]


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("WANDB_")}
    env.update(HOME=str(home), TENSOR_ZOO_CACHE=str(home / "cache"), OMP_NUM_THREADS="1", **extra)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


@pytest.mark.parametrize("sweep_file", SWEEPS, ids=[path.stem for path in SWEEPS])
def test_every_sweep_is_a_grid_over_an_existing_recipe_and_config(sweep_file):
    sweep = load_sweep(sweep_file)
    assert (ROOT / sweep["program"]).is_file()
    config = sweep["parameters"].get("config", {}).get("value")
    assert config is None or (ROOT / config).is_file()
    points = expand_grid(sweep, "runs", sweep_file.stem)
    assert len({point.folder for point in points}) == len(points) > 1
    assert "wandb sweep" in sweep_file.read_text() or sweep_file.stem == "accuracy_vs_rank"


def test_dry_run_prints_every_point_of_the_paper_cifar10_grid(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tensor_zoo.experiments",
            "sweep",
            str(ROOT / "recipes/sweeps/cifar10_m4.yaml"),
            "--runs-dir",
            str(tmp_path),
            "--dry-run",
            "--only",
            "model.network.rank=1,32",
        ],
        capture_output=True,
        text=True,
        check=True,
        env=clean_env(tmp_path),
        cwd=ROOT,
    )
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2 * 2 * 3  # TT, HT x ranks 1, 32 x seeds 0, 1, 2
    assert all(line.startswith("todo ") for line in lines)
    assert all("--config=recipes/configs/paper_cifar10.yaml" in line for line in lines)
    failed = subprocess.run(
        [
            sys.executable,
            "-m",
            "tensor_zoo.experiments",
            "sweep",
            str(ROOT / "recipes/sweeps/toy.yaml"),
            "--only",
            "model.rank=1",
        ],
        capture_output=True,
        text=True,
        env=clean_env(tmp_path),
        cwd=ROOT,
    )
    assert failed.returncode != 0 and "not parameters of the sweep" in failed.stderr
    assert "Traceback" not in failed.stderr


def test_runner_skips_finished_points_and_retries_unfinished_ones(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    only = {
        "data.dataset": ["moons"],
        "model.network": ["tensor_zoo.TTNet"],
        "model.network.rank": ["1", "2"],
        "seed_everything": ["0"],
    }
    extra = [*TINY, "--trainer.logger=lightning.pytorch.loggers.CSVLogger"]
    sweep = ROOT / "recipes/sweeps/toy.yaml"
    first: list[str] = []
    points = run_sweep(
        sweep, tmp_path, extra, only, in_process=True, root=ROOT, progress=first.append
    )
    assert len(points) == 2 and all(point.done for point in points), first
    assert points[0].summary()["rank"] == 1 and points[1].summary()["num_params"] > 0
    (points[1].folder / "summary.json").unlink()  # as if that run had been interrupted
    second: list[str] = []
    run_sweep(sweep, tmp_path, extra, only, in_process=True, root=ROOT, progress=second.append)
    assert "done before, skipped" in second[0] and "test acc" in second[1], second
    # a reduced run is not the sweep's own point: without the extra arguments, nothing is done
    assert not any(p.done for p in expand_grid(load_sweep(sweep), tmp_path, "toy", only))


def test_toy_run_on_wandb_offline_has_group_tags_full_config_and_summaries(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "recipes/toy.py"), *TINY, "--data.batch_size=16"],
        capture_output=True,
        text=True,
        env=clean_env(tmp_path),
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = list(tmp_path.glob("runs/toy/wandb/offline-run-*"))
    run = read_offline_run(run_dir)
    assert run.group == "toy/moons/TTNet"
    assert {"TTNet", "moons", "rank=4", "params=110", "toy"} <= set(run.tags)
    config = run.config
    assert config["architecture"] == "TTNet" and config["rank"] == 4
    assert config["num_params"] == 110 and config["seed"] == 0 and config["max_epochs"] == 1
    assert config["data"]["batch_size"] == 16 and config["data"]["augment"] is False
    assert config["data"]["dataset"] == "moons" and config["data"]["noise"] == 0.1
    assert config["lr"] == 0.004 and config["network"]["init_args"]["feature_dim"] == 8
    optimizer = config["optimizer"]
    assert optimizer["name"] == "AdamW" and optimizer["betas"] == [0.9, 0.999]
    assert optimizer["weight_decay"] == config["weight_decay"] and optimizer["fused"] is True
    assert optimizer["group_lrs"][0] == 0.004  # the groups' base rates (HT: inner units smaller)
    assert set(run.summary["val/acc"]) == {"max"}
    assert set(run.summary["test/acc"]) == {"last"}
    assert run.summary["by_rank/test_acc"] == run.summary["test/acc"]["last"]
    assert run.summary["rank"] == 4 and run.summary["num_params"] == 110
    assert run.metrics["by_rank/*"]["step_metric"] == "rank"
    assert run.metrics["by_params/*"]["step_metric"] == "num_params"


def test_quick_report_trains_every_experiment_and_writes_figures_and_tables(tmp_path):
    data = tmp_path / "data"
    make_idx_dataset(data / "mnist")
    write_cifar_fixture(data / "cifar10", "binary")
    out = tmp_path / "report"
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "tensor_zoo.experiments", "report", "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        env=clean_env(tmp_path, TENSOR_ZOO_DATA=str(data)),
        cwd=tmp_path,
        timeout=600,
    )
    print(f"report --quick: {time.perf_counter() - start:.1f} s")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    report = (out / "reproduction.md").read_text()
    for title in (
        "## Toy sets",
        "## MNIST at ranks 1 to 4",
        "## MNIST at ranks 1 to 4 with feature size m = 32",
        "## CIFAR-10 at feature size m = 4",
        "## Expressivity",
        "## The zoo across ranks",
    ):
        assert title in report
    assert "| TTNet | 1 | 250 | 1 (of 10) |" in report.replace(" | 0.0 | ", " | ")
    assert "45%" in report and "CIFAR-10 (JPEG copy)" in report
    assert "not run yet" not in report
    # the expressivity section, measured on random networks (quick: M = T = 4, d = 8)
    assert "| TT (xi = product) | 2 | 8 | 8 | min(m, r)^(T/2) = 4 | 3 of 3 |" in report
    assert "| HT | paper r² = 4; **ours 4; built 4** |" in report
    assert "paper r^(log2 d / 2) = 2.83 (read with a ceiling: 4); **ours 4; built 4**" in report
    assert "paper ≥ r^(d/2) = 16; **ours ≥ 16 certified**" in report  # from HT
    assert "Largest relative logits difference of a conversion: " in report
    figures = {path.name for path in (out / "figures").glob("*.png")}
    assert figures == {
        "toy_decision_boundaries.png",
        "mnist_accuracy_vs_rank.png",
        "mnist_accuracy_vs_parameters.png",
        "mnist_m32_accuracy_vs_rank.png",
        "mnist_m32_accuracy_vs_parameters.png",
        "cifar10_accuracy_vs_rank.png",
        "cifar10_accuracy_vs_parameters.png",
        "rank_bound_histograms.png",
        "zoo_accuracy_vs_parameters.png",
    }
    assert all((out / "figures" / name).read_bytes()[:4] == b"\x89PNG" for name in figures)


def test_report_only_regenerates_the_sections_named_and_keeps_the_others(tmp_path):
    sections = [f"{HEADINGS[name]}\n\nkept text of {name}\n" for name in SECTIONS]
    (tmp_path / "reproduction.md").write_text("# old intro\n\n" + "\n".join(sections))
    write_report(collect(tmp_path / "runs"), tmp_path, only=["toy"])
    intro, written = split_sections((tmp_path / "reproduction.md").read_text())
    assert intro.startswith("# Reproduction: Khrulkov, Novikov, Oseledets")
    assert written[0].startswith("## Toy sets") and "**Ours: not run yet.**" in written[0]
    assert written[1:] == sections[1:]
    # a report built before mnist_m32 existed: its sections are kept by heading, and the new
    # section must be named in --only
    older = [s for name, s in zip(SECTIONS, sections, strict=True) if name != "mnist_m32"]
    (tmp_path / "reproduction.md").write_text("# an older report\n\n" + "\n".join(older))
    with pytest.raises(ValueError, match="lacks the sections mnist_m32"):
        write_report(collect(tmp_path / "runs"), tmp_path, only=["toy"])
    write_report(collect(tmp_path / "runs"), tmp_path, only=["mnist_m32"])
    written = split_sections((tmp_path / "reproduction.md").read_text())[1]
    names = list(SECTIONS)
    position = names.index("mnist_m32")
    assert written[position].startswith(HEADINGS["mnist_m32"])
    assert [w for i, w in enumerate(written) if i != position] == older


def test_zoo_section_is_drawn_from_the_index_and_added_by_only_zoo(tmp_path, monkeypatch):
    packaged = read_index(PACKAGED_INDEX)["models"]
    tt, cp = packaged["tt-mnist-r4"], packaged["cp-cifar10-r16"]  # real entries, new numbers
    tt["config"].update(name="tt-mnist-r8", num_params=12345)
    tt["config"]["architecture"]["init_args"]["rank"] = 8
    tt["config"]["metrics"]["test/acc"] = 0.9931
    tt["config"]["training"]["wall_time_s"] = 90.0
    cp["config"].update(name="cp-cifar10-r32", num_params=67890)
    cp["config"]["architecture"]["init_args"]["rank"] = 32
    cp["config"]["metrics"]["test/acc"] = 0.6
    cp["config"]["training"]["hardware"] = "a test machine"
    index = tmp_path / "index.json"
    write_index({"format_version": 1, "models": {"tt-mnist-r8": tt, "cp-cifar10-r32": cp}}, index)
    monkeypatch.setenv("TENSOR_ZOO_INDEX", str(index))
    # a report built before the zoo section existed: --only zoo appends it, keeps the rest
    older = [f"{HEADINGS[name]}\n\nkept text of {name}\n" for name in list(SECTIONS)[:-1]]
    (tmp_path / "reproduction.md").write_text("# old intro\n\n" + "\n".join(older))
    report.main(runs_dir=str(tmp_path / "runs"), out=str(tmp_path), only=["zoo"])
    written = split_sections((tmp_path / "reproduction.md").read_text())[1]
    assert written[:-1] == older
    zoo = written[-1]
    assert zoo.startswith("## The zoo across ranks") and "(2 checkpoints)" in zoo
    assert (
        "| `tt-mnist-r8` | TTNet | 16 patches of 7×7 | 8 | 12,345 | 99.31% | 20 | 1.5 min |" in zoo
    )
    assert "| `cp-cifar10-r32` | CPNet | 64 patches of 4×4 | 32 | 67,890 | 60.00% |" in zoo
    assert "| a test machine |" in zoo
    assert "| TT | `tt-mnist-r8` | 99.31% | 95% (98% with per-patch dropout) |" in zoo
    assert "| CP | `cp-cifar10-r32` | 60.00% | 20% |" in zoo
    assert "- best MNIST ≥ 99.2%: **met** (best: `tt-mnist-r8`, 99.31%)" in zoo
    assert "- best CIFAR-10 (JPEG copy) TT ≥ 72.0%: **not met** (no checkpoint yet)" in zoo
    assert "- best CIFAR-10 (JPEG copy) CP ≥ 66.0%: **not met** (best: `cp-cifar10-r32`" in zoo
    assert "JPEG export of the original set" in zoo and "**single training run** (seed 0)" in zoo
    assert "Fashion-MNIST" not in zoo and "tt-mnist-r16" not in zoo  # only what the index has
    figure = tmp_path / "figures" / "zoo_accuracy_vs_parameters.png"
    assert figure.read_bytes()[:4] == b"\x89PNG"
    # regenerating the section again gives the same text
    write_report(collect(tmp_path / "runs"), tmp_path, only=["zoo"])
    assert split_sections((tmp_path / "reproduction.md").read_text())[1] == written


def test_kept_records_rebuild_the_same_results_with_only_the_figures_checkpoints(tmp_path):
    """`report --keep`: summary.json and point.json of finished runs, in the same layout, and the
    best checkpoint of the seed-0 toy runs the decision-boundary figure draws, no other weights;
    collect() reads the same runs and grid counts from the copy."""
    runs = tmp_path / "runs"
    points = expand_grid(load_sweep(report.SWEEPS / "toy.yaml"), runs, "toy")[:2]
    for seed, point in enumerate(points):
        point.folder.mkdir(parents=True)
        summary = {"test_acc": 0.5, "rank": 1, "seed": seed, "architecture": "TTNet"}
        (point.folder / "summary.json").write_text(json.dumps(summary))
        (point.folder / "point.json").write_text('{"params": {}}')
        (point.folder / "last.ckpt").write_bytes(b"weights")
        (point.folder / "checkpoints").mkdir()
        (point.folder / "checkpoints" / "best-epoch=3.ckpt").write_bytes(b"best weights")
    unfinished = runs / "toy" / "unfinished"
    unfinished.mkdir()
    (unfinished / "point.json").write_text("{}")
    kept = tmp_path / "kept"
    assert report.keep_records(runs, kept) == 2
    copied = sorted(path.relative_to(kept).as_posix() for path in kept.rglob("*.json"))
    first, second = (point.folder.name for point in points)
    assert copied == [
        f"toy/{name}/{file}" for name in (first, second) for file in ("point.json", "summary.json")
    ]
    weights = [path.relative_to(kept).as_posix() for path in kept.rglob("*.ckpt")]
    assert weights == [f"toy/{first}/checkpoints/best-epoch=3.ckpt"]  # seed 0's best only
    original, rebuilt = collect(runs), collect(kept)
    assert rebuilt.grids == original.grids and rebuilt.grids["toy"][0] == 2
    strip = [{k: v for k, v in run.items() if k != "folder"} for run in original.runs["toy"]]
    assert [{k: v for k, v in run.items() if k != "folder"} for run in rebuilt.runs["toy"]] == strip
