"""ONNX emission: `resdsl build --emit onnx` against `torch.onnx.export`, and onnxruntime latency of the files.

    .venv/bin/python bench/onnx_export.py [--spec specs/resnet50.res] [--repeat 7] [--runs 60]

resdsl is timed as a whole process (interpreter start, parse, passes,
weights, serialisation, atomic write), its bytecode written first as an
install would. torch.onnx.export is timed around the call alone, once per
fresh process (the first export, as a user pays it), after importing torch
and building and running the generated module there: a bound in PyTorch's
favour. Each is reported in wall time and in CPU time (user + system, all
threads), which a busy machine disturbs less. The three files are then timed
in onnxruntime (CPU provider, default options, one session at a time, blocks
of runs in alternating order) on a batch-1 input after warm-up. A last child
process times resdsl's phases. The `## ONNX emission` section of docs/benchmarks.md is
rewritten with the results (bench/run_all.py keeps it); `--no-write` only
prints it.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
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
from common import ROOT, byte_compile, cpu_model

HEADING = "## ONNX emission"
GOAL = 10.0  # resdsl at least this many times faster than the default exporter


def time_resdsl(spec: Path, out: Path, repeat: int) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds (user + system, of the child process) per whole-process build."""
    resdsl = Path(sys.executable).with_name("resdsl")
    walls, cpus = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(
            [str(resdsl), "build", str(spec), "--emit", "onnx", "-o", str(out)], check=True, stderr=subprocess.DEVNULL
        )
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return walls, cpus


def time_torch_export(spec: Path, out: Path, dynamo: bool, repeat: int) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of the export call, each in a fresh process (the first call, as a user pays it)."""
    walls, cpus = [], []
    for _ in range(repeat):
        result = subprocess.run(
            [sys.executable, __file__, "--export-once", str(spec), str(out), str(int(dynamo))],
            check=True,
            capture_output=True,
            text=True,
        )
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
        torch.onnx.export(
            module,
            (x,),
            out,
            dynamo=dynamo,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
        )
    print(time.perf_counter() - start, time.process_time() - cpu)


def phases(spec: str, out: str) -> None:
    """Child process: CPU seconds of each phase of an ONNX build, as `resdsl build` runs them."""
    clock = time.process_time
    marks = [("start", clock())]
    import networkx  # noqa: F401
    import onnx  # noqa: F401

    import resdsl
    from resdsl.backends import onnx_graph
    from resdsl.io import write_atomic
    from resdsl.weights import seeded_source

    marks.append(("imports (NumPy, onnx, networkx, lark, resdsl)", clock()))
    net = resdsl.compile(spec)
    marks.append(("parse, lower, passes", clock()))
    encoded = onnx_graph.serialize(net.graph, *seeded_source(net.graph))
    marks.append(("graph and its encoding", clock()))
    write_atomic(out, encoded.model)
    marks.append(("seeded weights, drawn while written, and the atomic write", clock()))
    for (_, before), (label, after) in itertools.pairwise(marks):
        print(f"{after - before:.3f}\t{label}")


def ort_latency(paths: list[Path], runs: int, block: int = 10) -> list[list[float]]:
    """Batch-1 latencies of each model, timed in blocks of `block` runs with the order alternating.

    One session lives at a time: onnxruntime's idle worker threads spin, and
    a second live session would slow the one being timed.
    """
    import onnxruntime as ort

    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    samples: list[list[float]] = [[] for _ in paths]
    for round_ in range(-(-runs // block)):
        for index in range(len(paths)) if round_ % 2 == 0 else reversed(range(len(paths))):
            session = ort.InferenceSession(str(paths[index]), providers=["CPUExecutionProvider"])
            feed = {session.get_inputs()[0].name: x}
            for step in range(3 + block):
                start = time.perf_counter()
                session.run(None, feed)
                if step >= 3:  # warm-up
                    samples[index].append(time.perf_counter() - start)
            del session
    return samples


def optimized_ops(path: Path) -> str:
    """The ops onnxruntime runs for a model once its graph optimisations are applied, most frequent first."""
    import collections

    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # the optimised file is for reading here, not for another machine
    options.optimized_model_filepath = str(path.with_suffix(".optimized.onnx"))
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    counts = collections.Counter(node.op_type for node in onnx.load(options.optimized_model_filepath).graph.node)
    return ", ".join(f"{op} ×{n}" for op, n in sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def main() -> None:
    if sys.argv[1:2] == ["--export-once"]:
        export_once(sys.argv[2], sys.argv[3], sys.argv[4] == "1")
        return
    if sys.argv[1:2] == ["--phases"]:
        phases(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", default=str(ROOT / "specs" / "resnet50.res"))
    parser.add_argument("--repeat", type=int, default=7, help="timed builds/exports of each kind")
    parser.add_argument("--runs", type=int, default=60, help="timed onnxruntime runs per file")
    parser.add_argument("--no-write", action="store_true", help="print the section, leave docs/benchmarks.md alone")
    args = parser.parse_args()

    spec = Path(args.spec)
    byte_compile()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        emitters = [
            ("resdsl build --emit onnx (whole process)", tmp / "resdsl.onnx", None),
            ("torch.onnx.export (default, dynamo)", tmp / "dynamo.onnx", True),
            ("torch.onnx.export (dynamo=False)", tmp / "legacy.onnx", False),
        ]
        timings = []
        for _, path, dynamo in emitters:
            if dynamo is None:
                timings.append(time_resdsl(spec, path, args.repeat))
            else:
                timings.append(time_torch_export(spec, path, dynamo, args.repeat))
        latencies = ort_latency([path for _, path, _ in emitters], args.runs)
        graphs = [optimized_ops(path) for _, path, _ in emitters]
        size = (tmp / "resdsl.onnx").stat().st_size
        split = subprocess.run(
            [sys.executable, __file__, "--phases", str(spec), str(tmp / "phases.onnx")],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "OPENBLAS_NUM_THREADS": "1"},
        ).stdout  # as resdsl's CLI sets
    section = render(spec, args, load_before, emitters, timings, latencies, graphs, size, split)
    print(section)
    if not args.no_write:
        write_section(section)


def render(spec, args, load_before, emitters, timings, latencies, graphs, size, split) -> str:
    import onnx
    import onnxruntime
    import torch

    walls = [statistics.median(w) for w, _ in timings]
    cpus = [statistics.median(c) for _, c in timings]
    quartiles = [statistics.quantiles(times, n=4) for times in latencies]
    latencies = [q[1] for q in quartiles]  # medians
    out = [
        HEADING,
        "",
        (
            f"`bench/onnx_export.py` writes `{spec.name}` ({size / 1e6:.0f} MB of ONNX) with resdsl and with "
            "PyTorch's exporter applied to the PyTorch module resdsl generates, then times the three files in "
            "onnxruntime."
        ),
        "",
        (
            "- **resdsl**: `resdsl build SPEC --emit onnx` as a whole process: interpreter start, imports, parsing, "
            "passes, seeded weights, encoding and the atomic (fsynced) write; resdsl's bytecode is written "
            "beforehand, as installing a package does."
        ),
        (
            "- **torch.onnx.export**: the export call alone, in a fresh process per repetition (the first export, "
            "as a user pays it), after torch is imported and the module built and run there; leaving those out "
            "favours PyTorch."
        ),
        (
            "- **CPU** is user + system time over all threads, less disturbed than wall time when other work "
            "shares the machine."
        ),
        (
            f"- **onnxruntime**: CPU provider, default session options, batch 1; {args.runs} timed runs of each "
            "file in blocks of 10 after 3 warm-up runs, one live session at a time, the order alternating."
        ),
        "",
        (
            f"Measured {datetime.date.today().isoformat()} on {cpu_model()}, {os.cpu_count()} cores (Python "
            f"{platform.python_version()}, torch {torch.__version__}, onnx {onnx.__version__}, onnxruntime "
            f"{onnxruntime.__version__}); load average {load_before:.1f} at the start and "
            f"{os.getloadavg()[0]:.1f} at the end; {args.repeat} emissions of each kind."
        ),
        "",
        (
            "| emitter | wall s, median (min–max) | vs resdsl | CPU s, median | vs resdsl "
            "| onnxruntime batch 1, median ms (quartiles) |"
        ),
        "| --- | --- | --- | --- | --- | --- |",
    ]
    rows = zip(emitters, timings, walls, cpus, quartiles, strict=True)
    for (label, _, _), (w, _), wall, cpu, (low, latency, high) in rows:
        out.append(
            f"| {label} | {wall:.2f} ({min(w):.2f}–{max(w):.2f}) | {wall / walls[0]:.1f}× "
            f"| {cpu:.2f} | {cpu / cpus[0]:.1f}× | {latency * 1e3:.1f} ({low * 1e3:.1f}–{high * 1e3:.1f}) |"
        )
    wall_ratio, cpu_ratio = walls[1] / walls[0], cpus[1] / cpus[0]
    verdict = (
        "met"
        if min(wall_ratio, cpu_ratio) >= GOAL
        else ("met in CPU time only" if cpu_ratio >= GOAL else "not met in this run")
    )
    ours, fastest, slowest = latencies[0], min(latencies[1:]), max(latencies[1:])
    noise = (quartiles[0][2] - quartiles[0][0]) / 2  # half the interquartile range of resdsl's runs
    if ours <= slowest:
        same_speed = "**met**"
    elif ours - fastest <= noise:
        same_speed = (
            f"**met** within the run-to-run noise ({ours / fastest - 1:.1%} over the fastest, less than "
            f"half the interquartile range of its runs, {noise / ours:.1%})"
        )
    else:
        same_speed = f"**not met** ({ours / fastest - 1:.1%} over the fastest, beyond the run-to-run noise)"
    out += [
        "",
        f"Goal, emission at least {GOAL:.0f}× faster than the default exporter: **{verdict}** "
        f"({wall_ratio:.1f}× wall, {cpu_ratio:.1f}× CPU). Goal, resdsl's model no slower in onnxruntime: "
        f"{ours * 1e3:.1f} ms against {latencies[1] * 1e3:.1f} and {latencies[2] * 1e3:.1f} ms: {same_speed}.",
        "",
        "What onnxruntime runs once its graph optimisations have fused BatchNorm, ReLU and Add into the convolutions:",
        "",
    ]
    out += [f"- {label}: {ops}" for (label, _, _), ops in zip(emitters, graphs, strict=True)]
    out += [
        "",
        "Where resdsl's CPU time goes (one more build, phase by phase):",
        "",
        "| phase | CPU s |",
        "| --- | ---: |",
    ]
    out += [f"| {label} | {float(t):.3f} |" for t, label in (line.split("\t") for line in split.splitlines())]
    return "\n".join(out) + "\n"


def write_section(section: str) -> None:
    """Replace the section in docs/benchmarks.md (or append it), leaving the others as they are."""
    import re

    sys.path.insert(0, str(ROOT))
    from resdsl.io import write_atomic

    target = ROOT / "docs" / "benchmarks.md"
    text = target.read_text() if target.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(HEADING)}\n.*?(?=^## |\Z)", flags=re.DOTALL | re.MULTILINE)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + section
    write_atomic(target, text)
    print(f"wrote {target.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
