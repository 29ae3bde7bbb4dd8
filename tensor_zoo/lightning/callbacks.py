"""Callbacks the recipes use: throughput, the end-of-test report for W&B, and Ctrl-C."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch


class ImagesPerSecond(L.Callback):
    """Logs `train/images_per_s` for every training epoch and the parameter count at fit start."""

    def __init__(self) -> None:
        self.start = 0.0
        self.images = 0

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        num_params = sum(p.numel() for p in pl_module.parameters() if p.requires_grad)
        for logger in trainer.loggers:
            logger.log_hyperparams({"num_params": num_params})

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start, self.images = time.perf_counter(), 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch: Any, batch_idx: int) -> None:
        self.images += len(batch[0])

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        seconds = max(time.perf_counter() - self.start, 1e-9)
        rate = self.images * trainer.world_size / seconds
        pl_module.log("train/images_per_s", rate, rank_zero_only=True, sync_dist=False)
        pl_module.log("train/epoch_seconds", seconds, rank_zero_only=True, sync_dist=False)


class WandbTestReport(L.Callback):
    """At the end of testing: a confusion matrix and a table of sample predictions on W&B.

    Args:
        num_samples: test images shown in the table (the first ones, with label, prediction
            and confidence).
    """

    def __init__(self, num_samples: int = 32) -> None:
        self.num_samples = num_samples
        self.predictions: list[torch.Tensor] = []
        self.labels: list[torch.Tensor] = []
        self.samples: list[torch.Tensor] = []

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.predictions, self.labels, self.samples = [], [], []

    def on_test_batch_end(
        self, trainer, pl_module, outputs, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        images, labels = batch
        with torch.no_grad():
            probabilities = pl_module(images).softmax(-1)
        self.predictions.append(probabilities.argmax(-1).cpu())
        self.labels.append(labels.cpu())
        if sum(len(s) for s in self.samples) < self.num_samples:
            self.samples.append(torch.cat([images.cpu().flatten(1), probabilities.cpu()], dim=1))

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from lightning.pytorch.loggers import WandbLogger

        loggers = [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)]
        if not loggers or not trainer.is_global_zero:
            return
        import wandb

        classes = list(getattr(trainer.datamodule, "classes", [])) or None
        predictions, labels = torch.cat(self.predictions), torch.cat(self.labels)
        run = loggers[0].experiment
        run.log(
            {
                "test/confusion_matrix": wandb.plot.confusion_matrix(
                    y_true=labels.tolist(), preds=predictions.tolist(), class_names=classes
                )
            }
        )
        shape = pl_module.network.patches.in_channels, *pl_module.network.patches.image_size
        rows = []
        samples = torch.cat(self.samples)[: self.num_samples]
        pixels = shape[0] * shape[1] * shape[2]
        for sample, label, prediction in zip(samples, labels, predictions, strict=False):
            image = sample[:pixels].reshape(shape).permute(1, 2, 0).clamp(0, 1).numpy()
            confidence = float(sample[pixels:].max())
            name = classes[int(prediction)] if classes else int(prediction)
            truth = classes[int(label)] if classes else int(label)
            rows.append([wandb.Image(image), truth, name, confidence])
        table = wandb.Table(columns=["image", "label", "prediction", "confidence"], data=rows)
        run.log({"test/sample_predictions": table})


class TrainingInterrupted(Exception):
    """Training stopped on Ctrl-C after saving a checkpoint: `path`, at step `step`."""

    def __init__(self, path: Path, step: int) -> None:
        super().__init__(f"Interrupted at step {step}; the run was saved to {path}.")
        self.path = path
        self.step = step


class SaveOnInterrupt(L.Callback):
    """The first Ctrl-C (SIGINT) ends training after the current step: it saves `last.ckpt`
    (beside the run's other checkpoints) and raises TrainingInterrupted naming it. A second
    Ctrl-C interrupts at once, as usual. With several processes they all stop at one step.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous_handler: Any = None

    def _request(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.requested = False
        if threading.current_thread() is threading.main_thread():
            self._previous_handler = signal.signal(signal.SIGINT, self._request)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch: Any, batch_idx: int) -> None:
        if not trainer.strategy.reduce_boolean_decision(self.requested, all=False):
            return
        checkpoint = trainer.checkpoint_callback
        folder = Path(checkpoint.dirpath) if checkpoint and checkpoint.dirpath else None
        path = (folder or Path(trainer.default_root_dir)) / "last.ckpt"
        if path.is_symlink():
            path.unlink()  # save_last="link" points at another checkpoint: never overwrite it
        trainer.save_checkpoint(path)
        raise TrainingInterrupted(path, trainer.global_step)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self._previous_handler is not None:
            signal.signal(signal.SIGINT, self._previous_handler)
            self._previous_handler = None


def _dataset_name(datamodule: Any) -> str:
    """The data module's dataset: its `dataset` setting (toy sets), else its `name`, else class."""
    if datamodule is None:
        return "unknown"
    name = getattr(datamodule, "dataset", None) or getattr(datamodule, "name", None)
    return str(name or type(datamodule).__name__.removesuffix("DataModule"))


DATA_SETTINGS = (
    "batch_size",
    "val_size",
    "test_size",
    "seed",
    "augment",
    "shift_pixels",
    "flip",
    "root",
    "dataset",
    "num_samples",
    "noise",
)


class ExperimentSummary(L.Callback):
    """Makes a run self-describing for sweeps and reports: W&B set-up and a `summary.json`.

    On W&B (any WandbLogger of the trainer):
    - group `<experiment>/<dataset>/<architecture>` (default experiment: the dataset) and tags
      (architecture, dataset, `rank=R`, `params=N`, the experiment), unless the logger was given
      its own. W&B takes a group only in `wandb.init`, before Lightning starts the run: the
      recipes' CLI passes `wandb_init_args` to the logger; elsewhere give the WandbLogger
      `group=...` yourself (the tags are then added when fitting starts);
    - the full training config: the model's hyper-parameters (logged by Lightning: network,
      lr, weight decay, schedule, warm-up, label smoothing) plus architecture, dataset, rank,
      parameter count, global seed, epochs, gradient clipping, the optimizer (class, settings,
      each parameter group's base learning rate) and the data module's settings (batch size,
      split sizes, augmentation, toy-set settings);
    - summary metrics (`define_metric`): `val/acc` as its max, `train/acc` as max and last,
      `test/acc` and `test/loss` as last;
    - at the end of testing, one point per run on the x-axes `rank` and `num_params`
      (`by_rank/*`, `by_params/*`: train, best val and test accuracy), so that the project's
      default workspace draws accuracy against rank and parameters, one curve per group.

    `summary.json` (in `trainer.default_root_dir`, at the end of testing): the same facts and
    the final train, best val and test accuracy, which `tensor_zoo.experiments` reads.

    Args:
        experiment: name of the experiment the run belongs to (groups and tags); the dataset
            name when None.
    """

    def __init__(self, experiment: str | None = None) -> None:
        self.experiment = experiment
        self.best_val_acc: float | None = None
        self.train_acc: float | None = None
        self.fit_seconds = 0.0
        self._fit_start = 0.0

    def identity(self, pl_module: L.LightningModule, datamodule: Any) -> dict[str, Any]:
        """What a run is, before it starts: experiment, architecture, dataset, rank, parameters."""
        network = pl_module.network
        dataset = _dataset_name(datamodule)
        return {
            "experiment": self.experiment or dataset,
            "architecture": type(network).__name__,
            "dataset": dataset,
            "rank": network.config["init_args"].get("rank"),
            "num_params": network.num_params,
        }

    def wandb_init_args(self, pl_module: L.LightningModule, datamodule: Any) -> dict[str, Any]:
        """The `group` and `tags` of the run's `wandb.init`; W&B takes a group only there."""
        facts = self.identity(pl_module, datamodule)
        group = f"{facts['experiment']}/{facts['dataset']}/{facts['architecture']}"
        tags = [
            facts["architecture"],
            facts["dataset"],
            f"rank={facts['rank']}",
            f"params={facts['num_params']}",
            facts["experiment"],
        ]
        return {"group": group, "tags": tags}

    def facts(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        """What a run is: architecture, dataset, rank, parameters, seed and training settings."""
        import os

        datamodule = trainer.datamodule
        data = {key: getattr(datamodule, key) for key in DATA_SETTINGS if hasattr(datamodule, key)}
        seed = os.environ.get("PL_GLOBAL_SEED")
        return {
            **self.identity(pl_module, datamodule),
            "feature_dim": pl_module.network.feature_dim,
            "num_positions": pl_module.network.num_positions,
            "dropout": pl_module.network.config["init_args"].get("dropout"),
            "seed": None if seed is None else int(seed),
            "max_epochs": trainer.max_epochs,
            "gradient_clip_val": trainer.gradient_clip_val,
            "accumulate_grad_batches": trainer.accumulate_grad_batches,
            "precision": str(trainer.precision),
            "world_size": trainer.world_size,
            "machine": {
                "accelerator": type(trainer.accelerator).__name__,
                "cpus": os.cpu_count(),
                "torch": torch.__version__,
            },
            "data": data,
            "optimizer": _optimizer_settings(trainer),
            "model": dict(pl_module.hparams),
        }

    def _wandb_loggers(self, trainer: L.Trainer) -> list[Any]:
        from lightning.pytorch.loggers import WandbLogger

        return [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)]

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Tags for a run started without them (the group cannot be added once it runs)."""
        tags = self.wandb_init_args(pl_module, trainer.datamodule)["tags"]
        for logger in self._wandb_loggers(trainer):
            run = logger.experiment
            if trainer.is_global_zero and not run.tags:
                run.tags = tuple(tags)

    def _start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        facts = self.facts(trainer, pl_module)
        for logger in self._wandb_loggers(trainer):
            if not trainer.is_global_zero:
                continue
            run = logger.experiment
            settings = {key: value for key, value in facts.items() if key != "model"}
            run.config.update(settings, allow_val_change=True)
            run.define_metric("val/acc", summary="max")
            run.define_metric("train/acc", summary="max,last")
            run.define_metric("test/acc", summary="last")
            run.define_metric("test/loss", summary="last")
            run.define_metric("rank")
            run.define_metric("num_params")
            run.define_metric("by_rank/*", step_metric="rank")
            run.define_metric("by_params/*", step_metric="num_params")

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start(trainer, pl_module)
        self._fit_start = time.perf_counter()

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.fit_seconds = time.perf_counter() - self._fit_start

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._fit_start == 0.0:
            self._start(trainer, pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = trainer.callback_metrics.get("train/acc")
        if value is not None:
            self.train_acc = float(value)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = trainer.callback_metrics.get("val/acc")
        if value is not None and not trainer.sanity_checking:
            self.best_val_acc = max(self.best_val_acc or 0.0, float(value))

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        import json
        from pathlib import Path

        if not trainer.is_global_zero:
            return
        metrics = {
            "train_acc": self.train_acc,
            "best_val_acc": self.best_val_acc,
            "test_acc": _float(trainer.callback_metrics.get("test/acc")),
            "test_loss": _float(trainer.callback_metrics.get("test/loss")),
            "fit_seconds": self.fit_seconds,
            "epochs_run": trainer.current_epoch,
        }
        facts = self.facts(trainer, pl_module)
        for logger in self._wandb_loggers(trainer):
            points = {
                f"{axis}/{name}": value
                for axis in ("by_rank", "by_params")
                for name, value in metrics.items()
                if name.endswith("acc") and value is not None
            }
            rank = facts["rank"] if isinstance(facts["rank"], int) else max(facts["rank"])
            logger.experiment.log({"rank": rank, "num_params": facts["num_params"], **points})
        checkpoint = trainer.checkpoint_callback
        best = getattr(checkpoint, "best_model_path", "") if checkpoint is not None else ""
        summary = {**facts, **metrics, "best_checkpoint": best or None}
        path = Path(trainer.default_root_dir) / "summary.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=2, default=str) + "\n")


def _optimizer_settings(trainer: L.Trainer) -> dict[str, Any] | None:
    """The first optimizer's class, settings and each parameter group's base learning rate
    (None before the optimizers exist, e.g. in a test-only run)."""
    if not trainer.optimizers:
        return None
    optimizer = trainer.optimizers[0]
    plain = (bool, int, float, str, tuple, type(None))
    settings = {
        key: value
        for key, value in optimizer.defaults.items()
        if key != "lr" and isinstance(value, plain)  # lr: per group, below
    }
    group_lrs = [group.get("initial_lr", group["lr"]) for group in optimizer.param_groups]
    return {"name": type(optimizer).__name__, **settings, "group_lrs": group_lrs}


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
