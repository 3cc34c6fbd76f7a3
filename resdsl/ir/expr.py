"""Expression trees: how a spec writes a value in terms of names (`planes * expansion`).

The parser builds them, lowering evaluates them, and the IR keeps the trees
of a block template's symbolic arguments so that each backend can print them
in its own language (`print_expr`): the formatter as spec text, the PyTorch
backend as Python. Every node carries the span of the text it came from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..diagnostics import Span


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
Value = int | float | bool | str  # what an expression evaluates to
EXPR_TYPES = (Num, Bool, Str, Var, BinOp, Neg)

# Binding strength of each operator, as in Python, for minimal parentheses.
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "//": 2, "%": 2, "/": 2}


def print_expr(expr: Expr, leaf: Callable[[Expr], str]) -> str:
    """`expr` with operators and minimal parentheses; `leaf` writes numbers, booleans, strings and names.

    The spec language and Python share the operators and their precedence, so
    the formatter and the PyTorch backend print through this one function.
    """
    return _print(expr, leaf, 0)


def _print(expr: Expr, leaf: Callable[[Expr], str], outer: int) -> str:
    if isinstance(expr, Neg):
        return "-" + _print(expr.operand, leaf, 3)
    if not isinstance(expr, BinOp):
        return leaf(expr)
    prec = _PRECEDENCE[expr.op]
    # Left-associative: the right operand needs parentheses at equal precedence.
    text = f"{_print(expr.left, leaf, prec)} {expr.op} {_print(expr.right, leaf, prec + 1)}"
    return f"({text})" if prec < outer else text


def is_literal(expr: Expr) -> bool:
    """A constant: a number, boolean or string, possibly negated."""
    return isinstance(expr, (Num, Bool, Str)) or (isinstance(expr, Neg) and is_literal(expr.operand))


def names_in(expr: Expr) -> list[str]:
    """The names `expr` reads, left to right."""
    if isinstance(expr, Var):
        return [expr.name]
    if isinstance(expr, Neg):
        return names_in(expr.operand)
    if isinstance(expr, BinOp):
        return names_in(expr.left) + names_in(expr.right)
    return []
