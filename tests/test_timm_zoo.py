"""timm's zoo, key-exact: every bundled spec named after a timm model with reference facts in
tests/reference/timm has timm's state_dict (keys, order, shapes), parameter count and logits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SPECS
from recipe import fill_module

import resdsl

TIMM = Path(__file__).resolve().parent / "reference" / "timm"
MODELS = sorted(p.stem for p in TIMM.glob("*.json") if (SPECS / f"{p.stem}.res").exists())
# Big enough that filling and running them takes most of a minute: CI runs them, `-m "not slow"` leaves them out.
SLOW = {n for n in MODELS if json.loads((TIMM / f"{n}.json").read_text())["num_params"] > 80_000_000}


def keys(name: str) -> list[tuple[str, str]]:
    lines = (TIMM / f"{name}.keys.tsv").read_text().splitlines()[1:]
    return [tuple(line.split("\t")[:2]) for line in lines]


def recipe_input(shape: list[int], batch: int = 2) -> torch.Tensor:
    n = batch * int(np.prod(shape))
    x = np.sin(0.3 * np.arange(n, dtype=np.float64)).astype(np.float32)
    return torch.from_numpy(x.reshape(batch, *shape))


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in MODELS])
def test_timm_state_dict_parameters_and_logits(name):
    facts = json.loads((TIMM / f"{name}.json").read_text())
    net = resdsl.compile(SPECS / f"{name}.res")
    assert list(net.input_shape) == facts["input_size"]
    assert net.params == facts["num_params"]
    model = net.to_torch().eval()
    assert [(k, "x".join(map(str, v.shape)) or "scalar") for k, v in model.state_dict().items()] == keys(name)
    fill_module(model)
    with torch.no_grad():
        logits = model(recipe_input(facts["input_size"])).numpy()
    expected = np.load(TIMM / f"{name}.out.npy")
    assert logits.shape == expected.shape
    assert np.abs(logits - expected).max() / np.abs(expected).max() <= 1e-4
