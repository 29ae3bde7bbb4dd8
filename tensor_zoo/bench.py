"""Throughput, memory and FLOP rate of the CP / TT / HT contractions, against a plain reference.

`python -m tensor_zoo.bench` (or `tensor-zoo bench`) prints one table. For each network at a
CIFAR-10-sized configuration (3 x 32 x 32, 4 x 4 patches: d = 64, m = 32, rank 16) and an
MNIST-sized one (1 x 28 x 28, 7 x 7 patches: d = 16), and on request at long sequences (one
site per pixel: `--configs pixels784 pixels1024 pixels4096`), it reports the median and
min-max over `--repeats` interleaved measurements of images/s for inference and
for a training step (forward, backward, Adam step) at batch 256, the peak memory the step
adds, the analytic forward FLOPs per image, the achieved GFLOP/s and its ratio to this
machine's fp32 matrix-multiply rate, measured in the same run. The reference implementation
is the straightforward one: one einsum per position (per tree node for HT) in a Python loop.

Every measurement runs in a fresh process. Peak memory is what the measured step adds: on
CUDA `max_memory_allocated` above the level before it; on CPU the resident set size, sampled
every millisecond by a thread, above the level before the step (large tensors are mmap-ed
and returned on free, so RSS follows the live tensors).
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from typing import Annotated, Any

import torch
from torch import Tensor

from tensor_zoo.cli import PositiveInt, one_of
from tensor_zoo.datasets import DATASETS
from tensor_zoo.networks import CPNet, HTNet, TensorNetwork, TTNet


def dataset_shape(dataset: str, patch_size: int | None = None) -> dict[str, Any]:
    """A dataset's input shape and its recipe's patch size (or `patch_size`), as bench sizes."""
    spec = DATASETS[dataset]
    patch = spec.recipe_args["patch_size"] if patch_size is None else patch_size
    return {"in_channels": spec.in_channels, "image_size": spec.image_size, "patch_size": patch}


CONFIGS: dict[str, dict[str, Any]] = {
    "cifar10": dataset_shape("cifar10"),
    "mnist": dataset_shape("mnist"),
    # long sequences: one site per pixel (d = 784, 1024, 4096)
    "pixels784": dataset_shape("mnist", patch_size=1),
    "pixels1024": {"in_channels": 1, "image_size": 32, "patch_size": 1},
    "pixels4096": {"in_channels": 1, "image_size": 64, "patch_size": 1},
}
DEFAULT_CONFIGS = ("cifar10", "mnist")
ConfigName = Annotated[str, one_of(CONFIGS, "config")]
NETWORKS = {"CP": CPNet, "TT": TTNet, "HT": HTNet}


def runs(config: str, network: str) -> bool:
    """HT needs a power-of-two number of positions (d = 784 has none)."""
    size, patch = CONFIGS[config]["image_size"], CONFIGS[config]["patch_size"]
    positions = (size // patch) ** 2
    return network != "HT" or positions & (positions - 1) == 0


def build(config: str, network: str, feature_dim: int, rank: int) -> TensorNetwork:
    ordering = "zorder" if network == "HT" else "raster"  # HT needs it; speed is the same
    return NETWORKS[network](
        **CONFIGS[config], feature_dim=feature_dim, rank=rank, num_classes=10, ordering=ordering
    )


def reference_contract(net: TensorNetwork, features: Tensor) -> Tensor:
    """The straightforward contraction: one einsum per position / node in a Python loop."""
    if isinstance(net, CPNet):
        products = features.new_ones(features.shape[0], net.rank)
        for position in range(features.shape[1]):
            products = products * torch.einsum(
                "bm,mr->br", features[:, position], net.factors[position]
            )
        return torch.einsum("br,yr->by", products, net.weights)
    if isinstance(net, TTNet):
        state = features.new_ones(features.shape[0], 1)
        for position, core in enumerate(net.cores):
            state = torch.einsum("bl,bm,lmr->br", state, features[:, position], core)
        return state
    if isinstance(net, HTNet):
        states = [
            torch.einsum("bm,mr->br", features[:, position], leaf)
            for position, leaf in enumerate(net.leaves)
        ]
        for level in net.levels():
            if isinstance(level, tuple):
                level = torch.einsum("npj,nqj->npqj", *level)
            states = [
                torch.einsum("bp,bq,pqj->bj", states[2 * i], states[2 * i + 1], unit)
                for i, unit in enumerate(level)
            ]
        return states[0] if net.head is None else states[0] @ net.head
    raise TypeError(f"No reference contraction for {type(net).__name__}.")


def forward_flops(net: TensorNetwork) -> int:
    """Analytic forward FLOPs per image (a multiply-add counts 2), feature map included."""
    d, m, n = net.num_positions, net.feature_dim, net.patches.patch_dim
    flops = d * 2 * n * net.feature_map.learned_features
    if isinstance(net, CPNet):
        return flops + d * 2 * m * net.rank + d * net.rank + 2 * net.rank * net.num_classes
    if isinstance(net, TTNet):
        return flops + sum(
            r_in * m + 2 * r_in * m * r_out for r_in, _, r_out in (c.shape for c in net.cores)
        )
    if isinstance(net, HTNet):
        flops += d * 2 * m * net.ranks[0]
        for level in net.levels():
            if isinstance(level, tuple):
                count, r_in, r_out = level[0].shape
                flops += count * (4 * r_in * r_out + r_out)
            else:
                count, r_in, _, r_out = level.shape
                flops += count * (r_in * r_in + 2 * r_in * r_in * r_out)
        if net.head is not None:
            flops += 2 * net.head.numel()
        return flops
    raise TypeError(type(net).__name__)


def _time(step: Callable[[], Any], device: torch.device, min_seconds: float) -> float:
    """Seconds per call: 2 warm-up calls, then repeat for at least `min_seconds`."""
    for _ in range(2):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    calls, start = 0, time.perf_counter()
    while calls < 3 or time.perf_counter() - start < min_seconds:
        step()
        calls += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / calls


def matmul_gflops(device: torch.device, size: int = 2048) -> float:
    """This machine's fp32 matrix-multiply rate."""
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    seconds = _time(lambda: a @ b, device, min_seconds=1.0)
    return 2 * size**3 / seconds / 1e9


class _PeakRSS(threading.Thread):
    """Samples this process's resident set size until stopped; `peak` is the largest seen."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.page_size = os.sysconf("SC_PAGE_SIZE")
        self.peak = self.base = self.current()
        self.stopped = threading.Event()

    def current(self) -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * self.page_size

    def run(self) -> None:
        while not self.stopped.wait(0.001):
            self.peak = max(self.peak, self.current())


def _measure(job: dict[str, Any]) -> dict[str, float]:
    """One measurement, in its own process: images/s and peak memory added."""
    torch.manual_seed(0)
    device = torch.device(job["device"])
    torch.set_num_threads(job["threads"])
    net = build(job["config"], job["network"], job["feature_dim"], job["rank"]).to(device)
    images = torch.rand(
        job["batch"], net.patches.in_channels, *net.patches.image_size, device=device
    )
    labels = torch.randint(0, 10, (job["batch"],), device=device)

    def forward() -> Tensor:
        features = net.features(images)
        if job["impl"] == "reference":
            return reference_contract(net, features)
        return net.contract(features)

    if job["mode"] == "inference":
        net.eval()

        def step() -> Any:
            with torch.no_grad():
                return forward()
    else:
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)

        def step() -> Any:
            loss = torch.nn.functional.cross_entropy(forward(), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    step()  # optimizer state and caches exist before the baseline is taken
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        seconds = _time(step, device, job["min_seconds"])
        peak = torch.cuda.max_memory_allocated(device) - base
    else:
        sampler = _PeakRSS()
        sampler.start()
        seconds = _time(step, device, job["min_seconds"])
        sampler.stopped.set()
        sampler.join()
        peak = sampler.peak - sampler.base
    return {"images_per_s": job["batch"] / seconds, "peak_mb": max(peak, 0) / 2**20}


def check_reference(feature_dim: int, rank: int) -> float:
    """Largest relative difference between the library and the reference, in float64."""
    worst = 0.0
    for config in DEFAULT_CONFIGS:
        for network in NETWORKS:
            net = build(config, network, feature_dim, rank).double().eval()
            images = torch.rand(
                4, net.patches.in_channels, *net.patches.image_size, dtype=torch.float64
            )
            with torch.no_grad():
                features = net.features(images)
                ours, reference = net.contract(features), reference_contract(net, features)
            worst = max(worst, ((ours - reference).abs().max() / reference.abs().max()).item())
    return worst


def spread(values: list[float]) -> str:
    """Median (min-max) of repeated measurements."""
    return f"{statistics.median(values):.0f} ({min(values):.0f}-{max(values):.0f})"


def main(
    *,
    batch: PositiveInt = 256,
    feature_dim: PositiveInt = 32,
    rank: PositiveInt = 16,
    device: str | None = None,
    min_seconds: float = 2.0,
    configs: tuple[ConfigName, ...] = DEFAULT_CONFIGS,
    repeats: PositiveInt = 3,
) -> None:
    """Time CP, TT and HT contractions against a plain reference implementation.

    Images/s for inference and a training step, peak memory, FLOPs and the achieved share of
    this machine's fp32 matmul rate; each cell the median (min-max) of interleaved measurements,
    each in a fresh process.

    Args:
        batch: images per step.
        feature_dim: m, the features per patch.
        rank: the networks' rank.
        device: a torch device (default: cuda when available, else cpu).
        min_seconds: the time each measurement runs.
        configs: the configurations to time; pixels784, pixels1024 and pixels4096 are one site
            per pixel (long sequences).
        repeats: measurements per cell (their median and min-max are printed).
    """
    device_name = device or ("cuda" if torch.cuda.is_available() else "cpu")
    threads = torch.get_num_threads()
    peak = matmul_gflops(torch.device(device_name))
    print(
        f"device {device_name} ({threads} threads), torch {torch.__version__}, batch {batch}, "
        f"m = {feature_dim}, rank = {rank}; fp32 matmul (2048^3): {peak:.1f} GFLOP/s"
    )
    print(
        "max relative difference library vs reference (float64): "
        f"{check_reference(feature_dim, rank):.1e}"
    )
    header = (
        f"{'config':<10} {'net':<3} {'impl':<9} {'d':>4} {'MFLOP/img':>9} "
        f"{'infer img/s (min-max)':>23} {'GFLOP/s':>8} {'of mm':>6} {'infer MB':>8} "
        f"{'train img/s (min-max)':>23} {'train MB':>8} {'speed-up':>16}"
    )
    print(header)
    print("-" * len(header))
    context = multiprocessing.get_context("spawn")
    with context.Pool(1, maxtasksperchild=1) as pool:
        for config in configs:
            for network in NETWORKS:
                if not runs(config, network):
                    continue
                net = build(config, network, feature_dim, rank)
                flops = forward_flops(net)
                results: dict[tuple[str, str], list[dict[str, float]]] = {}
                for _ in range(repeats):  # interleaved: a load change hits every cell
                    for impl in ("tensor_zoo", "reference"):
                        for mode in ("inference", "train"):
                            job = {
                                "config": config,
                                "network": network,
                                "impl": impl,
                                "mode": mode,
                                "batch": batch,
                                "feature_dim": feature_dim,
                                "rank": rank,
                                "device": device_name,
                                "threads": threads,
                                "min_seconds": min_seconds,
                            }
                            results.setdefault((impl, mode), []).append(
                                pool.apply(_measure, (job,))
                            )
                rates = {
                    key: [run["images_per_s"] for run in runs_] for key, runs_ in results.items()
                }
                memory = {
                    key: statistics.median(run["peak_mb"] for run in runs_)
                    for key, runs_ in results.items()
                }
                for impl in ("tensor_zoo", "reference"):
                    infer = statistics.median(rates[impl, "inference"])
                    train = statistics.median(rates[impl, "train"])
                    achieved = flops * infer / 1e9
                    speedup = ""
                    if impl == "tensor_zoo":
                        ref_infer = statistics.median(rates["reference", "inference"])
                        ref_train = statistics.median(rates["reference", "train"])
                        speedup = f"{infer / ref_infer:.1f}x / {train / ref_train:.1f}x"
                    print(
                        f"{config:<10} {network:<3} {impl:<9} {net.num_positions:>4} "
                        f"{flops / 1e6:>9.3f} {spread(rates[impl, 'inference']):>23} "
                        f"{achieved:>8.2f} {achieved / peak:>6.1%} "
                        f"{memory[impl, 'inference']:>8.1f} {spread(rates[impl, 'train']):>23} "
                        f"{memory[impl, 'train']:>8.1f} {speedup:>16}",
                        flush=True,
                    )
    print("speed-up: tensor_zoo over the reference, inference / training step")


if __name__ == "__main__":
    from tensor_zoo.cli import main as command_line

    command_line(["bench", *sys.argv[1:]])
