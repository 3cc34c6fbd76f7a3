"""Evaluating spec expressions (the trees of ir/expr.py) to values, with located errors."""

from __future__ import annotations

import difflib
import math

from ..diagnostics import error
from ..ir.expr import Value
from . import ast


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


__all__ = ["evaluate", "describe"]
