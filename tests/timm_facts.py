"""What the timm zoo tests share: timm's facts in tests/reference/timm and how to compare a module with them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import REFERENCE

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
