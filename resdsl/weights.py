"""Weights for the IR's modules, keyed exactly like the generated PyTorch module's state_dict.

`layout` reads the keys and shapes off the IR; `recipe` says how PyTorch's
default rules start each entry, and `draw`, `initial` and `stream` draw them
seeded; `load` reads a `.pt`, `.safetensors` or `.npz` file and checks it
against the layout. Only `load` of a `.pt` file imports torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from .diagnostics import Collector, ResdslError, error
from .ir.cost import in_shapes
from .ir.graph import IR
from .ir.node import Node
from .ir.tree import Module
from .ops.base import StateEntry

FORMATS = (".pt", ".pth", ".safetensors", ".npz")


def _module_order(ir: IR) -> list[Node]:
    nodes = [node for node in ir.walk() if node.op.is_module]
    if ir.policies.projection_names != "named":
        return nodes
    first: dict[object, int] = {}  # module → the position of the first node inside it
    for index, node in enumerate(nodes):
        module: Module | None = node.parent
        while module is not None:
            first.setdefault(module, index)
            module = module.parent

    def key(item: tuple[int, Node]) -> tuple[int, int, int]:
        index, node = item
        if node.shortcut_of is not None:
            return (first[node.shortcut_of.parent], 0, index)
        return (index, 1, 0)

    return [node for _, node in sorted(enumerate(nodes), key=key)]


def entries(ir: IR) -> dict[str, tuple[Node, StateEntry]]:
    """Every state_dict key, in the generated module's order, with its node and its op's description of it.

    That is walk order, except that under `projection_names = named` a block's projection shortcut leads
    its block, as timm's pre-activation blocks build their downsample first.
    """
    keys: dict[str, tuple[Node, StateEntry]] = {}
    for node in _module_order(ir):
        if node.op.is_module:
            for entry in node.op.state(in_shapes(ir, node)):
                keys[f"{node.path}.{entry.name}"] = (node, entry)
    return keys


def layout(ir: IR) -> dict[str, tuple[tuple[int, ...], str]]:
    """Every state_dict key (walk order) with its shape and dtype name."""
    return {key: (entry.shape, entry.dtype) for key, (_, entry) in entries(ir).items()}


@dataclass(frozen=True)
class Start:
    """How one state entry starts: uniform in [-bound, bound) when `bound` is set, else every element `value`."""

    shape: tuple[int, ...]
    dtype: str
    bound: float | None = None
    value: float = 0.0


def recipe(ir: IR) -> dict[str, Start]:
    """PyTorch's default initialisation of every state entry (layout order), as each op states it.

    Conv (SE's 1×1 convs too) and Linear weights and biases: uniform in
    ±1/sqrt(fan_in) (what `kaiming_uniform_(a=sqrt(5))` and the bias rule of
    nn.Conv2d/nn.Linear give); BatchNorm: γ=1 (0 where the zero_init_last
    policy says so), β=0, running mean 0, running variance 1.
    """
    starts: dict[str, Start] = {}
    for key, (node, entry) in entries(ir).items():
        value = 0.0 if entry.scale and node.zero_init else entry.value
        starts[key] = Start(entry.shape, entry.dtype, entry.bound, value)
    return starts


def draw(key: str, start: Start, seed: int = 0, out: np.ndarray | None = None) -> np.ndarray:
    """The starting values of state entry `key`, written into `out` when given.

    Each drawn entry has its own PCG64 stream, seeded by `seed` and the key's
    name: a key's values depend on nothing else in the network, and entries
    can be drawn in any order or in parallel.
    """
    out = np.empty(start.shape, start.dtype) if out is None else out
    if start.bound is None:
        out.fill(start.value)
        return out
    stream = np.random.SeedSequence(seed, spawn_key=tuple(key.encode()))
    np.random.Generator(np.random.PCG64(stream)).random(out=out, dtype=np.float32)  # [0, 1)
    out *= np.float32(2 * start.bound)  # scaled in place: no temporaries
    out -= np.float32(start.bound)
    return out


def initial(ir: IR, seed: int = 0) -> dict[str, np.ndarray]:
    """Every state entry drawn by `recipe` and `draw`, seeded with `seed`."""
    return {key: draw(key, start, seed) for key, start in recipe(ir).items()}


# What onnx_graph.serialize reads weights from: each key's shape and dtype name, and a
# function yielding the arrays of given keys in that order.
Shapes = dict[str, tuple[tuple[int, ...], str]]
Arrays = Callable[[Sequence[str]], Iterable[np.ndarray]]


def seeded_source(ir: IR, seed: int = 0) -> tuple[Shapes, Arrays]:
    """The seeded initial state as shapes and a `stream`: drawn while written, never all held at once."""
    starts = recipe(ir)
    return {key: (start.shape, start.dtype) for key, start in starts.items()}, partial(stream, starts, seed=seed)


def state_source(state: Mapping[str, np.ndarray]) -> tuple[Shapes, Arrays]:
    """A state dict's arrays as shapes and a function picking them out by key."""

    def arrays(keys: Sequence[str]) -> Iterator[np.ndarray]:
        return (state[key] for key in keys)

    return {key: (array.shape, array.dtype.name) for key, array in state.items()}, arrays


def stream(starts: Mapping[str, Start], keys: Sequence[str], seed: int = 0) -> Iterator[np.ndarray]:
    """`draw` of each of `keys` in order, for writing out: each array is valid only until the next is taken.

    Random entries are drawn into one buffer reused throughout: fresh memory
    for every entry costs a page fault per 4 KiB, as much as the drawing
    itself for a ResNet-50. (Drawing in worker threads while the caller
    writes measured no faster and took half as much CPU time again.)
    Constant entries, BatchNorm's, are small and made on the spot.
    """
    size = max((math.prod(starts[key].shape) for key in keys if starts[key].bound is not None), default=0)
    buffer = np.empty(size, np.float32)
    for key in keys:
        start = starts[key]
        out = None if start.bound is None else buffer[: math.prod(start.shape)].reshape(start.shape)
        yield draw(key, start, seed, out)


def load(path: str | Path, ir: IR) -> dict[str, np.ndarray]:
    """Read a weights file and check it against the network (raises ResdslError)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise error(
            "E0401",
            f"weights file {path.name}: unknown format {suffix or '(no suffix)'}",
            help="use a state_dict saved with torch.save (.pt, .pth), a .safetensors or a .npz file",
        )
    if not path.is_file():
        raise error("E0401", f"weights file {path} does not exist")
    try:
        arrays = _read(path, suffix)
    except ResdslError:
        raise
    except Exception as exc:  # noqa: BLE001 - a corrupt or foreign file: the user's to fix
        raise error(
            "E0401",
            f"weights file {path.name} could not be read: {type(exc).__name__}: {exc}",
            help="save the generated module's state_dict: torch.save(model.state_dict(), 'w.pt')",
        ) from None
    return check(arrays, ir, path.name)


def _read(path: Path, suffix: str) -> dict[str, np.ndarray]:
    if suffix in (".pt", ".pth"):
        import torch

        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise error(
                "E0401",
                f"weights file {path.name} does not hold a state_dict (a mapping of tensors)",
                help="save model.state_dict(), not the model or a training checkpoint",
            )
        return {str(k): _numpy(v) for k, v in state.items()}
    if suffix == ".safetensors":
        from safetensors.numpy import load_file

        try:
            return load_file(str(path))
        except TypeError:  # a dtype NumPy lacks (bfloat16, float8): PyTorch can read and widen it
            try:
                from safetensors.torch import load_file as load_tensors
            except ImportError:
                raise error(
                    "E0401",
                    f"weights file {path.name} holds bfloat16 or float8 tensors, which need PyTorch to read",
                    help="install PyTorch, or save the weights as float32",
                ) from None
            return {k: _numpy(v) for k, v in load_tensors(str(path)).items()}
    with np.load(path, allow_pickle=False) as archive:
        return {k: archive[k] for k in archive.files}


def _numpy(tensor) -> np.ndarray:
    """A torch tensor as an array; bfloat16 and float8, which NumPy lacks, widened to float32 (exactly)."""
    import torch

    tensor = tensor.detach().cpu()
    if tensor.is_floating_point() and tensor.dtype not in (torch.float16, torch.float32, torch.float64):
        tensor = tensor.float()
    return tensor.numpy()


def check(arrays: Mapping[str, object], ir: IR, what: str = "weights") -> dict[str, np.ndarray]:
    """Match arrays to the network's layout: every missing, unexpected and mis-shaped key is reported."""
    described = entries(ir)
    expected = {key: (entry.shape, entry.dtype) for key, (_, entry) in described.items()}
    errors = Collector()
    missing = [k for k, (_, entry) in described.items() if k not in arrays and not entry.optional]
    unexpected = sorted(k for k in arrays if k not in expected)
    state: dict[str, np.ndarray] = {}
    misfits = []
    for key, (shape, dtype) in expected.items():
        if key not in arrays:
            continue
        value = np.asarray(arrays[key])
        if value.dtype.name == "bfloat16" or value.dtype.name.startswith("float8"):
            value = value.astype(np.float32)  # ml_dtypes' types (safetensors may return them): widened exactly
        if value.shape != shape:
            misfits.append(f"{key} is {_fmt(value.shape)}, the network needs {_fmt(shape)}")
        elif dtype == "float32" and not np.issubdtype(value.dtype, np.floating):
            misfits.append(f"{key} holds {value.dtype}, the network needs floating point")
        else:
            state[key] = np.ascontiguousarray(value, dtype=dtype)
    name = ir.name
    if missing:
        errors.add(
            "E0402",
            f"{what} lacks {len(missing)} key(s) that `{name}` needs: {', '.join(missing)}",
            help="the keys are the generated PyTorch module's state_dict keys (resdsl build SPEC)",
        )
    if unexpected:
        errors.add(
            "E0403",
            f"{what} has {len(unexpected)} key(s) that `{name}` does not use: {', '.join(unexpected)}",
            help="was it saved from another network or spec setting?",
        )
    if misfits:
        errors.add(
            "E0404",
            f"{what} has {len(misfits)} mis-shaped key(s) for `{name}`: {'; '.join(misfits)}",
            help="was it saved from another network or spec setting?",
        )
    unusable = _unusable_values(state)
    if unusable:
        errors.add(
            "E0405",
            f"{what} has {len(unusable)} key(s) with values `{name}` cannot use: {'; '.join(unusable)}",
            help="a diverged training run leaves NaN or infinite values; BatchNorm variances are at least 0",
        )
    errors.raise_if_any()
    return state


def _unusable_values(state: Mapping[str, np.ndarray]) -> list[str]:
    """NaN or infinite values anywhere, and negative BatchNorm variances: a model built with them
    outputs NaN (or, after BatchNorm folding, nothing sensible)."""
    found = []
    for key, value in state.items():
        if not np.issubdtype(value.dtype, np.floating):
            continue
        bad = int(value.size - np.count_nonzero(np.isfinite(value)))
        if bad:
            found.append(f"{key} holds {bad:,} NaN or infinite value(s)")
        elif key.endswith(".running_var") and (value < 0).any():
            found.append(f"{key} holds {int((value < 0).sum()):,} negative variance(s)")
    return found


def _fmt(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape)) if shape else "a scalar"
