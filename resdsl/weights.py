"""Weights for the IR's modules, keyed exactly like the generated PyTorch module's state_dict.

`layout` reads the keys and shapes off the IR; `initial` draws a seeded
initialisation by PyTorch's default rules; `load` reads a `.pt`, `.safetensors`
or `.npz` file and checks it against the layout. Only `load` of a `.pt` file
imports torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import networkx as nx
import numpy as np

from .diagnostics import Collector, ResdslError, error
from .ir.graph import operands, order
from .ir.ops import se_channels

# Counts BatchNorm updates during training; meaningless at inference, so it is
# accepted when present and never required.
OPTIONAL_SUFFIX = ".num_batches_tracked"

FORMATS = (".pt", ".pth", ".safetensors", ".npz")


def layout(graph: nx.DiGraph) -> dict[str, tuple[tuple[int, ...], str]]:
    """Every state_dict key (walk order) with its shape and dtype name."""
    keys: dict[str, tuple[tuple[int, ...], str]] = {}
    for node in order(graph):
        data = graph.nodes[node]
        op = data["op"]
        if not op.has_params:
            continue
        path = data["path"]
        cin = graph.nodes[operands(graph, node)[0]]["shape"][0]
        if op.kind == "conv":
            keys[f"{path}.weight"] = ((op.out_channels, cin // op.groups, op.kernel, op.kernel), "float32")
            if op.bias:
                keys[f"{path}.bias"] = ((op.out_channels,), "float32")
        elif op.kind == "batchnorm":
            for name in ("weight", "bias", "running_mean", "running_var"):
                keys[f"{path}.{name}"] = ((cin,), "float32")
            keys[path + OPTIONAL_SUFFIX] = ((), "int64")
        elif op.kind == "linear":
            keys[f"{path}.weight"] = ((op.out_features, cin), "float32")
            if op.bias:
                keys[f"{path}.bias"] = ((op.out_features,), "float32")
        elif op.kind == "se":  # two 1×1 convs with bias: fc1 squeezes, fc2 expands
            squeezed = se_channels(cin, op.reduction, op.divisor)
            keys[f"{path}.fc1.weight"] = ((squeezed, cin, 1, 1), "float32")
            keys[f"{path}.fc1.bias"] = ((squeezed,), "float32")
            keys[f"{path}.fc2.weight"] = ((cin, squeezed, 1, 1), "float32")
            keys[f"{path}.fc2.bias"] = ((cin,), "float32")
        else:
            raise NotImplementedError(f"resdsl.weights: no state layout for op kind {op.kind!r}")
    return keys


def initial(graph: nx.DiGraph, seed: int = 0) -> dict[str, np.ndarray]:
    """PyTorch's default initialisation, drawn from NumPy's MT19937 seeded with `seed`.

    Conv (SE's 1×1 convs too) and Linear weights and biases: uniform in ±1/sqrt(fan_in) (what
    `kaiming_uniform_(a=sqrt(5))` and the bias rule of nn.Conv2d/nn.Linear
    give); BatchNorm: γ=1 (0 where the zero_init_last policy says so), β=0,
    running mean 0, running variance 1. Keys are drawn in walk order, so a
    seed fixes every value.
    """
    # MT19937 draws float32s about 1.5× as fast as NumPy's default PCG64: tens of
    # millions of weights make this the bulk of an ONNX build's time.
    rng = np.random.Generator(np.random.MT19937(seed))
    zero_gamma = {data["path"] for _, data in graph.nodes(data=True) if data.get("zero_init")}
    keys = layout(graph)
    fan_in: dict[str, int] = {}
    for key, (shape, _) in keys.items():
        if key.endswith(".weight") and len(shape) > 1:
            fan_in[key.removesuffix(".weight")] = int(np.prod(shape[1:]))
    state: dict[str, np.ndarray] = {}
    for key, (shape, dtype) in keys.items():
        module, _, name = key.rpartition(".")
        if module in fan_in:
            bound = np.float32(1.0 / np.sqrt(fan_in[module]))
            value = rng.random(shape, dtype=np.float32)  # [0, 1), scaled in place: no temporaries
            value *= 2 * bound
            value -= bound
            state[key] = value
        elif name == "weight" and module in zero_gamma:
            state[key] = np.zeros(shape, np.float32)
        elif name in ("weight", "running_var"):
            state[key] = np.ones(shape, np.float32)
        else:
            state[key] = np.zeros(shape, np.dtype(dtype))
    return state


def load(path: str | Path, graph: nx.DiGraph) -> dict[str, np.ndarray]:
    """Read a weights file and check it against the network (raises ResdslError)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise error("E0401", f"weights file {path.name}: unknown format {suffix or '(no suffix)'}",
                    help="use a state_dict saved with torch.save (.pt, .pth), a .safetensors or a .npz file")
    if not path.is_file():
        raise error("E0401", f"weights file {path} does not exist")
    try:
        arrays = _read(path, suffix)
    except ResdslError:
        raise
    except Exception as exc:  # noqa: BLE001 - a corrupt or foreign file: the user's to fix
        raise error("E0401", f"weights file {path.name} could not be read: {type(exc).__name__}: {exc}",
                    help="save the generated module's state_dict: torch.save(model.state_dict(), 'w.pt')") from None
    return check(arrays, graph, path.name)


def _read(path: Path, suffix: str) -> dict[str, np.ndarray]:
    if suffix in (".pt", ".pth"):
        import torch

        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise error("E0401", f"weights file {path.name} does not hold a state_dict (a mapping of tensors)",
                        help="save model.state_dict(), not the model or a training checkpoint")
        return {str(k): v.detach().cpu().numpy() for k, v in state.items()}
    if suffix == ".safetensors":
        from safetensors.numpy import load_file

        return load_file(str(path))
    with np.load(path, allow_pickle=False) as archive:
        return {k: archive[k] for k in archive.files}


def check(arrays: Mapping[str, object], graph: nx.DiGraph, what: str = "weights") -> dict[str, np.ndarray]:
    """Match arrays to the network's layout: every missing, unexpected and mis-shaped key is reported."""
    expected = layout(graph)
    errors = Collector()
    missing = [k for k in expected if k not in arrays and not k.endswith(OPTIONAL_SUFFIX)]
    unexpected = sorted(k for k in arrays if k not in expected)
    state: dict[str, np.ndarray] = {}
    misfits = []
    for key, (shape, dtype) in expected.items():
        if key not in arrays:
            continue
        value = np.asarray(arrays[key])
        if value.shape != shape:
            misfits.append(f"{key} is {_fmt(value.shape)}, the network needs {_fmt(shape)}")
        elif dtype == "float32" and not np.issubdtype(value.dtype, np.floating):
            misfits.append(f"{key} holds {value.dtype}, the network needs floating point")
        else:
            state[key] = np.ascontiguousarray(value, dtype=dtype)
    name = graph.graph["name"]
    if missing:
        errors.add("E0402", f"{what} lacks {len(missing)} key(s) that `{name}` needs: {', '.join(missing)}",
                   help="the keys are the generated PyTorch module's state_dict keys (resdsl build SPEC)")
    if unexpected:
        errors.add("E0403", f"{what} has {len(unexpected)} key(s) that `{name}` does not use: "
                   f"{', '.join(unexpected)}", help="was it saved from another network or spec setting?")
    if misfits:
        errors.add("E0404", f"{what} has {len(misfits)} mis-shaped key(s) for `{name}`: {'; '.join(misfits)}",
                   help="was it saved from another network or spec setting?")
    errors.raise_if_any()
    return state


def _fmt(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape)) if shape else "a scalar"
