"""Smoke tests of the examples: they run end to end for a few steps."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import ROOT

import resdsl


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


TRAIN = ROOT / "examples" / "train.py"
PROGRESS = re.compile(r"^step +(\d+)/(\d+)  loss (\d+\.\d+)  acc +(\d+\.\d)%  ([\d,]+) img/s  lr (\S+)$")
FINAL = re.compile(r"^done: steps (\d+)-(\d+) in [\d.]+ s; final held-out accuracy (\d+\.\d)% of (\d+) images")


def torchrun(*args: str, cwd, script=TRAIN) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script)]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=600, cwd=cwd)


def test_train_options_are_safe_behind_torchrun():
    """argparse reads abbreviations, so an option that is a prefix of two of torchrun's (`--log`) breaks the launch."""
    from torch.distributed.run import get_args_parser

    sys.path.insert(0, str(TRAIN.parent))
    try:
        import train
    finally:
        sys.path.remove(str(TRAIN.parent))
    flags = [flag for action in train.build_parser()._actions for flag in action.option_strings if flag[:2] == "--"]
    assert "--resume" in flags and "--log-every" in flags
    for flag in flags:
        launched = get_args_parser().parse_args(["--standalone", "train.py", flag, "1"])
        assert launched.training_script_args == [flag, "1"], flag
    with pytest.raises(SystemExit):  # what the old `--log` did
        get_args_parser().parse_args(["--standalone", "train.py", "--log", "1"])


@pytest.mark.slow
def test_train_under_torchrun_shows_progress_and_resumes_exactly(tmp_path):
    common = ["cifar_resnet20", "--set", "input=3x8x8", "--set", "classes=10", "--steps", "6", "--batch-size", "8"]
    first = torchrun(
        *common,
        *("--log-every", "2", "--eval-every", "3", "--save-every", "3", "--out", "run", "--metrics", "run.jsonl"),
        *("--report", "digests"),
        cwd=tmp_path,
    )
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-3000:]
    lines = first.stdout.splitlines()
    assert lines[0].startswith("cifar_resnet20: ") and "2 processes × batch 8" in lines[0]
    progress = [PROGRESS.match(line) for line in lines if line.startswith("step ")]
    assert [int(m.group(1)) for m in progress] == [2, 4, 6] and all(m.group(2) == "6" for m in progress)
    for match in progress:
        assert 0 < float(match.group(3)) < 10 and 0 <= float(match.group(4)) <= 100
        assert int(match.group(5).replace(",", "")) > 0 and float(match.group(6)) > 0
    assert any(line.startswith("eval at step 3: held-out accuracy ") for line in lines)
    final = FINAL.match(lines[-2])
    assert final and final.group(1, 2) == ("1", "6") and int(final.group(4)) == 359
    assert lines[-1].startswith("saved run/model.pt")
    # DDP keeps the weights identical on both ranks, and the final weights load into the generated module.
    assert (tmp_path / "digests" / "rank0.txt").read_text() == (tmp_path / "digests" / "rank1.txt").read_text()
    model = resdsl.create_model("cifar_resnet20", input="3x8x8", num_classes=10)
    model.load_state_dict(torch.load(tmp_path / "run" / "model.pt"), strict=True)
    checkpoint = torch.load(tmp_path / "run" / "checkpoint-000003.pt")
    assert checkpoint["step"] == 3 and {"model", "optimizer", "scheduler"} <= set(checkpoint)

    resumed = torchrun(
        *common, "--resume", "run/checkpoint-000003.pt", "--log-every", "1", "--metrics", "resumed.jsonl", cwd=tmp_path
    )
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
    assert "resuming from run/checkpoint-000003.pt at step 3" in resumed.stdout
    assert [int(PROGRESS.match(line).group(1)) for line in resumed.stdout.splitlines() if line.startswith("step ")] == [
        4,
        5,
        6,
    ]
    uninterrupted = [json.loads(line) for line in (tmp_path / "run.jsonl").read_text().splitlines()]
    continued = [json.loads(line) for line in (tmp_path / "resumed.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in continued] == [4, 5, 6]
    for before, after in zip(uninterrupted[3:], continued, strict=True):
        assert after["loss"] == pytest.approx(before["loss"], rel=1e-5, abs=1e-6)
        assert after["lr"] == pytest.approx(before["lr"], rel=1e-9)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="lists threads from /proc")
def test_train_under_torchrun_joins_gloo_threads_before_shutdown(tmp_path):
    """Gloo's threads left running into interpreter shutdown can abort a rank that has finished its work."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import os, sys\n"
        f"sys.path.insert(0, {str(TRAIN.parent)!r})\n"
        "import train\n"
        "train.main(sys.argv[1:])\n"
        "names = [open(f'/proc/self/task/{task}/comm').read().strip() for task in os.listdir('/proc/self/task')]\n"
        "open(f'threads-{os.environ[\"RANK\"]}.txt', 'w').write('\\n'.join(sorted(names)))\n"
    )
    common = ["cifar_resnet20", "--set", "input=3x8x8", "--set", "classes=10", "--steps", "2", "--batch-size", "8"]
    run = torchrun(*common, cwd=tmp_path, script=probe)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    for rank in (0, 1):
        threads = (tmp_path / f"threads-{rank}.txt").read_text().split()
        assert not [name for name in threads if "gloo" in name], threads


def test_train_reads_an_image_folder(tmp_path):
    """Two classes of 8×8 images (dark squares, bright squares) in DIR/CLASS/ files, a tenth held out."""
    from PIL import Image

    generator = torch.Generator().manual_seed(0)
    for name, level in (("dark", 40), ("bright", 215)):
        (tmp_path / "images" / name).mkdir(parents=True)
        for index in range(20):
            noise = torch.randint(-30, 30, (8, 8, 3), generator=generator)
            pixels = (level + noise).clamp(0, 255).to(torch.uint8).numpy()
            Image.fromarray(pixels).save(tmp_path / "images" / name / f"{index}.png")
    command = [sys.executable, str(TRAIN), "cifar_resnet20", "--set", "input=3x8x8", "--set", "classes=2"]
    run = subprocess.run(
        [*command, "--data", str(tmp_path / "images"), "--steps", "4", "--batch-size", "8", "--log-every", "2"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"{tmp_path / 'images'} (2 classes): 36 training and 4 held-out images" in run.stdout
    final = FINAL.match(run.stdout.splitlines()[-1])
    assert final and int(final.group(4)) == 4
