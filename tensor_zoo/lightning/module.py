"""A LightningModule that trains any CPNet / TTNet / HTNet as a classifier."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics.classification import MulticlassAccuracy

from tensor_zoo.networks import TensorNetwork, build_network

Batch = tuple[Tensor, Tensor] | list[Tensor]
# Cross-entropy above this means logits differ by ~1e4: the run has diverged (seen: a CIFAR TT
# run's logits jumped from ~10 to 1e27 within 50 steps, then overflowed to NaN).
DIVERGED_LOSS = 1e4


class TensorNetClassifier(L.LightningModule):
    """Cross-entropy training of a tensor network, with accuracy for train / val / test.

    `network` is a network instance or its config dict (`net.config`); the hyper-parameters
    saved in checkpoints hold the config, so `TensorNetClassifier.load_from_checkpoint(path)`
    rebuilds the model with no other input. Logged metrics: `{train,val,test}/loss` and
    `{train,val,test}/acc`. `predict_step` returns class probabilities (B, num_classes).

    Learning-rate schedules (stepped every optimizer step): "cosine" (linear warm-up over
    `warmup_fraction` of the steps, then cosine decay to 0), "onecycle", "constant".
    """

    def __init__(
        self,
        network: TensorNetwork,
        lr: float = 3e-3,
        weight_decay: float = 0.0,
        scheduler: Literal["cosine", "onecycle", "constant"] = "cosine",
        warmup_fraction: float = 0.0,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        if isinstance(network, Mapping):
            network = build_network(network)
        if scheduler not in ("cosine", "onecycle", "constant"):
            raise ValueError(
                f"scheduler must be 'cosine', 'onecycle' or 'constant', got {scheduler!r}."
            )
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

    def forward(self, images: Tensor) -> Tensor:
        """Float images (B, C, H, W) -> logits (B, num_classes)."""
        return self.network(images)

    def _shared_step(self, batch: Batch, stage: str) -> Tensor:
        images, labels = batch
        logits = self(images)
        loss = F.cross_entropy(logits, labels, label_smoothing=self.hparams.label_smoothing)
        metric = getattr(self, f"{stage}_acc")
        metric(logits.detach(), labels)
        on_step = stage == "train"
        batch_size = len(labels)
        self.log(
            f"{stage}/loss", loss, on_step=on_step, on_epoch=True, prog_bar=True,
            batch_size=batch_size, sync_dist=not on_step,
        )  # fmt: skip
        self.log(
            f"{stage}/acc",
            metric,
            on_step=False,
            on_epoch=True,
            prog_bar=True,
            batch_size=batch_size,
        )
        return loss

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        loss = self._shared_step(batch, "train")
        if batch_idx % self.trainer.log_every_n_steps == 0 and not loss < DIVERGED_LOSS:
            # A product of d cores does not come back from such a jump: stop now, not epochs
            # later (also catches NaN, for which every comparison is False).
            raise FloatingPointError(
                f"Training diverged: the loss is {loss.item():.3g} at step {self.global_step}. "
                f"Lower --model.lr (now {self.hparams.lr}), add "
                f"--trainer.gradient_clip_val=1.0 and --model.label_smoothing=0.1, and resume "
                f"from the last checkpoint before the jump with --ckpt_path."
            )
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> Tensor:
        return self._shared_step(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> Tensor:
        return self._shared_step(batch, "test")

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
        if self.hparams.scheduler == "constant":
            return optimizer
        if self.hparams.scheduler == "onecycle":
            max_lrs = [group["lr"] for group in optimizer.param_groups]
            scheduler = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=max_lrs, total_steps=total_steps
            )
        else:
            warmup_steps = int(self.hparams.warmup_fraction * total_steps)
            cosine = torch.optim.lr_scheduler.CosineAnnealingLR(
                optimizer, T_max=max(total_steps - warmup_steps, 1)
            )
            scheduler = cosine
            if warmup_steps > 0:
                warmup = torch.optim.lr_scheduler.LinearLR(
                    optimizer, start_factor=1.0 / warmup_steps, total_iters=warmup_steps
                )
                scheduler = torch.optim.lr_scheduler.SequentialLR(
                    optimizer, [warmup, cosine], milestones=[warmup_steps]
                )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
