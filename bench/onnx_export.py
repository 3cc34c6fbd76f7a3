"""ONNX emission: `resdsl build --emit onnx` against `torch.onnx.export`, and onnxruntime latency of both files.

    .venv/bin/python bench/onnx_export.py [--spec specs/resnet50.res] [--repeat 3] [--runs 20]

resdsl is timed as a whole process (interpreter start, parse, passes,
weights, serialisation, atomic write). torch.onnx.export is timed around the
call alone, in this process, with the module already built and warmed up: a
bound in PyTorch's favour. Both files are then timed in onnxruntime (CPU, one
session each, same options) on a batch-1 input after warm-up. Prints a
Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def time_resdsl(spec: Path, out: Path, repeat: int) -> list[float]:
    resdsl = Path(sys.executable).with_name("resdsl")
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([str(resdsl), "build", str(spec), "--emit", "onnx", "-o", str(out)], check=True,
                       stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return times


def time_torch_export(module, out: Path, dynamo: bool, repeat: int) -> list[float]:
    import torch

    x = torch.zeros(1, 3, 224, 224)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (x,), str(out), dynamo=dynamo, input_names=["input"], output_names=["output"],
                              dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
        times.append(time.perf_counter() - start)
    return times


def ort_latency(path: Path, runs: int) -> float:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    for _ in range(3):
        sess.run(None, {name: x})
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        sess.run(None, {name: x})
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", default=str(ROOT / "specs" / "resnet50.res"))
    parser.add_argument("--repeat", type=int, default=3, help="timed builds/exports of each kind")
    parser.add_argument("--runs", type=int, default=20, help="timed onnxruntime runs per file")
    args = parser.parse_args()

    import onnxruntime
    import torch

    import resdsl

    spec = Path(args.spec)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ours = tmp / "resdsl.onnx"
        resdsl_times = time_resdsl(spec, ours, args.repeat)
        module = resdsl.compile(spec).to_torch().eval()
        with torch.no_grad():
            module(torch.zeros(1, 3, 224, 224))
        exports = {}
        for label, dynamo in (("torch.onnx.export (default, dynamo)", True),
                              ("torch.onnx.export (dynamo=False)", False)):
            path = tmp / f"torch_dynamo_{dynamo}.onnx"
            exports[label] = (path, time_torch_export(module, path, dynamo, args.repeat))
        rows.append(("resdsl build --emit onnx (whole process)", resdsl_times, ort_latency(ours, args.runs)))
        for label, (path, times) in exports.items():
            rows.append((label, times, ort_latency(path, args.runs)))

    fastest = statistics.median(resdsl_times)
    print(f"{spec.name}: {datetime.date.today().isoformat()}, {cpu_model()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, torch {torch.__version__}, onnxruntime {onnxruntime.__version__}")
    print()
    print("| emitter | emission, median s (min–max) | vs resdsl | onnxruntime batch 1, median ms |")
    print("| --- | --- | --- | --- |")
    for label, times, latency in rows:
        median = statistics.median(times)
        print(f"| {label} | {median:.2f} ({min(times):.2f}–{max(times):.2f}) | {median / fastest:.1f}× "
              f"| {latency * 1e3:.1f} |")


if __name__ == "__main__":
    main()
