"""The error catalogue: one bad spec per error code, its rendered message as a golden file.

Warnings (W0xxx) are catalogued the same way: `resdsl check` succeeds and prints them.
tests/errors/E0xxx.res is the spec (a first line `# args: ...` adds arguments to
`resdsl check`; `# run: COMMAND ...` runs another subcommand on the spec);
E0xxx.expected is what resdsl prints. Rewrite the goldens
with `pytest tests/test_errors.py --update-goldens`. docs/errors.md shows the
same specs and messages, and the tests below keep it complete.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

import resdsl
from resdsl.cli import main
from resdsl.diagnostics import ResdslError

ROOT = Path(__file__).resolve().parent.parent
ERRORS = ROOT / "tests" / "errors"
CASES = sorted(ERRORS.glob("E*.res"))
CODES = [p.stem for p in CASES]
WARNINGS = sorted(ERRORS.glob("W*.res"))


def run_check(case: Path, capsys, monkeypatch, *extra: str) -> tuple[int, str, str]:
    monkeypatch.chdir(ERRORS)
    monkeypatch.setenv("NO_COLOR", "1")
    first = case.read_bytes().split(b"\n", 1)[0].decode("utf-8", "replace")
    command, args = "check", []
    if first.startswith("# args:"):
        args = shlex.split(first.removeprefix("# args:"))
    elif first.startswith("# run:"):
        command, *args = shlex.split(first.removeprefix("# run:"))
    code = main([command, case.name, *args, *extra])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("case", CASES, ids=CODES)
def test_error_golden(case, capsys, monkeypatch, update_goldens):
    code, _, err = run_check(case, capsys, monkeypatch)
    assert code == 1
    assert err.startswith(f"error[{case.stem}]")
    golden = case.with_suffix(".expected")
    if update_goldens:
        golden.write_text(err)
    assert err == golden.read_text()


@pytest.mark.parametrize("case", CASES, ids=CODES)
def test_error_json(case, capsys, monkeypatch):
    code, out, err = run_check(case, capsys, monkeypatch, "--error-format", "json")
    assert code == 1 and not err
    errors = json.loads(out)["errors"]
    assert errors[0]["code"] == case.stem
    assert all(e["message"] for e in errors)


# Codes only the Python API can raise, each with its golden message.
API_ONLY = {"E0119": lambda: resdsl.create_model("resnet5")}


@pytest.mark.parametrize("case", WARNINGS, ids=[p.stem for p in WARNINGS])
def test_warning_golden(case, capsys, monkeypatch, update_goldens):
    code, out, err = run_check(case, capsys, monkeypatch)
    assert code == 0 and out.startswith("ok: ")
    assert err.startswith(f"warning[{case.stem}]")
    golden = case.with_suffix(".expected")
    if update_goldens:
        golden.write_text(err)
    assert err == golden.read_text()
    code, out, err = run_check(case, capsys, monkeypatch, "--error-format", "json")
    report = json.loads(out)
    assert code == 0 and not err and report["ok"] is True
    assert [w["code"] for w in report["warnings"]] == [case.stem] and report["warnings"][0]["severity"] == "warning"


def test_every_code_in_the_compiler_has_a_case():
    used = set()
    for path in (ROOT / "resdsl").rglob("*.py"):
        used |= set(re.findall(r'"([EW]0\d{3})"', path.read_text()))
    assert used == set(CODES) | set(API_ONLY) | {p.stem for p in WARNINGS}


@pytest.mark.parametrize("code", sorted(API_ONLY))
def test_api_only_error_golden(code, update_goldens):
    with pytest.raises(ResdslError) as info:
        API_ONLY[code]()
    rendered = info.value.render() + "\n"
    assert rendered.startswith(f"error[{code}]")
    golden = ERRORS / f"{code}.expected"
    if update_goldens:
        golden.write_text(rendered)
    assert rendered == golden.read_text()
    section = (ROOT / "docs" / "errors.md").read_text().split(f"\n## {code}:", 1)[1].split("\n## ", 1)[0]
    assert rendered.strip() in section


@pytest.mark.parametrize("case", CASES + WARNINGS, ids=CODES + [p.stem for p in WARNINGS])
def test_docs_show_each_case(case):
    section = (ROOT / "docs" / "errors.md").read_text().split(f"\n## {case.stem}:", 1)
    assert len(section) == 2, f"docs/errors.md has no section for {case.stem}"
    body = section[1].split("\n## ", 1)[0]
    spec = case.read_bytes().decode("utf-8", "replace")
    if len(spec) < 2000:  # long specs (E0008) are described, not shown
        assert spec.strip() in body
    assert case.with_suffix(".expected").read_text().strip() in body
