"""A LightningModule that trains any CPNet / TTNet / HTNet as a classifier."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from tensor_zoo.data.base import batch_seed
from tensor_zoo.networks import TensorNetwork, build_network

log = logging.getLogger(__name__)
Batch = tuple[Tensor, Tensor] | list[Tensor]
Scheduler = Literal["cosine", "onecycle", "constant"]
SCHEDULERS: tuple[str, ...] = get_args(Scheduler)
# Cross-entropy above this means logits differ by ~1e4 (seen: a CIFAR TT run without gradient
# clipping, whose logits jumped from ~10 to 1e27 within 50 steps, then overflowed to NaN).
DIVERGED_LOSS = 1e4
# A finite loss above DIVERGED_LOSS stops training only when this many checks in a row see it:
# with clipping, single batches spike and recover (a CIFAR TT r32 run had batches near 1e7 and
# still gained 10 points afterwards; a check that happened to land on one such batch stopped
# another run). A NaN or infinite loss stops it at once: the weights do not come back from it.
DIVERGED_CHECKS = 3
# Network arguments a resumed run may change: they hold no weights and change no shapes.
RESUMABLE_NETWORK_CHANGES = ("dropout", "log_format")


class TrainingDiverged(FloatingPointError):
    """The training loss exploded (or became NaN); the message says what to change and how
    to resume."""


class ResumeMismatchError(ValueError):
    """A run resumed from a checkpoint asks for a change the checkpoint cannot honour."""


def schedule_factor(step: int, total: int, warmup: int, scheduler: str) -> float:
    """The learning-rate multiplier at optimizer step `step` of `total`: "constant" (1), or
    "cosine" (linear warm-up over `warmup` steps, then cosine decay to 0 at `total`)."""
    if scheduler == "constant":
        return 1.0
    if step < warmup:
        return (step + 1) / warmup
    progress = min((step - warmup) / max(total - warmup, 1), 1.0)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


class TensorNetClassifier(L.LightningModule):
    """Cross-entropy training of a tensor network, with accuracy for train / val / test.

    `network` is a network instance or its config dict (`net.config`); the hyper-parameters
    saved in checkpoints hold the config, so `TensorNetClassifier.load_from_checkpoint(path)`
    rebuilds the model with no other input. Logged metrics: `{train,val,test}/loss` and
    `{train,val,test}/acc`. `predict_step` returns class probabilities (B, num_classes).

    Learning-rate schedules (stepped every optimizer step): "cosine" (linear warm-up over
    `warmup_fraction` of the steps, then cosine decay to 0), "onecycle", "constant".

    Resuming (`trainer.fit(..., ckpt_path=...)`): a new `lr`, `weight_decay`, `scheduler`
    ("cosine" / "constant"), `warmup_fraction` or training length applies from the resumed
    step on; changes a checkpoint cannot honour (another network shape, onecycle's lr or
    length) raise ResumeMismatchError. When the run is seeded (`seed_everything`), every
    training batch draws its random numbers (dropout) from a seed of its own, so that a
    resumed run repeats an uninterrupted one exactly.

    Args:
        network: the network to train (`--model.network=TTNet`, `CPNet`, `HTNet`,
            `SharedTTNet`, with its arguments as `--model.network.rank=...`), or its config.
        lr: peak learning rate of AdamW (architectures scale some parameters' steps:
            `TensorNetwork.lr_scales`).
        weight_decay: AdamW's decoupled weight decay.
        scheduler: learning-rate schedule: "cosine", "onecycle" or "constant".
        warmup_fraction: fraction of the optimizer steps with linear warm-up ("cosine" only).
        label_smoothing: label smoothing of the cross-entropy loss.
    """

    def __init__(
        self,
        network: TensorNetwork,
        lr: float = 3e-3,
        weight_decay: float = 0.0,
        scheduler: Scheduler = "cosine",
        warmup_fraction: float = 0.0,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        if isinstance(network, Mapping):
            network = build_network(network)
        if scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler must be one of {SCHEDULERS}, got {scheduler!r}.")
        self.network = network
        self.save_hyperparameters(
            {
                "network": network.config,
                "lr": lr,
                "weight_decay": weight_decay,
                "scheduler": scheduler,
                "warmup_fraction": warmup_fraction,
                "label_smoothing": label_smoothing,
            }
        )
        num_classes = network.num_classes
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")
        # the training loss's epoch mean, weighted by batch size (torchmetrics 1.x ignores the
        # weights with nan_strategy="disable")
        self.train_loss = MeanMetric()
        self._train_metrics_epoch = -1  # the epoch whose train metrics were handed to self.log
        self._high_loss_checks = 0  # checks in a row that saw a loss above DIVERGED_LOSS

    def forward(self, images: Tensor) -> Tensor:
        """Float images (B, C, H, W) -> logits (B, num_classes)."""
        return self.network(images)

    def _loss_and_accuracy(self, batch: Batch, stage: str) -> Tensor:
        """The batch's loss; the stage's accuracy metric is updated with it."""
        images, labels = batch
        logits = self(images)
        loss = F.cross_entropy(logits, labels, label_smoothing=self.hparams.label_smoothing)
        # update only: calling the metric would also compute this batch's accuracy, which
        # nothing logs (on_epoch only), at 3x the cost of the update
        getattr(self, f"{stage}_acc").update(logits.detach(), labels)
        return loss

    def _evaluation_step(self, batch: Batch, stage: str) -> Tensor:
        loss = self._loss_and_accuracy(batch, stage)
        batch_size = len(batch[1])
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=batch_size, sync_dist=True)
        self.log(f"{stage}/acc", getattr(self, f"{stage}_acc"), prog_bar=True)
        return loss

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """Seed this batch's random numbers from (run seed, epoch, batch, rank) alone."""
        run_seed = os.environ.get("PL_GLOBAL_SEED")  # set by seed_everything
        if run_seed is not None:
            seed = batch_seed(int(run_seed), self.current_epoch, batch_idx, self.global_rank)
            if self.device.type == "cpu":  # 1 us; torch.manual_seed also queues a seed for
                torch.default_generator.manual_seed(seed)  # CUDA with a stack trace: 0.1 ms
            else:
                torch.manual_seed(seed)

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        loss = self._loss_and_accuracy(batch, "train")
        self.train_loss.update(loss.detach(), len(batch[1]))
        # Lightning's bookkeeping of one self.log took 0.3-0.6 ms, 5% of a CIFAR-10 step: the
        # epoch's loss and accuracy are metric objects logged once per epoch (Lightning computes
        # them from every batch's update at the epoch's end and resets them), and the step's
        # loss is logged only on the steps the loggers write (every log_every_n_steps).
        if self._train_metrics_epoch != self.current_epoch:
            self._train_metrics_epoch = self.current_epoch
            self.log("train/loss_epoch", self.train_loss, on_step=False, on_epoch=True)
            self.log("train/acc", self.train_acc, on_step=False, on_epoch=True, prog_bar=True)
        if (self.global_step + 1) % self.trainer.log_every_n_steps == 0:
            self.log("train/loss_step", loss.detach(), on_step=True, on_epoch=False, prog_bar=True)
        if batch_idx % self.trainer.log_every_n_steps == 0:
            self._check_divergence(loss)
        return loss

    def _check_divergence(self, loss: Tensor) -> None:
        """Stop training on a NaN or infinite loss, or on a loss above DIVERGED_LOSS at
        DIVERGED_CHECKS checks in a row (a run that stays there does not come back); a single
        spiking batch is tolerated. All processes decide together, so none waits forever."""
        value = loss.item()  # one device-to-host copy, read by every test below
        self._high_loss_checks = self._high_loss_checks + 1 if not value < DIVERGED_LOSS else 0
        diverged = self.trainer.strategy.reduce_boolean_decision(
            not math.isfinite(value) or self._high_loss_checks >= DIVERGED_CHECKS, all=False
        )
        if diverged:
            raise TrainingDiverged(self._divergence_advice(value))

    def _divergence_advice(self, loss: float) -> str:
        """What happened, what to change, and where to resume from (if anywhere)."""
        lr = self.hparams.lr
        changes = [f"--model.lr={lr / 2:g} (now {lr:g})"]
        if not self.trainer.gradient_clip_val:
            changes.append("--trainer.gradient_clip_val=1.0")
        if not self.hparams.label_smoothing:
            changes.append("--model.label_smoothing=0.1")
        checkpoint = self.trainer.checkpoint_callback
        last = getattr(checkpoint, "last_model_path", "") or ""
        if last and Path(last).is_file():
            resume = (
                f"and resume from the last checkpoint, saved before the jump (the new values "
                f"apply on resume): --ckpt_path={last}"
            )
        else:
            resume = "and start again: no checkpoint was saved before the jump."
        return (
            f"Training diverged: the loss is {loss:.3g} at step {self.global_step}. "
            f"Use {' '.join(changes)} {resume}"
        )

    def validation_step(self, batch: Batch, batch_idx: int) -> Tensor:
        return self._evaluation_step(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> Tensor:
        return self._evaluation_step(batch, "test")

    def predict_step(self, batch: Batch | Tensor, batch_idx: int) -> Tensor:
        """Class probabilities (B, num_classes) for a batch of images (labels, if any, ignored)."""
        images = batch if isinstance(batch, Tensor) else batch[0]
        return self(images).softmax(dim=-1)

    def configure_optimizers(self) -> Any:
        # fused: one C++ loop over the parameters (a pixel-level TT has ~800 of them; the
        # default per-tensor Python loop of Adam costs more than the TT's forward there)
        fused = all(p.device.type in ("cpu", "cuda") for p in self.network.parameters())
        optimizer = torch.optim.AdamW(
            self.network.parameter_groups(self.hparams.lr),
            weight_decay=self.hparams.weight_decay,
            fused=fused,
        )
        total_steps = max(int(self.trainer.estimated_stepping_batches), 1)
        if self.hparams.scheduler == "onecycle":
            max_lrs = [group["lr"] for group in optimizer.param_groups]
            scheduler = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=max_lrs, total_steps=total_steps
            )
        else:  # a function of the step alone: a resumed run follows the current settings
            warmup_steps = int(self.hparams.warmup_fraction * total_steps)
            name = self.hparams.scheduler

            def factor(step: int) -> float:
                return schedule_factor(step, total_steps, warmup_steps, name)

            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse, before any weight is loaded, the overrides a checkpoint cannot honour."""
        saved = checkpoint.get("hyper_parameters", {})
        if self.hparams.scheduler != "onecycle":  # runs saved with the former Cosine/Sequential
            for state in checkpoint.get("lr_schedulers", []):  # LR schedulers resume as LambdaLR
                state.setdefault("lr_lambdas", [None] * len(state.get("base_lrs", [])))
        saved_network, network = saved.get("network", {}), self.hparams.network
        differences = [
            f"{key}: {saved_network.get('init_args', {}).get(key)!r} in the checkpoint, "
            f"{value!r} now"
            for key, value in network.get("init_args", {}).items()
            if key not in RESUMABLE_NETWORK_CHANGES
            and saved_network.get("init_args", {}).get(key) != value
        ]
        if saved_network and saved_network.get("class_path") != network.get("class_path"):
            differences.insert(
                0,
                f"{saved_network.get('class_path')} in the checkpoint, "
                f"{network.get('class_path')} now",
            )
        if saved_network and differences:
            raise ResumeMismatchError(
                f"The checkpoint holds another network than the one configured ("
                f"{'; '.join(differences)}). Resume with the checkpoint's network (drop those "
                f"--model.network overrides), or start a new run without --ckpt_path."
            )
        onecycle = "onecycle" in (saved.get("scheduler"), self.hparams.scheduler)
        if onecycle and (
            saved.get("scheduler") != self.hparams.scheduler or saved.get("lr") != self.hparams.lr
        ):
            raise ResumeMismatchError(
                f"A onecycle schedule cannot change on resume (the checkpoint: scheduler="
                f"{saved.get('scheduler')}, lr={saved.get('lr')}; now scheduler="
                f"{self.hparams.scheduler}, lr={self.hparams.lr}). Resume with the checkpoint's "
                f"values, or start a new run."
            )
        changed = {
            key: (saved[key], self.hparams[key])
            for key in ("lr", "weight_decay", "scheduler", "warmup_fraction", "label_smoothing")
            if key in saved and saved[key] != self.hparams[key]
        }
        if changed:
            log.warning(
                "Resuming with new settings (they apply from the resumed step on): %s",
                ", ".join(f"{key} {old} -> {new}" for key, (old, new) in changed.items()),
            )

    def on_train_start(self) -> None:
        """Put the configured lr and weight decay into the (possibly restored) optimizer."""
        scheduler = self.lr_schedulers()
        if isinstance(scheduler, torch.optim.lr_scheduler.OneCycleLR):
            total = max(int(self.trainer.estimated_stepping_batches), 1)
            if scheduler.total_steps != total:
                raise ResumeMismatchError(
                    f"The checkpoint's onecycle schedule spans {scheduler.total_steps} steps, "
                    f"this run {total}: a onecycle run cannot be lengthened or shortened. "
                    f"Resume with the checkpoint's --trainer.max_epochs / max_steps."
                )
            return
        base_lrs = [group["lr"] for group in self.network.parameter_groups(self.hparams.lr)]
        scheduler.base_lrs = base_lrs
        optimizer = scheduler.optimizer
        factors = [function(scheduler.last_epoch) for function in scheduler.lr_lambdas]
        for group, base_lr, factor in zip(optimizer.param_groups, base_lrs, factors, strict=True):
            group["initial_lr"], group["lr"] = base_lr, base_lr * factor
            group["weight_decay"] = self.hparams.weight_decay
