"""Run a W&B grid-sweep file locally, without an account: every point through its recipe.

`wandb sweep FILE` + `wandb agent ID` need a W&B account and a network. This runner reads the
same file, expands its grid (every `values` list, every `value` constant) and runs each point
as `python PROGRAM --key=value ...` (the `${args}` W&B's agent would pass), one after the
other, each in its own folder `RUNS/<sweep>/<point>/`, where the recipe's ExperimentSummary
callback writes `summary.json` and W&B writes its offline run (`wandb/offline-run-*`, upload
later with `wandb sync`). A point whose `summary.json` exists is skipped, so an interrupted
sweep resumes where it stopped; a failed point leaves its log in `log.txt` and is retried on
the next call.

    python -m tensor_zoo.experiments sweep recipes/sweeps/toy.yaml
    python -m tensor_zoo.experiments sweep recipes/sweeps/mnist_low_rank.yaml --dry-run
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import re
import runpy
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)
SUMMARY = "summary.json"
# arguments that change how a run prints, never what it computes: not part of a point's identity
COSMETIC = ("--trainer.enable_progress_bar", "--trainer.enable_model_summary")


@dataclass
class Point:
    """One run of a sweep: its parameter values and where it lives.

    Args:
        params: {"model.network.rank": 4, ...} as in the sweep file.
        folder: the run's folder (`trainer.default_root_dir`).
    """

    params: dict[str, Any]
    folder: Path

    @property
    def done(self) -> bool:
        """True when the run finished (its summary.json exists)."""
        return (self.folder / SUMMARY).is_file()

    def summary(self) -> dict[str, Any]:
        """The run's summary.json."""
        return json.loads((self.folder / SUMMARY).read_text())


def load_sweep(path: str | Path) -> dict[str, Any]:
    """Read a W&B sweep file; raises ValueError naming what is missing or unsupported."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No sweep file {path}; the sweeps are in recipes/sweeps/.")
    sweep = yaml.safe_load(path.read_text())
    if not isinstance(sweep, dict) or "program" not in sweep or "parameters" not in sweep:
        raise ValueError(f"{path} is not a W&B sweep file: it needs `program` and `parameters`.")
    if sweep.get("method", "grid") != "grid":
        raise ValueError(
            f"{path}: method {sweep['method']!r}; the local runner expands grids only "
            f"(use `wandb agent` for random or bayes sweeps)."
        )
    for name, spec in sweep["parameters"].items():
        if not isinstance(spec, dict) or not ("values" in spec or "value" in spec):
            raise ValueError(
                f"{path}: parameter {name!r} needs `values: [...]` or `value: ...` for a grid."
            )
    return sweep


def point_name(params: dict[str, Any], varying: list[str], extra: list[str] | None = None) -> str:
    """A readable, unique folder name: the varying parameters' short values, plus a hash of all
    the parameters and extra recipe arguments (a changed constant, or a reduced run such as
    `--trainer.max_epochs=2`, is a different point from the sweep's own)."""
    parts = []
    for key, value in params.items():
        if key not in varying:
            continue
        short = str(value).rsplit(".", 1)[-1] if isinstance(value, str) else str(value)
        parts.append(f"{key.rsplit('.', 1)[-1]}={short}")
    extra = [arg for arg in extra or [] if not arg.startswith(COSMETIC)]
    identity = [params, extra] if extra else params
    digest = hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:6]
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", ",".join(parts))[:120] + f"-{digest}"


def expand_grid(
    sweep: dict[str, Any],
    runs_dir: str | Path,
    name: str,
    only: dict[str, list[Any]] | None = None,
    extra: list[str] | None = None,
) -> list[Point]:
    """Every point of the grid, in the file's order (the last parameter varies fastest).

    Args:
        sweep: the sweep file's content.
        runs_dir: the folder of all sweeps; points go to `runs_dir/name/<point>`.
        name: the sweep's name (its file stem).
        only: restricts parameters to these values (a sub-grid), e.g. {"model.network.rank": [1]}.
        extra: recipe arguments added to every point (part of the points' identity).
    """
    only = only or {}
    names, choices = [], []
    for key, spec in sweep["parameters"].items():
        values = spec["values"] if "values" in spec else [spec["value"]]
        if key in only:
            values = [v for v in values if str(v) in {str(o) for o in only[key]}]
        names.append(key)
        choices.append(values)
    unknown = set(only) - set(names)
    if unknown:
        raise ValueError(f"--only names {sorted(unknown)}, not parameters of the sweep {names}.")
    varying = [key for key, spec in sweep["parameters"].items() if "values" in spec]
    points = []
    for combo in itertools.product(*choices):
        params = dict(zip(names, combo, strict=True))
        folder = Path(runs_dir) / name / point_name(params, varying, extra)
        points.append(Point(params, folder))
    return points


def point_args(sweep: dict[str, Any], point: Point, extra: list[str]) -> list[str]:
    """The recipe's arguments for a point: W&B's `${args}`, `extra`, then the run's folders."""
    args = [
        f"--{key}={json.dumps(value) if isinstance(value, list) else value}"
        for key, value in point.params.items()
    ]
    folder = str(point.folder)
    args += [*extra, f"--trainer.default_root_dir={folder}"]
    if "logger=false" not in " ".join(extra).lower():
        args += [f"--trainer.logger.init_args.save_dir={folder}"]
    return args


def run_point(
    sweep: dict[str, Any], point: Point, extra: list[str], in_process: bool, root: Path
) -> bool:
    """Run one point through its recipe; True when it finished. Output goes to log.txt."""
    root = root.resolve()
    program = str(root / sweep["program"])
    args = point_args(sweep, point, extra)
    point.folder.mkdir(parents=True, exist_ok=True)
    record = {"params": point.params, "extra_args": extra, "program": sweep["program"]}
    (point.folder / "point.json").write_text(json.dumps(record, indent=2) + "\n")
    with open(point.folder / "log.txt", "w") as stream:
        if not in_process:
            result = subprocess.run(
                [sys.executable, program, *args],
                stdout=stream,
                stderr=subprocess.STDOUT,
                cwd=root,
                check=False,
            )
            return result.returncode == 0 and point.done
        return _run_in_process(program, args, stream, root) and point.done


def _run_in_process(program: str, args: list[str], stream: Any, root: Path) -> bool:
    """Run a recipe script in this process (no interpreter start-up: for small runs)."""
    import contextlib

    import lightning.pytorch  # noqa: F401  (its log handlers exist before they are redirected)

    handlers = [
        handler
        for name in ("lightning.pytorch", "lightning.fabric")
        for handler in logging.getLogger(name).handlers
        if type(handler) is logging.StreamHandler
    ]
    saved_streams = [handler.stream for handler in handlers]
    for handler in handlers:
        handler.setStream(stream)
    saved_argv, saved_cwd = sys.argv, Path.cwd()
    sys.argv = [program, *args]
    os.chdir(root)  # the repository root: the sweep's paths are relative to it
    try:
        with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
            runpy.run_path(program, run_name="__main__")
        return True
    except (Exception, SystemExit) as error:  # a failed point is reported, the sweep goes on
        stream.write(f"\n{type(error).__name__}: {error}\n")
        return False
    finally:
        sys.argv = saved_argv
        os.chdir(saved_cwd)
        for handler, saved in zip(handlers, saved_streams, strict=True):
            handler.setStream(saved)
        import wandb

        if wandb.run is not None:
            wandb.finish()


def run_sweep(
    path: str | Path,
    runs_dir: str | Path = "runs/sweeps",
    extra: list[str] | None = None,
    only: dict[str, list[Any]] | None = None,
    in_process: bool = False,
    root: str | Path = ".",
    progress: Any = None,
) -> list[Point]:
    """Run every unfinished point of a grid sweep; returns all points (finished or not).

    Args:
        path: the W&B sweep file.
        runs_dir: where the points' folders go (`runs_dir/<sweep stem>/<point>`).
        extra: recipe arguments added to every point (e.g. ["--trainer.max_epochs=1"]).
        only: a sub-grid, see expand_grid.
        in_process: run recipes in this process (faster start; for small runs and tests).
        root: the repository root (the sweep's `program` is relative to it).
        progress: called with one line per point (e.g. print); None: logging.
    """
    sweep = load_sweep(path)
    points = expand_grid(sweep, Path(runs_dir).resolve(), Path(path).stem, only, extra)
    say = progress or log.info
    for index, point in enumerate(points, 1):
        label = f"[{index}/{len(points)}] {point.folder.name}"
        if point.done:
            say(f"{label}: done before, skipped")
            continue
        start = time.perf_counter()
        ok = run_point(sweep, point, list(extra or []), in_process, Path(root))
        seconds = time.perf_counter() - start
        if ok:
            summary = point.summary()
            say(f"{label}: test acc {summary['test_acc']:.4f} ({seconds:.0f} s)")
        else:
            say(f"{label}: FAILED after {seconds:.0f} s, see {point.folder / 'log.txt'}")
    return points


def parse_only(items: list[str]) -> dict[str, list[str]]:
    """["model.network.rank=1,2"] -> {"model.network.rank": ["1", "2"]}."""
    only = {}
    for item in items:
        key, _, values = item.partition("=")
        if not values:
            raise ValueError(f"--only takes KEY=V1,V2,..., got {item!r}.")
        only[key] = values.split(",")
    return only


def main(
    sweep: str,
    *recipe_args: str,
    runs_dir: str = "runs/sweeps",
    only: tuple[str, ...] = (),
    in_process: bool = False,
    dry_run: bool = False,
) -> None:
    """Run a W&B grid-sweep file locally, resumably (no account needed).

    Every point runs through its recipe in RUNS_DIR/<sweep>/<point>/; points that finished are
    skipped, so an interrupted sweep resumes.

    Args:
        sweep: a sweep file, e.g. recipes/sweeps/toy.yaml.
        recipe_args: arguments added to every point's recipe command (they make it another
            point: a reduced run never passes for the sweep's own).
        runs_dir: where the points' run folders are.
        only: run a sub-grid: only these values of a parameter, as KEY=V1,V2 (repeatable).
        in_process: run the recipes in this process: no start-up per point (small runs).
        dry_run: print the commands, run nothing.
    """
    extra = list(recipe_args)
    subgrid = parse_only(list(only))
    grid = load_sweep(sweep)
    points = expand_grid(grid, runs_dir, Path(sweep).stem, subgrid, extra)
    if dry_run:
        for point in points:
            state = "done" if point.done else "todo"
            command = [sys.executable, grid["program"], *point_args(grid, point, extra)]
            print(f"{state}  {' '.join(command)}")
        return
    run_sweep(sweep, runs_dir, extra, subgrid, in_process, progress=print)
