"""LightningCLI for the recipes: one dataset's data module + TensorNetClassifier.

`python recipes/mnist.py fit ...` runs one subcommand (fit / validate / test / predict);
with no subcommand the recipe fits and then tests the best checkpoint. Defaults come from
`recipes/configs/<dataset>.yaml`, every value can be overridden (`--model.network=HTNet`,
`--model.network.rank=32`, `--trainer.devices=2`), and `--print_config` prints the resolved,
reusable config. Lightning saves that config next to the run (`config.yaml`).
"""

from __future__ import annotations

import logging
import netrc
import os
import sys
from pathlib import Path

from lightning.pytorch.cli import LightningCLI

from tensor_zoo.lightning.module import TensorNetClassifier

log = logging.getLogger(__name__)
SUBCOMMANDS = ("fit", "validate", "test", "predict")


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
    """LightningCLI that never blocks on a W&B login: without one, runs go offline."""

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
    """Run a recipe's CLI; with no subcommand: fit, then test the best checkpoint."""
    args = sys.argv[1:] if argv is None else argv
    parser_kwargs = {"default_config_files": [str(config)]}
    wants_subcommand = bool(args) and (args[0] in SUBCOMMANDS or args[0] in ("-h", "--help"))
    if wants_subcommand:
        TensorZooCLI(
            TensorNetClassifier, datamodule_class, args=argv,
            save_config_kwargs={"overwrite": True},
            parser_kwargs={command: parser_kwargs for command in SUBCOMMANDS},
        )  # fmt: skip
        return
    cli = TensorZooCLI(
        TensorNetClassifier, datamodule_class, args=argv, run=False,
        save_config_kwargs={"overwrite": True}, parser_kwargs=parser_kwargs,
    )  # fmt: skip
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    ckpt_path = "best" if cli.trainer.checkpoint_callback is not None else None
    cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt_path)
