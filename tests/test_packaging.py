"""The package as a user installs it: the wheel and sdist, a venv without torch, and what pip does with a user's torch.

The slow test builds both distributions from a copy of the repository,
installs the wheel with only its two dependencies into a fresh venv, and runs
what a new user runs first; then asks pip whether `resdsl[torch]` would keep
a torch 2.14.1 that is already installed.
"""

from __future__ import annotations

import email
import os
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest
import tomllib
from conftest import ROOT, copy_tracked
from packaging.requirements import Requirement

import resdsl

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def torch_requirement(requirements: list[str]) -> Requirement:
    return next(r for r in map(Requirement, requirements) if r.name == "torch")


def test_torch_is_a_range_that_holds_the_tested_pin_and_newer_releases():
    extra = torch_requirement(PYPROJECT["project"]["optional-dependencies"]["torch"])
    pins = [
        line for line in (ROOT / "scripts" / "constraints.txt").read_text().splitlines() if line.startswith("torch")
    ]
    assert pins == ["torch==2.13.0"]  # the build setup installs and CI tests
    assert extra.specifier.contains("2.13.0") and extra.specifier.contains("2.13.0+cpu")
    assert all(extra.specifier.contains(v) for v in ("2.14.1", "2.15.0", "2.99"))
    assert not extra.specifier.contains("2.12.1") and not extra.specifier.contains("3.0")
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert "-c scripts/constraints.txt" in setup


def test_version_license_and_typing_are_declared_once():
    project = PYPROJECT["project"]
    assert "version" not in project and project["dynamic"] == ["version"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "resdsl.__version__"}
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["resdsl"]


def _build(source: Path, dist: Path, hook: str) -> Path:
    """Run setuptools' PEP 517 `hook` (build_sdist or build_wheel) in `source`, as pip's build frontend does."""
    script = f"import sys; from setuptools import build_meta; print('BUILT', build_meta.{hook}(sys.argv[1]))"
    run = subprocess.run(
        [sys.executable, "-c", script, str(dist)], cwd=source, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return dist / next(line for line in run.stdout.splitlines() if line.startswith("BUILT ")).split()[1]


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_without_torch(tmp_path):
    source = copy_tracked(tmp_path / "src")
    sdist = _build(source, tmp_path / "dist", "build_sdist")
    wheel = _build(source, tmp_path / "dist", "build_wheel")

    # The sdist: a license, no tests at all rather than some of them.
    with tarfile.open(sdist) as archive:
        names = archive.getnames()
    root = names[0].split("/")[0]
    assert f"{root}/LICENSE" in names and f"{root}/resdsl/py.typed" in names
    assert not [n for n in names if "/tests/" in n or n.endswith("/tests")]
    with zipfile.ZipFile(wheel) as archive:
        listing = archive.namelist()
        metadata = email.message_from_bytes(archive.read(f"resdsl-{resdsl.__version__}.dist-info/METADATA"))
    assert metadata["Version"] == resdsl.__version__ and metadata["License-Expression"] == "MIT"
    assert (
        "resdsl/specs/resnet50.res" in listing and "resdsl/std/blocks.res" in listing and "resdsl/py.typed" in listing
    )
    assert str(torch_requirement(metadata.get_all("Requires-Dist")).specifier) == "<3,>=2.13"

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = str(env_dir / "bin" / "python")
    install = subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-deps", str(wheel), "lark", "networkx"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    user = tmp_path / "user"
    user.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RESDSL_DEBUG")}
    env["NO_COLOR"] = "1"

    def resdsl_cli(*args: str) -> subprocess.CompletedProcess:
        command = [str(env_dir / "bin" / "resdsl"), *args]
        return subprocess.run(command, cwd=user, env=env, capture_output=True, text=True, timeout=300)

    def hint(result: subprocess.CompletedProcess, packages: str, extra: str) -> None:
        assert result.returncode == 2, result.stderr
        assert f"needs the Python packages {packages}, which are not installed" in result.stderr
        assert f"pip install 'resdsl[{extra}]'" in result.stderr
        assert "internal error" not in result.stderr and "Traceback" not in result.stderr

    modules = subprocess.run(
        [
            python,
            "-c",
            "import importlib.util as u; print([m for m in ('torch', 'numpy', 'onnx', 'graphviz') if u.find_spec(m)])",
        ],
        capture_output=True,
        text=True,
    )
    assert modules.stdout.strip() == "[]"  # nothing optional is there
    ok = resdsl_cli("check", "resnet18")
    assert ok.returncode == 0 and ok.stdout.startswith("ok: resnet18: 11,689,512 parameters"), ok.stderr
    assert resdsl_cli("build", "resnet18").stdout.startswith('"""')  # PyTorch source needs no PyTorch
    assert resdsl_cli("render", "resnet18", "-o", "r18.dot").returncode == 0  # DOT needs no graphviz package
    assert (user / "r18.dot").read_text().startswith("digraph resnet18 {")
    assert resdsl_cli("render", "resnet18", "--format", "html").returncode == 0  # the page's script is packaged
    page = (user / "resnet18.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "/*SCRIPT*/" not in page and "expandedStages" in page

    hint(resdsl_cli("build", "resnet18", "--emit", "onnx"), "onnx and numpy", "onnx")
    assert not (user / "resnet18.onnx").exists()
    (user / "x.npy").write_bytes(b"")
    hint(resdsl_cli("run", "r18.onnx", "--input", "x.npy"), "numpy and onnxruntime", "onnx")
    api = subprocess.run(
        [python, "-c", "import resdsl; resdsl.create_model('resnet18')"],
        cwd=user,
        env=env,
        capture_output=True,
        text=True,
    )
    assert api.returncode == 1
    assert api.stderr.strip().splitlines()[-1] == (
        "resdsl.extras.MissingDependency: create_model() needs the Python package torch, which is not installed: "
        "pip install 'resdsl[torch]'"
    )

    # A user's torch 2.14.1 is kept by `pip install resdsl[torch]`. pip's resolver reads only the metadata of
    # what is installed, so a second venv holds torch 2.14.1 and the other requirements as metadata alone.
    user_env = tmp_path / "user-venv"
    venv.create(user_env, with_pip=True)
    user_python = str(user_env / "bin" / "python")
    site = subprocess.run(
        [user_python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], capture_output=True, text=True
    ).stdout.strip()
    for name, version in (("torch", "2.14.1"), ("numpy", "2.1.0"), ("lark", "1.2.2"), ("networkx", "3.4")):
        info = Path(site) / f"{name}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        (info / "INSTALLER").write_text("pip\n")
        (info / "RECORD").write_text("")
    dry_run = subprocess.run(
        [user_python, "-m", "pip", "install", "--dry-run", "--no-index", f"{wheel}[torch]"],
        env={**env, "PIP_CONFIG_FILE": os.devnull},  # this machine's pip settings play no part
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert dry_run.returncode == 0, dry_run.stderr[-3000:]
    assert "Requirement already satisfied: torch<3,>=2.13" in dry_run.stdout and "(2.14.1)" in dry_run.stdout
    assert dry_run.stdout.strip().splitlines()[-1] == f"Would install resdsl-{resdsl.__version__}"
