"""The command line as a user meets it: outputs, exit codes, and what it imports."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import ROOT, SPECS

from resdsl.cli import main


def test_build_writes_standalone_pytorch_source(cli, tmp_path):
    out = tmp_path / "resnet18.py"
    result = cli("build", str(SPECS / "resnet18.res"), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "11,689,512 parameters" in result.stderr
    # Run the generated file where importing resdsl is impossible.
    program = (
        "import sys; sys.modules['resdsl'] = None\n"
        f"namespace = {{}}; exec(open({str(out)!r}).read(), namespace)\n"
        "import torch\n"
        "model = namespace['Model']().eval()\n"
        "print(tuple(model(torch.zeros(1, 3, 64, 64)).shape))\n"
        "print(sum(p.numel() for p in model.parameters()))\n"
    )
    run = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["(1,", "1000)", "11689512"]
    source = out.read_text()
    assert "resdsl" not in source.split('"""')[2]  # no import of resdsl after the docstring
    assert str(ROOT) not in source


def test_build_writes_text_to_stdout_and_onnx_to_a_file_named_after_the_spec(cli, tmp_path):
    result = cli("build", str(SPECS / "resnet34.res"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('"""') and "class Resnet34(nn.Module):" in result.stdout
    assert list(tmp_path.iterdir()) == []  # nothing dropped into the current folder
    onnx = cli("build", "resnet18", "--emit", "onnx", cwd=tmp_path)
    assert onnx.returncode == 0, onnx.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["resnet18.onnx"] and onnx.stdout == ""


def test_build_emit_ir_to_stdout_is_deterministic(cli):
    first = cli("build", str(SPECS / "resnet18.res"), "--emit", "ir", "-o", "-")
    second = cli("build", str(SPECS / "resnet18.res"), "--emit", "ir", "-o", "-")
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    lines = first.stdout.splitlines()
    assert lines[0] == "network resnet18  # policies: norm=post, shortcut=B"
    assert any("[layer2.0.downsample.0]" in line and "# projections" in line for line in lines)


def test_build_refuses_to_overwrite_its_input(cli, tmp_path):
    spec = tmp_path / "net.res"
    spec.write_text((SPECS / "resnet18.res").read_text())
    result = cli("build", str(spec), "-o", str(spec))
    assert result.returncode == 2
    assert spec.read_text() == (SPECS / "resnet18.res").read_text()


def test_check_ok_and_verbose_lists_inserted_projections(cli):
    result = cli("check", str(SPECS / "resnet18.res"), "-v")
    assert result.returncode == 0
    inserted = [line for line in result.stdout.splitlines() if line.strip().startswith("inserted")]
    assert [line.split()[1] for line in inserted] == [
        "layer2.0.downsample:",
        "layer3.0.downsample:",
        "layer4.0.downsample:",
    ]
    assert "1×1 conv, stride 2 + BN, 64×56×56 → 128×28×28 (shortcut" in inserted[0]


def test_check_verbose_says_which_projections_read_the_pre_activation(capsys):
    assert main(["check", str(SPECS / "preact_resnet164.res"), "--set", "n=1", "-v"]) == 0
    inserted = [line for line in capsys.readouterr().out.splitlines() if line.strip().startswith("inserted")]
    assert len(inserted) == 3
    assert all("1×1 conv" in line and ", reading the block's pre-activation (" in line for line in inserted)


def test_check_verbose_lists_the_adds_a_policy_dropped(capsys):
    assert main(["check", str(SPECS / "mobilenetv2_100.res"), "-v"]) == 0
    dropped = [line.strip() for line in capsys.readouterr().out.splitlines() if "dropped the add" in line]
    assert [line.split()[4] for line in dropped] == [f"blocks.{i}.0:" for i in range(7)]
    assert dropped[1].startswith("dropped the add of blocks.1.0: the shortcut's 16×112×112 and the branch's 24×56×56")
    assert "(shortcut policy drop) at " in dropped[1]
    assert main(["check", str(SPECS / "resnet18.res"), "--set", "shortcut=none", "-v"]) == 0
    dropped = [line.strip() for line in capsys.readouterr().out.splitlines() if "dropped the add" in line]
    assert len(dropped) == 8  # one add in each of resnet18's eight basic blocks
    assert dropped[0].startswith("dropped the add of layer1.0 (shortcut policy none) at ")


def test_check_does_not_import_torch():
    program = (
        "import sys\n"
        "from resdsl.cli import main\n"
        f"code = main(['check', {str(SPECS / 'resnet152.res')!r}])\n"
        "heavy = [m for m in ('torch', 'onnx', 'onnxruntime', 'numpy') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
        "sys.exit(code)\n"
    )
    run = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "HEAVY []" in run.stdout


def test_summary_json_totals(cli):
    result = cli("summary", str(SPECS / "resnet50.res"), "--format", "json")
    assert result.returncode == 0
    data = json.loads(result.stdout)
    assert data["params"] == 25_557_032
    assert data["macs"] == 4_089_184_256
    assert data["layers"][0] == {
        "name": "x",
        "op": "input",
        "shape": [3, 224, 224],
        "params": 0,
        "macs": 0,
        "origin": "spec",
    }
    assert sum(layer["params"] for layer in data["layers"]) == data["params"]


def test_summary_table_says_it_counts_macs_and_offers_flops(cli):
    table = cli("summary", str(SPECS / "resnet18.res")).stdout
    assert "MACs" in table and "1,814,073,344" in table
    flops = cli("summary", str(SPECS / "resnet18.res"), "--flops").stdout
    assert "FLOPs" in flops and "3,628,146,688" in flops


def test_set_overrides_classes_and_policies(cli):
    data = json.loads(cli("summary", str(SPECS / "resnet18.res"), "--format", "json", "--set", "classes=10").stdout)
    assert data["layers"][-1]["shape"] == [10]
    assert data["params"] == 11_689_512 - 990 * 513
    pre = cli("build", str(SPECS / "resnet18.res"), "--emit", "ir", "-o", "-", "--set", "norm=pre")
    assert "policies: norm=pre, shortcut=B" in pre.stdout
    c = json.loads(cli("summary", str(SPECS / "resnet18.res"), "--format", "json", "--set", "shortcut=C").stdout)
    assert c["params"] > 11_689_512  # a projection on every shortcut


@pytest.mark.parametrize("command", ["build", "check", "summary"])
def test_help_everywhere(cli, command):
    result = cli(command, "--help")
    assert result.returncode == 0
    assert "--set" in result.stdout


def test_usage_errors_exit_2(cli):
    assert cli("frobnicate").returncode == 2
    result = cli("check", str(SPECS / "resnet18.res"), "--set", "classes")
    assert result.returncode == 2
    assert "KEY=VALUE" in result.stderr


def test_python_module_entry_point_matches_console_script(tmp_path):
    script = ROOT / ".venv" / "bin" / "resdsl"
    if not script.exists():
        pytest.skip("console script not installed in .venv")
    run = subprocess.run([str(script), "check", str(SPECS / "resnet18.res")], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.startswith("ok: resnet18")


def test_build_emit_ir_prints_by_default(cli, tmp_path):
    result = cli("build", str(SPECS / "resnet18.res"), "--emit", "ir", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith("network resnet18")
    assert list(tmp_path.iterdir()) == []
