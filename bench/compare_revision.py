"""Compile time of this tree (or of revision NEW) against an earlier revision, for changes that must not
slow the compiler.

    .venv/bin/python bench/compare_revision.py OLD [NEW] [--repeats N] [--instructions]

Checks the revisions out into temporary git worktrees and times, in alternating
order and each in a fresh process, parse → IR → passes → PyTorch source of
cifar_resnet1202 (600 blocks) and of a generated 10,000-block spec, with this
venv's Python and packages for both. With `--instructions` it also counts
the instructions of one compile of each size with valgrind's callgrind, which
does not depend on what else the machine is doing (the 10,000-block count takes
some minutes per revision). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT, byte_compile, load, python

SIZES = {"cifar_resnet1202": 600, "10,000 blocks": 10_000}

# Run inside the timed process: import the tree given first, compile a spec of N blocks R times.
TIMED = """
import json, sys, time
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/bench"]
import resdsl
assert resdsl.__file__.startswith(sys.argv[1]), resdsl.__file__
from specs import cifar_spec
text = cifar_spec(int(sys.argv[2]))
resdsl.compile(cifar_spec(3)).torch_source  # imports and parser tables are not timed
times = []
for _ in range(int(sys.argv[3])):
    start = time.perf_counter()
    resdsl.compile(text).torch_source
    times.append(time.perf_counter() - start)
print(json.dumps(times))
"""


def _times(tree: Path, blocks: int, repeats: int) -> list[float]:
    out = subprocess.run(
        [python(), "-c", TIMED, str(tree), str(blocks), str(repeats)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def _instructions(tree: Path, blocks: int) -> int:
    """Instructions of one compile: a run that compiles once, less a run that only imports and warms up."""
    counts = []
    for repeats in (0, 1):
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder) / "callgrind.out"
            result = subprocess.run(
                ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", python(), "-c", TIMED]
                + [str(tree), str(blocks), str(repeats)],
                capture_output=True,
                text=True,
                check=True,
            )
        counts.append(int(re.search(r"Collected : (\d+)", result.stderr).group(1)))
    return counts[1] - counts[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("revision", help="the earlier revision")
    parser.add_argument("new", nargs="?", help="the later revision (default: this working tree)")
    parser.add_argument("--repeats", type=int, default=5, help="compiles per process (the best is kept)")
    parser.add_argument("--rounds", type=int, default=5, help="processes per tree and size, alternating (0: none)")
    parser.add_argument("--instructions", action="store_true", help="also count instructions with callgrind")
    args = parser.parse_args()
    byte_compile()
    with tempfile.TemporaryDirectory() as folder:
        trees = {"old": Path(folder) / "old", "new": Path(folder) / "new" if args.new else ROOT}
        revisions = {"old": args.revision, "new": args.new}
        try:
            for side, tree in trees.items():
                if tree != ROOT:
                    subprocess.run(
                        ["git", "worktree", "add", "--detach", str(tree), revisions[side]], cwd=ROOT, check=True
                    )
            rows = _compare(trees, args)
        finally:
            for tree in trees.values():
                if tree != ROOT:
                    subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)
                    shutil.rmtree(tree, ignore_errors=True)
    print(f"load before: {load()}\n")
    print(f"| spec | {args.revision} | {args.new or 'this tree'} | ratio |")
    print("| --- | --- | --- | --- |")
    for row in rows:
        print(row)


def _compare(trees: dict[str, Path], args) -> list[str]:
    rows = []
    for name, blocks in SIZES.items() if args.rounds else ():
        best: dict[str, list[float]] = {"old": [], "new": []}
        for round_ in range(args.rounds):
            for tree in ("old", "new") if round_ % 2 == 0 else ("new", "old"):
                best[tree].append(min(_times(trees[tree], blocks, args.repeats)))
        old_ms, new_ms = (statistics.median(best[t]) * 1000 for t in ("old", "new"))
        spread = {t: (max(best[t]) - min(best[t])) / statistics.median(best[t]) * 50 for t in best}
        rows.append(
            f"| {name} | {old_ms:,.1f} ms (±{spread['old']:.0f}%) | {new_ms:,.1f} ms (±{spread['new']:.0f}%) "
            f"| {new_ms / old_ms:.3f} |"
        )
    for name, blocks in SIZES.items() if args.instructions else ():
        old_count, new_count = (_instructions(trees[t], blocks) for t in ("old", "new"))
        rows.append(
            f"| {name}, instructions (callgrind) | {old_count / 1e9:.3f} G | {new_count / 1e9:.3f} G "
            f"| {new_count / old_count:.3f} |"
        )
    return rows


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
