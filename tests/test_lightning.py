import lightning as L
import pytest
import torch
from conftest import VARIANTS
from torch.utils.data import DataLoader, TensorDataset

from tensor_zoo.lightning import TensorNetClassifier


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
        in_channels=1, image_size=8, patch_size=2, feature_dim=4, rank=4, num_classes=3,
        input_mean=[0.3], input_std=[0.35], **extra,
    )  # fmt: skip
    return TensorNetClassifier(network, **kwargs)


@pytest.mark.parametrize(("cls", "extra"), VARIANTS)
def test_trainer_fits_and_checkpoint_round_trips(cls, extra, tmp_path):
    L.seed_everything(0, verbose=False)
    train, evaluate = tiny_loaders()
    model = make_module(cls, extra, lr=1e-2)
    trainer = L.Trainer(
        max_epochs=8, logger=False, enable_progress_bar=False, enable_model_summary=False,
        default_root_dir=tmp_path, accelerator="cpu",
    )  # fmt: skip
    (before,) = trainer.validate(model, evaluate, verbose=False)
    trainer.fit(model, train, evaluate)
    (after,) = trainer.validate(model, evaluate, verbose=False)
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
        max_epochs=4, logger=False, enable_progress_bar=False, enable_checkpointing=False,
        callbacks=[RecordLR()], default_root_dir=tmp_path,
    )  # fmt: skip
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
        max_epochs=1, logger=False, enable_progress_bar=False, enable_checkpointing=False,
        log_every_n_steps=1, default_root_dir=tmp_path,
    )  # fmt: skip
    with pytest.raises(FloatingPointError, match=r"label_smoothing=0\.1"):
        trainer.fit(model, train)
