"""Lark parse tree → AST, and Lark's exceptions → located resdsl errors."""

from __future__ import annotations

import builtins
import difflib
import re
from functools import lru_cache
from importlib import resources

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from ..diagnostics import ResdslError, Source, Span, error
from ..ir.expr import EXPR_TYPES
from . import ast
from .parser_cache import load_or_build

MAX_DIGITS = 18  # every integer a spec needs fits in 18 digits
_WORD = re.compile(r"\w+")  # letters and digits of any script
KEYWORDS = (
    "use",
    "block",
    "network",
    "expansion",
    "input",
    "classes",
    "policy",
    "let",
    "add",
    "mul",
    "concat",
    "from",
    "return",
    "seq",
    "x",
    "first",
    "true",
    "false",
)

# How the parser's terminal names read in a message.
_TERMINAL_TEXT = {
    "NAME": "a name",
    "PATH": "a module path",
    "INT": "an integer",
    "FLOAT": "a number",
    "SHAPE": "a shape such as 3x224x224",
    "STRING": 'a quoted path such as "std/blocks.res"',
    "INPUT": "`input`",
    "$END": "end of file",
}


@lru_cache(maxsize=1)
def _parser() -> Lark:
    grammar = resources.files("resdsl").joinpath("grammar.lark").read_text()
    return load_or_build(grammar, propagate_positions=True, maybe_placeholders=True)


def parse(source: Source) -> ast.Module:
    """Parse one .res file. Raises ResdslError for any syntax mistake."""
    try:
        tree = _parser().parse(source.text)
    except UnexpectedInput as exc:
        raise _syntax_error(source, exc) from None
    try:
        items = _ToAst(source).transform(tree)
    except VisitError as exc:
        if isinstance(exc.orig_exc, ResdslError):
            raise exc.orig_exc from None
        raise
    except RecursionError:
        raise error(
            "E0008",
            "the spec is nested too deeply to compile",
            Span(source, 0, 0),
            "",
            "split long expressions with `let`",
        ) from None
    uses = tuple(i for i in items if isinstance(i, ast.Use))
    blocks = tuple(i for i in items if isinstance(i, ast.BlockDef))
    networks = tuple(i for i in items if isinstance(i, ast.NetworkDef))
    return ast.Module(source, uses, blocks, networks)


def _describe_expected(expected: set[str], terminals) -> list[str]:
    described = set()
    for name in expected:
        if name == "MERGE":  # one terminal for the merging keywords
            described |= {"`add`", "`mul`", "`concat`"}
        elif name in _TERMINAL_TEXT:
            described.add(_TERMINAL_TEXT[name])
        elif name in terminals and terminals[name].pattern.type == "str":
            described.add(f"`{terminals[name].pattern.value}`")
        else:
            described.add(name.lower())
    return sorted(described)


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _syntax_error(source: Source, exc: UnexpectedInput) -> ResdslError:
    terminals = {t.name: t for t in _parser().terminals}
    pos = exc.pos_in_stream if exc.pos_in_stream is not None else len(source.text)
    if isinstance(exc, UnexpectedCharacters):
        return _unexpected_character(source, pos)
    if isinstance(exc, UnexpectedToken) and exc.token.type != "$END":
        # `3x٨x8` lexes as `3` and a name: the mistake is the digit of another script.
        word = _WORD.match(source.text, exc.token.start_pos or 0)
        for offset, char in enumerate(word.group() if word else ""):
            if char.isdigit() and not char.isascii():
                return _unexpected_character(source, (exc.token.start_pos or 0) + offset)
    assert isinstance(exc, (UnexpectedToken, UnexpectedEOF))  # Lark's other syntax errors
    expected = _describe_expected(set(exc.expected), terminals)
    if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        end = len(source.text.rstrip())
        return error(
            "E0003",
            "unexpected end of file",
            Span(source, end, end),
            f"expected {_join(expected)}" if expected else "",
            "a `{` may be missing its `}`",
        )
    token: Token = exc.token
    span = Span(source, token.start_pos or 0, token.end_pos or 0)
    setting = _setting_before(source, token)
    if setting is not None:
        value = source.text[token.end_pos or 0 :].split("\n", 1)[0].split("#", 1)[0].split(";", 1)[0].strip()
        example = f"{setting} {value or ('1000' if setting == 'classes' else '3x224x224')}"
        return error(
            "E0001",
            f"unexpected `=`: `{setting}` takes its value without one",
            span,
            "no `=` here",
            f"write `{example}`; `=` is for `let`, `policy` and named layers",
        )
    keyword_options = [w.strip("`") for w in expected if w.startswith("`") and w.strip("`").isidentifier()]
    hint = ""
    close = difflib.get_close_matches(str(token), keyword_options, n=1)
    if close:
        hint = f"did you mean `{close[0]}`?"
    elif str(token) in KEYWORDS:
        hint = f"`{token}` is a keyword and cannot be used as a name here"
    return error(
        "E0001",
        f"unexpected `{token}`, expected {_join(expected)}",
        span,
        "not expected here",
        hint,
    )


def _setting_before(source: Source, token: Token) -> str | None:
    """`classes` or `input` when `token` is an `=` right after that keyword (`classes = 200`)."""
    if str(token) != "=":
        return None
    before = source.text[: token.start_pos or 0].rstrip()
    for keyword in ("classes", "input"):
        head = before.removesuffix(keyword)
        if head != before and not (head[-1:].isalnum() or head[-1:] == "_"):
            return keyword
    return None


def _unexpected_character(source: Source, pos: int) -> ResdslError:
    char = source.text[pos] if pos < len(source.text) else ""
    return error(
        "E0002",
        f"unexpected character {char!r}",
        Span(source, pos, pos + 1),
        "not part of the .res language",
        "numbers are written with the ASCII digits 0-9"
        if char.isdigit()
        else "names are letters, digits and `_`; comments start with `#`",
    )


def _binop_rule(op: str):
    """The transformer method for a binary operator's rule."""

    def build(self, meta, children):
        return ast.BinOp(op, children[0], children[-1], self._span(meta))

    return build


@v_args(meta=True)
class _ToAst(Transformer):
    """Builds AST nodes bottom-up; every node gets the span Lark recorded."""

    def __init__(self, source: Source):
        super().__init__()
        self.source = source

    def _span(self, meta) -> Span:
        if getattr(meta, "empty", True):
            return Span(self.source, 0, 0)
        return Span(self.source, meta.start_pos, meta.end_pos)

    def _tok(self, token: Token) -> Span:
        return Span(self.source, token.start_pos or 0, token.end_pos or 0)

    def _ident(self, token: Token | None) -> ast.Ident | None:
        return None if token is None else ast.Ident(str(token), self._tok(token))

    # expressions
    def int(self, meta, children):
        return ast.Num(self._int(children[0]), self._span(meta))

    def _int(self, token: Token) -> builtins.int:  # `int` in this class is the rule above
        # Python refuses to convert very long digit strings, and no spec needs one.
        if len(token) > MAX_DIGITS:
            raise error("E0108", "number too large", self._tok(token), f"more than {MAX_DIGITS} digits")
        return int(token)

    def float(self, meta, children):
        value = float(children[0])
        if value > 10**18:
            raise error("E0108", "number too large", self._span(meta), "over 10**18")
        return ast.Num(value, self._span(meta))

    def true(self, meta, children):
        return ast.Bool(True, self._span(meta))

    def false(self, meta, children):
        return ast.Bool(False, self._span(meta))

    def var(self, meta, children):
        return ast.Var(str(children[0]), self._span(meta))

    def string(self, meta, children):
        return ast.Str(str(children[0])[1:-1], self._span(meta))

    def neg(self, meta, children):
        return ast.Neg(children[0], self._span(meta))

    add = _binop_rule("+")
    sub = _binop_rule("-")
    mul = _binop_rule("*")
    floordiv = _binop_rule("//")
    mod = _binop_rule("%")
    truediv = _binop_rule("/")

    # statements
    def kwarg(self, meta, children):
        name, value = children
        return ast.Arg(self._ident(name), value, self._span(meta))

    def arglist(self, meta, children):
        args = []
        for child in children:
            if child is None:
                continue
            if not isinstance(child, ast.Arg):
                child = ast.Arg(None, child, child.span)
            args.append(child)
        return tuple(args)

    def first(self, meta, children):
        return children[0]

    def repeat(self, meta, children):
        count, first = children
        return ast.Repeat(count, first or (), self._span(meta))

    def call_stmt(self, meta, children):
        if len(children) == 3:
            target, callee, source = children
            args, repeat = None, None
        else:
            target, callee, args, repeat, source = children
        span = self._span(meta)
        return ast.CallStmt(self._ident(target), self._ident(callee), args, repeat, span, source)

    def from_clause(self, meta, children):
        return self._ident(children[0])

    def merge_stmt(self, meta, children):
        target, op, operand, *rest = children
        source = rest.pop() if rest else None
        return ast.MergeStmt(
            str(op),
            self._ident(target),
            self._ident(operand),
            self._span(meta),
            tuple(self._ident(name) for name in rest),  # type: ignore[misc]  # tokens give identifiers
            source,
        )

    def split_stmt(self, meta, children):
        *targets, word, args, source = children
        return ast.SplitStmt(
            tuple(self._ident(t) for t in targets),  # type: ignore[misc]  # tokens give identifiers
            self._span(meta),
            source,
            self._ident(word),  # type: ignore[arg-type]
            args is not None,
        )

    def seq_stmt(self, meta, children):
        name, *body = children
        source = body.pop() if body and isinstance(body[-1], ast.Ident) else None
        stmts = tuple(s for s in body if s is not None)
        return ast.SeqStmt(self._ident(name), stmts, self._span(meta), source)

    def output_stmt(self, meta, children):
        return ast.OutputStmt(tuple(self._ident(name) for name in children), self._span(meta))  # type: ignore[misc]

    def let_stmt(self, meta, children):
        return ast.LetStmt(self._ident(children[0]), children[1], self._span(meta))

    def input_stmt(self, meta, children):
        token = children[0]
        if any(len(part) > MAX_DIGITS for part in token.split("x")):
            raise error("E0108", "number too large", self._tok(token), f"more than {MAX_DIGITS} digits")
        shape = tuple(int(part) for part in token.split("x"))
        return ast.InputStmt(shape, self._span(meta))

    def classes_stmt(self, meta, children):
        return ast.ClassesStmt(children[0], self._span(meta))

    def policy_stmt(self, meta, children):
        name, value, *args = children
        return ast.PolicyStmt(self._ident(name), self._ident(value), args[0] if args else None, self._span(meta))

    def stmt(self, meta, children):  # a bare `;`
        return None

    # top level
    def param(self, meta, children):
        return ast.Param(self._ident(children[0]), children[1], self._span(meta))

    def expansion(self, meta, children):
        return children[0]

    def block_def(self, meta, children):
        name, *rest = children
        # maybe_placeholders leaves None for an empty parameter list, a missing
        # expansion and a bare `;`; an expression can only be the expansion.
        params = tuple(c for c in rest if isinstance(c, ast.Param))
        expansion = next((c for c in rest if isinstance(c, EXPR_TYPES)), None)
        body = tuple(c for c in rest if isinstance(c, ast.Stmt.__args__))
        return ast.BlockDef(self._ident(name), params, expansion, body, self._span(meta))

    def network_def(self, meta, children):
        name, *body = children
        return ast.NetworkDef(self._ident(name), tuple(s for s in body if s is not None), self._span(meta))

    def use_stmt(self, meta, children):
        return ast.Use(str(children[0])[1:-1], self._span(meta))

    def start(self, meta, children):
        return children
