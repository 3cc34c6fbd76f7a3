"""Lines of generated Python laid out as `ruff format` lays them out, for the forms the backend writes.

A statement that fits in the line length stays on one line. Otherwise its
outermost call (or `def`) is split after the opening bracket with all
arguments on one indented line; where that does not fit either, each
argument gets a line of its own, with a trailing comma, and an argument
that is itself too long a call is split the same way. Those are the layouts
ruff (like black) chooses for these forms, so generated files pass
`ruff format --check`.
"""

from __future__ import annotations

LINE_LENGTH = 120
INDENT = "    "


def statement(indent: str, head: str, args: list[str], tail: str = ")") -> list[str]:
    """`head` (ending in an opening bracket), the comma-separated `args`, then `tail`, laid out."""
    one = f"{indent}{head}{', '.join(args)}{tail}"
    if len(one) <= LINE_LENGTH or not args:
        return [one]
    inner = indent + INDENT
    hugged = inner + ", ".join(args)
    if len(hugged) <= LINE_LENGTH:
        return [f"{indent}{head}", hugged, f"{indent}{tail}"]
    lines = [f"{indent}{head}"]
    for arg in args:
        lines += argument(inner, arg)
    return lines + [f"{indent}{tail}"]


def argument(indent: str, arg: str) -> list[str]:
    """One argument on its own line(s), with its trailing comma."""
    if len(indent) + len(arg) + 1 <= LINE_LENGTH:
        return [f"{indent}{arg},"]
    split = split_call(arg)
    if split is None:
        return [f"{indent}{arg},"]
    func, args = split
    return statement(indent, f"{func}(", args, "),")


def line(indent: str, text: str) -> list[str]:
    """A statement `text` (an assignment or expression, maybe ending in a call), laid out."""
    if len(indent) + len(text) <= LINE_LENGTH:
        return [indent + text]
    target, sep, value = text.partition(" = ")
    if not sep or "(" in target:
        target, value = "", text
    split = split_call(value)
    if split is None:
        return [indent + text]
    func, args = split
    return statement(indent, f"{target} = {func}(" if target else f"{func}(", args)


def split_call(text: str) -> tuple[str, list[str]] | None:
    """`func(a, g(b, c))` → ("func", ["a", "g(b, c)"]); None when `text` is not one call."""
    start = text.find("(")
    if start <= 0 or not text.endswith(")"):
        return None
    args: list[str] = []
    depth, begin, quote = 0, start + 1, ""
    for index in range(start, len(text)):
        char = text[index]
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth == 0 and index != len(text) - 1:
                return None  # the outer call closes before the end: `f(a).g(b)`
        elif char == "," and depth == 1:
            args.append(text[begin:index].strip())
            begin = index + 1
    last = text[begin:-1].strip()
    if last:
        args.append(last)
    return text[:start], args


def method_body(statements: list[str]) -> list[str]:
    """A method's statements laid out at its indentation; a statement's own leading spaces nest it under
    an `if`, and one with line breaks is laid out already."""
    lines = []
    for text in statements:
        if "\n" in text:
            lines += [INDENT * 2 + part for part in text.split("\n")]
            continue
        depth = len(text) - len(text.lstrip(" "))
        lines += line(INDENT * 2 + " " * depth, text.lstrip(" "))
    return lines
