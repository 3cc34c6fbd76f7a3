"""The Python API: compile a spec into an object that every backend reads."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import networkx as nx

from . import passes
from .diagnostics import Source
from .frontend.loader import load as load_program
from .frontend.loader import read_source
from .frontend.lower import lower
from .limits import Limits


class Compiled:
    """A validated network: its IR plus lazily generated outputs."""

    def __init__(self, graph: nx.DiGraph, source: Source):
        self.graph = graph
        self.source = source

    @property
    def name(self) -> str:
        return self.graph.graph["name"]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.graph.graph["input_shape"]

    @cached_property
    def totals(self) -> tuple[int, int]:
        from .backends.cost import totals

        return totals(self.graph)

    @property
    def params(self) -> int:
        return self.totals[0]

    @property
    def macs(self) -> int:
        return self.totals[1]

    @cached_property
    def torch_source(self) -> str:
        from .backends import torch_src

        return torch_src.emit(self.graph)

    @property
    def ir_text(self) -> str:
        from .ir.graph import dump

        return dump(self.graph)

    def summary(self, fmt: str = "table", flops: bool = False) -> str:
        from .backends import summary

        return summary.emit(self.graph, fmt, flops)

    def to_dot(self, level: str = "block", rankdir: str = "TB") -> str:
        """A Graphviz diagram as DOT text: level `stage`, `block` or `op`; rankdir `TB` or `LR`."""
        from .backends import dot

        return dot.emit(self.graph, level, rankdir)

    def to_html(self, level: str = "stage") -> str:
        """The interactive page: one self-contained HTML file that expands stages and blocks in place."""
        from .backends import interactive

        return interactive.emit(self.graph, level)

    def to_torch(self):
        """A fresh instance of the generated top-level nn.Module."""
        from .backends import torch_src

        return torch_src.instantiate(self.torch_source, self.graph)

    def to_onnx(self, weights=None, *, seed: int = 0, opset: int = 17, fold_bn: bool = False):
        """An onnx.ModelProto of the network in inference mode.

        `weights`: None for the seeded default initialisation (`seed`), a path
        to a `.pt`/`.pth` state_dict, `.safetensors` or `.npz` file, or a
        mapping of state_dict keys to arrays or tensors. `fold_bn` folds each
        BatchNorm into the conv before it. Raises ResdslError for weights that
        do not fit the network.
        """
        from .backends import onnx_graph

        return onnx_graph.emit(
            *self._onnx_parts(weights, seed, fold_bn), opset=opset, **self._onnx_info(weights, seed, fold_bn)
        )

    def save_onnx(
        self, path, weights=None, *, seed: int = 0, opset: int = 17, fold_bn: bool = False, external_data: bool = False
    ) -> Path | None:
        """Write `to_onnx(...)`'s model to `path` atomically, copying the weights only into the file (faster).

        With `external_data`, or when the model would pass protobuf's 2 GiB
        limit, the weights go to `<path>.data` beside it (ONNX external data);
        returns that file's path, or None when the weights are inside the model.
        """
        from . import weights as weights_mod
        from .io import write_atomic

        if weights is None and not fold_bn:
            graph, source = self.graph, weights_mod.seeded_source(self.graph, seed)
        else:
            graph, state = self._onnx_parts(weights, seed, fold_bn)
            source = weights_mod.state_source(state)

        from .backends import onnx_graph

        path = Path(path)
        data_path = path.with_name(path.name + ".data")
        encoded = onnx_graph.serialize(
            graph,
            *source,
            opset=opset,
            data_file=data_path.name,
            external=external_data,
            **self._onnx_info(weights, seed, fold_bn),
        )
        if encoded.data is None:
            write_atomic(path, encoded.model)
            return None
        write_atomic(data_path, encoded.data)  # first: once the new model is in place, so is its data
        write_atomic(path, encoded.model)
        return data_path

    def _onnx_parts(self, weights, seed: int, fold_bn: bool):
        """The graph and state to emit: weights resolved and checked, BatchNorm folded if asked."""
        from . import weights as weights_mod

        if weights is None:
            state = weights_mod.initial(self.graph, seed)
        elif isinstance(weights, (str, Path)):
            state = weights_mod.load(weights, self.graph)
        else:
            state = weights_mod.check(weights, self.graph)
        if not fold_bn:
            return self.graph, state
        from .passes import fold_bn as fold

        return fold.apply(self.graph, state)

    def _onnx_info(self, weights, seed: int, fold_bn: bool) -> dict:
        from . import __version__
        from .diagnostics import file_name

        if weights is None:
            origin = f"seed {seed}"
        elif isinstance(weights, (str, Path)):
            origin = f"file {Path(weights).name}"
        else:
            origin = "mapping"
        metadata = {"source": file_name(self.source.name), "weights": origin, "fold_bn": str(bool(fold_bn)).lower()}
        return {"metadata": metadata, "producer_version": __version__}

    def __repr__(self) -> str:
        return f"<resdsl.Compiled {self.name}: {self.params:,} parameters>"


def _is_path(spec: str | Path) -> bool:
    if isinstance(spec, Path):
        return True
    return "\n" not in spec and "{" not in spec and (spec.endswith(".res") or Path(spec).exists())


def load(spec: str | Path, limits: Limits | None = None) -> Source:
    """Read a spec from a path, or take it as text."""
    if _is_path(spec):
        return read_source(spec, limits)
    return Source("<text>", str(spec))


def compile(  # noqa: A001
    spec: str | Path | Source,
    overrides: dict[str, str] | None = None,
    limits: dict[str, int] | Limits | None = None,
) -> Compiled:
    """Parse, lower and check a spec (a path or the text itself); raises ResdslError on mistakes.

    `limits` raises (or lowers) the bounds of resdsl/limits.py, e.g. `{"channels": 200_000}`.
    """
    limits = limits if isinstance(limits, Limits) else Limits.from_options(limits)
    source = spec if isinstance(spec, Source) else load(spec, limits)
    base = Path(source.name).parent if source.name != "<text>" else Path.cwd()
    program = load_program(source, base, limits)
    graph = lower(program, overrides, limits)
    passes.run(graph)
    return Compiled(graph, source)
