"""Generated PyTorch modules against torchvision's and timm's code: forward at batch 1 and 8, and a training step.

    .venv/bin/python bench/module_speed.py [--models resnet50,seresnet50] [--rounds 15] [--threads 1]
                                           [--clock cpu|wall] [--train-batch 8] [--json FILE] [--write]

Each generated network (resdsl.create_model) is timed against its reference
(bench/reference_resnet.py, torchvision's code path; bench/reference_timm.py,
timm's for seresnet50; tests/timm_res2net.py, timm_resnest.py and
timm_sknet.py for those families; the libraries themselves when installed) holding the
same weights (tests/recipe.py, loaded with strict=True), after checking that
their outputs are bit-identical. Forward passes run in eval mode under
`torch.inference_mode()`; a training step is zero_grad, forward,
cross-entropy, backward and an SGD step (momentum 0.9) in train mode, each
model on its own copy of the weights (after one step the copies are checked
to be still equal). Every round times the generated model and the reference
once each, the order alternating between rounds; the ratio generated ÷
reference is taken within each round, so load that comes and goes hits both
sides of a ratio alike. Time is the process's CPU time by default
(`--clock cpu`, `time.process_time`): on a shared machine it leaves out the
time the process waits for a core, which wall-clock time (`--clock wall`)
counts for whichever side happened to be waiting. With one thread (the
default), all of PyTorch's work runs in the calling thread, so CPU time is
the work each model makes PyTorch do. On a shared machine, give it a core of
its own: `nice -n -20 taskset -c 1 .venv/bin/python bench/module_speed.py`
(as root); the table records the niceness and the core. Reported: the median ratio over the
rounds and its range, with each side's median time. `--write` puts the table in
docs/benchmarks.md; without it the table is only printed.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
from collections.abc import Callable

import torch
from common import ROOT, load, machine, write_section
from reference_resnet import reference
from torch import nn

sys.path.insert(0, str(ROOT / "tests"))
from recipe import fill_module, recipe_input  # noqa: E402

HEADING = "## Generated modules against torchvision and timm"
MODELS = (
    "resnet50",
    "resnext50_32x4d",
    "wide_resnet50_2",
    "seresnet50",
    "res2net50_26w_4s",
    "resnest50d",
    "skresnet50",
)
GOAL = 1.01


def pair(name: str) -> tuple[nn.Module, nn.Module, str]:
    """The generated model and its reference, with the same weights, in eval mode."""
    import resdsl

    generated = resdsl.create_model(name)
    fill_module(generated)
    model, origin = reference(name)
    model.load_state_dict(generated.state_dict(), strict=True)
    return generated.eval(), model.eval(), origin


CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


def rounds_of(
    steps: dict[str, Callable[[], None]], rounds: int, iters: int, clock: Callable[[], float]
) -> dict[str, list[float]]:
    """Seconds per call of each step, one sample per round, the two run back to back in alternating order."""
    names = list(steps)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(rounds):
        for name in names if round_ % 2 == 0 else reversed(names):
            start = clock()
            for _ in range(iters):
                steps[name]()
            samples[name].append((clock() - start) / iters)
    return samples


def summary(samples: dict[str, list[float]]) -> dict:
    generated, reference_ = samples["generated"], samples["reference"]
    ratios = [g / r for g, r in zip(generated, reference_, strict=True)]
    return {
        "generated_s": statistics.median(generated),
        "reference_s": statistics.median(reference_),
        "ratio": statistics.median(ratios),
        "low": min(ratios),
        "high": max(ratios),
        "rounds": len(ratios),
    }


def forward_rows(generated: nn.Module, model: nn.Module, rounds: int, clock: Callable[[], float]) -> dict[str, dict]:
    rows = {}
    with torch.inference_mode():
        for batch, iters in ((1, 3), (8, 1)):
            x = torch.from_numpy(recipe_input(batch))
            steps = {"generated": lambda x=x: generated(x), "reference": lambda x=x: model(x)}
            for step in steps.values():  # warm-up: allocator, kernels' first calls
                step()
            rows[f"forward, batch {batch}"] = summary(rounds_of(steps, rounds, iters, clock))
    return rows


def train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[Callable[[], None], nn.Module]:
    model = copy.deepcopy(model).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()

    return step, model


def training_row(
    generated: nn.Module, model: nn.Module, rounds: int, batch: int, clock: Callable[[], float]
) -> tuple[dict, float]:
    """The training step's timing, and the largest difference between the two models' weights after one step."""
    x = torch.from_numpy(recipe_input(batch))
    y = torch.arange(batch) % 1000
    (gen_step, gen_copy), (ref_step, ref_copy) = train_step(generated, x, y), train_step(model, x, y)
    gen_step()
    ref_step()
    ours, theirs = gen_copy.state_dict(), ref_copy.state_dict()
    drift = max(float((ours[k].double() - theirs[k].double()).abs().max()) for k in ours)
    return summary(rounds_of({"generated": gen_step, "reference": ref_step}, rounds, 1, clock)), drift


def run(models: list[str], rounds: int, threads: int, train_batch: int, clock: str) -> dict:
    torch.set_num_threads(threads)
    command = " ".join([".venv/bin/python bench/module_speed.py", *sys.argv[1:]])
    results = {
        "machine": machine(),
        "command": command,
        "threads": threads,
        "clock": clock,
        # How the process was scheduled: `nice -n -20 taskset -c 1 ...` keeps one core for it on a shared machine.
        "niceness": os.getpriority(os.PRIO_PROCESS, 0),
        "cores_allowed": sorted(os.sched_getaffinity(0)),
        "rounds": rounds,
        "train_batch": train_batch,
        "models": [],
    }
    for name in models:
        before = load()
        print(f"{name}…", file=sys.stderr)
        generated, model, origin = pair(name)
        x = torch.from_numpy(recipe_input(2))
        with torch.inference_mode():
            a, b = generated(x), model(x)
        rows = forward_rows(generated, model, rounds, CLOCKS[clock])
        rows[f"training step, batch {train_batch}"], drift = training_row(
            generated, model, rounds, train_batch, CLOCKS[clock]
        )
        results["models"].append(
            {
                "name": name,
                "reference": origin,
                "identical": bool(torch.equal(a, b)),
                "max_difference": float((a - b).abs().max()),
                "weights_after_one_step_differ_by": drift,
                "rows": rows,
                "load": [before, load()],
            }
        )
    return results


def render(results: dict) -> str:
    m = results["machine"]
    out = [
        HEADING,
        "",
        (
            "`bench/module_speed.py` times each generated network against its reference holding the same weights: "
            "torchvision's code path (bench/reference_resnet.py, in-place ReLU modules and `out += identity`) for "
            "the ResNets, timm's (bench/reference_timm.py) for seresnet50, and for Res2Net, ResNeSt and SKNet, whose "
            "splits, softmax across branches and selected sums are new ops, timm's as the tests' compact references "
            "write it out (tests/timm_res2net.py, timm_resnest.py, timm_sknet.py, each checked against timm's "
            "logits). Forward passes in eval mode under "
            "`torch.inference_mode()`; a training step is zero_grad, forward, cross-entropy, backward and SGD. "
            f"Each of {results['rounds']} rounds times both models back to back, the order alternating, and the "
            "ratio generated ÷ reference is taken within the round. "
            + (
                "Times are the process's CPU time (`time.process_time`), which leaves out time spent waiting for a "
                "core on a shared machine; with one thread all of PyTorch's work runs in the calling thread."
                if results["clock"] == "cpu"
                else "Times are wall-clock time."
            )
        ),
        "",
        (
            f"Measured {m['date']} on {m['cpu']}, {m['cores']} cores, {results['threads']} threads (torch "
            f"{m['torch']}, Python {m['python']}), by `{results['command']}`"
            + _scheduling(results)
            + "; the machine was shared, so the spreads carry that noise."
        ),
        "",
        "| model | reference | setting | generated | reference | generated ÷ reference, median [range] |",
        "| --- | --- | --- | ---: | ---: | --- |",
    ]
    for model in results["models"]:
        for label, row in model["rows"].items():
            out.append(
                f"| {model['name']} | {model['reference'].split(',')[0]} | {label} | "
                f"{row['generated_s'] * 1e3:,.1f} ms | {row['reference_s'] * 1e3:,.1f} ms | "
                f"{row['ratio']:.3f} [{row['low']:.3f}–{row['high']:.3f}] |"
            )
    worst = max(row["ratio"] for model in results["models"] for row in model["rows"].values())
    out += [
        "",
        f"Goal, every median ratio ≤ {GOAL}: **{'met' if worst <= GOAL else 'not met'}** (worst {worst:.3f}). "
        "Outputs of each pair: "
        + "; ".join(f"{model['name']} {_agreement(model)}" for model in results["models"])
        + ". Weights after one training step: "
        + "; ".join(
            f"{model['name']} "
            + (
                "identical"
                if not model["weights_after_one_step_differ_by"]
                else "within {:.1e}".format(model["weights_after_one_step_differ_by"])
            )
            for model in results["models"]
        )
        + ". Load average (1 min / 5 min) before and after each model: "
        + "; ".join(f"{model['name']} {model['load'][0]} → {model['load'][1]}" for model in results["models"])
        + ".",
    ]
    return "\n".join(out) + "\n"


def _scheduling(results: dict) -> str:
    """How the run was scheduled, when not as usual: its niceness and the cores it was allowed."""
    parts = []
    if results["niceness"]:
        parts.append(f"niceness {results['niceness']}")
    if len(results["cores_allowed"]) < results["machine"]["cores"]:
        parts.append(f"pinned to core {', '.join(map(str, results['cores_allowed']))}")
    return f" ({' and '.join(parts)}, so other work waits for this process)" if parts else ""


def _agreement(model: dict) -> str:
    if model["identical"]:
        return "bit-identical"
    return "within {:.1e}".format(model["max_difference"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated bundled model names")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu", help="CPU time (default) or wall clock")
    parser.add_argument("--train-batch", type=int, default=8)
    parser.add_argument("--json", help="also write the raw results to this file")
    parser.add_argument("--write", action="store_true", help="write the section into docs/benchmarks.md")
    args = parser.parse_args()
    results = run(args.models.split(","), args.rounds, args.threads, args.train_batch, args.clock)
    section = render(results)
    print(section)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)
    if args.write:
        write_section(HEADING, section)


if __name__ == "__main__":
    main()
