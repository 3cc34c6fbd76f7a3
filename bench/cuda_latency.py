"""Forward latency of generated models on CUDA (and on the CPU for scale), when a GPU is present.

    .venv/bin/python bench/cuda_latency.py [--specs resnet50 resnet18] [--batch 1 32]

Without a CUDA device it says so and exits 0: nothing here is needed for the tests.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import resdsl


def measure(model, batch: torch.Tensor, repeats: int, sync) -> list[float]:
    with torch.no_grad():
        for _ in range(3):  # warm-up: cuDNN autotuning and allocator
            model(batch)
        sync()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(batch)
            sync()
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--specs", nargs="+", default=["resnet18", "resnet50"])
    parser.add_argument("--batch", nargs="+", type=int, default=[1, 32])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to measure")
        return
    print(f"device: {torch.cuda.get_device_name(0)}; torch {torch.__version__}")
    print(f"{'spec':<18}{'batch':>6}{'cuda ms (median)':>18}{'spread':>10}")
    for name in args.specs:
        model = resdsl.create_model(name).eval().cuda()
        shape = resdsl.compile(resdsl.registry.spec_source(name)).input_shape
        for size in args.batch:
            batch = torch.randn(size, *shape, device="cuda")
            times = measure(model, batch, args.repeats, torch.cuda.synchronize)
            print(f"{name:<18}{size:>6}{1e3 * statistics.median(times):>18.2f}{1e3 * (max(times) - min(times)):>10.2f}")


if __name__ == "__main__":
    main()
