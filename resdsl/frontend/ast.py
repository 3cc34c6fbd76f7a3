"""The syntax tree of a .res file: frozen dataclasses, each with its span."""

from __future__ import annotations

from dataclasses import dataclass

from ..diagnostics import Source, Span
from ..ir.expr import BinOp as BinOp
from ..ir.expr import Bool as Bool
from ..ir.expr import Expr as Expr
from ..ir.expr import Neg as Neg
from ..ir.expr import Num as Num
from ..ir.expr import Str as Str
from ..ir.expr import Var as Var


@dataclass(frozen=True)
class Ident:
    text: str
    span: Span


# Expressions (Num, Bool, Str, Var, BinOp, Neg) are the IR's expression trees,
# imported above from ir/expr.py: the IR keeps them as the spec wrote them.


# -- statements --------------------------------------------------------------


@dataclass(frozen=True)
class Arg:
    name: Ident | None  # None for a positional argument
    value: Expr
    span: Span


@dataclass(frozen=True)
class Repeat:
    count: Expr
    first: tuple[Arg, ...]  # argument overrides for the first repetition
    span: Span


@dataclass(frozen=True)
class CallStmt:
    """`[target =] callee[(args)] [x N [first(...)]]`: an op or a block."""

    target: Ident | None
    callee: Ident
    args: tuple[Arg, ...]
    repeat: Repeat | None
    span: Span
    source: Ident | None = None  # `from NAME`: the tensor it reads, instead of the previous statement's


@dataclass(frozen=True)
class MergeStmt:
    """`[target =] add NAME`, `mul NAME` or `concat NAME, ...`: combine the current tensor with named ones.

    `add` is a residual add (the named tensor is the shortcut) when the named
    tensor is upstream of the current one, else a plain sum of equal shapes;
    `mul` multiplies elementwise, broadcasting a C×1×1 gate over C×H×W
    (attention modules); `concat` joins along the channels; `select` sums the
    named tensors weighted by the current one's chunks (selective kernels).
    """

    op: str  # "add", "mul", "concat" or "select"
    target: Ident | None
    operand: Ident
    span: Span
    rest: tuple[Ident, ...] = ()  # `concat`'s and `select`'s further tensors
    source: Ident | None = None  # `from NAME`: the first operand, instead of the current tensor


@dataclass(frozen=True)
class SplitStmt:
    """`a, b, ... = split`: the current tensor cut along the channels into one equal piece per name."""

    targets: tuple[Ident, ...]
    span: Span
    source: Ident | None = None  # `from NAME`: the tensor it cuts
    word: Ident | None = None  # what follows `=`: lowering checks that it is `split`
    called: bool = False  # arguments followed the word (`a, b = conv(8, k=1)`): a mistake lowering reports


@dataclass(frozen=True)
class SeqStmt:
    """`NAME = seq { ops }`: ops in a module numbered as nn.Sequential numbers them (a deep stem)."""

    target: Ident
    body: tuple[CallStmt, ...]
    span: Span
    source: Ident | None = None  # `from NAME`


@dataclass(frozen=True)
class LetStmt:
    name: Ident
    value: Expr
    span: Span


@dataclass(frozen=True)
class InputStmt:
    shape: tuple[int, ...]
    span: Span


@dataclass(frozen=True)
class ClassesStmt:
    value: Expr
    span: Span


@dataclass(frozen=True)
class PolicyStmt:
    """`policy NAME = VALUE`; a value that names an op may give its arguments: `policy attn = se(rd_ratio=0.25)`."""

    name: Ident
    value: Ident
    args: tuple[Arg, ...] | None
    span: Span


@dataclass(frozen=True)
class OutputStmt:
    """`return NAME, ...`: the network's named outputs, in order (several: an FPN's P2…P5)."""

    names: tuple[Ident, ...]
    span: Span


Stmt = OutputStmt | CallStmt | MergeStmt | SplitStmt | SeqStmt | LetStmt | InputStmt | ClassesStmt | PolicyStmt


# -- top level ---------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    name: Ident
    default: Expr | None
    span: Span


@dataclass(frozen=True)
class BlockDef:
    name: Ident
    params: tuple[Param, ...]
    expansion: Expr | None
    body: tuple[Stmt, ...]
    span: Span


@dataclass(frozen=True)
class NetworkDef:
    name: Ident
    body: tuple[Stmt, ...]
    span: Span


@dataclass(frozen=True)
class Use:
    path: str
    span: Span


@dataclass(frozen=True)
class Module:
    source: Source
    uses: tuple[Use, ...]
    blocks: tuple[BlockDef, ...]
    networks: tuple[NetworkDef, ...]
