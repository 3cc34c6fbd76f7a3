"""Timing helpers shared by the benchmarks: medians, spreads, interleaved runs, the machine."""

from __future__ import annotations

import compileall
import datetime
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Stat:
    """The median of a sample and its spread ((max - min) / median)."""

    samples: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def spread(self) -> float:
        return (max(self.samples) - min(self.samples)) / self.median if self.median else 0.0

    def as_dict(self) -> dict:
        return {"median": self.median, "spread": self.spread, "n": len(self.samples)}


def interleaved(runs: dict[str, callable], repeats: int) -> dict[str, Stat]:
    """Time each callable `repeats` times, round-robin (the order alternates), so load hits all alike."""
    samples: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for round_ in range(repeats):
        for name in names if round_ % 2 == 0 else reversed(names):
            start = time.perf_counter()
            runs[name]()
            samples[name].append(time.perf_counter() - start)
    return {name: Stat(values) for name, values in samples.items()}


def byte_compile() -> None:
    """Write resdsl's bytecode, as installing a package does.

    An editable install writes it on first import, and never where
    PYTHONDONTWRITEBYTECODE is set: timed processes would then compile
    resdsl's source each time, which no installed tool does.
    """
    compileall.compile_dir(ROOT / "resdsl", quiet=1)


def process(argv: list[str], env: dict | None = None, cwd: Path | None = None) -> callable:
    """A callable that runs a whole process and fails loudly if it does."""

    def run() -> None:
        result = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd or ROOT)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {result.stderr[-2000:]}")

    return run


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f} / {five:.2f}"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    """What a reader needs to compare figures: hardware, OS, versions, date."""
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch_version = "not installed"
    os_name = platform.system()
    try:
        release = dict(line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line)
        os_name = release.get("PRETTY_NAME", os_name).strip('"')
    except OSError:
        pass
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "os": os_name,
        "python": platform.python_version(),
        "torch": torch_version,
        "date": datetime.date.today().isoformat(),
    }


def python() -> str:
    return sys.executable


def write_section(heading: str, section: str) -> None:
    """Replace the `heading` section of docs/benchmarks.md (or append it), leaving the others as they are."""
    import re

    sys.path.insert(0, str(ROOT))
    from resdsl.io import write_atomic

    target = ROOT / "docs" / "benchmarks.md"
    text = target.read_text() if target.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", flags=re.DOTALL | re.MULTILINE)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + section
    write_atomic(target, text)
    print(f"wrote {target.relative_to(ROOT)}", file=sys.stderr)
