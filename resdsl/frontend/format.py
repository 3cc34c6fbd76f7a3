"""`resdsl fmt`: a spec's AST written back in canonical layout, comments kept.

Layout: one statement per line, two-space indent, `name = call(args)` with a
space after each comma, one blank line between top-level items, at most one
blank line kept inside a body, minimal parentheses in expressions. Comments
are re-attached by position: a comment right after an element, on its line,
stays at the end of that element's line; any other comment is written on its own line
before the next element (or before the closing `}`). The trailing comments of
consecutive lines at one indentation start in one column, two spaces after the
longest of those lines.
"""

from __future__ import annotations

import re

from ..diagnostics import Source
from ..ir.expr import print_expr
from . import ast
from .parser import parse

INDENT = "  "
# Strings first, so a `#` inside a quoted path is not taken for a comment.
_COMMENT_SCAN = re.compile(r'"[^"\n]*"|(#[^\n]*)')


def format_source(source: Source) -> str:
    """The canonical text of `source`; raises ResdslError when it does not parse."""
    module = parse(source)
    return _Formatter(source).module(module)


class _Formatter:
    def __init__(self, source: Source):
        self.source = source
        self.text = source.text
        self.comments = [(m.start(1), m.group(1).rstrip()) for m in _COMMENT_SCAN.finditer(self.text) if m.group(1)]
        self.next = 0  # the first comment not yet written
        self.lines: list[str] = []
        self.trailing: dict[int, str] = {}  # line index -> the comment at its end, aligned at the end
        self.last_end = 0  # where the last written element (or comment) ends in the source

    # -- layout ---------------------------------------------------------------

    def module(self, module: ast.Module) -> str:
        items: list[ast.Use | ast.BlockDef | ast.NetworkDef] = [*module.uses, *module.blocks, *module.networks]
        items.sort(key=lambda item: item.span.start)
        for item in items:
            if self.lines and self.lines[-1] != "":
                self.lines.append("")
            if isinstance(item, ast.Use):
                self.element(item.span.start, item.span.end, f'use "{item.path}"', "", keep_blank=True)
            elif isinstance(item, ast.BlockDef):
                header = f"block {item.name.text}({', '.join(self.param(p) for p in item.params)})"
                if item.expansion is not None:
                    header += f" expansion {self.expr(item.expansion)}"
                self.body(item, header)
            else:
                self.body(item, f"network {item.name.text}")
        self.leading(len(self.text) + 1, "", keep_blank=True)
        self._align_trailing()
        while self.lines and self.lines[-1] == "":
            self.lines.pop()
        return "\n".join(self.lines) + "\n" if self.lines else ""

    def _align_trailing(self) -> None:
        """Append the trailing comments: those of consecutive lines at one indentation share a column."""
        run: list[int] = []
        for index in [*sorted(self.trailing), None]:
            joins = (
                index is not None
                and run
                and index == run[-1] + 1
                and _indent(self.lines[index]) == _indent(self.lines[run[-1]])
            )
            if run and not joins:
                column = max(len(self.lines[i]) for i in run) + 2
                for i in run:
                    self.lines[i] = self.lines[i].ljust(column) + self.trailing[i]
                run = []
            if index is not None:
                run.append(index)

    def body(self, item: ast.BlockDef | ast.NetworkDef | ast.SeqStmt, header: str, indent: str = "") -> None:
        close = item.span.end - 1  # the span ends just after the closing `}`
        if isinstance(item, ast.SeqStmt) and item.source is not None:  # or its `from NAME`
            close = self.text.rindex("}", 0, item.source.span.start)
        stmts = [s for s in item.body if s is not None]
        opening = self._brace(stmts[0].span.start if stmts else close)
        self.element(item.span.start, opening + 1, header + " {", indent, keep_blank=True)
        for stmt in stmts:
            if isinstance(stmt, ast.SeqStmt):
                self.body(stmt, f"{stmt.target.text} = seq", indent + INDENT)
            else:
                self.element(stmt.span.start, stmt.span.end, self.stmt(stmt), indent + INDENT, keep_blank=True)
        self.leading(close, indent + INDENT, keep_blank=True)
        if isinstance(item, ast.SeqStmt) and item.source is not None:  # `} from NAME`
            self.element(close, item.span.end, f"}} from {item.source.text}", indent)
        else:
            self.element(close, close + 1, "}", indent)

    def _brace(self, before: int) -> int:
        """The position of the body's `{`: the last one before `before` outside comments."""
        position = -1
        for match in re.finditer(r'"[^"\n]*"|#[^\n]*|\{', self.text[:before]):
            if match.group() == "{":
                position = match.start()
        return position

    def element(self, start: int, end: int, text: str, indent: str, keep_blank: bool = False) -> None:
        """Write one line for the source range [start, end), with the comments before and on it."""
        self.leading(end, indent, keep_blank, first_start=start)
        if keep_blank:
            self._blank_line(start)
        self.lines.append(indent + text)
        self.last_end = end
        if self.next < len(self.comments):
            position, comment = self.comments[self.next]
            if not self.text[end:position].strip(" \t\r;"):  # nothing else between: same line, no element
                self.trailing[len(self.lines) - 1] = comment
                self.last_end = position + len(comment)
                self.next += 1

    def leading(self, upto: int, indent: str, keep_blank: bool = False, first_start: int | None = None) -> None:
        """Write the comments before `upto` on their own lines."""
        while self.next < len(self.comments) and self.comments[self.next][0] < upto:
            position, comment = self.comments[self.next]
            if keep_blank:
                self._blank_line(min(position, first_start) if first_start is not None else position)
            self.lines.append(indent + comment)
            self.last_end = position + len(comment)
            self.next += 1

    def _blank_line(self, start: int) -> None:
        """Keep one blank line where the source had at least one, except right after `{`."""
        if (
            self.text.count("\n", self.last_end, max(start, self.last_end)) >= 2
            and self.lines
            and self.lines[-1] != ""
            and not self.lines[-1].endswith("{")
        ):
            self.lines.append("")

    # -- statements and expressions -----------------------------------------

    def stmt(self, stmt: ast.Stmt) -> str:
        if isinstance(stmt, ast.InputStmt):
            return "input " + "x".join(str(d) for d in stmt.shape)
        if isinstance(stmt, ast.ClassesStmt):
            return f"classes {self.expr(stmt.value)}"
        if isinstance(stmt, ast.PolicyStmt):
            args = "" if stmt.args is None else f"({self.args(stmt.args)})"
            return f"policy {stmt.name.text} = {stmt.value.text}{args}"
        if isinstance(stmt, ast.LetStmt):
            return f"let {stmt.name.text} = {self.expr(stmt.value)}"
        if isinstance(stmt, ast.OutputStmt):
            return "return " + ", ".join(name.text for name in stmt.names)
        if isinstance(stmt, ast.SplitStmt):
            source = f" from {stmt.source.text}" if stmt.source is not None else ""
            return f"{', '.join(t.text for t in stmt.targets)} = split{source}"
        target = f"{stmt.target.text} = " if stmt.target is not None else ""
        source = f" from {stmt.source.text}" if stmt.source is not None else ""
        if isinstance(stmt, ast.MergeStmt):
            return f"{target}{stmt.op} {', '.join(n.text for n in (stmt.operand, *stmt.rest))}{source}"
        assert isinstance(stmt, ast.CallStmt)  # sequences are written by `body`
        text = target + stmt.callee.text
        if stmt.args is not None:
            text += f"({self.args(stmt.args)})"
        if stmt.repeat is not None:
            text += f" x {self.expr(stmt.repeat.count)}"
            if stmt.repeat.first:
                text += f" first({self.args(stmt.repeat.first)})"
        return text + source

    def args(self, args: tuple[ast.Arg, ...]) -> str:
        return ", ".join(self.expr(a.value) if a.name is None else f"{a.name.text}={self.expr(a.value)}" for a in args)

    def param(self, param: ast.Param) -> str:
        return param.name.text if param.default is None else f"{param.name.text}={self.expr(param.default)}"

    def expr(self, expr: ast.Expr) -> str:
        return print_expr(expr, self.leaf)

    def leaf(self, expr: ast.Expr) -> str:
        if isinstance(expr, ast.Num):
            # Floats keep their spelling: repr() may write an exponent the grammar has no syntax for.
            return str(expr.value) if isinstance(expr.value, int) else self.text[expr.span.start : expr.span.end]
        if isinstance(expr, ast.Bool):
            return "true" if expr.value else "false"
        if isinstance(expr, ast.Str):
            return f'"{expr.value}"'
        assert isinstance(expr, ast.Var), expr  # print_expr hands over leaves only
        return expr.name


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))
