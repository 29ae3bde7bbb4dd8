"""Measure a network on its dataset's official test split (a plain torch loop, no Trainer)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from tensor_zoo.networks import TensorNetwork
from tensor_zoo.zoo.registry import ZOO_DATASETS


def data_module_for(dataset: str, root: str | None = None, batch_size: int = 500):
    """The data module of a zoo dataset key, for its test split ("mnist", "digits", ...).

    Args:
        dataset: a key of `tensor_zoo.zoo.registry.ZOO_DATASETS`.
        root: where the dataset's files are (else `TENSOR_ZOO_DATA`, the cache).
        batch_size: images per test batch.
    """
    from tensor_zoo.data import DATA_MODULES

    if dataset not in ZOO_DATASETS:
        raise ValueError(
            f"No data module for dataset {dataset!r}; expected one of {sorted(ZOO_DATASETS)}."
        )
    module = DATA_MODULES[dataset]
    if dataset == "digits":  # bundled with scikit-learn: no root; its own fixed test split
        return module(batch_size=batch_size)
    return module(root=root, batch_size=batch_size, val_size=0)  # test split only


@torch.no_grad()
def evaluate(
    network: TensorNetwork,
    dataset: str,
    root: str | None = None,
    batch_size: int = 500,
    limit: int | None = None,
    progress: bool = True,
) -> dict[str, float]:
    """Accuracy and mean cross-entropy on the test split -> {"test/acc", "test/loss", "images"}.

    `limit` evaluates only the first `limit` test images (for quick checks).
    """
    for label, value in (("batch_size", batch_size), ("limit", limit)):
        whole = isinstance(value, int) and not isinstance(value, bool)
        if value is not None and (not whole or value < 1):
            raise ValueError(f"{label} must be a whole number of at least 1, got {value!r}.")
    data = data_module_for(dataset, root, batch_size)
    data.setup("test")
    network = network.eval()
    device = next(network.parameters()).device
    correct, loss_sum, count = 0, 0.0, 0
    batches = tqdm(data.test_dataloader(), desc=f"test {dataset}", disable=not progress)
    for images, labels in batches:
        if limit is not None and count >= limit:
            break
        if limit is not None:
            images, labels = images[: limit - count], labels[: limit - count]
        logits = network(images.to(device))
        labels = labels.to(device)
        correct += int((logits.argmax(-1) == labels).sum())
        loss_sum += float(F.cross_entropy(logits, labels, reduction="sum"))
        count += len(labels)
    if count == 0:
        raise ValueError(
            f"The {dataset} test split at {root or 'the default data folder'} holds no images."
        )
    return {"test/acc": correct / count, "test/loss": loss_sum / count, "images": float(count)}
