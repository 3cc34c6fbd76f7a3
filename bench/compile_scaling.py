"""Row 2: compile time and peak memory against the number of blocks.

parse → IR → passes → PyTorch source, in-process, for the CIFAR ResNets of 20
to 1202 layers and a generated spec of 10,000 blocks. Each size runs in its
own process so that its peak memory is its own. Also `resdsl build` of
cifar_resnet1202 as a whole process, against `python -c "import torch"`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from common import Stat, interleaved, process, python

from specs import CIFAR_DEPTHS, cifar_resnet, cifar_spec

GOAL_1202_S = 1.5
SIZES = [(f"cifar_resnet{d}", 3 * ((d - 2) // 6)) for d in CIFAR_DEPTHS] + [("generated", 10_000)]


def compile_once(text: str) -> str:
    import resdsl

    # The generated 10,000-block spec is past the default limits on purpose: this row measures scaling.
    return resdsl.compile(text, limits={"blocks": 10**6, "nodes": 10**7}).torch_source


def measure_one(blocks: int, repeats: int) -> dict:
    """Times and peak traced memory of compiling a `blocks`-block spec (run in a fresh process)."""
    text = cifar_spec(blocks)
    compile_once(cifar_spec(3))  # imports and parser tables, paid once per process
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        compile_once(text)
        times.append(time.perf_counter() - start)
    tracemalloc.start()
    compile_once(text)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"blocks": blocks, "times": times, "peak_bytes": peak}


def run(repeats: int = 5) -> dict:
    sizes = []
    for name, blocks in SIZES:
        out = subprocess.run(
            [python(), __file__, "--one", str(blocks), str(repeats)],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        )
        data = json.loads(out.stdout)
        stat = Stat(data["times"])
        sizes.append(
            {
                "name": name,
                "blocks": blocks,
                **stat.as_dict(),
                "per_block": stat.median / blocks,
                "peak_bytes": data["peak_bytes"],
            }
        )
    with tempfile.TemporaryDirectory() as folder:
        spec = Path(folder) / "cifar_resnet1202.res"
        spec.write_text(cifar_resnet(1202))
        build = [python(), "-m", "resdsl", "build", str(spec), "-o", str(Path(folder) / "out.py")]
        process(build)()  # parser tables cached, as in any run after the first
        whole = interleaved(
            {"build cifar_resnet1202": process(build), "import torch": process([python(), "-c", "import torch"])},
            repeats,
        )
    return {"sizes": sizes, "whole_process": {name: stat.as_dict() for name, stat in whole.items()}}


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        print(json.dumps(measure_one(int(sys.argv[2]), int(sys.argv[3]))))
    else:
        print(json.dumps(run(), indent=2))
