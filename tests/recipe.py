"""The deterministic weight recipe of the torchvision reference facts (tests/reference/README.md)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def recipe_state(shapes: dict[str, tuple[tuple[int, ...], str]]) -> dict[str, np.ndarray]:
    """Arrays for every state_dict key, given each key's shape and dtype name."""
    return dict(recipe_arrays(shapes))


def recipe_arrays(shapes: dict[str, tuple[tuple[int, ...], str]]) -> Iterator[tuple[str, np.ndarray]]:
    """Each state_dict key with its array, one at a time in sorted order (the largest models hold gigabytes)."""
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
        yield key, value.reshape(shape).astype(np.int64 if dtype.startswith("int") else np.float32)


def recipe_input(batch: int = 2, size: int = 224) -> np.ndarray:
    n = batch * 3 * size * size
    return np.sin(0.3 * np.arange(n, dtype=np.float64)).astype(np.float32).reshape(batch, 3, size, size)


def fill_module(model) -> None:
    """Fill a torch module's state_dict by the recipe, in place."""
    import torch

    state = model.state_dict()  # tensors sharing the module's storage
    shapes = {k: (tuple(v.shape), str(v.dtype).replace("torch.", "")) for k, v in state.items()}
    with torch.no_grad():
        for key, array in recipe_arrays(shapes):
            state[key].copy_(torch.from_numpy(array))
