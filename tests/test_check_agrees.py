"""`check` is authoritative: every spec error a backend could meet, the passes find first.

On every spec of the error catalogue (tests/errors) and of tests/data, `check`,
`build --emit torch`, `build --emit onnx` and `render -o x.dot` give the same
error codes, or all succeed. A catalogue spec's `# args:` go to all four; the
arguments of a `# run:` line belong to its one command (weights files for
ONNX), so the spec itself is checked without them.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from resdsl.cli import main

ROOT = Path(__file__).resolve().parent
SPECS = sorted((ROOT / "errors").glob("E*.res")) + sorted((ROOT / "data").rglob("*.res"))


def _args(spec: Path) -> list[str]:
    first = spec.read_bytes().split(b"\n", 1)[0].decode("utf-8", "replace")
    return shlex.split(first.removeprefix("# args:")) if first.startswith("# args:") else []


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_command_reports_what_check_reports(spec, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(spec.parent)
    commands = {
        "check": ["check"],
        "torch": ["build", "--emit", "torch", "-o", str(tmp_path / "net.py")],
        "onnx": ["build", "--emit", "onnx", "-o", str(tmp_path / "net.onnx")],
        "dot": ["render", "-o", str(tmp_path / "net.dot")],
    }
    outcomes = {}
    for name, command in commands.items():
        code = main([*command, spec.name, *_args(spec), "--error-format", "json"])
        out = capsys.readouterr().out
        codes = [e["code"] for e in json.loads(out)["errors"]] if code == 1 else []
        outcomes[name] = (code, tuple(codes))
    assert len(set(outcomes.values())) == 1, outcomes
    if spec.parent.name == "errors" and not spec.read_text("utf-8", "replace").startswith("# run:"):
        assert outcomes["check"] == (1, outcomes["check"][1]) and spec.stem in outcomes["check"][1]
