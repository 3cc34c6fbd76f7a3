"""Shared fixtures: paths of the model zoo, a CLI runner, and golden files with --update-goldens."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
REFERENCE = Path(__file__).resolve().parent / "reference"
GOLDEN = Path(__file__).resolve().parent / "golden"
# The nets under test are many small ops; on a few shared cores, intra-op
# threads contend and a forward pass runs tens of times slower than on one.
torch.set_num_threads(1)
# Parser tables go to a throwaway folder, not the user's cache (subprocesses inherit it).
if "RESDSL_CACHE_DIR" not in os.environ:
    os.environ["RESDSL_CACHE_DIR"] = tempfile.mkdtemp(prefix="resdsl-test-cache-")
    atexit.register(shutil.rmtree, os.environ["RESDSL_CACHE_DIR"], ignore_errors=True)

TORCHVISION_MODELS = (
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "wide_resnet50_2",
)

# timm's ResNet zoo is bundled whole (tests/timm_resnet.py lists its 80 models and test_timm_zoo.py checks
# each of them). Tests that generate, render, export or run every bundled spec cover the zoo by one spec
# per feature, so that their time does not grow with it: deep stems (resnet18d, resnet50d) and a tiered
# one (resnet14t), SE (seresnet50) with groups (seresnext26t_32x4d), ECA (ecaresnet26t), a pruned network
# (ecaresnet50d_pruned), blur and average-pool anti-aliasing (resnetblur18, resnetaa50), GroupNorm
# (resnet50_gn), ResNet-RS (resnetrs50) and SENet-154's 3x3 projections and narrowed first convs.
TIMM_SAMPLE = (
    "resnet14t",
    "resnet18d",
    "resnet50d",
    "seresnet50",
    "seresnext26t_32x4d",
    "ecaresnet26t",
    "ecaresnet50d_pruned",
    "resnetblur18",
    "resnetaa50",
    "resnet50_gn",
    "resnetrs50",
    "senet154",
)


# timm's resnetv2.py family likewise (tests/timm_resnetv2.py, test_timm_resnetv2.py): groups of modules, named
# pre-activation norms and average-pool projections (resnetv2_50d), EvoNorm-S0 (resnetv2_50d_evos), and
# BiT's weight-standardised convs, GroupNorm and zero-padded stem (resnetv2_50x1_bit).
RESNETV2_SAMPLE = ("resnetv2_50d", "resnetv2_50d_evos", "resnetv2_50x1_bit")

# timm's RegNets (tests/timm_regnet.py, test_timm_regnet.py): RegNetY (inner ConvNormAct blocks, SE to a given
# width, projections after the branch) and RegNetZ (SiLU, no projections) stand for RegNetX and regnety_032.
REGNET_SAMPLE = ("regnety_016", "regnetz_005")


def spec_sample() -> list[Path]:
    """The bundled specs but the timm zoos', plus TIMM_SAMPLE, RESNETV2_SAMPLE and REGNET_SAMPLE (and
    torchvision's, which timm shares)."""
    from timm_regnet import CFGS as REGNET
    from timm_resnet import ZOO
    from timm_resnetv2 import ZOO as RESNETV2

    keep = set(TIMM_SAMPLE) | set(RESNETV2_SAMPLE) | set(REGNET_SAMPLE) | set(TORCHVISION_MODELS)
    zoos = set(ZOO) | set(RESNETV2) | set(REGNET)
    return [p for p in sorted(SPECS.glob("*.res")) if p.stem not in zoos or p.stem in keep]


SPEC_SAMPLE = spec_sample()


def copy_tracked(dest: Path) -> Path:
    """The repository's tracked files (as they are in the working tree) copied to `dest`, as a fresh clone has them."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in listed.decode().split("\0"):
        if name and (ROOT / name).exists():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target, follow_symlinks=False)
    return dest


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `python -m resdsl ARGS` in a fresh interpreter, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "resdsl", *args],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        env=env,
        timeout=300,
    )


@pytest.fixture
def cli():
    return run_cli


def pytest_addoption(parser):
    parser.addoption(
        "--update-goldens",
        action="store_true",
        default=False,
        help="rewrite the golden files (tests/golden, tests/errors) instead of comparing against them",
    )
    parser.addoption(
        "--zoo",
        action="store_true",
        default=False,
        help="also run the tests marked zoo: the logits of every timm model, each at its own input size",
    )


def pytest_collection_modifyitems(config, items):
    """Leave out the tests marked zoo unless --zoo asks for them (they take the better part of an hour)."""
    if config.getoption("--zoo"):
        return
    zoo = [item for item in items if item.get_closest_marker("zoo")]
    if zoo:
        config.hook.pytest_deselected(items=zoo)
        items[:] = [item for item in items if not item.get_closest_marker("zoo")]


@pytest.fixture
def update_goldens(request) -> bool:
    return request.config.getoption("--update-goldens")


@pytest.fixture
def golden(update_goldens):
    """`check(NAME, text)`: text must equal tests/golden/NAME; --update-goldens rewrites the file instead."""

    def check(name: str, text: str) -> None:
        path = GOLDEN / name
        if update_goldens:
            path.write_text(text, encoding="utf-8")
            return
        assert path.is_file(), f"tests/golden/{name} is missing: run pytest --update-goldens and review it"
        assert text == path.read_text(encoding="utf-8"), f"tests/golden/{name} differs: review, then --update-goldens"

    return check
