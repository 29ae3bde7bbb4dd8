"""Shared test helpers."""

from __future__ import annotations

import os

# huggingface_hub reads it once, at import: set it before anything imports it.
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import lightning as L
import pytest
import torch

from tensor_zoo import CPNet, HTNet, TensorNetwork, TTNet


def brute_force_logits(net: TensorNetwork, images: torch.Tensor) -> torch.Tensor:
    """<W_y, f(x_1) (x) ... (x) f(x_d)> from the dense tensor and the explicit outer product."""
    dense = net.full_tensor()
    features = net.features(images)
    outer = features[:, 0]
    for position in range(1, features.shape[1]):
        outer = torch.einsum("b...,bi->b...i", outer, features[:, position])
    return torch.einsum("y...,b...->by", dense, outer)


# (class, extra constructor arguments): every architecture variant the library offers.
VARIANTS = [
    pytest.param(CPNet, {}, id="cp"),
    pytest.param(TTNet, {}, id="tt-last"),
    pytest.param(TTNet, {"label_site": "middle"}, id="tt-middle"),
    pytest.param(HTNet, {}, id="ht-full"),
    pytest.param(HTNet, {"node_type": "cp"}, id="ht-cp"),
]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """A TTNet trained 4 steps on fixture MNIST files, saved by Lightning, then exported."""
    from test_data import make_idx_dataset

    from tensor_zoo.data import MNISTDataModule
    from tensor_zoo.lightning import TensorNetClassifier
    from tensor_zoo.zoo.export import export_checkpoint

    root = tmp_path_factory.mktemp("zoo")
    make_idx_dataset(root / "data" / "mnist", train=80, test=30)
    data = MNISTDataModule(root=str(root / "data"), download=False, batch_size=16, val_size=16)
    network = TTNet(
        in_channels=1,
        image_size=28,
        patch_size=7,
        feature_dim=4,
        rank=2,
        input_mean=data.mean,
        input_std=data.std,
    )
    trainer = L.Trainer(
        max_steps=4,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
    )
    trainer.fit(TensorNetClassifier(network), datamodule=data)
    ckpt = root / "run" / "checkpoints" / "best.ckpt"
    trainer.save_checkpoint(ckpt)
    index = root / "index.json"
    folder = export_checkpoint(
        ckpt,
        "tt-mnist-r2",
        command="python recipes/mnist.py --model.network.rank=2",
        out=root / "checkpoints",
        data_root=str(root / "data"),
        index=index,
        progress=False,
    )
    return {"root": root, "folder": folder, "index": index, "network": network.eval()}
