"""ONNX emission: `resdsl build --emit onnx` against `torch.onnx.export`, and onnxruntime latency of the files.

    .venv/bin/python bench/onnx_export.py [--spec specs/resnet50.res] [--repeat 3] [--runs 20]

resdsl is timed as a whole process (interpreter start, parse, passes,
weights, serialisation, atomic write). torch.onnx.export is timed around the
call alone, once per fresh process (the first export, as a user pays it),
after importing torch and building and running the generated module there:
a bound in PyTorch's favour. Each is reported in wall time and in CPU time
(user + system, all threads), which a busy machine disturbs less. The three
files are then timed in onnxruntime (CPU provider, default options, runs
interleaved) on a batch-1 input after warm-up. Prints a Markdown table for
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
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


def time_resdsl(spec: Path, out: Path, repeat: int) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds (user + system, of the child process) per whole-process build."""
    resdsl = Path(sys.executable).with_name("resdsl")
    walls, cpus = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run([str(resdsl), "build", str(spec), "--emit", "onnx", "-o", str(out)], check=True,
                       stderr=subprocess.DEVNULL)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return walls, cpus


def time_torch_export(spec: Path, out: Path, dynamo: bool, repeat: int) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of the export call, each in a fresh process (the first call, as a user pays it)."""
    walls, cpus = [], []
    for _ in range(repeat):
        result = subprocess.run([sys.executable, __file__, "--export-once", str(spec), str(out), str(int(dynamo))],
                                check=True, capture_output=True, text=True)
        wall, cpu = map(float, result.stdout.split()[-2:])
        walls.append(wall)
        cpus.append(cpu)
    return walls, cpus


def export_once(spec: str, out: str, dynamo: bool) -> None:
    """Child process: build the generated module, then time one torch.onnx.export call."""
    import torch

    import resdsl

    module = resdsl.compile(spec).to_torch().eval()
    x = torch.zeros(1, 3, 224, 224)
    with torch.no_grad():
        module(x)
    cpu, start = time.process_time(), time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (x,), out, dynamo=dynamo, input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    print(time.perf_counter() - start, time.process_time() - cpu)


def ort_latency(paths: list[Path], runs: int) -> list[float]:
    """Median batch-1 latency of each model, runs interleaved so that load changes hit all alike."""
    import onnxruntime as ort

    sessions = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in paths]
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    samples: list[list[float]] = [[] for _ in sessions]
    for step in range(3 + runs):
        for sess, times in zip(sessions, samples):
            start = time.perf_counter()
            sess.run(None, {sess.get_inputs()[0].name: x})
            if step >= 3:  # warm-up
                times.append(time.perf_counter() - start)
    return [statistics.median(times) for times in samples]


def main() -> None:
    if sys.argv[1:2] == ["--export-once"]:
        export_once(sys.argv[2], sys.argv[3], sys.argv[4] == "1")
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", default=str(ROOT / "specs" / "resnet50.res"))
    parser.add_argument("--repeat", type=int, default=3, help="timed builds/exports of each kind")
    parser.add_argument("--runs", type=int, default=20, help="timed onnxruntime runs per file")
    args = parser.parse_args()

    import onnxruntime
    import torch

    spec = Path(args.spec)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        emitters = [("resdsl build --emit onnx (whole process)", tmp / "resdsl.onnx", None),
                    ("torch.onnx.export (default, dynamo)", tmp / "dynamo.onnx", True),
                    ("torch.onnx.export (dynamo=False)", tmp / "legacy.onnx", False)]
        timings = []
        for _, path, dynamo in emitters:
            if dynamo is None:
                timings.append(time_resdsl(spec, path, args.repeat))
            else:
                timings.append(time_torch_export(spec, path, dynamo, args.repeat))
        latencies = ort_latency([path for _, path, _ in emitters], args.runs)

    base_wall, base_cpu = (statistics.median(t) for t in timings[0])
    print(f"{spec.name}: {datetime.date.today().isoformat()}, {cpu_model()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, "
          f"load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, "
          f"{args.repeat} emissions and {args.runs} onnxruntime runs each")
    print()
    print("| emitter | wall s, median (min–max) | vs resdsl | CPU s, median | vs resdsl "
          "| onnxruntime batch 1, median ms |")
    print("| --- | --- | --- | --- | --- | --- |")
    for (label, _, _), (walls, cpus), latency in zip(emitters, timings, latencies):
        wall, cpu = statistics.median(walls), statistics.median(cpus)
        print(f"| {label} | {wall:.2f} ({min(walls):.2f}–{max(walls):.2f}) | {wall / base_wall:.1f}× "
              f"| {cpu:.2f} | {cpu / base_cpu:.1f}× | {latency * 1e3:.1f} |")


if __name__ == "__main__":
    main()
