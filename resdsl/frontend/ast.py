"""The syntax tree of a .res file: frozen dataclasses, each with its span."""

from __future__ import annotations

from dataclasses import dataclass

from ..diagnostics import Source, Span


@dataclass(frozen=True)
class Ident:
    text: str
    span: Span


# -- expressions -------------------------------------------------------------


@dataclass(frozen=True)
class Num:
    value: int | float
    span: Span


@dataclass(frozen=True)
class Bool:
    value: bool
    span: Span


@dataclass(frozen=True)
class Str:
    value: str
    span: Span


@dataclass(frozen=True)
class Var:
    name: str
    span: Span


@dataclass(frozen=True)
class BinOp:
    op: str  # one of + - * // % /
    left: Expr
    right: Expr
    span: Span


@dataclass(frozen=True)
class Neg:
    operand: Expr
    span: Span


Expr = Num | Bool | Str | Var | BinOp | Neg


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


@dataclass(frozen=True)
class AddStmt:
    """`[target =] add NAME`: add a named tensor (or the block input) to the current one."""

    target: Ident | None
    operand: Ident
    span: Span


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
    name: Ident
    value: Ident
    span: Span


Stmt = CallStmt | AddStmt | LetStmt | InputStmt | ClassesStmt | PolicyStmt


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
