"""Smoke tests of the examples: they run end to end for a few steps."""

from __future__ import annotations

import json
import math
import subprocess
import sys

from conftest import ROOT


def test_degradation_experiment_smoke(tmp_path):
    command = [
        sys.executable,
        str(ROOT / "examples" / "degradation.py"),
        "--steps",
        "3",
        "--batch-size",
        "8",
        "--size",
        "8",
        "--warmup",
        "1",
        "--out",
        str(tmp_path),
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads((tmp_path / "degradation.json").read_text())
    assert result["settings"]["warmup"] == 1
    assert sorted(result["losses"]) == ["ResNet-20", "ResNet-56", "plain-20", "plain-56"]
    for losses in result["losses"].values():
        assert len(losses) == 3 and all(math.isfinite(v) and v > 0 for v in losses)
    assert (tmp_path / "degradation.png").stat().st_size > 10_000
