"""ONNX emission as a user pays for it: `resdsl build --emit onnx` against `torch.onnx.export`, whole processes.

    .venv/bin/python bench/onnx_export.py [--models resnet50,resnet152,cifar_resnet1202] [--rounds 5]
                                          [--runs 60] [--no-write] [--render]

For each model, with the default initialisation and with a weights file (a
`.pt` state_dict of the deterministic recipe in tests/recipe.py), three
emitters run as whole processes:

- resdsl: `resdsl build SPEC --emit onnx -o OUT [--weights W.pt]`: interpreter
  start, imports, parsing, passes, weights (drawn, or read from the `.pt`
  file without torch), BatchNorm folding, encoding and the atomic (fsynced)
  write. resdsl's bytecode is written beforehand, as installing it does.
- torch.onnx.export, default (dynamo) and legacy (`dynamo=False`): a fresh
  `python` that imports torch, builds the PyTorch module resdsl generates
  (its standalone source, written beforehand, as a user's model.py), loads
  the weights (`torch.load` + `load_state_dict`) when there are some, and
  exports. The same process times its export call alone, reported beside.

Each round runs the three once for each weights setting, the order
alternating between rounds; resdsl's margin over an exporter is taken within
each round (their time ÷ resdsl's), and the table gives the median and range
of those per-round ratios. Wall time is what a user waits; CPU time (user +
system, all threads) is less disturbed by other work on a shared machine.
Peak memory is each process's own VmHWM. Then: the node counts of the three
graphs (with weights: the legacy exporter shares equal initializers, such
as the zero biases of freshly folded BatchNorms, through `Identity` nodes),
onnxruntime latency of the first model's three files and their agreement
with the PyTorch module, and where resdsl's time goes. The `## ONNX emission`
section of docs/benchmarks.md is rewritten with the results; `--no-write`
only prints it. A run replaces an earlier run of the same models in
docs/bench_onnx.json (the raw numbers of every run, from which the section is
rendered) and keeps the others: a default export of cifar_resnet1202 takes
minutes, so the three models may be measured by separate runs. `--render`
measures nothing and rewrites the section from that record.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import importlib.util
import itertools
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from common import ROOT, byte_compile, cpu_model, load, write_section

sys.path.insert(0, str(ROOT / "tests"))
from recipe import recipe_input, recipe_state  # noqa: E402

HEADING = "## ONNX emission"
MODELS = ("resnet50", "resnet152", "cifar_resnet1202")
EMITTERS = ("resdsl", "dynamo", "legacy")
LABELS = {
    "resdsl": "resdsl build --emit onnx",
    "dynamo": "torch.onnx.export (default, dynamo)",
    "legacy": "torch.onnx.export (dynamo=False)",
}
GOALS = {"dynamo": 10.0, "legacy": 5.0}  # resdsl at least this many times faster, whole process
MEMORY_GOAL_MIB = 300  # resdsl build --emit onnx --weights resnet152.pt
RECORD = ROOT / "docs" / "bench_onnx.json"  # every run's raw numbers, the section rendered from them


def peak_kib() -> int:
    """This process's peak resident memory (VmHWM): a child's rusage would report its parent's peak instead."""
    with open("/proc/self/status") as status:
        return int(next(line.split()[1] for line in status if line.startswith("VmHWM")))


# -- child processes ---------------------------------------------------------------------------------------------


def torch_export(model_py: str, shape: str, out: str, dynamo: bool, weights: str) -> None:
    """A user's export: import torch, build the module, load the weights, export; prints the export call's times."""
    import torch

    spec = importlib.util.spec_from_file_location("model", model_py)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.Model().eval()
    if weights != "-":
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    x = torch.zeros(1, *map(int, shape.split("x")))
    cpu, start = time.process_time(), time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (x,),
            out,
            dynamo=dynamo,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
        )
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(json.dumps({"export_s": wall, "export_cpu_s": cpu, "peak_kib": peak_kib()}))


def resdsl_peak(argv: list[str]) -> None:
    """`resdsl ARGV` as the console script runs it, then its peak memory."""
    from resdsl.cli import main

    if main(argv) != 0:
        raise SystemExit(1)
    print(peak_kib())


def phases(spec: str, out: str, weights: str) -> None:
    """CPU seconds of each phase of `resdsl build SPEC --emit onnx --weights W.pt`, as the CLI runs them."""
    clock = time.process_time
    marks = [("start", clock())]
    import networkx  # noqa: F401
    import numpy  # noqa: F401

    import resdsl
    from resdsl import weights as weights_mod
    from resdsl.backends import onnx_graph
    from resdsl.io import write_atomic
    from resdsl.passes import fold_bn

    marks.append(("imports (NumPy, networkx, lark, resdsl; not onnx)", clock()))
    net = resdsl.compile(spec)
    marks.append(("parse, lower, passes", clock()))
    state = weights_mod.load(weights, net.ir)
    marks.append(("the .pt file's pickle read; its keys and shapes checked", clock()))
    ir, state = fold_bn.apply(net.ir, state)
    encoded = onnx_graph.serialize(ir, *weights_mod.state_source(state))
    marks.append(("BatchNorm folded in the graph; the graph and its encoding", clock()))
    write_atomic(out, encoded.model)
    marks.append(("each tensor read, checked, folded and written (atomic, fsynced)", clock()))
    for (_, before), (label, after) in itertools.pairwise(marks):
        print(f"{after - before:.3f}\t{label}")


# -- the parent ---------------------------------------------------------------------------------------------------


@dataclass
class Runs:
    """One emitter on one model and weights setting: a sample per round."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    export: list[float] = field(default_factory=list)  # the export call alone (torch only)
    peak_mib: list[float] = field(default_factory=list)


def timed(argv: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """Wall and CPU seconds (user + system of the child) of a whole process, and its output."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{result.stderr[-3000:]}")
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, result.stdout


@dataclass
class Case:
    """A model with or without weights, and the files its emitters write."""

    name: str
    spec: Path
    shape: str
    model_py: Path
    weights: Path | None
    outs: dict[str, Path]
    runs: dict[str, Runs] = field(default_factory=lambda: {e: Runs() for e in EMITTERS})

    @property
    def size(self) -> int:
        """The input's height (= width)."""
        return int(self.shape.split("x")[1])

    def argv(self, emitter: str) -> list[str]:
        out = str(self.outs[emitter])
        if emitter == "resdsl":
            extra = ["--weights", str(self.weights)] if self.weights else []
            resdsl = str(Path(sys.executable).with_name("resdsl"))
            return [resdsl, "build", str(self.spec), "--emit", "onnx", "-o", out, *extra]
        weights = str(self.weights) if self.weights else "-"
        dynamo = str(int(emitter == "dynamo"))
        return [sys.executable, __file__, "--torch-export", str(self.model_py), self.shape, out, dynamo, weights]

    def run(self, emitter: str) -> None:
        wall, cpu, stdout = timed(self.argv(emitter))
        runs = self.runs[emitter]
        runs.wall.append(wall)
        runs.cpu.append(cpu)
        if emitter != "resdsl":
            report = json.loads(stdout.splitlines()[-1])
            runs.export.append(report["export_s"])
            runs.peak_mib.append(report["peak_kib"] / 1024)

    def measure_resdsl_peak(self) -> None:
        argv = self.argv("resdsl")[1:]
        _, _, stdout = timed([sys.executable, __file__, "--resdsl-peak", *argv])
        self.runs["resdsl"].peak_mib.append(int(stdout.split()[-1]) / 1024)

    def ratios(self, emitter: str, what: str = "wall") -> list[float]:
        ours = getattr(self.runs["resdsl"], what)
        theirs = getattr(self.runs[emitter], what)
        return [t / o for t, o in zip(theirs, ours, strict=True)]


def prepare(models: list[str], tmp: Path) -> list[Case]:
    """The specs' generated PyTorch sources and recipe weights files, and a Case per model and weights setting."""
    import torch

    import resdsl
    from resdsl.weights import layout

    cases = []
    for name in models:
        spec = ROOT / "specs" / f"{name}.res"
        net = resdsl.compile(spec)
        model_py = tmp / f"{name}_model.py"
        model_py.write_text(net.torch_source)
        weights = tmp / f"{name}.pt"
        torch.save({k: torch.from_numpy(v) for k, v in recipe_state(layout(net.ir)).items()}, weights)
        shape = "x".join(map(str, net.input_shape))
        for with_weights in (False, True):
            tag = f"{name}{'-w' if with_weights else ''}"
            outs = {e: tmp / f"{tag}-{e}.onnx" for e in EMITTERS}
            cases.append(Case(name, spec, shape, model_py, weights if with_weights else None, outs))
    return cases


def node_counts(path: Path) -> tuple[int, collections.Counter]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    if model.functions:  # local functions would hide nodes; the exporters inline them today
        raise RuntimeError(f"{path.name} holds {len(model.functions)} ONNX functions")
    return len(model.graph.node), collections.Counter(node.op_type for node in model.graph.node)


def kept_bn_nodes(case: Case) -> int:
    import resdsl

    return len(resdsl.compile(case.spec).to_onnx(fold_bn=False).graph.node)


def ort_latency(paths: list[Path], size: int, runs: int, block: int = 10) -> list[list[float]]:
    """Batch-1 latencies of each model, timed in blocks of `block` runs with the order alternating.

    One session lives at a time: onnxruntime's idle worker threads spin, and
    a second live session would slow the one being timed.
    """
    import onnxruntime as ort

    x = recipe_input(1, size)
    samples: list[list[float]] = [[] for _ in paths]
    for round_ in range(-(-runs // block)):
        for index in range(len(paths)) if round_ % 2 == 0 else reversed(range(len(paths))):
            session = ort.InferenceSession(str(paths[index]), providers=["CPUExecutionProvider"])
            for step in range(3 + block):
                start = time.perf_counter()
                session.run(None, {"input": x})
                if step >= 3:  # warm-up
                    samples[index].append(time.perf_counter() - start)
            del session
    return samples


def agreement(case: Case) -> list[float]:
    """Max |difference| of each file's onnxruntime output from the PyTorch module's, on the recipe input."""
    import onnxruntime as ort
    import torch

    import resdsl

    module = resdsl.compile(case.spec).to_torch().eval()
    module.load_state_dict(torch.load(case.weights, weights_only=True))
    x = recipe_input(2, case.size)
    with torch.inference_mode():
        expected = module(torch.from_numpy(x)).numpy()
    out = []
    for emitter in EMITTERS:
        session = ort.InferenceSession(str(case.outs[emitter]), providers=["CPUExecutionProvider"])
        out.append(float(np.abs(session.run(None, {"input": x})[0] - expected).max()))
    return out


def main() -> None:
    if sys.argv[1:2] == ["--torch-export"]:
        model_py, shape, out, dynamo, weights = sys.argv[2:7]
        torch_export(model_py, shape, out, dynamo == "1", weights)
        return
    if sys.argv[1:2] == ["--resdsl-peak"]:
        resdsl_peak(sys.argv[2:])
        return
    if sys.argv[1:2] == ["--phases"]:
        phases(*sys.argv[2:5])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated bundled specs")
    parser.add_argument("--rounds", type=int, default=5, help="paired rounds per model and weights setting")
    parser.add_argument("--runs", type=int, default=60, help="timed onnxruntime runs per file")
    parser.add_argument("--no-write", action="store_true", help="print the section, leave docs/benchmarks.md alone")
    parser.add_argument(
        "--render", action="store_true", help="measure nothing: rewrite the section from docs/bench_onnx.json"
    )
    args = parser.parse_args()

    record = json.loads(RECORD.read_text()) if RECORD.exists() else {"runs": []}
    if args.render:
        write_section(HEADING, render(record))
        return
    run = measure(args)
    # A run replaces any earlier run that measured one of its models; the others stay, each with its own command.
    record["runs"] = [r for r in record["runs"] if not set(r["models"]) & set(run["models"])] + [run]
    record["runs"].sort(key=lambda r: min(MODELS.index(m) if m in MODELS else len(MODELS) for m in r["models"]))
    section = render(record)
    print(section)
    if not args.no_write:
        from resdsl.io import write_atomic

        write_atomic(RECORD, json.dumps(record, indent=1) + "\n")
        write_section(HEADING, section)


def measure(args) -> dict:
    """One run over `args.models`, as plain data (kept in RECORD, rendered by `render`)."""
    import onnx
    import onnxruntime
    import torch

    byte_compile()
    loads = [load()]
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        cases = prepare(args.models.split(","), tmp)
        for case in cases:
            print(f"{case.name}{' with weights' if case.weights else ''}…", file=sys.stderr)
            for round_ in range(args.rounds):
                for emitter in EMITTERS if round_ % 2 == 0 else reversed(EMITTERS):
                    case.run(emitter)
            case.measure_resdsl_peak()
            loads.append(load())
        graphs = {case.name: [node_counts(case.outs[e]) for e in EMITTERS] for case in cases if case.weights}
        kept = {case.name: kept_bn_nodes(case) for case in cases if case.weights}
        first = next(case for case in cases if case.weights)
        latencies = ort_latency([first.outs[e] for e in EMITTERS], first.size, args.runs)
        differences = agreement(first)
        split = subprocess.run(
            [sys.executable, __file__, "--phases", str(first.spec), str(tmp / "phases.onnx"), str(first.weights)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        loads.append(load())
        weights_mib = {case.name: case.weights.stat().st_size / 2**20 for case in cases if case.weights}
    return {
        "command": " ".join([".venv/bin/python bench/onnx_export.py", *sys.argv[1:]]),
        "date": datetime.date.today().isoformat(),
        "machine": (
            f"{cpu_model()}, {os.cpu_count()} cores (Python {platform.python_version()}, torch {torch.__version__}, "
            f"onnx {onnx.__version__}, onnxruntime {onnxruntime.__version__})"
        ),
        "loads": loads,
        "rounds": args.rounds,
        "ort_runs": args.runs,
        "models": list(dict.fromkeys(case.name for case in cases)),
        "cases": [
            {
                "name": case.name,
                "weights": bool(case.weights),
                "weights_mib": weights_mib[case.name],
                "runs": {e: vars(r) for e, r in case.runs.items()},
            }
            for case in cases
        ],
        "graphs": {name: [[n, dict(ops)] for n, ops in counts] for name, counts in graphs.items()},
        "kept": kept,
        "first": first.name,
        "latencies": latencies,
        "differences": differences,
        "split": split,
    }


# -- the report ---------------------------------------------------------------------------------------------------


def spread(values: list[float], digits: int = 2) -> str:
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def ratio(values: list[float]) -> str:
    return f"{statistics.median(values):.1f}× [{min(values):.1f}–{max(values):.1f}]"


def ratios(case: dict, emitter: str, what: str = "wall") -> list[float]:
    ours, theirs = case["runs"]["resdsl"][what], case["runs"][emitter][what]
    return [t / o for t, o in zip(theirs, ours, strict=True)]


def render(record: dict) -> str:
    runs = record["runs"]
    out = [
        HEADING,
        "",
        (
            "`bench/onnx_export.py` writes each model with resdsl and with PyTorch's two exporters, as whole "
            "processes, with the default initialisation and with a `.pt` weights file:"
        ),
        "",
        (
            "- **resdsl**: `resdsl build SPEC --emit onnx -o OUT [--weights W.pt]`: interpreter start, imports, "
            "parsing, passes, the weights (drawn, or read from the `.pt` file without torch), BatchNorm folding, "
            "encoding and the atomic (fsynced) write. resdsl's bytecode is written beforehand, as installing it does."
        ),
        (
            "- **torch.onnx.export**: a fresh process that imports torch, builds the PyTorch module resdsl generates "
            "(its standalone source, as a user's model.py), loads the weights (`torch.load` + `load_state_dict`) "
            "when there are some, and exports. The same process times its export call alone: that column is what "
            "an export costs once torch is imported and the model built."
        ),
        (
            "- **Rounds**: each round runs the three once per model and weights setting, the order alternating; "
            "`× resdsl` is the exporter's time over resdsl's within each round, median [range] over the rounds. "
            "**CPU** is user + system time over all threads, less disturbed than wall time when other work shares "
            "the machine. **Peak** is each process's own peak resident memory (VmHWM)."
        ),
        "",
        (
            "One run of the script covers the models it is given and replaces an earlier run's rows for them; the "
            "raw numbers stay in docs/bench_onnx.json, from which this section is rendered. Each run below names "
            "its command, date and load, and every figure under it comes from that run."
        ),
        "",
    ]
    verdicts = []
    for run in runs:
        out += _render_run(run, verdicts)
    out += [
        "### Goals",
        "",
        "Resdsl's whole process at least 10× faster than the default exporter's and 5× than the legacy's "
        "(median of the per-round ratios):",
        "",
    ]
    for case, emitter, goal, wall, cpu, rounds in verdicts:
        met = "met" if wall >= goal else ("met in CPU time only" if cpu >= goal else "not met")
        weights = "with weights" if case["weights"] else "default init"
        out.append(
            f"- {case['name']}, {weights}, vs {LABELS[emitter]}: **{met}** ({wall:.1f}× wall, {cpu:.1f}× CPU; "
            f"{rounds} round{'s' * (rounds != 1)})"
        )
    big = [c for run in runs for c in run["cases"] if c["name"] == "resnet152" and c["weights"]]
    if big:
        peak = statistics.median(big[0]["runs"]["resdsl"]["peak_mib"])
        out += [
            "",
            f"`resdsl build resnet152 --emit onnx --weights resnet152.pt` ({big[0]['weights_mib']:,.0f} MiB of "
            f"weights) peaking below {MEMORY_GOAL_MIB} MiB: **{'met' if peak < MEMORY_GOAL_MIB else 'not met'}** "
            f"({peak:,.0f} MiB; it never imports torch or onnx, as tests/test_torchfile.py checks).",
        ]
    return "\n".join(out) + "\n"


def _render_run(run: dict, verdicts: list) -> list[str]:
    out = [
        f"### {', '.join(run['models'])}",
        "",
        (
            f"`{run['command']}`: {run['rounds']} round{'s' * (run['rounds'] != 1)} per model and weights setting, "
            f"measured {run['date']} on {run['machine']}. Load average (1 min / 5 min) at the start, after each "
            f"case and at the end: {', '.join(run['loads'])}; the machine was shared, so wall times carry that noise."
        ),
        "",
        "| model | weights | emitter | wall s, median (min–max) | × resdsl, wall | CPU s | × resdsl, CPU "
        "| export call alone, s | peak MiB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | ---: |",
    ]
    for case in run["cases"]:
        weights = f"`{case['name']}.pt`" if case["weights"] else "default init"
        for emitter in EMITTERS:
            runs = case["runs"][emitter]
            vs_wall = ratio(ratios(case, emitter)) if emitter != "resdsl" else "1"
            vs_cpu = ratio(ratios(case, emitter, "cpu")) if emitter != "resdsl" else "1"
            export = spread(runs["export"]) if runs["export"] else "—"
            out.append(
                f"| {case['name']} | {weights} | {LABELS[emitter]} | {spread(runs['wall'])} | {vs_wall} | "
                f"{statistics.median(runs['cpu']):.2f} | {vs_cpu} | {export} | "
                f"{statistics.median(runs['peak_mib']):,.0f} |"
            )
        for emitter, goal in GOALS.items():
            wall, cpu = statistics.median(ratios(case, emitter)), statistics.median(ratios(case, emitter, "cpu"))
            verdicts.append((case, emitter, goal, wall, cpu, run["rounds"]))
    out += [
        "",
        "Nodes in each graph, with weights (resdsl folds BatchNorm by default; `--keep-bn` keeps it):",
        "",
        "| model | resdsl | resdsl --keep-bn | dynamo | legacy | ops (resdsl; where an exporter differs) |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, counts in run["graphs"].items():
        (ours, ours_ops), (dyn, dyn_ops), (leg, leg_ops) = [(n, collections.Counter(ops)) for n, ops in counts]
        differ = [
            f"{label}: {_ops(ops - ours_ops)} more, {_ops(ours_ops - ops)} fewer"
            for label, ops in (("dynamo", dyn_ops), ("legacy", leg_ops))
            if ops != ours_ops
        ]
        out.append(
            f"| {name} | {ours} | {run['kept'][name]} | {dyn} | {leg} | "
            f"{_ops(ours_ops)}; {'; '.join(differ) or 'same'} |"
        )
    quartiles = [statistics.quantiles(times, n=4) for times in run["latencies"]]
    out += [
        "",
        (
            f"onnxruntime (CPU provider, default options, batch 1) on {run['first']}'s three files with weights: "
            f"{run['ort_runs']} timed runs of each in blocks of 10 after 3 warm-up runs, one live session at a time, "
            "the order alternating. Max |difference| from the PyTorch module's output (2 images):"
        ),
        "",
        "| file | median ms (quartiles) | max \\|Δ\\| from PyTorch |",
        "| --- | --- | ---: |",
    ]
    for emitter, (low, median, high), difference in zip(EMITTERS, quartiles, run["differences"], strict=True):
        out.append(f"| {LABELS[emitter]} | {median * 1e3:.1f} ({low * 1e3:.1f}–{high * 1e3:.1f}) | {difference:.1e} |")
    if max(run["differences"]) > 1e-4:
        out += [
            "",
            (
                f"Differences over 1e-4 here ({min(run['differences']):.1e} to {max(run['differences']):.1e}), for "
                "every file alike, PyTorch's own exporters' too: tests/recipe.py's weights are drawn for "
                "torchvision's depths, and over this many residual blocks the activations grow so large that "
                "float32 rounding alone exceeds 1e-4. They measure the outputs' scale, not the export; the tests "
                "(tests/test_onnx.py) hold resdsl's files within 1e-4 of PyTorch on the networks with reference "
                "logits."
            ),
        ]
    out += [
        "",
        f"Where resdsl's CPU time goes, building {run['first']} with weights (one more build, phase by phase):",
        "",
        "| phase | CPU s |",
        "| --- | ---: |",
    ]
    out += [f"| {label} | {float(t):.3f} |" for t, label in (line.split("\t") for line in run["split"].splitlines())]
    return [*out, ""]


def _ops(counts: collections.Counter) -> str:
    return ", ".join(f"{op} ×{n}" for op, n in sorted(counts.items(), key=lambda item: (-item[1], item[0]))) or "none"


if __name__ == "__main__":
    main()
