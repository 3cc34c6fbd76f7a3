"""How long `resdsl check` takes on the costliest specs the default limits admit (docs/errors.md, Limits).

    .venv/bin/python bench/limits.py            # print a Markdown table
    .venv/bin/python bench/limits.py --json     # the figures as JSON

Each case is a spec built to sit just inside (or just past) one default limit
while making the compiler do as much work as it can there: the slowest tokens
to parse, the ops whose passes insert the most nodes, thousands of `use`d files,
thousands of errors. Each runs as a whole `resdsl check` process, as a user
would run it; the goal is under 10 s for every one of them.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import load, machine  # noqa: E402

from resdsl.limits import Limits  # noqa: E402

GOAL_SECONDS = 10.0
LIMITS = Limits()
HEAD = "network n {\n  input 3x8x8\n"


def _fill(unit: str, budget: int, head: str = HEAD, tail: str = "}\n") -> str:
    """`head`, as many `unit`s as fit in `budget` bytes with `tail`, then `tail`."""
    return head + unit * ((budget - len(head) - len(tail)) // len(unit)) + tail


def _blocks(body: str, ops: int, network: str, per_block: int) -> str:
    """A block template of `per_block` ops and a network repeating it to `ops` ops (a line `;` between)."""
    block = "block b(c) {\n" + body + "}\n"
    return block + HEAD + "\n;\n" + network + f"  l = b(4) x {ops // per_block}\n}}\n"


def cases(folder: Path) -> dict[str, Callable[[], Path]]:
    """Name → a function writing the case's spec (and any files it uses) into `folder`, returning the spec."""
    nodes, size = LIMITS.nodes, LIMITS.source_bytes

    def spec(name: str, text: str) -> Path:
        path = folder / name / "net.res"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def chain() -> Path:
        # As many one-line files as the source budget allows, each using the next.
        unit = len('use "f00000.res"\n')
        count = (size - 200) // unit
        target = folder / "use_chain"
        target.mkdir(exist_ok=True)
        for i in range(count):
            (target / f"f{i:05d}.res").write_text(f'use "f{i + 1:05d}.res"\n')
        (target / f"f{count:05d}.res").write_text("block last(c) { conv(c, k=1) }\n")
        return spec("use_chain", 'use "f00000.res"\n' + HEAD + "  l = last(4)\n}\n")

    # Three ops a block: 25,000 ops take 8,333 blocks, within the block limit.
    conv_add = "  a = conv(c, k=1)\n  conv(c, k=1)\n  add input\n"
    return {
        # Parsing: the byte budget spent on the slowest constructs to parse.
        f"{size:,} bytes of `;`": lambda: spec("semicolons", _fill(";", size, tail="  relu\n}\n")),
        f"{size:,} bytes of positional arguments": lambda: spec(
            "arguments", _fill("1,", size, head=HEAD + "  conv(", tail=")\n}\n")
        ),
        f"{size:,} bytes of `conv(4, k=1)` (norm pass adds BN and ReLU)": lambda: spec(
            "convs", _fill("  conv(4, k=1)\n", size)
        ),
        # Lowering and passes: the op budget spent on blocks whose passes insert most.
        f"{nodes:,} ops: conv + add blocks, shortcut C (a projection per add)": lambda: spec(
            "blocks_c", _blocks(conv_add, nodes - 1, "  policy shortcut = C\n", 3)
        ),
        f"{nodes:,} ops: conv + add blocks, pre-activation, shortcut C": lambda: spec(
            "blocks_pre", _blocks(conv_add, nodes - 1, "  policy shortcut = C\n  policy norm = pre\n", 3)
        ),
        f"both: {nodes:,} ops of those blocks, and `;` up to {size:,} bytes": lambda: spec(
            "both", _fill(";", size, *_blocks(conv_add, nodes - 1, "  policy shortcut = C\n", 3).split("\n;\n"))
        ),
        f"{LIMITS.blocks:,} blocks of one op": lambda: spec(
            "tiny_blocks", _blocks("  relu\n", LIMITS.blocks, "  conv(4, k=1)\n", 1)
        ),
        f"{nodes:,} ops over the budget by one (refused before lowering)": lambda: spec(
            "over", _blocks(conv_add, nodes + 3, "  policy shortcut = C\n", 3)
        ),
        # Reading: the byte budget spent on as many `use`d files as fit.
        f"a chain of `use`d files filling {size:,} bytes": chain,
        # Reporting: one error per statement, as many as fit.
        f"{size:,} bytes of unknown ops (an error each)": lambda: spec("errors", _fill("  cnov(1)\n", size)),
        f"{size:,} bytes of unknown names (an error each)": lambda: spec("names", _fill("  conv(w, k=1)\n", size)),
    }


def time_check(path: Path) -> tuple[float, float, int]:
    """Wall-clock and CPU seconds (user + system) of one `resdsl check`, and its exit code.

    CPU time is what the spec costs; on a shared, loaded machine the wall clock adds the waiting.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "resdsl", "check", str(path)], capture_output=True, text=True, cwd=path.parent
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, result.returncode


def run(repeats: int = 3) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, make in cases(Path(tmp)).items():
            path = make()
            times, cpus, code = [], [], 0
            for _ in range(repeats):
                seconds, cpu, code = time_check(path)
                times.append(seconds)
                cpus.append(cpu)
            rows.append({"case": name, "seconds": max(times), "cpu_seconds": max(cpus), "exit": code})
            print(f"{name}: {max(times):.2f} s, {max(cpus):.2f} s CPU (exit {code})", file=sys.stderr)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = run(args.repeats)
    if args.json:
        print(json.dumps({"machine": machine(), "load": load(), "rows": rows}, indent=2))
        return
    print("| spec | `resdsl check`, wall clock | CPU | exit |")
    print("|---|---:|---:|---:|")
    for row in rows:
        print(f"| {row['case']} | {row['seconds']:.1f} s | {row['cpu_seconds']:.1f} s | {row['exit']} |")
    worst = max(row["cpu_seconds"] for row in rows)
    verdict = "met" if worst < GOAL_SECONDS else "NOT met"
    cpu = machine()["cpu"]
    print(f"\nGoal < {GOAL_SECONDS:.0f} s of CPU: **{verdict}** (slowest {worst:.1f} s; load {load()}; {cpu}).")


if __name__ == "__main__":
    main()
