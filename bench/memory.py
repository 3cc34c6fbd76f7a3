"""Row 5: peak RSS of building ResNet-152 through resdsl against constructing the hand-written model (VmHWM, Linux).

Each variant runs in a fresh process that imports torch first, so the figures
compare the building alone on top of the same baseline (`import torch`).
"""

from __future__ import annotations

import statistics
import subprocess
import sys

from common import ROOT, python

PROGRAMS = {
    "import torch only": "import torch",
    "resdsl: compile + to_torch()": (
        f"import torch, resdsl\nresdsl.compile({str(ROOT / 'specs' / 'resnet152.res')!r}).to_torch()"
    ),
    "hand-written ResNet-152": "import torch\nfrom reference_resnet import reference\nreference('resnet152')",
}
# VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over from the parent across fork and exec,
# so a child of a large benchmark process would report the parent's peak.
REPORT = "\nprint(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))"


def peak_kib(program: str) -> int:
    out = subprocess.run(
        [python(), "-c", program + REPORT], capture_output=True, text=True, check=True, cwd=ROOT / "bench"
    )
    return int(out.stdout.split()[-1])


def run(repeats: int = 5) -> dict:
    samples: dict[str, list[int]] = {name: [] for name in PROGRAMS}
    for _ in range(repeats):
        for name, program in PROGRAMS.items():
            samples[name].append(peak_kib(program))
    return {
        name: {"median_mib": statistics.median(v) / 1024, "spread": (max(v) - min(v)) / statistics.median(v)}
        for name, v in samples.items()
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else 5), indent=2))
