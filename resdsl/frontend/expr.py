"""Evaluating spec expressions, and writing them back out as Python source."""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable

from ..diagnostics import error
from . import ast

Value = int | float | bool | str

# Binding strength of each operator, as in Python, for minimal parentheses.
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "//": 2, "%": 2, "/": 2}


def evaluate(expr: ast.Expr, env: dict[str, Value]) -> Value:
    if isinstance(expr, (ast.Num, ast.Bool, ast.Str)):
        return expr.value
    if isinstance(expr, ast.Var):
        if expr.name in env:
            return env[expr.name]
        close = difflib.get_close_matches(expr.name, list(env), n=1)
        known = ", ".join(f"`{k}`" for k in sorted(env)) or "none"
        raise error(
            "E0105",
            f"unknown name `{expr.name}`",
            expr.span,
            "not defined here",
            f"did you mean `{close[0]}`?" if close else f"names in scope: {known}",
        )
    if isinstance(expr, ast.Neg):
        value = _number(evaluate(expr.operand, env), expr.operand)
        return -value
    left = _number(evaluate(expr.left, env), expr.left)
    right = _number(evaluate(expr.right, env), expr.right)
    op = expr.op
    if op == "/":
        raise error(
            "E0108",
            "`/` is not integer division",
            expr.span,
            "channel and size arithmetic is on integers",
            "write `//` for floor division",
        )
    if op in ("//", "%") and right == 0:
        raise error("E0108", "division by zero", expr.right.span, "this is 0")
    try:
        result = {
            "+": lambda: left + right,
            "-": lambda: left - right,
            "*": lambda: left * right,
            "//": lambda: left // right,
            "%": lambda: left % right,
        }[op]()
    except (ArithmeticError, ValueError):
        result = math.inf
    # Past 10**18, or not finite, a value can only be a mistake; bounding it also keeps
    # every later computation (shapes, parameter counts) cheap.
    if not math.isfinite(result) or abs(result) > 10**18:
        raise error("E0108", "number too large", expr.span, "this overflows")
    return result


def _number(value: Value, expr: ast.Expr) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise error("E0107", f"expected a number, got {describe(value)}", expr.span, "not a number")
    return value


def describe(value: Value) -> str:
    if isinstance(value, bool):
        return f"the boolean `{str(value).lower()}`"
    if isinstance(value, str):
        return f'the string "{value}"'
    return f"`{value}`"


def print_expr(expr: ast.Expr, leaf: Callable[[ast.Expr], str]) -> str:
    """`expr` with operators and minimal parentheses; `leaf` writes numbers, booleans, strings and names.

    The spec language and Python share the operators and their precedence, so
    the formatter and the PyTorch backend print through this one function.
    """
    return _print(expr, leaf, 0)


def _print(expr: ast.Expr, leaf: Callable[[ast.Expr], str], outer: int) -> str:
    if isinstance(expr, ast.Neg):
        return "-" + _print(expr.operand, leaf, 3)
    if not isinstance(expr, ast.BinOp):
        return leaf(expr)
    prec = _PRECEDENCE[expr.op]
    # Left-associative: the right operand needs parentheses at equal precedence.
    text = f"{_print(expr.left, leaf, prec)} {expr.op} {_print(expr.right, leaf, prec + 1)}"
    return f"({text})" if prec < outer else text


def render(expr: ast.Expr, names: dict[str, str]) -> str:
    """Python source for `expr`, with spec names mapped through `names`."""

    def leaf(node: ast.Expr) -> str:
        if isinstance(node, ast.Var):
            return names[node.name]
        if isinstance(node, ast.Bool):
            return "True" if node.value else "False"
        assert isinstance(node, (ast.Num, ast.Str)), node  # print_expr hands over leaves only
        return repr(node.value)

    return print_expr(expr, leaf)


def is_literal(expr: ast.Expr) -> bool:
    return isinstance(expr, (ast.Num, ast.Bool, ast.Str)) or (isinstance(expr, ast.Neg) and is_literal(expr.operand))


__all__ = ["evaluate", "render", "print_expr", "describe", "is_literal"]
