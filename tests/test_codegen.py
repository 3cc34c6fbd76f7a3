"""Generated PyTorch source as a careful person writes it: formatted, in place where autograd allows, with arguments."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import torch
from conftest import ROOT, SPECS

import resdsl

NORMS = ("post", "bn_after_add", "relu_before_add", "relu_preact", "pre", "none")
DATA = sorted((ROOT / "tests" / "data").rglob("*.res"))


def test_generated_files_pass_ruff_with_the_projects_settings(tmp_path):
    for spec in [*sorted(SPECS.glob("*.res")), *DATA]:
        (tmp_path / f"{spec.stem}.py").write_text(resdsl.compile(spec).torch_source)
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    for command in (["format", "--check", "."], ["check", "."]):
        result = subprocess.run([sys.executable, "-m", "ruff", *command], cwd=tmp_path, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def test_relus_run_in_place_and_adds_accumulate_where_nothing_else_reads_the_tensor():
    source = resdsl.compile(SPECS / "resnet50.res").torch_source
    assert "nn.ReLU(inplace=True)" in source and "out += identity" in source
    # Under relu_before_add the add's main operand is a ReLU's output, which autograd keeps: no `+=` there.
    source = resdsl.compile(SPECS / "resnet18.res", {"norm": "relu_before_add"}).torch_source
    assert "out += " not in source and "out = out + identity" in source


@pytest.mark.slow
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("spec", sorted(SPECS.glob("*.res")), ids=lambda p: p.stem)
def test_backward_runs_through_every_spec_under_every_norm_policy(spec, norm):
    """In-place ops never overwrite what autograd needs: a training step runs, and every parameter gets a gradient."""
    torch.manual_seed(0)
    settings = {"norm": norm, "input": "3x32x32"}
    if "let n =" in spec.read_text():  # the CIFAR depths: one block a stage shows the same code
        settings["n"] = "1"
    model = resdsl.compile(spec, settings).to_torch().train()
    loss = model(torch.randn(2, 3, 32, 32)).square().mean()
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_the_network_takes_num_classes_and_in_chans():
    from resdsl.backends.torch_src import load_module

    net = resdsl.compile(SPECS / "resnet18.res")
    cls = load_module(net.torch_source, net.ir).Model
    model = cls(num_classes=7, in_chans=1).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 64, 64)).shape == (2, 7)
    assert cls().fc.out_features == 1000 and cls().conv1.in_channels == 3
