"""What the timm zoo tests share: timm's facts in tests/reference/timm and how to compare a module with them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import REFERENCE
from recipe import fill_module

TIMM = REFERENCE / "timm"


def quick_or_slow(names, quick: set[str]):
    """`names` as test parameters: those in `quick` run in the suite, the others only with --zoo."""
    return [n if n in quick else pytest.param(n, marks=[pytest.mark.slow, pytest.mark.zoo]) for n in names]


def timm_keys(name: str) -> list[tuple[str, str]]:
    lines = (TIMM / f"{name}.keys.tsv").read_text().splitlines()[1:]
    return [(key, shape) for key, shape, _ in (line.split("\t") for line in lines)]


def key_shapes(model: torch.nn.Module) -> list[tuple[str, str]]:
    return [(k, "x".join(map(str, v.shape)) or "scalar") for k, v in model.state_dict().items()]


def on_meta(build):
    """A module built without memory or initialisation: its keys, shapes and parameter count only."""
    with torch.device("meta"):
        return build()


def recipe_input(shape, batch: int = 2) -> torch.Tensor:
    n = batch * int(np.prod(shape))
    x = np.sin(0.3 * np.arange(n, dtype=np.float64)).astype(np.float32)
    return torch.from_numpy(x.reshape(batch, *shape))


def relative_error(got: np.ndarray, expected: np.ndarray) -> float:
    return float(np.abs(got - expected).max() / np.abs(expected).max())


def facts(name: str) -> dict:
    """timm's `NAME.json`: num_params, input_size, output_shape, ..."""
    return json.loads((TIMM / f"{name}.json").read_text())


def assert_timms_state(model: torch.nn.Module, name: str) -> None:
    """`model` (built on the meta device) has timm's state_dict keys, order and shapes, and its parameter count."""
    assert key_shapes(model) == timm_keys(name)
    assert sum(p.numel() for p in model.parameters()) == facts(name)["num_params"]


def assert_timms_logits(model: torch.nn.Module, name: str) -> None:
    """`model`, filled by the recipe, gives timm's logits on the recipe's input (relative error at most 1e-4)."""
    model = model.eval()
    fill_module(model)
    with torch.no_grad():
        logits = model(recipe_input(facts(name)["input_size"])).numpy()
    expected = np.load(TIMM / f"{name}.out.npy")
    assert logits.shape == expected.shape
    assert relative_error(logits, expected) <= 1e-4


def assert_spec_is_timms(net, name: str) -> None:
    """A compiled spec has timm's input size, parameter count and state_dict (keys read on the meta device)."""
    assert list(net.input_shape) == facts(name)["input_size"]
    assert net.params == facts(name)["num_params"]
    assert key_shapes(on_meta(net.to_torch)) == timm_keys(name)


def assert_references_logits(net, reference: torch.nn.Module) -> None:
    """The compiled spec's module, filled by the recipe, and `reference` with the same state (loaded strictly:
    the same keys and shapes) give the same logits on the recipe's input at the spec's size."""
    model = net.to_torch().eval()
    fill_module(model)
    reference = reference.eval()
    reference.load_state_dict(model.state_dict())
    x = recipe_input(net.input_shape)
    with torch.no_grad():
        assert relative_error(model(x).numpy(), reference(x).numpy()) <= 1e-4


def assert_reference_state(net, reference: torch.nn.Module, params: int | None = None) -> None:
    """A compiled spec without facts has the state_dict (keys, order, shapes) and the parameter count of
    `reference`, built on the meta device; and that count is `params` where one is given."""
    assert key_shapes(on_meta(net.to_torch)) == key_shapes(reference)
    assert net.params == sum(p.numel() for p in reference.parameters())
    assert params is None or net.params == params


def assert_onnxruntime_agrees(net) -> np.ndarray:
    """The spec exported with the recipe's weights: onnxruntime gives the generated module's logits (returned)."""
    import onnxruntime as ort

    model = net.to_torch().eval()
    fill_module(model)
    x = recipe_input(net.input_shape)
    with torch.no_grad():
        expected = model(x).numpy()
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    session = ort.InferenceSession(net.to_onnx(weights=state).SerializeToString(), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    assert relative_error(got, expected) <= 1e-4
    return got
