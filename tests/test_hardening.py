"""Hardening: error reporting on every subcommand, limits, safety of generated code, atomic and
deterministic outputs."""

from __future__ import annotations

import ast as pyast
import io
import json
import keyword
import os
import subprocess
import sys
from pathlib import Path

import pytest

import resdsl
from resdsl import io as resdsl_io
from resdsl.cli import _parser, main
from resdsl.diagnostics import ResdslError

ROOT = Path(__file__).resolve().parent.parent
# The subcommands that read a spec (not `run`, which takes an ONNX model).
SUBCOMMANDS = sorted(
    name
    for name, sub in next(a for a in _parser()._actions if a.dest == "command").choices.items()
    if any(a.dest == "spec" for a in sub._actions)
)

THREE_MISTAKES = """network n {
  input 3x32x32
  conv1 = conv(16, k=3, bias=1)
  conv2 = cnov(16, k=3)
  conv3 = conv(16, kernal=3)
}
"""


def codes(spec, **kwargs) -> list[str]:
    with pytest.raises(ResdslError) as info:
        resdsl.compile(spec, **kwargs)
    return [d.code for d in info.value.diagnostics]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


# -- reporting ------------------------------------------------------------------


@pytest.fixture
def bad_spec(tmp_path) -> Path:
    path = tmp_path / "bad.res"
    path.write_text(THREE_MISTAKES)
    return path


def test_independent_errors_are_reported_together_in_order(bad_spec, capsys):
    assert main(["check", str(bad_spec)]) == 1
    err = capsys.readouterr().err
    assert [line.split("]")[0] for line in err.splitlines() if line.startswith("error[")] == [
        "error[E0107",
        "error[E0101",
        "error[E0102",
    ]
    assert err.index("bad.res:3:") < err.index("bad.res:4:") < err.index("bad.res:5:")


def test_a_shape_error_is_not_repeated_downstream():
    text = "network n {\n  input 3x8x8\n  conv(8, k=3, groups=3)\n  gap\n  flatten\n  fc = linear(2)\n}\n"
    assert codes(text) == ["E0204"]


@pytest.mark.parametrize("command", [c for c in SUBCOMMANDS if c != "fmt"])  # fmt only parses
def test_every_subcommand_reports_json(command, bad_spec, capsys):
    assert main([command, str(bad_spec), "--error-format", "json"]) == 1
    out = capsys.readouterr()
    errors = json.loads(out.out)["errors"]
    assert [e["code"] for e in errors] == ["E0107", "E0101", "E0102"]
    assert errors[0]["location"]["line"] >= 1 and errors[0]["help"] is not None


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_reports_syntax_errors_located(command, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    spec = tmp_path / "broken.res"
    spec.write_text("network n {\n  input 3x8x8\n  conv(8 k=3)\n}\n")
    assert main([command, str(spec)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error[E0001]") and "broken.res:3:10" in err and "^" in err


def test_colour_only_on_a_terminal_and_never_with_no_color(bad_spec, monkeypatch, capsys):
    monkeypatch.delenv("NO_COLOR", raising=False)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    main(["check", str(bad_spec)])
    assert "\x1b[" in terminal.getvalue()

    monkeypatch.setenv("NO_COLOR", "1")
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    main(["check", str(bad_spec)])
    assert "error[E0107]" in terminal.getvalue() and "\x1b[" not in terminal.getvalue()

    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal
    main(["check", str(bad_spec)])
    assert "error[E0107]" in sys.stderr.getvalue() and "\x1b[" not in sys.stderr.getvalue()


# -- limits -----------------------------------------------------------------------

STD = 'use "std/blocks.res"\n'


@pytest.mark.parametrize(
    "body, code",
    [
        ("conv1 = conv(1000000000, k=3)", "E0120"),
        ("conv1 = conv(64, k=3)\n layer1 = basic(64) x 1000000", "E0120"),
        ("conv1 = conv(64, k=3)\n layer1 = basic(64) x 60000\n layer2 = basic(64) x 60000", "E0120"),
        ("conv1 = conv(64, k=100000)", "E0120"),
        ("conv1 = conv(64, k=65, p=0)", "E0201"),
        ("conv1 = conv(60000, k=3)\n conv2 = conv(60000, k=3)", "E0120"),
        ("conv1 = conv(8, k=1, p=100000)", "E0120"),
    ],
)
def test_absurd_models_are_refused_before_building(body, code):
    spec = STD + "network n {\n input 3x32x32\n " + body + "\n}\n"
    assert codes(spec) == [code]


def test_absurd_input_is_refused():
    assert codes("network n { input 3x1000000x1000000\n conv(8, k=3) }") == ["E0120"]
    assert codes("network n { input 100000x8x8\n conv(8, k=3) }") == ["E0120"]


def test_limits_can_be_raised(tmp_path, capsys):
    spec = tmp_path / "wide.res"
    spec.write_text("network wide {\n  input 3x8x8\n  conv1 = conv(100000, k=1)\n}\n")
    assert main(["check", str(spec)]) == 1
    assert "--limit channels=100000" in capsys.readouterr().err
    assert main(["check", str(spec), "--limit", "channels=100000"]) == 0
    assert resdsl.compile(spec, limits={"channels": 100_000}).params == 500_000  # conv weights and BatchNorm
    assert codes(STD + "network n { input 3x8x8\n conv(8, k=1)\n l = basic(8) x 3 }", limits={"blocks": 2}) == ["E0120"]
    assert main(["check", str(spec), "--limit", "channels"]) == 2  # not NAME=VALUE: a usage error
    assert main(["check", str(spec), "--limit", "channels=-4"]) == 1


def test_includes_of_directories_missing_files_and_cycles(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "a.res").write_text('use "b.res"\nblock a1(p) { conv(p, k=1) }\n')
    (tmp_path / "b.res").write_text('use "a.res"\nblock b1(p) { conv(p, k=1) }\n')
    for use, code in [
        ('"lib"', "E0109"),
        ('"nothing.res"', "E0109"),
        ('"a.res"', "E0110"),
        ('"' + "x" * 5000 + '.res"', "E0109"),
        ('"std/../grammar.lark"', "E0109"),
    ]:
        spec = tmp_path / "net.res"
        spec.write_text(f"use {use}\nnetwork n {{ input 3x8x8\n conv(8, k=1) }}\n")
        assert codes(spec) == [code], use
    assert codes(tmp_path / "lib") == ["E0109"]


# -- safety --------------------------------------------------------------------------

HOSTILE = [
    *keyword.kwlist,
    "self",
    "__init__",
    "__class__",
    "__import__",
    "forward",
    "torch",
    "nn",
    "super",
    "downsample",
    "identity2",
    "training",
    "state_dict",
    "x",
    "out",
]
HOSTILE_PLACES = {
    "layer": "network n {{ input 3x8x8\n {0} = conv(8, k=3) }}",
    "value": "block b(p) {{ let {0} = p\n conv({0}, k=3) }}\nnetwork n {{ input 3x8x8\n l = b(8) }}",
    "parameter": "block b({0}) {{ conv({0}, k=3) }}\nnetwork n {{ input 3x8x8\n l = b(8) }}",
    "tensor": "block b(p) {{ c = conv(p, k=3)\n {0} = add input }}\nnetwork n {{ input 8x8x8\n l = b(8) }}",
    "setting": "network n {{ input 3x8x8\n let {0} = 8\n conv({0}, k=3) }}",
}


@pytest.mark.parametrize("place", sorted(HOSTILE_PLACES))
@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_never_reach_generated_code(place, name):
    spec = HOSTILE_PLACES[place].format(name)
    try:
        net = resdsl.compile(spec)
    except ResdslError as exc:
        assert exc.diagnostics[0].code in ("E0106", "E0001")
        return
    # Only names that are harmless in generated code get through (the .res keyword `x` is not one).
    pytest.fail(f"`{name}` as a {place} compiled:\n{net.torch_source}")


def test_strings_reach_generated_code_only_as_literals():
    payload = "__import__('os').system('echo pwned')\n\"; import os #"
    spec = (
        'block b(p, note="") { conv(p, k=3) }\n'
        'network n { input 3x8x8\n l = b(8, note="' + payload.replace('"', "").replace("\n", " ") + '") }'
    )
    net = resdsl.compile(spec)
    tree = pyast.parse(net.torch_source)
    calls = {
        node.func.id for node in pyast.walk(tree) if isinstance(node, pyast.Call) and isinstance(node.func, pyast.Name)
    }
    assert not calls & {"__import__", "exec", "eval", "compile", "open"}
    imports = [pyast.unparse(n) for n in pyast.walk(tree) if isinstance(n, (pyast.Import, pyast.ImportFrom))]
    assert imports[:2] == ["import torch", "from torch import nn"]
    assert set(imports[2:]) <= {"from torch.nn import functional as F"}
    constants = [n.value for n in pyast.walk(tree) if isinstance(n, pyast.Constant) and isinstance(n.value, str)]
    assert any("echo pwned" in c for c in constants)  # the payload is inert data


def test_nothing_from_a_spec_reaches_eval_or_exec():
    users = []
    for path in sorted((ROOT / "resdsl").rglob("*.py")):
        for node in pyast.walk(pyast.parse(path.read_text())):
            if isinstance(node, pyast.Call) and isinstance(node.func, pyast.Name) and node.func.id in ("eval", "exec"):
                users.append(path.relative_to(ROOT).as_posix())
    # The one exec runs the PyTorch backend's own generated source (tested above to be injection-free).
    assert users == ["resdsl/backends/torch_src.py"]


# -- files --------------------------------------------------------------------------


def _resnet18(tmp_path) -> Path:
    spec = tmp_path / "net.res"
    spec.write_text((ROOT / "specs" / "resnet18.res").read_text())
    return spec


def test_failed_build_keeps_the_previous_output(tmp_path):
    spec = _resnet18(tmp_path)
    out = tmp_path / "model.py"
    assert main(["build", str(spec), "-o", str(out)]) == 0
    good = out.read_bytes()
    spec.write_text(spec.read_text().replace("conv(64, k=7, s=2)", "conv(64, k=7, s=)"))
    assert main(["build", str(spec), "-o", str(out)]) == 1
    assert out.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.py", "net.res"]


@pytest.mark.parametrize("failure", [OSError("disk full"), KeyboardInterrupt()])
def test_interrupted_write_leaves_old_file_and_no_temporary(tmp_path, monkeypatch, failure):
    target = tmp_path / "model.py"
    target.write_text("previous good output\n")

    def broken_fsync(fd):
        raise failure

    monkeypatch.setattr(resdsl_io.os, "fsync", broken_fsync)
    with pytest.raises(type(failure)):
        resdsl_io.write_atomic(target, "x" * 100_000)
    assert target.read_text() == "previous good output\n"
    assert [p.name for p in tmp_path.iterdir()] == ["model.py"]


def test_build_refuses_to_overwrite_its_input(tmp_path, capsys):
    spec = _resnet18(tmp_path)
    before = spec.read_bytes()
    (tmp_path / "link.res").symlink_to(spec)
    for output in (str(spec), str(tmp_path / "link.res"), str(tmp_path / "." / "net.res")):
        assert main(["build", str(spec), "-o", output]) == 2
        assert spec.read_bytes() == before
    assert "refusing to overwrite" in capsys.readouterr().err


# -- determinism -------------------------------------------------------------------


OUTPUTS = {
    "torch": ["build", "--emit", "torch"],
    "ir": ["build", "--emit", "ir"],
    "onnx": ["build", "--emit", "onnx"],
    "dot": ["render"],
}


def _output_bytes(tmp_path, seed: str, kind: str, spec: str) -> bytes:
    out = tmp_path / f"{seed}.{kind}"
    env = {**os.environ, "PYTHONHASHSEED": seed}
    command, *options = OUTPUTS[kind]
    subprocess.run(
        [sys.executable, "-m", "resdsl", command, str(ROOT / "specs" / spec), *options, "-o", str(out)],
        check=True,
        env=env,
        cwd=tmp_path,
        capture_output=True,
    )
    return out.read_bytes()


@pytest.mark.parametrize("kind", sorted(OUTPUTS))
def test_outputs_are_identical_across_hash_seeds(tmp_path, kind):
    outputs = {_output_bytes(tmp_path, seed, kind, "resnext50_32x4d.res") for seed in ("0", "1", "4242")}
    assert len(outputs) == 1


def test_check_summary_and_fmt_do_not_import_torch_or_onnx():
    code = (
        "import sys; from resdsl.cli import main\n"
        "for cmd in ('check', 'summary', 'fmt'):\n"
        "    assert main([cmd, 'specs/resnet50.res']) == 0 if cmd != 'fmt' else main([cmd, '--check', "
        "'specs/resnet50.res']) == 0\n"
        "assert not {'torch', 'onnx', 'onnxruntime'} & set(sys.modules), sys.modules.keys()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, capture_output=True)
