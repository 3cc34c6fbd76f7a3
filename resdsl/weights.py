"""Weights for the IR's modules, keyed exactly like the generated PyTorch module's state_dict.

`layout` reads the keys and shapes off the IR; `recipe` says how PyTorch's
default rules start each entry, and `draw`, `initial` and `stream` draw them
seeded; `load` reads a `.pt`, `.safetensors` or `.npz` file and checks it
against the layout. A `.pt` file is read by resdsl/torchfile.py, without
torch, as a `Lazy` state: each tensor is read when it is written out.
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
from .ops.base import StateEntry, state_key

FORMATS = (".pt", ".pth", ".safetensors", ".npz")


def _module_order(ir: IR) -> list[Node]:
    nodes = _grouped([node for node in ir.walk() if node.op.is_module])
    named = ir.policies.projection_names == "named"
    bare = {node for node in nodes if node.op.parameter}
    if not named and not bare:
        return nodes
    first: dict[object, int] = {}  # module → the position of the first node inside it
    for index, node in enumerate(nodes):
        module: Module | None = node.parent
        while module is not None:
            first.setdefault(module, index)
            module = module.parent

    def key(item: tuple[int, Node]) -> tuple[int, int, int]:
        index, node = item
        if node in bare:  # PyTorch's state_dict holds a module's own parameters before its submodules'
            return (first[node.parent], -1, index)
        if named and node.shortcut_of is not None:
            return (first[node.shortcut_of.parent], 0, index)
        return (index, 1, 0)

    return [node for _, node in sorted(enumerate(nodes), key=key)]


def _grouped(nodes: list[Node]) -> list[Node]:
    """Walk order, with the nodes of each module together at the place of its first node: the order in
    which a generated class builds its children (a network whose statements read named tensors with
    `from` interleaves the walks of its stages and its other layers). A chain's walk is already so."""
    first: dict[Module, int] = {}
    for index, node in enumerate(nodes):
        module: Module | None = node.parent
        while module is not None:
            first.setdefault(module, index)
            module = module.parent

    def key(item: tuple[int, Node]) -> tuple[int, ...]:
        index, node = item
        levels: list[int] = [index]
        module: Module | None = node.parent
        while module is not None and module.parent is not None:
            levels.append(first[module])
            module = module.parent
        return tuple(reversed(levels))

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
                keys[state_key(node.path, entry.name)] = (node, entry)
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


def seeded(ir: IR, seed: int = 0) -> Lazy:
    """`initial`'s state as a Lazy one: each entry drawn when it is looked up."""
    starts = recipe(ir)
    return Lazy(
        {key: (start.shape, start.dtype) for key, start in starts.items()}, lambda key: draw(key, starts[key], seed)
    )


# What onnx_graph.serialize reads weights from: each key's shape and dtype name, and a
# function yielding the arrays of given keys in that order.
Shapes = dict[str, tuple[tuple[int, ...], str]]
Arrays = Callable[[Sequence[str]], Iterable[np.ndarray]]


def seeded_source(ir: IR, seed: int = 0) -> tuple[Shapes, Arrays]:
    """The seeded initial state as shapes and a `stream`: drawn while written, never all held at once."""
    starts = recipe(ir)
    return {key: (start.shape, start.dtype) for key, start in starts.items()}, partial(stream, starts, seed=seed)


def state_source(state: Mapping[str, np.ndarray]) -> tuple[Shapes, Arrays]:
    """A state dict's arrays (a Lazy state's made one at a time) as shapes and a function picking them out by key."""

    def arrays(keys: Sequence[str]) -> Iterator[np.ndarray]:
        return (state[key] for key in keys)

    return shapes_of(state), arrays


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


class Lazy(Mapping[str, np.ndarray]):
    """A state dict whose arrays are made only when looked up, each afresh: read from a file, or folded.

    `shapes` gives every key's shape and dtype name up front, so the whole
    state can be checked and laid out before any array exists, and written
    out holding one array at a time.
    """

    def __init__(self, shapes: Shapes, fetch: Callable[[str], np.ndarray]):
        self.shapes = shapes
        self.fetch = fetch

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self.shapes:
            raise KeyError(key)
        return self.fetch(key)

    def __contains__(self, key: object) -> bool:
        return key in self.shapes

    def __iter__(self) -> Iterator[str]:
        return iter(self.shapes)

    def __len__(self) -> int:
        return len(self.shapes)


def shapes_of(state: Mapping[str, np.ndarray]) -> Shapes:
    """Each key's shape and dtype name, without making a Lazy state's arrays."""
    if isinstance(state, Lazy):
        return dict(state.shapes)
    return {key: (array.shape, array.dtype.name) for key, array in state.items()}


def load(path: str | Path, ir: IR) -> Mapping[str, np.ndarray]:
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


def _read(path: Path, suffix: str) -> Mapping[str, np.ndarray]:
    if suffix in (".pt", ".pth"):
        return _read_torch(path)
    if suffix == ".safetensors":
        from safetensors.numpy import load_file

        return load_file(str(path))
    with np.load(path, allow_pickle=False) as archive:
        return {k: archive[k] for k in archive.files}


def _read_torch(path: Path) -> Lazy:
    """A torch.save'd state_dict, read without torch: its tensors are read when looked up."""
    from . import torchfile

    try:
        saved = torchfile.load(path)
    except torchfile.TorchFileError as exc:
        raise error(
            "E0401",
            f"weights file {path.name} could not be read: {exc}",
            help="save the generated module's state_dict: torch.save(model.state_dict(), 'w.pt')",
        ) from None
    if not isinstance(saved, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torchfile.Tensor) for k, v in saved.items()
    ):
        inner = [k for k, v in saved.items() if _is_state_dict(v)] if isinstance(saved, Mapping) else []
        raise error(
            "E0401",
            f"weights file {path.name} does not hold a state_dict (a mapping of tensors)",
            help=f"it holds one under key {inner[0]!r}: save that alone, torch.save(checkpoint[{inner[0]!r}], PATH)"
            if inner
            else "save model.state_dict(), not the model or a training checkpoint",
        )
    return Lazy({key: (tensor.shape, tensor.dtype) for key, tensor in saved.items()}, lambda key: saved[key].read())


def _is_state_dict(value: object) -> bool:
    from .torchfile import Tensor

    return isinstance(value, Mapping) and bool(value) and all(isinstance(v, Tensor) for v in value.values())


def check(arrays: Mapping[str, object], ir: IR, what: str = "weights") -> Mapping[str, np.ndarray]:
    """Match arrays to the network's layout: every missing, unexpected, mis-shaped and implausible key is reported.

    Returns the state in the network's dtypes. A `Lazy` input gives a `Lazy`
    result, checked by shape now and by value as each array is made
    (`implausible`: the first bad array raises E0405).
    """
    described = entries(ir)
    expected = {key: (entry.shape, entry.dtype) for key, (_, entry) in described.items()}
    errors = Collector()
    missing = [k for k, (_, entry) in described.items() if k not in arrays and not entry.optional]
    unexpected = sorted(k for k in arrays if k not in expected)
    state: dict[str, np.ndarray] = {}
    lazy: Shapes = {}
    misfits: list[str] = []
    bad: list[str] = []
    for key, (shape, dtype) in expected.items():
        if key not in arrays:
            continue
        if isinstance(arrays, Lazy):
            value, (have, kind) = None, arrays.shapes[key]
        else:
            value = np.asarray(arrays[key])
            if value.dtype.name == "bfloat16" or value.dtype.name.startswith("float8"):
                value = value.astype(np.float32)  # ml_dtypes' types (safetensors may return them): widened exactly
            have, kind = value.shape, value.dtype.name
        if tuple(have) != shape:
            misfits.append(f"{key} is {_fmt(tuple(have))}, the network needs {_fmt(shape)}")
        elif dtype == "float32" and not np.issubdtype(np.dtype(kind), np.floating):
            misfits.append(f"{key} holds {kind}, the network needs floating point")
        elif value is None:
            lazy[key] = (shape, dtype)
        else:
            state[key] = np.ascontiguousarray(value, dtype=dtype)
            bad += filter(None, [implausible(key, described[key][1], state[key])])
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
    if bad:
        errors.add(
            "E0405", f"{what} has {len(bad)} key(s) with values no trained network holds: {'; '.join(bad)}", help=BAD
        )
    errors.raise_if_any()
    if not isinstance(arrays, Lazy):
        return state
    source = arrays

    def fetch(key: str) -> np.ndarray:
        value = np.ascontiguousarray(source[key], dtype=lazy[key][1])
        problem = implausible(key, described[key][1], value)
        if problem:
            raise error("E0405", f"{what} has a key with values no trained network holds: {problem}", help=BAD)
        return value

    return Lazy(lazy, fetch)


BAD = "was training diverging when this was saved? save the weights of a healthy step"


def implausible(key: str, entry: StateEntry, value: np.ndarray) -> str | None:
    """What is wrong with a state entry's values, or None: NaN or infinities, or a negative BatchNorm variance."""
    if value.size == 0 or not np.issubdtype(value.dtype, np.floating):
        return None
    low, high = value.min(), value.max()  # NaN propagates through both
    if not (np.isfinite(low) and np.isfinite(high)):
        return f"{key} holds {int(np.count_nonzero(~np.isfinite(value)))} NaN or infinite value(s)"
    if entry.name == "running_var" and low < 0:
        return f"{key} holds {int(np.count_nonzero(value < 0))} negative variance(s)"
    return None


def _fmt(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape)) if shape else "a scalar"
