"""Every command in README.md runs as written, in a fresh copy of the repository, after the setup.

Commands are the lines of the README's shell blocks and the inline code that
is a whole command line, a program and its arguments (`resdsl render
specs/resnet18.res -o ...`, not a mention of `resdsl render`); the Python
blocks run as scripts after them. The setup's own commands and the two that run
the test suite and the benchmarks are listed in SKIPPED, each with why.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, copy_tracked

README = (ROOT / "README.md").read_text(encoding="utf-8")
PROGRAMS = ("resdsl", "torchrun", "python", ".venv/bin/python", "bash", "pip", "ruff", "cat", "source")
SKIPPED = {
    "bash scripts/run.sh": "the setup: it created the environment these commands run in",
    "bash scripts/test.sh": "the setup and the test suite this test belongs to",
    ".venv/bin/python -m pytest --update-goldens": "the test suite itself",
    ".venv/bin/python -m pytest --zoo tests/test_timm_zoo.py tests/test_timm_resnetv2.py": "every timm model's "
    "logits at full size: the better part of an hour",
    ".venv/bin/python bench/run_all.py": "the benchmarks take many minutes; they are run by hand",
    "pip install .": "installs the package over the environment's editable install (the setup's job)",
    "pip install -c scripts/constraints.txt ...": "the form of the setup's install, `...` standing for its arguments",
}


def _blocks() -> list[tuple[str, str]]:
    """(language, body) of each fenced block."""
    return re.findall(r"^```(\w*)\n(.*?)^```", README, flags=re.S | re.M)


def shell_commands() -> list[str]:
    commands = []
    for language, body in _blocks():
        if language:
            continue
        for line in body.splitlines():
            command = re.sub(r"\s+#\s.*$", "", line).strip()  # a trailing `# comment`
            if command.startswith(PROGRAMS):
                commands.append(command)
    prose = re.sub(r"^```.*?^```", "", README, flags=re.S | re.M)
    for span in re.findall(r"`([^`]+)`", prose):
        command = " ".join(span.split())
        mention = command.startswith("resdsl ") and len(command.split()) == 2  # "`resdsl render` draws ..."
        if command.startswith(tuple(p + " " for p in PROGRAMS)) and not mention:
            commands.append(command)
    return commands


def test_the_extraction_finds_the_readme_commands():
    commands = shell_commands()
    assert len(commands) >= 25
    assert "resdsl run resnet50.onnx --input x.npy -o logits.npy" in commands
    assert any(c.startswith("torchrun --standalone --nproc_per_node=2 examples/train.py") for c in commands)
    assert set(SKIPPED) <= set(commands), "a skipped command is no longer in the README: update SKIPPED"
    assert [language for language, _ in _blocks()].count("python") == 2


@pytest.mark.slow
def test_every_readme_command_runs_as_written(tmp_path):
    clone = copy_tracked(tmp_path / "clone")
    subprocess.run(["git", "init", "-q"], cwd=clone, check=True)  # a clone: .gitignore applies (to ruff too)
    (clone / ".venv").symlink_to(ROOT / ".venv")  # what the setup made
    bin_dir = str(ROOT / ".venv" / "bin")
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ["PATH"], "NO_COLOR": "1"}
    env.pop("PYTHONPATH", None)
    failures = []
    for command in shell_commands():
        if command in SKIPPED:
            continue
        run = subprocess.run(
            ["bash", "-c", command], cwd=clone, env=env, capture_output=True, text=True, timeout=600, stdin=None
        )
        if run.returncode != 0:
            failures.append(f"$ {command}\n(exit {run.returncode})\n{run.stdout[-1500:]}{run.stderr[-1500:]}")
    for number, (language, body) in enumerate(_blocks()):
        if language != "python":
            continue
        script = tmp_path / f"readme_block_{number}.py"
        script.write_text(body)
        run = subprocess.run(
            [sys.executable, str(script)], cwd=clone, env=env, capture_output=True, text=True, timeout=600
        )
        if run.returncode != 0:
            failures.append(f"python block {number}:\n{body}\n{run.stderr[-1500:]}")
    assert not failures, "\n\n".join(failures)
    # What the commands say they make is there.
    for made in ("build/resnet50.py", "resnet18.png", "r50.svg", "w.pt", "resnet50.onnx", "logits.npy"):
        assert (clone / made).is_file(), made
    assert (clone / "run" / "model.pt").is_file()


def test_readme_python_block_prints_the_numbers_it_shows():
    """The block's comments state parameters and MACs: they are the compiler's."""
    import resdsl

    net = resdsl.compile(ROOT / "specs" / "resnet50.res")
    assert "print(net.params, net.macs)  # 25557032 4089184256" in README
    assert (net.params, net.macs) == (25557032, 4089184256)
    assert Path(ROOT / "scripts" / "constraints.txt").read_text().count("torch==") == 1
