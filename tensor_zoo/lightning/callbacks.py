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
    """At the end of testing: a confusion matrix and a table of sample predictions on W&B."""

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
