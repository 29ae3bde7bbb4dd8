import csv
import os
import signal

import lightning as L
import pytest
import torch
from conftest import VARIANTS
from torch.utils.data import DataLoader, TensorDataset

from tensor_zoo import TTNet
from tensor_zoo.lightning import TensorNetClassifier
from tensor_zoo.lightning.module import (
    DIVERGED_CHECKS,
    DIVERGED_LOSS,
    ResumeMismatchError,
    TrainingDiverged,
)


def tiny_loaders(count: int = 96) -> tuple[DataLoader, DataLoader]:
    """A learnable 3-class problem: the class sets the brightness of one image quadrant."""
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (count,), generator=generator)
    images = torch.rand(count, 1, 8, 8, generator=generator) * 0.3
    for index, label in enumerate(labels.tolist()):
        row, col = divmod(label, 2)
        images[index, 0, row * 4 : row * 4 + 4, col * 4 : col * 4 + 4] += 0.7
    dataset = TensorDataset(images, labels)
    return DataLoader(dataset, batch_size=16, shuffle=True), DataLoader(dataset, batch_size=32)


def make_module(cls, extra, **kwargs) -> TensorNetClassifier:
    network = cls(
        in_channels=1,
        image_size=8,
        patch_size=2,
        feature_dim=4,
        rank=4,
        num_classes=3,
        input_mean=[0.3],
        input_std=[0.35],
        **extra,
    )
    return TensorNetClassifier(network, **kwargs)


def fit_tiny(cls, extra, tmp_path) -> tuple[L.Trainer, TensorNetClassifier, dict, dict]:
    """Eight epochs of a real Trainer on `tiny_loaders`: (trainer, module, val metrics before,
    val metrics after)."""
    L.seed_everything(0, verbose=False)
    train, evaluate = tiny_loaders()
    model = make_module(cls, extra, lr=1e-2)
    trainer = L.Trainer(
        max_epochs=8,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        accelerator="cpu",
    )
    (before,) = trainer.validate(model, evaluate, verbose=False)
    trainer.fit(model, train, evaluate)
    (after,) = trainer.validate(model, evaluate, verbose=False)
    return trainer, model, before, after


def test_logged_training_metrics_equal_what_each_batch_gave(tmp_path):
    """train/loss_epoch is the batch-size-weighted mean of the batches' losses and train/acc the
    epoch's accuracy, per epoch (metric objects handed to self.log once an epoch);
    train/loss_step reaches the logger every log_every_n_steps steps."""
    records: list[list[tuple[float, int, int]]] = []  # per epoch: (loss, batch size, correct)
    step_logits: list[torch.Tensor] = []  # the logits of the training step, by a forward hook

    class Record(L.Callback):
        def on_train_epoch_start(self, trainer, module):
            records.append([])

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            labels = batch[1]
            correct = int((step_logits[-1].argmax(-1) == labels).sum())
            records[-1].append((float(outputs["loss"]), len(labels), correct))

    L.seed_everything(0, verbose=False)
    train, _ = tiny_loaders(count=88)  # 5 batches of 16 and a last one of 8
    model = make_module(TTNet, {"dropout": 0.2}, lr=1e-2)
    model.network.register_forward_hook(lambda net, inputs, out: step_logits.append(out.detach()))
    logger = L.pytorch.loggers.CSVLogger(tmp_path)
    trainer = L.Trainer(
        max_epochs=3,
        logger=logger,
        log_every_n_steps=4,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        callbacks=[Record()],
    )
    trainer.fit(model, train)
    rows = list(csv.DictReader(open(f"{logger.log_dir}/metrics.csv")))
    logged = [row for row in rows if row.get("train/acc")]
    assert len(logged) == 3
    for epoch, row in zip(records, logged, strict=True):
        weight = sum(size for _, size, _ in epoch)
        mean = sum(loss * size for loss, size, _ in epoch) / weight
        assert float(row["train/loss_epoch"]) == pytest.approx(mean, rel=1e-5)
        assert float(row["train/acc"]) == pytest.approx(sum(c for *_, c in epoch) / weight)
    steps = [int(row["step"]) for row in rows if row.get("train/loss_step")]
    assert steps == list(range(3, 18, 4))  # 6 batches an epoch, 18 steps: every 4th


@pytest.mark.parametrize(("cls", "extra"), VARIANTS)
def test_trainer_fits_and_checkpoint_round_trips(cls, extra, tmp_path):
    trainer, model, before, after = fit_tiny(cls, extra, tmp_path)
    _, evaluate = tiny_loaders()
    assert after["val/loss"] < 0.5 * before["val/loss"]
    assert after["val/acc"] > 0.9

    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    restored = TensorNetClassifier.load_from_checkpoint(path, map_location="cpu")
    assert type(restored.network) is cls
    assert restored.hparams.lr == 1e-2
    images = next(iter(evaluate))[0]
    model.eval()
    restored.eval()
    with torch.no_grad():
        assert torch.equal(restored(images), model(images))


def test_predict_returns_probabilities(tmp_path):
    _, evaluate = tiny_loaders(40)
    model = make_module(*VARIANTS[1].values)
    trainer = L.Trainer(logger=False, enable_progress_bar=False, default_root_dir=tmp_path)
    batches = trainer.predict(model, evaluate)
    probabilities = torch.cat(batches)
    assert probabilities.shape == (40, 3)
    torch.testing.assert_close(probabilities.sum(-1), torch.ones(40))
    assert (probabilities >= 0).all()


@pytest.mark.parametrize("scheduler", ["cosine", "onecycle", "constant"])
def test_learning_rate_schedules(scheduler, tmp_path):
    train, _ = tiny_loaders(32)
    model = make_module(*VARIANTS[3].values, lr=1e-2, scheduler=scheduler, warmup_fraction=0.25)
    lrs = []

    class RecordLR(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            lrs.append(max(group["lr"] for group in trainer.optimizers[0].param_groups))

    trainer = L.Trainer(
        max_epochs=4,
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        callbacks=[RecordLR()],
        default_root_dir=tmp_path,
    )
    trainer.fit(model, train)
    assert len(lrs) == 8
    if scheduler == "constant":
        assert lrs == [1e-2] * 8
    elif scheduler == "cosine":
        assert lrs[0] < lrs[2] and lrs[2] == pytest.approx(1e-2) and lrs[-1] < 0.1e-2
    else:
        assert max(lrs) == pytest.approx(1e-2, rel=0.2) and lrs[0] < 0.1e-2


def test_ht_inner_units_get_smaller_steps():
    model = make_module(*VARIANTS[3].values, lr=1e-2)
    groups = model.network.parameter_groups(1e-2)
    assert sorted(group["lr"] for group in groups)[-1] == 1e-2
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    assert min(group["lr"] for group in groups) == pytest.approx(1e-2 / 16)


def test_unknown_scheduler_is_refused():
    with pytest.raises(ValueError, match="scheduler must be"):
        make_module(*VARIANTS[0].values, scheduler="exponential")


@pytest.mark.parametrize("value", [float("inf"), 1e8])
def test_a_diverged_loss_stops_training_with_advice(value, tmp_path):
    train, _ = tiny_loaders(32)
    model = make_module(*VARIANTS[1].values)
    with torch.no_grad():
        model.network.cores[3].mul_(value)
    trainer = L.Trainer(
        max_epochs=3,  # 2 steps each: a finite loss stops at the third high check in a row
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        log_every_n_steps=1,
        default_root_dir=tmp_path,
    )
    step = 0 if value == float("inf") else DIVERGED_CHECKS - 1
    with pytest.raises(
        FloatingPointError, match=rf"at step {step}\. .*label_smoothing=0\.1"
    ) as info:
        trainer.fit(model, train)
    assert "no checkpoint was saved before the jump" in str(info.value)


def test_a_single_spiking_batch_does_not_stop_training(tmp_path):
    class Spike(L.Callback):  # the loss of step 2 alone is ~1e7, as in a CIFAR-10 TT run
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.global_step in (2, 3):
                with torch.no_grad():
                    pl_module.network.cores[3].mul_(1e8 if trainer.global_step == 2 else 1e-8)

    train, _ = tiny_loaders(32)
    model = make_module(*VARIANTS[1].values)
    losses = []
    record = L.Callback()
    record.on_train_batch_end = lambda trainer, module, outputs, *_: losses.append(
        outputs["loss"].item()
    )
    trainer = L.Trainer(
        max_epochs=4,
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        log_every_n_steps=1,
        gradient_clip_val=1.0,
        callbacks=[Spike(), record],
        default_root_dir=tmp_path,
    )
    trainer.fit(model, train)
    assert trainer.global_step == 8 and losses[2] > DIVERGED_LOSS
    assert all(loss < 10 for loss in losses[3:])


def digits_run(tmp_path, max_steps, callbacks=(), **module_args):
    """A seeded run on the digits data, augmented, with dropout, saving last.ckpt every step."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    from tensor_zoo.data import DigitsDataModule
    from tensor_zoo.lightning.callbacks import SaveOnInterrupt

    L.seed_everything(0, verbose=False)
    data = DigitsDataModule(batch_size=128)
    data.augment, data.shift_pixels = True, 1  # random shifts and flips of every batch
    network = TTNet(
        image_size=8,
        patch_size=2,
        feature_dim=4,
        rank=4,
        dropout=0.2,
        input_mean=data.mean,
        input_std=data.std,
    )
    model = TensorNetClassifier(network, **{"lr": 1e-2, "warmup_fraction": 0.2, **module_args})
    checkpoint = ModelCheckpoint(
        tmp_path / "checkpoints", save_last=True, save_top_k=0, every_n_train_steps=1
    )
    trainer = L.Trainer(
        max_steps=max_steps,
        limit_val_batches=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        accelerator="cpu",
        callbacks=[*callbacks, SaveOnInterrupt(), checkpoint],
    )
    return trainer, model, data


class Crash(L.Callback):
    """Stands in for kill -9 at the start of step `step`: nothing runs after the last save."""

    def __init__(self, step):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            raise RuntimeError("killed")


class CtrlC(L.Callback):
    """Sends this process a real SIGINT during step `step`, as Ctrl-C in a terminal does."""

    def __init__(self, step):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.parametrize(("stop", "error"), [(Crash(7), RuntimeError), (CtrlC(5), None)])
def test_a_killed_or_interrupted_run_resumes_to_the_uninterrupted_weights(tmp_path, stop, error):
    """10 batches per epoch: stopped mid-epoch 0, resumed across the epoch boundary."""
    from tensor_zoo.lightning.callbacks import TrainingInterrupted

    trainer, model, data = digits_run(tmp_path / "whole", 14)
    trainer.fit(model, datamodule=data)
    assert trainer.num_training_batches == 10
    expected = model.state_dict()

    trainer, model, data = digits_run(tmp_path / "parts", 14, callbacks=[stop])
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(error or TrainingInterrupted) as info:
        trainer.fit(model, datamodule=data)
    last = tmp_path / "parts" / "checkpoints" / "last.ckpt"
    saved_step = torch.load(last, map_location="cpu", weights_only=False)["global_step"]
    if error is None:  # Ctrl-C: the step it reached is saved and named
        assert info.value.path == last and info.value.step == saved_step == 5
        assert signal.getsignal(signal.SIGINT) is handler  # Ctrl-C is the user's again
    else:
        assert saved_step == 7

    trainer, model, data = digits_run(tmp_path / "resumed", 14)
    trainer.fit(model, datamodule=data, ckpt_path=last)
    assert trainer.global_step == 14
    resumed = model.state_dict()
    assert all(torch.equal(resumed[name], value) for name, value in expected.items())


def test_a_resumed_run_applies_a_new_learning_rate_and_refuses_another_network(tmp_path):
    trainer, model, data = digits_run(tmp_path / "a", 3, scheduler="constant")
    trainer.fit(model, datamodule=data)
    last = tmp_path / "a" / "checkpoints" / "last.ckpt"
    lrs = []

    class RecordLR(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    args = {"lr": 1e-3, "scheduler": "constant"}
    trainer, model, data = digits_run(tmp_path / "b", 5, [RecordLR()], **args)
    trainer.fit(model, datamodule=data, ckpt_path=last)
    assert lrs == [1e-3, 1e-3]

    trainer, model, data = digits_run(tmp_path / "c", 5, scheduler="constant")
    model = TensorNetClassifier(TTNet(image_size=8, patch_size=2, feature_dim=4, rank=5))
    with pytest.raises(ResumeMismatchError, match=r"rank: 4 in the checkpoint, 5 now"):
        trainer.fit(model, datamodule=data, ckpt_path=last)


def test_divergence_advice_names_a_checkpoint_only_when_one_exists(tmp_path):
    class Explode(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.global_step == 2:
                with torch.no_grad():
                    pl_module.network.cores[3].mul_(1e8)

    trainer, model, data = digits_run(tmp_path, 5, [Explode()])
    trainer.log_every_n_steps = 1
    with pytest.raises(TrainingDiverged, match=f"at step {2 + DIVERGED_CHECKS - 1}") as info:
        trainer.fit(model, datamodule=data)
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert f"--ckpt_path={last}" in str(info.value) and last.is_file()
    assert "--trainer.gradient_clip_val=1.0" in str(info.value)
    assert "--model.lr=0.005 (now 0.01)" in str(info.value)


def test_a_checkpoint_with_the_former_cosine_scheduler_state_resumes(tmp_path):
    trainer, model, data = digits_run(tmp_path / "a", 2)
    trainer.fit(model, datamodule=data)
    last = tmp_path / "a" / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, map_location="cpu", weights_only=False)
    optimizer = torch.optim.AdamW(model.network.parameter_groups(1e-2))
    former = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=40)  # before LambdaLR
    former.step()
    former.step()
    checkpoint["lr_schedulers"] = [former.state_dict()]
    torch.save(checkpoint, last)
    trainer, model, data = digits_run(tmp_path / "b", 4)
    trainer.fit(model, datamodule=data, ckpt_path=last)
    assert trainer.global_step == 4
