"""The deterministic weight recipe of the torchvision reference facts (tests/reference/README.md)."""

from __future__ import annotations

import numpy as np


def recipe_state(shapes: dict[str, tuple[tuple[int, ...], str]]) -> dict[str, np.ndarray]:
    """Arrays for every state_dict key, given each key's shape and dtype name."""
    out = {}
    for k, key in enumerate(sorted(shapes)):
        shape, dtype = shapes[key]
        n = int(np.prod(shape)) if shape else 1
        base = np.sin(0.7 * np.arange(n, dtype=np.float64) + k)
        if dtype.startswith("int"):
            value = np.zeros(n)
        elif key.endswith("running_var"):
            value = 1.0 + 0.5 * np.abs(base)
        elif key.endswith("running_mean"):
            value = 0.1 * base
        elif len(shape) == 1 and key.endswith("weight"):
            value = 0.4 + 0.1 * base
        elif key.endswith("bias"):
            value = 0.1 * base
        else:
            fan_in = n / shape[0]
            value = base * np.sqrt(1.0 / fan_in)
        out[key] = value.reshape(shape).astype(np.int64 if dtype.startswith("int") else np.float32)
    return out


def recipe_input(batch: int = 2, size: int = 224) -> np.ndarray:
    n = batch * 3 * size * size
    return np.sin(0.3 * np.arange(n, dtype=np.float64)).astype(np.float32).reshape(batch, 3, size, size)


def fill_module(model) -> None:
    """Fill a torch module's state_dict by the recipe, in place."""
    import torch

    state = model.state_dict()
    shapes = {k: (tuple(v.shape), str(v.dtype).replace("torch.", "")) for k, v in state.items()}
    arrays = recipe_state(shapes)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in arrays.items()})
