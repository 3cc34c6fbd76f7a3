"""The command line's conventions, as ruff, black and mypy users expect them: one test per convention."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT, SPECS, run_cli

from resdsl.cli import _parser, main

MESSY = "network n{input 3x32x32;conv1=conv( 8,k=3 )\ngap;flatten;fc=linear(10)}\n"
BAD = "network n {\n  input 3x32x32\n  conv1 = cnov(8, k=3)\n}\n"

# The bundled models a completion of `resnet5` offers: torchvision's, the paper's v1 and timm's variants.
RESNET5 = ["resnet50", "resnet50_gn", "resnet50_v1", "resnet50c", "resnet50d", "resnet50s", "resnet50t"]


def run_stdin(*args: str, text: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "resdsl", *args], input=text, capture_output=True, text=True, cwd=ROOT, timeout=120
    )


# -- `-` reads the spec from standard input ----------------------------------------------


def test_dash_reads_the_spec_from_standard_input():
    spec = (SPECS / "resnet18.res").read_text()
    check = run_stdin("check", "-", text=spec)
    assert check.returncode == 0, check.stderr
    assert check.stdout.startswith("ok: resnet18: 11,689,512 parameters")
    ir = run_stdin("build", "-", "--emit", "ir", text=spec)
    assert ir.stdout.startswith("network resnet18")
    # Mistakes point at <stdin>, with the line and a caret.
    bad = run_stdin("check", "-", text=BAD)
    assert bad.returncode == 1
    assert "--> <stdin>:3:11" in bad.stderr and "^^^^" in bad.stderr
    # fmt - writes the canonical text to standard output.
    fmt = run_stdin("fmt", "-", text=MESSY)
    assert fmt.returncode == 0
    assert fmt.stdout.startswith("network n {\n  input 3x32x32\n  conv1 = conv(8, k=3)\n")
    assert run_stdin("fmt", "--check", "-", text=MESSY).returncode == 1
    assert run_stdin("fmt", "--check", "-", text=fmt.stdout).returncode == 0


# -- bundled model names wherever a spec path goes ----------------------------------------


def test_bundled_model_names_work_wherever_a_spec_path_does(tmp_path, capsys):
    assert main(["check", "resnet18"]) == 0
    assert capsys.readouterr().out.startswith("ok: resnet18: 11,689,512 parameters")
    assert main(["summary", "resnet50", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["params"] == 25_557_032
    assert main(["build", "cifar_resnet20", "--emit", "ir"]) == 0
    by_name = capsys.readouterr().out
    by_path = main_output(["build", str(SPECS / "cifar_resnet20.res"), "--emit", "ir"], capsys)
    assert by_name == by_path.replace(str(SPECS) + "/", "")  # the same IR; locations name the bundled file
    assert main(["render", "resnet18", "-o", str(tmp_path / "r18.dot")]) == 0
    assert (tmp_path / "r18.dot").read_text().startswith("digraph resnet18 {")
    # fmt on a bundled model prints it (the installed spec is never rewritten); --check checks it.
    assert main(["fmt", "resnet18"]) == 0
    assert capsys.readouterr().out == (SPECS / "resnet18.res").read_text()
    assert main(["fmt", "--check", "resnet18"]) == 0
    # An unknown name says which bundled model was meant.
    assert main(["summary", "resnet51"]) == 1
    err = capsys.readouterr().err
    assert "error[E0119]: no bundled model `resnet51`" in err and "did you mean `resnet50`?" in err
    # A path that does not exist stays a missing file, not a model name.
    assert main(["check", "specs/resnet51.res"]) == 1
    assert "error[E0109]" in capsys.readouterr().err


def main_output(argv: list[str], capsys) -> str:
    assert main(argv) == 0
    return capsys.readouterr().out


# -- several files for fmt and check ---------------------------------------------------------


def test_fmt_and_check_take_several_files(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    messy, tidy, bad = tmp_path / "messy.res", tmp_path / "tidy.res", tmp_path / "bad.res"
    messy.write_text(MESSY)
    tidy.write_text((SPECS / "resnet18.res").read_text())
    bad.write_text(BAD)
    assert main(["fmt", "--check", str(messy), str(tidy)]) == 1
    err = capsys.readouterr().err
    assert f"{messy}: not formatted" in err and str(tidy) not in err
    assert main(["fmt", str(messy), str(tidy)]) == 0
    assert capsys.readouterr().err == f"formatted {messy}\n"
    assert main(["fmt", "--check", str(messy), str(tidy)]) == 0

    assert main(["check", str(tidy), str(bad), str(messy)]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "ok: resnet18: 11,689,512 parameters, 1.814 GMACs",
        "ok: n: 322 parameters, 0.000 GMACs",
        "2 of 3 specs valid, 1 with errors",
    ]
    assert err.startswith("error[E0101]: unknown op or block `cnov`") and f"{bad}:3:11" in err


# -- JSON on success, not only on failure ---------------------------------------------------


def test_error_format_json_reports_success_as_json(tmp_path, capsys):
    bad = tmp_path / "bad.res"
    bad.write_text(BAD)
    assert main(["check", "resnet18", "--error-format", "json"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    report = json.loads(out)
    assert report["ok"] is True and report["errors"] == [] and report["warnings"] == []
    assert report["networks"] == [{"spec": "resnet18", "name": "resnet18", "params": 11_689_512, "macs": 1_814_073_344}]

    assert main(["check", "resnet18", str(bad), "--error-format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and [e["code"] for e in report["errors"]] == ["E0101"]
    assert [n["name"] for n in report["networks"]] == ["resnet18"]

    assert main(["fmt", "--check", str(SPECS / "resnet18.res"), "--error-format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"ok": True, "errors": [], "warnings": [], "unformatted": []}


# -- colour: NO_COLOR only when non-empty, FORCE_COLOR honoured -------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    "env, terminal, coloured",
    [
        ({}, True, True),
        ({}, False, False),
        ({"NO_COLOR": ""}, True, True),  # empty: not set, per no-color.org
        ({"NO_COLOR": "1"}, True, False),
        ({"FORCE_COLOR": "1"}, False, True),
        ({"FORCE_COLOR": ""}, False, False),
        ({"FORCE_COLOR": "1", "NO_COLOR": "1"}, False, False),  # NO_COLOR wins
    ],
)
def test_colour_follows_no_color_and_force_color(env, terminal, coloured, tmp_path, monkeypatch):
    bad = tmp_path / "bad.res"
    bad.write_text(BAD)
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    stream = _Terminal() if terminal else io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    assert main(["check", str(bad)]) == 1
    assert "error" in stream.getvalue()
    assert ("\x1b[" in stream.getvalue()) is coloured


# -- no arguments prints the help --------------------------------------------------------------


def test_no_arguments_prints_help():
    result = run_cli()
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.startswith("usage: resdsl")
    for command in ("build", "check", "summary", "render", "run", "fmt", "completion"):
        assert f"\n    {command}" in result.stdout


# -- shell completion, generated from the parser -------------------------------------------------


def _subcommands() -> dict:
    return next(a for a in _parser()._actions if a.dest == "command").choices


def test_bash_completion_completes_commands_options_choices_and_specs(capsys):
    assert main(["completion", "bash"]) == 0
    script = capsys.readouterr().out
    probe = (
        script
        + '\nt() { COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _resdsl; echo "${COMPREPLY[*]}"; }\n'
        + 't resdsl ""\nt resdsl build --em\nt resdsl build --emit ""\nt resdsl summary resnet5\n'
        + "t resdsl check specs/cifar_resnet2\nt resdsl completion z\n"
    )
    run = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].split()[: len(_subcommands())] == list(_subcommands())
    assert lines[1:4] == ["--emit", "torch ir onnx", " ".join(RESNET5)]
    assert lines[4] == "specs/cifar_resnet20.res"
    assert lines[5] == "zsh"


def test_every_option_of_every_command_is_in_each_shell_script(capsys):
    for shell in ("bash", "zsh", "fish"):
        assert main(["completion", shell]) == 0
        script = capsys.readouterr().out
        for name, command in _subcommands().items():
            assert name in script
            for action in command._actions:
                for flag in action.option_strings:
                    # fish spells options without their dashes (`-l emit`, `-s o`)
                    spelled = flag if shell != "fish" else ("-l " + flag[2:] if flag[:2] == "--" else "-s " + flag[1:])
                    assert spelled in script, (shell, name, flag)


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed (scripts/setup.sh installs it)")
def test_zsh_completion_loads_and_registers(tmp_path, capsys):
    assert main(["completion", "zsh"]) == 0
    path = tmp_path / "_resdsl"
    path.write_text(capsys.readouterr().out)
    assert subprocess.run(["zsh", "-n", str(path)], capture_output=True, timeout=60).returncode == 0
    loaded = subprocess.run(
        ["zsh", "-f", "-c", f"autoload -U compinit; compinit -u -D; source {path}; print ${{_comps[resdsl]}}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert loaded.stdout.strip() == "_resdsl", loaded.stderr


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed (scripts/setup.sh installs it)")
def test_fish_completion_completes(tmp_path, capsys):
    assert main(["completion", "fish"]) == 0
    path = tmp_path / "resdsl.fish"
    path.write_text(capsys.readouterr().out)
    probe = (
        f"source {path}; complete -C 'resdsl build --emit '; echo ---; complete -C 'resdsl summary resnet5'; "
        "echo ---; complete -C 'resdsl '"
    )
    run = subprocess.run(["fish", "--no-config", "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert run.returncode == 0, run.stderr
    emit, models, commands = run.stdout.split("---\n")
    assert sorted(line.split("\t")[0] for line in emit.splitlines()) == ["ir", "onnx", "torch"]
    assert sorted(models.split()) == RESNET5
    assert sorted(line.split("\t")[0] for line in commands.splitlines()) == sorted(_subcommands())


# -- build without -o writes text to standard output ---------------------------------------------


def test_build_without_output_writes_source_to_stdout(tmp_path):
    result = run_cli("build", "resnet18", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (ROOT / "tests" / "golden" / "resnet18.py").read_text()
    assert list(tmp_path.iterdir()) == []


# -- help text and wording ---------------------------------------------------------------------


def test_summary_format_has_help(capsys):
    with pytest.raises(SystemExit):
        main(["summary", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--format {table,json} a text table (default), or JSON with every layer and the totals" in help_text


def test_onnx_only_options_agree_in_number(capsys):
    assert main(["build", "resnet18", "--fold-bn"]) == 2
    assert "error: --fold-bn only applies to --emit onnx" in capsys.readouterr().err
    assert main(["build", "resnet18", "--fold-bn", "--seed", "1"]) == 2
    assert "error: --fold-bn, --seed only apply to --emit onnx" in capsys.readouterr().err


# -- a missing optional package is a usage error naming the extra, not a bug ----------------------


@pytest.mark.parametrize(
    "hidden, argv, extra",
    [
        ("onnx", ["build", "resnet18", "--emit", "onnx", "-o", "{tmp}/r18.onnx"], "onnx"),
        ("numpy", ["build", "resnet18", "--emit", "onnx", "-o", "{tmp}/r18.onnx"], "onnx"),
        ("onnxruntime", ["run", "{tmp}/r18.onnx", "--input", "{tmp}/x.npy"], "onnx"),
        ("numpy", ["run", "{tmp}/r18.onnx", "--input", "{tmp}/x.npy"], "onnx"),
    ],
)
def test_missing_optional_package_is_a_usage_error_naming_the_extra(hidden, argv, extra, tmp_path):
    program = (
        f"import sys; sys.modules[{hidden!r}] = None; from resdsl.cli import main; "
        f"sys.exit(main({[a.format(tmp=tmp_path) for a in argv]!r}))"
    )
    run = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert run.returncode == 2, run.stderr
    assert f"needs the Python package {hidden}" in run.stderr
    assert f"pip install 'resdsl[{extra}]'" in run.stderr
    assert "internal error" not in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "r18.onnx").exists()


def test_a_closed_pipe_ends_quietly():
    """`resdsl build resnet18 | head -1`: the reader stops early; that is no bug to report. Its pipe is closed here."""
    read, write = os.pipe()
    os.close(read)
    try:
        run = subprocess.run(
            [sys.executable, "-m", "resdsl", "build", "resnet18"],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            timeout=120,
        )
    finally:
        os.close(write)
    assert (run.returncode, run.stderr) == (141, "")
