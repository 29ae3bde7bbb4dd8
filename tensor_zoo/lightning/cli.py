"""LightningCLI for the recipes: one dataset's data module + TensorNetClassifier.

`python recipes/mnist.py fit ...` runs one subcommand (fit / validate / test / predict);
with no subcommand the recipe fits and then tests the best checkpoint. Defaults come from
two places: the network's arguments that the dataset decides (input channels, image size,
classes, normalisation) and the dataset's network defaults (patch size, feature size,
dropout, patch order) from the dataset table, `tensor_zoo.datasets` (the data module's
`spec`), with TTNet as the network; everything else from `recipes/configs/<dataset>.yaml`,
which may override them. Every value can be overridden on the command line
(`--model.network=HTNet`, `--model.network.rank=32`, `--trainer.devices=2`), and
`--print_config` prints the resolved, reusable config. Every run saves its config beside its
checkpoints (`<run>/config.yaml`).

Expected failures (no data, damaged data, a diverged run, a resume the checkpoint cannot
honour) end in one message and exit status 1, without a traceback; Ctrl-C saves the step
reached and prints the command that resumes it (exit status 130).
"""

from __future__ import annotations

import logging
import netrc
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback

from tensor_zoo.data.files import DatasetCorruptError, DatasetNotFoundError
from tensor_zoo.lightning.callbacks import SaveOnInterrupt, TrainingInterrupted
from tensor_zoo.lightning.module import ResumeMismatchError, TensorNetClassifier, TrainingDiverged

log = logging.getLogger(__name__)
SUBCOMMANDS = ("fit", "validate", "test", "predict")
DEFAULT_NETWORK = "tensor_zoo.TTNet"
EXPECTED_ERRORS = (DatasetNotFoundError, DatasetCorruptError, TrainingDiverged, ResumeMismatchError)


def run_folder(trainer: L.Trainer) -> Path:
    """The folder of this run: its checkpoints go to `<folder>/checkpoints`, its config to
    `<folder>/config.yaml`. With a logger: `<save_dir>/<name>/<version>` (Lightning's own
    layout); without one: the next free `<default_root_dir>/version_N`. Decided on rank 0."""
    folder = None
    if trainer.is_global_zero:
        if trainer.loggers:
            logger = trainer.loggers[0]
            version = logger.version
            version = version if isinstance(version, str) else f"version_{version}"
            folder = Path(logger.save_dir or trainer.default_root_dir) / str(logger.name) / version
        else:
            root = Path(trainer.default_root_dir)
            number = 0
            while (root / f"version_{number}").exists():
                number += 1
            folder = root / f"version_{number}"
    return Path(trainer.strategy.broadcast(str(folder)))


class RunConfigCallback(SaveConfigCallback):
    """Saves the resolved config as `config.yaml` in the run's own folder, beside its
    checkpoints, so that no run overwrites another's (Lightning's default writes it to the
    logger's save_dir, shared by every W&B run)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **{**kwargs, "save_to_log_dir": False})

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.already_saved:
            return
        folder = run_folder(trainer)
        for callback in trainer.checkpoint_callbacks:
            if getattr(callback, "dirpath", "") is None:
                callback.dirpath = str(folder / "checkpoints")
        if trainer.is_global_zero:
            folder.mkdir(parents=True, exist_ok=True)
            self.parser.save(
                self.config,
                str(folder / self.config_filename),
                skip_none=False,
                overwrite=True,
                multifile=self.multifile,
            )
        self.already_saved = True

    def save_config(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Nothing beyond `setup`."""


def wandb_logged_in() -> bool:
    """True when W&B has an API key here (environment or ~/.netrc), so no prompt can appear."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        entries = netrc.netrc().hosts
    except (FileNotFoundError, netrc.NetrcParseError):
        return False
    host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").split("://")[-1]
    return host in entries


class TensorZooCLI(LightningCLI):
    """LightningCLI whose network defaults come from the dataset table, and that never blocks
    on a W&B login: without one, runs go offline."""

    def add_arguments_to_parser(self, parser: Any) -> None:
        """Default network: `DEFAULT_NETWORK` with the data module's `spec.network_defaults()`
        (a config file or the command line may override any of them; `--model.network=HTNet`
        keeps them)."""
        spec = self.datamodule_class.spec
        network = {"class_path": DEFAULT_NETWORK, "init_args": spec.network_defaults()}
        parser.set_defaults({"model.network": network})

    def before_instantiate_classes(self) -> None:
        if (
            "WandbLogger" not in str(self.config)
            or os.environ.get("WANDB_MODE")
            or wandb_logged_in()
        ):
            return
        os.environ["WANDB_MODE"] = "offline"
        log.warning(
            "W&B: no login found, so this run is logged offline; upload it later with "
            "`wandb sync <save_dir>/wandb/offline-run-*` (or log in: `wandb login`)."
        )

    def parse_arguments(self, parser: Any, args: Any) -> None:
        self.command_line = sys.argv[1:] if args is None else list(args)
        super().parse_arguments(parser, args)

    def _parse_ckpt_path(self) -> None:
        """With --ckpt_path, Lightning fills the model config from the checkpoint's
        hyper-parameters, silently over the command line's values (a new --model.lr was
        ignored). Here what the command line sets explicitly wins; the module then applies it
        on resume or refuses it (another network shape) with a clear error."""
        subcommand = self.config.get("subcommand")
        before = self.config.clone()
        super()._parse_ckpt_path()
        if not subcommand or before == self.config:
            return
        for key in _model_keys(self.command_line):
            name = f"{subcommand}.model.{key}"
            if name in before:
                self.config[name] = before[name]

    def prepare(self) -> None:
        """Before the trainer starts: read the data, so that a missing or damaged dataset
        fails before a logger run exists; drop LearningRateMonitor when there is no logger
        (`--trainer.logger=false`), which it would refuse; add the Ctrl-C checkpoint."""
        self.datamodule.setup()
        trainer = self.trainer
        if not trainer.loggers:
            trainer.callbacks = [
                callback
                for callback in trainer.callbacks
                if not isinstance(callback, LearningRateMonitor)
            ]
        if not any(isinstance(callback, SaveOnInterrupt) for callback in trainer.callbacks):
            trainer.callbacks.append(SaveOnInterrupt())

    def before_fit(self) -> None:
        self.prepare()

    def before_validate(self) -> None:
        self.prepare()

    def before_test(self) -> None:
        self.prepare()

    def before_predict(self) -> None:
        self.prepare()

    def after_instantiate_classes(self) -> None:
        """Give W&B loggers the group and tags of an ExperimentSummary callback, if any, before
        their run starts (W&B takes a group only then); a group or tags given are kept."""
        from lightning.pytorch.loggers import WandbLogger

        from tensor_zoo.lightning.callbacks import ExperimentSummary

        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return
        summaries = [c for c in trainer.callbacks if isinstance(c, ExperimentSummary)]
        for logger in trainer.loggers:
            pending = getattr(logger, "_wandb_init", None)  # Lightning's wandb.init kwargs
            if summaries and isinstance(logger, WandbLogger) and isinstance(pending, dict):
                for key, value in summaries[0].wandb_init_args(self.model, self.datamodule).items():
                    pending[key] = pending.get(key) or value


def run_recipe(datamodule_class: type, config: Path, argv: list[str] | None = None) -> None:
    """Run a recipe's CLI; with no subcommand: fit, then test the best checkpoint.

    Expected failures print one message and exit with status 1; Ctrl-C during training saves
    the step reached, prints how to resume and exits with status 130.
    """
    args = sys.argv[1:] if argv is None else argv
    try:
        _run(datamodule_class, config, argv)
    except EXPECTED_ERRORS as error:
        if _is_rank_zero():
            print(f"Error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    except TrainingInterrupted as stop:
        if _is_rank_zero():
            command = _resume_command(args, stop.path)
            print(f"{stop} Resume with:\n  {command}", file=sys.stderr)
        raise SystemExit(130) from None
    except KeyboardInterrupt:  # outside training (reading data, testing): nothing to save
        if _is_rank_zero():
            print("Interrupted.", file=sys.stderr)
        raise SystemExit(130) from None


def _run(datamodule_class: type, config: Path, argv: list[str] | None) -> None:
    args = sys.argv[1:] if argv is None else argv
    parser_kwargs = {"default_config_files": [str(config)]}
    common = {"save_config_callback": RunConfigCallback, "args": argv}
    wants_subcommand = bool(args) and (args[0] in SUBCOMMANDS or args[0] in ("-h", "--help"))
    if wants_subcommand:
        TensorZooCLI(
            TensorNetClassifier,
            datamodule_class,
            **common,
            parser_kwargs={command: parser_kwargs for command in SUBCOMMANDS},
        )
        return
    cli = TensorZooCLI(
        TensorNetClassifier, datamodule_class, run=False, parser_kwargs=parser_kwargs, **common
    )
    cli.prepare()
    trainer = cli.trainer
    trainer.fit(cli.model, datamodule=cli.datamodule)
    checkpoint = trainer.checkpoint_callback
    ckpt_path = None
    if checkpoint is not None and checkpoint.best_model_path:
        ckpt_path = "best"
    elif checkpoint is not None and checkpoint.last_model_path:
        ckpt_path = checkpoint.last_model_path
    if ckpt_path != "best" and trainer.is_global_zero:
        print(
            f"No validation ran before training ended (step {trainer.global_step}), so there "
            f"is no best checkpoint: testing the last weights"
            + (f" ({ckpt_path})." if ckpt_path else "."),
            file=sys.stderr,
        )
    trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt_path)


def _model_keys(command_line: list[str]) -> list[str]:
    """The model config keys that `--model.*` arguments set: `--model.lr=...` -> "lr",
    `--model.network.rank=4` -> "network.init_args.rank", `--model.network=HTNet` -> "network"."""
    keys = []
    for arg in command_line:
        if not arg.startswith("--model."):
            continue
        parts = arg.removeprefix("--model.").split("=", 1)[0].split(".")
        if parts[0] == "network" and (len(parts) == 1 or parts[1] == "class_path"):
            parts = ["network"]
        elif parts[0] == "network" and parts[1] != "init_args":
            parts = ["network", "init_args", *parts[1:]]
        keys.append(".".join(parts))
    return keys


def _is_rank_zero() -> bool:
    """True in the first process (Lightning's launchers set the ranks of the others)."""
    return all(os.environ.get(name, "0") == "0" for name in ("LOCAL_RANK", "NODE_RANK"))


def _resume_command(args: list[str], checkpoint: Path) -> str:
    """The command that resumes this run from `checkpoint`: `fit` with the same arguments."""
    kept = [arg for arg in args if not arg.startswith("--ckpt_path")]
    if kept and kept[0] in SUBCOMMANDS:
        kept = kept[1:]
    return shlex.join(["python", sys.argv[0], "fit", *kept, f"--ckpt_path={checkpoint}"])
