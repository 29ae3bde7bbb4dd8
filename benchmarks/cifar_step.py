"""The CIFAR-10 training step of this checkout against another checkout, side by side.

The recipe's configuration (recipes/configs/cifar10.yaml, tensor_zoo/datasets.py): TTNet,
32 x 32 x 3 images, patch 4 (d = 64), feature_dim 32, z-order, dropout 0.1, rank 16, batch
128, AdamW lr 2e-3 with the cosine schedule, label smoothing 0.1, gradient clipping 1.0. Each
measurement is a real Lightning `Trainer.fit` of the checkout's own `TensorNetClassifier` on
random images (speed does not depend on the values); a callback times every training batch
from `on_train_batch_start` to `on_train_batch_end` (forward, loss, metrics, backward,
clipping, optimizer and scheduler step; data loading apart). Rounds alternate between the
checkouts, each in a fresh process that imports the checkout's own `tensor_zoo`, so that a
load change on the machine hits both; a round's number is the median step time of its
`--steps` steps after `--warmup` steps, and the table gives the median (min-max) over rounds
and the ratio of the medians.

    git worktree add --detach /tmp/base <commit>
    python benchmarks/cifar_step.py --baseline /tmp/base --rounds 5 --threads 1

`--baseline` can be given several times (each checkout alternates in every round).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def worker(root: str, threads: int, warmup: int, steps: int) -> None:
    """Time the training step of the checkout at `root`; print {"ms": median} as JSON."""
    sys.path.insert(0, root)
    import lightning as L
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from tensor_zoo.lightning.module import TensorNetClassifier
    from tensor_zoo.networks import TTNet

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    network = TTNet(
        in_channels=3, image_size=32, patch_size=4, feature_dim=32, ordering="zorder",
        dropout=0.1, rank=16, num_classes=10,
    )  # fmt: skip
    module = TensorNetClassifier(
        network, lr=2e-3, scheduler="cosine", warmup_fraction=0.02, label_smoothing=0.1
    )
    count = warmup + steps
    images, labels = torch.randn(128 * count, 3, 32, 32), torch.randint(0, 10, (128 * count,))
    times: list[float] = []

    class StepTimer(L.Callback):
        def on_train_batch_start(self, *args: object) -> None:
            self.start = time.perf_counter()

        def on_train_batch_end(self, *args: object) -> None:
            times.append(time.perf_counter() - self.start)

    trainer = L.Trainer(
        accelerator="cpu", devices=1, max_steps=count, gradient_clip_val=1.0, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[StepTimer()],
    )  # fmt: skip
    trainer.fit(module, DataLoader(TensorDataset(images, labels), batch_size=128))
    print(json.dumps({"ms": 1e3 * statistics.median(times[warmup:])}))


def measure(root: Path, args: argparse.Namespace) -> float:
    """One round: the median step time (ms) of the checkout at `root`, in a fresh process."""
    command = [
        sys.executable, __file__, "--worker", str(root), "--threads", str(args.threads),
        "--warmup", str(args.warmup), "--steps", str(args.steps),
    ]  # fmt: skip
    environment = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(root)}
    result = subprocess.run(command, capture_output=True, text=True, env=environment, check=False)
    if result.returncode:
        raise SystemExit(f"The step of {root} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])["ms"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--baseline", type=Path, action="append", default=[],
        help="a checkout of a commit to compare with (repeatable)",
    )  # fmt: skip
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.threads, args.warmup, args.steps)
        return
    checkouts = {"this checkout": HERE}
    for index, baseline in enumerate(args.baseline, 1):
        checkouts[f"baseline {index}"] = baseline.resolve()
    results: dict[str, list[float]] = {name: [] for name in checkouts}
    for _ in range(args.rounds):
        for name, root in checkouts.items():
            results[name].append(measure(root, args))
    print(f"CIFAR-10 TT training step, batch 128, {args.threads} thread(s), {args.rounds} rounds")
    for name, values in results.items():
        print(
            f"{name:>14}: {statistics.median(values):7.1f} ms "
            f"({min(values):.1f}-{max(values):.1f}), {checkouts[name]}"
        )
    ours = statistics.median(results["this checkout"])
    for name in list(checkouts)[1:]:
        ratio = statistics.median(results[name]) / ours
        print(f"{'speed-up':>14}: {ratio:.2f}x over {name} (ratio of the medians)")


if __name__ == "__main__":
    main()
