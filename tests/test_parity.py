"""Exact parity with torchvision's ResNets: parameters, MACs, state_dict keys, logits."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import REFERENCE, SPECS, TORCHVISION_MODELS
from recipe import fill_module, recipe_input

import resdsl

# torchvision's parameter counts and its published GMACs (`_ops`), read off 0.29.1.
EXPECTED = {
    "resnet18": (11_689_512, 1.814),
    "resnet34": (21_797_672, 3.664),
    "resnet50": (25_557_032, 4.089),
    "resnet101": (44_549_160, 7.801),
    "resnet152": (60_192_808, 11.514),
    "resnext50_32x4d": (25_028_904, 4.23),
    "wide_resnet50_2": (68_883_240, 11.398),
}


def reference_keys(name: str) -> list[tuple[str, str]]:
    lines = (REFERENCE / f"{name}.keys.tsv").read_text().splitlines()[1:]
    return [tuple(line.split("\t")[:2]) for line in lines]


@pytest.fixture(scope="module", params=TORCHVISION_MODELS)
def compiled(request):
    return request.param, resdsl.compile(SPECS / f"{request.param}.res")


def test_reference_facts_agree_with_the_issue(compiled):
    name, _ = compiled
    facts = json.loads((REFERENCE / f"{name}.json").read_text())
    assert (facts["num_params"], facts["torchvision_gmacs"]) == EXPECTED[name]


def test_parameter_count(compiled):
    name, net = compiled
    assert net.params == EXPECTED[name][0]


def test_macs_match_torchvision_to_its_decimals(compiled):
    name, net = compiled
    assert round(net.macs / 1e9, 3) == EXPECTED[name][1]


def test_state_dict_keys_order_and_shapes(compiled):
    name, net = compiled
    model = net.to_torch()
    ours = [(key, "x".join(map(str, t.shape)) or "scalar") for key, t in model.state_dict().items()]
    assert ours == reference_keys(name)
    assert sum(p.numel() for p in model.parameters()) == EXPECTED[name][0]


def test_logits_match_torchvision(compiled):
    name, net = compiled
    model = net.to_torch().eval()
    fill_module(model)
    with torch.no_grad():
        logits = model(torch.from_numpy(recipe_input())).numpy()
    expected = np.load(REFERENCE / f"{name}.out.npy")
    assert logits.shape == expected.shape == (2, 1000)
    np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=0)


def test_torchvision_checkpoint_loads_strictly(compiled):
    """A state_dict with torchvision's keys and shapes loads into the generated model with strict=True."""
    name, net = compiled
    model = net.to_torch()
    checkpoint = {}
    for key, shape in reference_keys(name):
        dims = () if shape == "scalar" else tuple(int(d) for d in shape.split("x"))
        checkpoint[key] = torch.zeros(dims, dtype=torch.int64 if key.endswith("num_batches_tracked") else torch.float32)
    result = model.load_state_dict(checkpoint, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
