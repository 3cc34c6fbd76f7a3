"""What an op kind declares, once, for every stage of the compiler.

An op is a frozen dataclass whose fields are its attributes. Its class says
how a spec calls it (`signature`), how many operands it takes (`arity`),
whether PyTorch holds it as a submodule with a module path (`is_module`), and
its methods give its shape rule, state layout (parameter counts derive from
it), MAC count, diagram label and what the PyTorch and ONNX backends write.
Backends reach those through the op, never through a table of kinds of their
own, so adding an op is one file in this folder (see docs/internals.md).

The backend hooks receive the backend's own writer (`TorchWriter`,
`OnnxWriter`): an op file imports neither torch nor onnx.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Protocol

from ..diagnostics import Collector, Span
from ..ir.expr import BinOp, Expr, Num
from ..ir.shape import Shape

REQUIRED: Any = object()  # the default of an argument a call must give


class TensorRef:
    """The type of an argument that names a tensor of the body (`upsample(to=inner4)`): lowering makes
    the named tensor an extra operand of the op rather than an attribute."""


@dataclass(frozen=True)
class Range:
    """The interval a number argument must lie in, each end included unless open."""

    low: float
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def __str__(self) -> str:
        if self.high == math.inf:
            return f"{'greater than' if self.low_open else 'at least'} {self.low:g}"
        return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"


@dataclass(frozen=True)
class ArgSpec:
    """One argument of a spec op: its name, aliases, type, default and allowed range."""

    name: str
    type: type
    default: object = REQUIRED
    aliases: tuple[str, ...] = ()
    minimum: int | None = 1  # smallest allowed value for integers
    words: tuple[str, ...] = ()  # bare words accepted besides values of `type` (conv's `norm=post`)
    range: Range | None = None  # allowed values of a float
    # The size limit (resdsl/limits.py) an integer may not pass: PyTorch's kernels overflow on
    # strides past 2**31, and a padding or dilation that large allocates beyond any memory.
    bound: str | None = None


@dataclass(frozen=True)
class Signature:
    """How a spec calls an op: its arguments in positional order."""

    args: tuple[ArgSpec, ...]
    # Arguments that steer a pass rather than becoming op attributes (the node keeps them).
    node_args: tuple[str, ...] = ()

    def lookup(self, name: str) -> ArgSpec | None:
        for spec in self.args:
            if name == spec.name or name in spec.aliases:
                return spec
        return None

    def lookup_name(self, name: str) -> str | None:
        """The argument `name` spells (itself or an alias), or None."""
        spec = self.lookup(name)
        return spec.name if spec else None

    def usage(self, callee: str) -> str:
        """`usage: conv(out_channels, kernel, stride=1, ...)` for help lines."""
        parts = [spec.name if spec.default is REQUIRED else f"{spec.name}={_show(spec.default)}" for spec in self.args]
        return f"usage: {callee}({', '.join(parts)})"


def _show(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return "auto" if value is None else str(value)


@dataclass(frozen=True)
class StateEntry:
    """One state_dict entry of an op's module, and how PyTorch starts it.

    `name` follows the op's module path (`weight`, `fc1.bias`); empty, the
    op's module path is the key itself (a bare parameter: a layer scale's `gamma`). An entry starts
    uniform in ±`bound` when `bound` is set, else every element is `value`.
    """

    name: str
    shape: Shape
    dtype: str = "float32"
    bound: float | None = None
    value: float = 0.0
    parameter: bool = True  # counted as a parameter; else a buffer
    optional: bool = False  # a checkpoint may leave it out (BatchNorm's num_batches_tracked)
    scale: bool = False  # the op's output scale: zero_init_last starts it at zero

    @property
    def size(self) -> int:
        return math.prod(self.shape)


def state_key(path: str | None, name: str) -> str:
    """The state_dict key of entry `name` of the module at `path` (an empty name: the path itself)."""
    return f"{path}.{name}" if name else str(path)


def fan_in_bound(weight_shape: Shape) -> float:
    """nn.Conv2d's and nn.Linear's default init bound, 1/sqrt(fan_in), for weights and biases alike."""
    return 1.0 / math.sqrt(math.prod(weight_shape[1:]))


class ShapeReport:
    """Where an op's shape rule reports mistakes: the node's span and name are filled in."""

    def __init__(self, errors: Collector, span: Span | None, name: str):
        self.errors = errors
        self.span = span
        self.name = name  # the module path, or the op kind: "`layer1.0.conv1`: ..."

    def error(self, code: str, message: str, label: str = "", help: str = "") -> None:
        self.errors.add(code, message, self.span, label, help)


class TorchWriter(Protocol):
    """What the PyTorch backend offers an op writing its source."""

    def attr(self, name: str) -> str:
        """Attribute `name` as Python source: a literal, or in a block class its expression in the block's terms."""
        ...

    def stored(self, name: str) -> str:
        """Like `attr`, but a symbolic value is stored on the module in __init__ and read back in forward."""
        ...

    def in_channels(self) -> str:
        """The channel count of the first operand, in the class's terms."""
        ...

    def channels_last(self) -> bool:
        """Whether the first operand is a channels-last (N×H×W×C) feature map."""
        ...

    def rank(self) -> int:
        """The first operand's number of dimensions, the batch left out (3: a feature map; 1: flat)."""
        ...

    def inplace(self) -> bool:
        """Whether the op may overwrite its operand (nothing else reads it, and autograd does not need it)."""
        ...

    def helper(self, name: str) -> str:
        """The name the generated file gives helper class `name` (one of `torch_helpers`'s keys)."""
        ...


class OnnxWriter(Protocol):
    """What the ONNX backend offers an op writing its nodes."""

    name: str  # the op's ONNX node name; inner tensors are named `<name>.<label>`
    opset: int  # the opset being written: an op the opset lacks is written as a decomposition
    inputs: list[Shape]  # operand shapes
    shape: Shape  # the op's output shape

    def weight(self, key: str) -> str:
        """The initializer of state entry `key` of this op's module."""
        ...

    def output(self, op_type: str, inputs: list[str], **attrs: Any) -> None:
        """The node that computes this op's output."""
        ...

    def step(
        self, label: str, op_type: str, inputs: list[str], shape: Shape, batched: bool = True, **attrs: Any
    ) -> str:
        """An inner node; returns its output tensor's name. `shape` leaves the batch out, unless `batched`
        is false: a tensor computed from weights alone (a standardised filter, a per-channel column)."""
        ...

    def constant(self, label: str, values: list[int]) -> str:
        """An int64 constant tensor; returns its name."""
        ...

    def int_step(self, label: str, op_type: str, inputs: list[str], length: int, **attrs: Any) -> str:
        """An inner node whose output is a 1-D int64 tensor of `length` (a `Shape`, a `Slice` of one)."""
        ...

    def float_constant(self, label: str, values: Sequence[float], shape: Shape) -> str:
        """A float32 constant tensor of `shape`, values row-major (not an initializer: those are the state_dict)."""
        ...


@dataclass(frozen=True)
class Op:
    """The base of every op kind; see the module docstring."""

    kind: ClassVar[str] = ""
    arity: ClassVar[int] = 1
    signature: ClassVar[Signature | None] = None  # set for ops a spec can call
    is_module: ClassVar[bool] = False  # a submodule in PyTorch, with a module path
    # A bare parameter of its module rather than a submodule (a layer scale's `gamma`): its path is
    # its state_dict key, and PyTorch's state_dict holds it before the module's submodules.
    parameter: ClassVar[bool] = False
    spatial: ClassVar[bool] = False  # its operands must be C×H×W feature maps (checked before `infer`)
    # The choices a policy makes among ops: "norm" ops are what the norm policy places
    # (`policy norm_op`), "act" the activations (`policy act`), "attn" the attention a branch
    # ends with (`policy attn`), "aa" the anti-aliasing after a strided conv (`policy aa`).
    families: ClassVar[tuple[str, ...]] = ()
    # Autograd keeps the op's output for its backward pass, so nothing may overwrite it in place.
    saves_output: ClassVar[bool] = False
    # Its output is a view of its first operand's memory (flatten): overwriting it overwrites that too.
    view: ClassVar[bool] = False
    # The memory layout its C×H×W operands may have (shapes stay C×H×W in the IR whatever the layout;
    # `channels_last` and `channels_first` change it): "first" (N×C×H×W: convs, pools, BatchNorm),
    # "last" (N×H×W×C: a linear layer over the channels at every position), "any" (elementwise or
    # per-channel ops that keep their operand's layout: activations, `layernorm`, `add`). Flat operands
    # have no layout. The shapes pass checks it (E0213) and sets `Node.channels_last`.
    layout: ClassVar[str] = "first"
    # Its PyTorch module depends on its operand's layout and rank (`layernorm`: LayerNorm2d or
    # nn.LayerNorm), so every use of a block template must give it the same (E0211).
    layout_module: ClassVar[bool] = False

    @classmethod
    def missing_hooks(cls) -> list[str]:
        """The hooks this kind leaves to the base class but must define (tests/test_ops.py checks every kind).

        Every kind needs a shape rule, a MAC rule, a label (diagrams, reports,
        summaries) and ONNX nodes; in PyTorch a module needs its module
        expression, a functional op its forward expression.
        """
        hooks = ["infer", "macs", "label", "torch_module" if cls.is_module else "torch_call", "onnx"]
        return [name for name in hooks if getattr(cls, name) is getattr(Op, name)]

    def operand_count(self) -> int:
        """How many operands this op takes: its kind's `arity`, unless its attributes say otherwise
        (`concat` of n tensors, `upsample` to another tensor's size)."""
        return self.arity

    def value_operands(self) -> int:
        """How many of the leading operands it computes with; the rest only lend their sizes
        (`upsample(to=NAME)`): lowering does not count those as the path a residual add closes."""
        return self.operand_count()

    def attrs(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def out_layout(self, channels_last: bool) -> bool:
        """Whether the output is channels-last, given whether the first operand is (the permutes change it)."""
        return channels_last

    def downsampling(self) -> int:
        """The factor by which the op strides over its input's height and width (1 for most)."""
        return 1

    @classmethod
    def complete(cls, values: dict[str, Any], exprs: dict[str, Expr], span: Span) -> None:
        """Fill arguments whose defaults follow others (a conv's padding), symbolically where those are."""

    def includes_act(self) -> bool:
        """Norms with a nonlinearity of their own (EvoNorm-S0, FRN's TLU): the norm policy places no
        activation after them."""
        return False

    def problems(self) -> list[str]:
        """Attribute values this op cannot have (the verifier's per-op check); empty when well formed."""
        problems = []
        for name, expected in _typed_fields(type(self)):
            value = getattr(self, name)
            if type(value) is not expected:
                problems.append(f"{name}={value!r} is not {expected.__name__}")
        return problems

    def infer(self, inputs: Sequence[Shape], report: ShapeReport) -> Shape | None:
        """The output shape for operand shapes `inputs`, or None after reporting why there is none."""
        raise NotImplementedError

    def state(self, inputs: Sequence[Shape]) -> list[StateEntry]:
        """The op's state_dict entries (modules only); parameter counts are summed from them."""
        return []

    def macs(self, inputs: Sequence[Shape], output: Shape) -> int:
        """Multiply-accumulates, as torchvision counts them (convolutions and linear layers)."""
        raise NotImplementedError

    def label(self, channels: bool = True) -> str:
        """A short, paper-style description for diagrams and reports."""
        raise NotImplementedError

    def torch_module(self, w: TorchWriter) -> str:
        """Modules: the Python expression that builds the submodule (`nn.Conv2d(...)`)."""
        raise NotImplementedError

    def torch_call(self, w: TorchWriter, args: list[str]) -> str:
        """Functional ops: the forward expression over the operands' variables."""
        raise NotImplementedError

    def torch_apply(self, attribute: str, arg: str) -> str:
        """Modules: the forward expression that applies attribute `self.NAME` to the operand's variable
        (a module is called; a bare parameter such as a layer scale's `gamma` is not)."""
        return f"{attribute}({arg})"

    def torch_helpers(self) -> Mapping[str, str]:
        """Classes the generated file must define for this op (name → source)."""
        return {}

    def onnx(self, w: OnnxWriter, inputs: list[str]) -> None:
        """Write the ONNX nodes computing this op from the operand tensors `inputs`."""
        raise NotImplementedError


_TYPES = {"int": int, "float": float, "bool": bool}


_TYPED_FIELDS: dict[type, list[tuple[str, type]]] = {}


def _typed_fields(cls: type[Op]) -> list[tuple[str, type]]:
    """The attributes of an op class that hold plain numbers or booleans, with their types."""
    if cls not in _TYPED_FIELDS:
        _TYPED_FIELDS[cls] = [(f.name, _TYPES[str(f.type)]) for f in fields(cls) if str(f.type) in _TYPES]
    return _TYPED_FIELDS[cls]


def changed_args(w: TorchWriter, defaults: Sequence[tuple[str, str]]) -> list[str]:
    """`name=value` for each attribute whose source differs from the module's default, in the given order:
    generated modules spell out only what a spec changed (`nn.Conv2d(64, 64, 3, stride=2, bias=False)`)."""
    return [f"{name}={w.attr(name)}" for name, default in defaults if w.attr(name) != default]


def half_kernel(values: Mapping[str, Any], exprs: dict[str, Expr], span: Span) -> Expr | None:
    """A conv's default padding, `kernel // 2 * dilation`, as an expression; None when both are constants."""
    dilation = exprs.get("dilation")
    if "kernel" not in exprs:
        if dilation is None:
            return None
        half = values["kernel"] // 2
        return dilation if half == 1 else BinOp("*", Num(half, span), dilation, span)
    half_expr = BinOp("//", exprs["kernel"], Num(2, span), span)
    if dilation is None:
        return half_expr if values["dilation"] == 1 else BinOp("*", half_expr, Num(values["dilation"], span), span)
    return BinOp("*", half_expr, dilation, span)
