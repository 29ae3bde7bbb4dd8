"""tensor_zoo's TT against TorchMPS, side by side in one process, at TorchMPS's own settings.

MNIST-sized inputs as pixel sites: 784 sites (28 x 28, patch 1) with bond 10 and bond 20, and
196 sites (14 x 14, the 2 x 2 average-pooled image) with bond 20; feature maps spanning {x, 1}
(TorchMPS: [x, 1 - x]; tensor_zoo: feature_dim=2, feature_map="identity", i.e. [a x + b, 1]);
label site in the middle; 10 classes. Training: batch 100, Adam lr 1e-4 (fused=True on both
sides: one C++ loop over the parameters), forward, backward and step; inference: batch 1000
under no_grad. Random inputs in [0, 1] (speed does not depend on the values). The two
libraries alternate in every round (interleaved, so that a load change on the machine hits
both), and the table gives the median images/s over the rounds with the min-max, and the
ratio of the medians.

TorchMPS (github.com/jemisjoky/TorchMPS) is not on PyPI: point TORCHMPS_PATH at a clone (the
folder that holds the `torchmps` package); without it the peer columns are skipped.

    TORCHMPS_PATH=/path/to/TorchMPS python benchmarks/torchmps.py --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

import torch

from tensor_zoo import TTNet

CONFIGS = {
    "784 sites, bond 10": {"image_size": 28, "bond": 10},
    "784 sites, bond 20": {"image_size": 28, "bond": 20},
    "196 sites (2x2 pooled), bond 20": {"image_size": 14, "bond": 20},
}


def import_torchmps() -> type | None:
    """TorchMPS's MPS class from TORCHMPS_PATH, or None when it cannot be imported."""
    path = os.environ.get("TORCHMPS_PATH")
    if path:
        sys.path.insert(0, path)
    try:
        from torchmps import MPS
    except ImportError:
        return None
    return MPS


def tensor_zoo_model(
    image_size: int, bond: int, contraction: str
) -> tuple[torch.nn.Module, Callable]:
    """TTNet at TorchMPS's configuration and a function from pixels (B, d) to its input."""
    net = TTNet(
        in_channels=1,
        image_size=image_size,
        patch_size=1,
        feature_dim=2,
        feature_map="identity",
        rank=bond,
        label_site="middle",
        contraction=contraction,
    )
    return net, lambda pixels: pixels.view(-1, 1, image_size, image_size)


def torchmps_model(mps_class: type, image_size: int, bond: int) -> tuple[torch.nn.Module, Callable]:
    """TorchMPS's MPS with its defaults (fixed bond, parallel_eval off, label in the middle)."""
    mps = mps_class(input_dim=image_size**2, output_dim=10, bond_dim=bond, feature_dim=2)
    return mps, lambda pixels: pixels


def images_per_second(
    model: torch.nn.Module, to_input: Callable, mode: str, pixels: torch.Tensor, repeats: int
) -> float:
    """Images/s of `repeats` inference calls or training steps (after one warm-up call)."""
    labels = torch.randint(0, 10, (pixels.shape[0],))
    inputs = to_input(pixels)
    if mode == "inference":
        model.eval()

        def step() -> None:
            with torch.no_grad():
                model(inputs)
    else:
        model.train()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, fused=True)

        def step() -> None:
            loss = torch.nn.functional.cross_entropy(model(inputs), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    step()
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    return repeats * pixels.shape[0] / (time.perf_counter() - start)


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):8.0f} ({min(values):.0f}-{max(values):.0f})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5, help="steps per measurement")
    parser.add_argument("--contraction", default="auto", help="TTNet's contraction strategy")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads for both (default: torch's)"
    )
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    mps_class = import_torchmps()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.rounds} interleaved "
        f"rounds of {args.repeats} steps; "
        f"TorchMPS: {'found' if mps_class else 'not found, skipped'}"
    )
    print(
        f"{'configuration':<32} {'mode':<9} {'tensor_zoo img/s':>24} {'TorchMPS img/s':>24} ratio"
    )
    for name in args.configs:
        config = CONFIGS[name]
        for mode, batch in (("train", 100), ("inference", 1000)):
            torch.manual_seed(0)
            pixels = torch.rand(batch, config["image_size"] ** 2)
            ours = tensor_zoo_model(config["image_size"], config["bond"], args.contraction)
            peer = torchmps_model(mps_class, **config) if mps_class else None
            results: dict[str, list[float]] = {"ours": [], "peer": []}
            for _ in range(args.rounds):
                results["ours"].append(images_per_second(*ours, mode, pixels, args.repeats))
                if peer is not None:
                    results["peer"].append(images_per_second(*peer, mode, pixels, args.repeats))
            peer_text, ratio = "skipped", ""
            if results["peer"]:
                peer_text = summary(results["peer"])
                speedup = statistics.median(results["ours"]) / statistics.median(results["peer"])
                ratio = f"{speedup:.1f}x"
            print(
                f"{name:<32} {mode:<9} {summary(results['ours']):>24} {peer_text:>24} {ratio}",
                flush=True,
            )


if __name__ == "__main__":
    main()
