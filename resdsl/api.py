"""The Python API: compile a spec into an object that every backend reads."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import passes
from .collector import paused
from .diagnostics import Diagnostic, ResdslWarning, Source
from .extras import require
from .frontend.loader import load as load_program
from .frontend.loader import read_source
from .frontend.lower import lower
from .ir.graph import IR
from .limits import Limits
from .passes import lint

if TYPE_CHECKING:  # only for annotations: importing resdsl never imports torch or onnx
    import onnx
    import torch

Weights = str | Path | Mapping[str, Any] | None


class Compiled:
    """A validated network: its IR plus lazily generated outputs."""

    def __init__(self, ir: IR, source: Source, warnings: list[Diagnostic] | None = None, files: Iterable[Path] = ()):
        self.ir = ir
        self.source = source
        self.warnings = warnings or []  # W-coded diagnostics: valid, but probably not what was meant
        self.files = list(files)  # the files read: the spec and every file it uses (resolved paths)

    @property
    def name(self) -> str:
        """The network's name in the spec."""
        return self.ir.name

    @property
    def input_shape(self) -> tuple[int, ...]:
        """(channels, height, width) of one input image."""
        return self.ir.input_shape

    @property
    def output_shape(self) -> tuple[int, ...]:
        """The shape of one output, batch left out: (classes,) for a classifier (named outputs: `outputs`)."""
        shape = self.ir.walk()[-1].shape
        assert shape is not None  # every shape is inferred
        return shape

    @property
    def outputs(self) -> dict[str, tuple[int, ...]]:
        """A network's named outputs (`return p2, p3`) and their shapes, batch left out, in order; empty for a
        network with one output (`output_shape`)."""
        return {node.name or "": tuple(node.shape or ()) for node in self.ir.outputs()}

    @cached_property
    def totals(self) -> tuple[int, int]:
        """(parameters, MACs) of the whole network for one image."""
        from .ir.cost import totals

        return totals(self.ir)

    @property
    def params(self) -> int:
        """Trainable parameters."""
        return self.totals[0]

    @property
    def macs(self) -> int:
        """Multiply-accumulates of one forward pass on one image."""
        return self.totals[1]

    @cached_property
    @paused
    def torch_source(self) -> str:
        """Standalone PyTorch source of the network (needs no torch to generate)."""
        from .backends import torch_src

        return torch_src.emit(self.ir)

    @property
    def ir_text(self) -> str:
        """The IR after every pass, one op per line (`resdsl build --emit ir`)."""
        from .ir.dump import dump

        return dump(self.ir)

    def summary(self, fmt: str = "table", flops: bool = False) -> str:
        """Per-layer shapes, parameters and MACs (FLOPs with `flops`) as a text table, or JSON with `fmt="json"`."""
        from .backends import summary

        return summary.emit(self.ir, fmt, flops)

    def to_dot(self, level: str = "block", rankdir: str = "TB") -> str:
        """A Graphviz diagram as DOT text: level `stage`, `block` or `op`; rankdir `TB` or `LR`."""
        from .backends import dot

        return dot.emit(self.ir, level, rankdir)

    def to_html(self, level: str = "stage") -> str:
        """The interactive page: one self-contained HTML file that expands stages and blocks in place."""
        from .backends import interactive

        return interactive.emit(self.ir, level)

    def to_torch(self) -> torch.nn.Module:
        """A fresh instance of the generated top-level nn.Module (needs `resdsl[torch]`)."""
        require("building a PyTorch module", ("torch",), "torch")
        from .backends import torch_src

        return torch_src.instantiate(self.torch_source, self.ir)

    def features(self, out_indices: tuple[int, ...] | None = None) -> torch.nn.Module:
        """The network without its head, returning the feature maps at `out_indices` (timm's features_only)."""
        require("building a PyTorch module", ("torch",), "torch")
        from .backends import torch_src

        cls = torch_src.load_module(self.torch_source, self.ir).Features
        return cls() if out_indices is None else cls(out_indices=tuple(out_indices))

    def to_onnx(
        self, weights: Weights = None, *, seed: int = 0, opset: int = 17, fold_bn: bool = True
    ) -> onnx.ModelProto:
        """An onnx.ModelProto of the network in inference mode (needs `resdsl[onnx]`).

        `weights`: None for the seeded default initialisation (`seed`), a path
        to a `.pt`/`.pth` state_dict (read without torch), `.safetensors` or
        `.npz` file, or a mapping of state_dict keys to arrays or tensors.
        `fold_bn` (the default) folds each BatchNorm that follows a conv into
        it; `fold_bn=False` keeps every BatchNorm. Raises ResdslError for
        weights that do not fit the network.
        """
        _require_onnx(weights)
        from .backends import onnx_graph

        return onnx_graph.emit(
            *self._onnx_parts(weights, seed, fold_bn), opset=opset, **self._onnx_info(weights, seed, fold_bn)
        )

    def save_onnx(
        self,
        path: str | Path,
        weights: Weights = None,
        *,
        seed: int = 0,
        opset: int = 17,
        fold_bn: bool = True,
        external_data: bool = False,
    ) -> Path | None:
        """Write `to_onnx(...)`'s model to `path` atomically, each weight made as it is written (faster, less memory).

        With `external_data`, or when the model would pass protobuf's 2 GiB
        limit, the weights go to `<path>.data` beside it (ONNX external data);
        returns that file's path, or None when the weights are inside the model.
        """
        _require_onnx(weights)
        from . import weights as weights_mod
        from .io import write_atomic

        if weights is None and not fold_bn:
            ir, source = self.ir, weights_mod.seeded_source(self.ir, seed)
        else:
            ir, state = self._onnx_parts(weights, seed, fold_bn)
            source = weights_mod.state_source(state)

        from .backends import onnx_graph

        path = Path(path)
        data_path = path.with_name(path.name + ".data")
        encoded = onnx_graph.serialize(
            ir,
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
        """The graph and state to emit: weights resolved and checked, BatchNorm folded if asked.

        Seeded and `.pt` weights and folded convs come as a weights.Lazy state,
        made one array at a time as the model is written.
        """
        from . import weights as weights_mod

        state: Mapping[str, Any]
        if weights is None:
            state = weights_mod.seeded(self.ir, seed)
        elif isinstance(weights, (str, Path)):
            state = weights_mod.load(weights, self.ir)
        else:
            state = weights_mod.check(weights, self.ir)
        if not fold_bn:
            return self.ir, state
        from .passes import fold_bn as fold

        return fold.apply(self.ir, state)

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


def _require_onnx(weights: Weights) -> None:
    require("writing ONNX", ("onnx", "numpy"), "onnx")
    suffix = Path(weights).suffix.lower() if isinstance(weights, (str, Path)) else ""
    if suffix == ".safetensors":
        require("reading a .safetensors file", ("safetensors",))


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
    use_path: Iterable[str | Path] | None = None,
) -> Compiled:
    """Parse, lower and check a spec (a path or the text itself); raises ResdslError on mistakes.

    `overrides` are `--set` settings (`{"norm": "pre"}`); `limits` raises (or
    lowers) the bounds of resdsl/limits.py, e.g. `{"channels": 200_000}`.
    `use_path` names folders beyond the spec's own that `use` may read and searches
    (`$RESDSL_PATH` adds more); text given directly counts the current folder as its own.
    Warnings (W codes) are issued as `ResdslWarning` and kept in the result's
    `warnings`.
    """
    limits = limits if isinstance(limits, Limits) else Limits.from_options(limits)
    source = spec if isinstance(spec, Source) else load(spec, limits)
    compiled = _build(source, overrides, limits, use_path)
    for diagnostic in compiled.warnings:
        warnings.warn(ResdslWarning(diagnostic), stacklevel=2)
    return compiled


@paused
def _build(
    source: Source, overrides: dict[str, str] | None, limits: Limits, use_path: Iterable[str | Path] | None = None
) -> Compiled:
    if source.path is not None:
        base = Path(source.path).parent
    else:
        base = Path(source.name).parent if source.name != "<text>" else Path.cwd()
    program = load_program(source, base, limits, use_path)
    ir = lower(program, overrides, limits)
    passes.run(ir, limits)
    return Compiled(ir, source, lint.check(ir), program.files)
