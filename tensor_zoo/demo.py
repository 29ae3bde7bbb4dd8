"""The README's first command: train a TT network on scikit-learn's digits, print test accuracy,
then load the zoo's published digits checkpoint, verify it and measure it the same way.

Runs with no files and no downloads from a source checkout (the checkpoint is in
`checkpoints/`): `tensor-zoo demo` or `python -m tensor_zoo.demo`.
"""

from __future__ import annotations

import logging
import sys
import time

import torch

from tensor_zoo.cli import PositiveInt
from tensor_zoo.networks import build_network
from tensor_zoo.zoo.registry import architecture_config

PUBLISHED = "tt-digits-r16"


def run_demo(
    epochs: int = 50,
    rank: int = 16,
    seed: int = 0,
    accelerator: str = "cpu",
    checkpoint: str | None = None,
) -> dict[str, float]:
    """Train TTNet on digits -> test metrics. The network is `tt-digits-r{rank}` of the dataset
    table (`tensor_zoo.datasets`): 2 x 2 patches (d = 16), m = 8, snake order, per-patch dropout.

    `checkpoint`: also save the trained model there (a Lightning .ckpt, for `tensor-zoo export`).
    """
    import lightning as L  # here, not above: `tensor-zoo` starts without Lightning

    from tensor_zoo.data import DigitsDataModule
    from tensor_zoo.lightning import TensorNetClassifier

    L.seed_everything(seed, verbose=False)
    data = DigitsDataModule(batch_size=32, seed=seed)
    network = build_network(architecture_config("tt", "digits", rank))
    model = TensorNetClassifier(network, lr=5e-3, scheduler="cosine", warmup_fraction=0.05)
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator=accelerator,
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    start = time.perf_counter()
    trainer.fit(model, datamodule=data)
    train_seconds = time.perf_counter() - start
    if checkpoint:
        trainer.save_checkpoint(checkpoint)
    (metrics,) = trainer.test(model, datamodule=data, verbose=False)
    return {
        "test_acc": float(metrics["test/acc"]),
        "test_loss": float(metrics["test/loss"]),
        "train_seconds": train_seconds,
        "num_params": float(network.num_params),
    }


def evaluate_published(name: str = PUBLISHED) -> str:
    """Load a published checkpoint (files checked against the index) and measure it again."""
    from tensor_zoo.zoo import HubError, UnknownModelError, load, model_info
    from tensor_zoo.zoo.evaluate import evaluate

    try:
        network = load(name)
    except (HubError, UnknownModelError) as error:
        return f"Published checkpoint {name}: not available here ({error})"
    measured = evaluate(network, "digits", progress=False)["test/acc"]
    claimed = model_info(name)["metrics"]["test/acc"]
    return (
        f"Published checkpoint {name} (sha256 verified): test accuracy {measured:.2%}; "
        f"its card claims {claimed:.2%}"
    )


def main(
    *,
    epochs: PositiveInt = 50,
    rank: PositiveInt = 16,
    seed: int = 0,
    checkpoint: str | None = None,
) -> None:
    """Train a TT network on scikit-learn's digits and print its test accuracy.

    No files and no downloads: the digits ship with scikit-learn. Then the published
    tt-digits-r16 is loaded, checked against its sha256 and measured again beside the number its
    card claims.

    Args:
        epochs: training epochs.
        rank: the TT rank.
        seed: the seed of the data split, the initialisation and the training order.
        checkpoint: also save the trained model to this .ckpt path (for `tensor-zoo export`).
    """
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    torch.set_float32_matmul_precision("high")
    result = run_demo(epochs, rank, seed, checkpoint=checkpoint)
    print(
        f"TTNet (rank {rank}, {int(result['num_params']):,} parameters) "
        f"on scikit-learn digits: "
        f"test accuracy {result['test_acc']:.2%} (360 held-out images), "
        f"trained {epochs} epochs in {result['train_seconds']:.0f} s"
    )
    print(evaluate_published())


if __name__ == "__main__":
    from tensor_zoo.cli import main as command_line

    command_line(["demo", *sys.argv[1:]])
