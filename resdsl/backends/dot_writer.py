"""DOT text, written without the Python package `graphviz`: a diagram is text, and writing it needs nothing.

The layout of the text (attributes sorted, a label given as an argument
first, one statement per line indented by tabs) is the one the `graphviz`
package writes, so diagrams read the same as before. Every plain string is
quoted when it is not a bare DOT identifier; only an `Html` label reaches the
text as it is, so a name never turns into markup by looking like `<...>`. An
edge's end may be a `Port` (`n4:e`: the east side of node n4), so that a node
whose name holds a colon is never read as one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

_ID = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*|-?(\.[0-9]+|[0-9]+(\.[0-9]*)?)")
_KEYWORDS = {"node", "edge", "graph", "digraph", "subgraph", "strict"}
COMPASS = ("n", "ne", "e", "se", "s", "sw", "w", "nw", "c", "_")


class Html(str):
    """An HTML-like label (`<b>bold</b>`), written between `<` and `>`; the caller escapes its text."""


class Port(NamedTuple):
    """Where an edge meets a node: a compass point of its border (`e`, `n`, ...)."""

    node: str
    compass: str


def quote(value: str) -> str:
    """`value` as a DOT ID: bare when it is a plain identifier or number, else a quoted string."""
    if isinstance(value, Html):
        return f"<{value}>"
    if _ID.fullmatch(value) and value.lower() not in _KEYWORDS:
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _end(end: str | Port) -> str:
    if isinstance(end, Port):
        if end.compass not in COMPASS:
            raise ValueError(f"not a compass point: {end.compass!r}")
        return f"{quote(end.node)}:{end.compass}"
    return quote(end)


def _attrs(label: str | None, attrs: dict[str, str]) -> str:
    items = [f"label={quote(label)}"] if label is not None else []
    items += [f"{quote(key)}={quote(value)}" for key, value in sorted(attrs.items())]
    return " ".join(items)


def _attr_list(label: str | None, attrs: dict[str, str]) -> str:
    text = _attrs(label, attrs)
    return f" [{text}]" if text else ""


class Digraph:
    """A directed graph or cluster being written, statement by statement."""

    def __init__(self, name: str, depth: int = 0):
        self.name = name
        self.depth = depth
        self.lines: list[str] = []

    def _add(self, statement: str) -> None:
        self.lines.append("\t" * (self.depth + 1) + statement)

    def attr(self, kind: str | None = None, **attrs: str) -> None:
        """Graph attributes (`kind` None), or the defaults of every `node` or `edge` after this."""
        if kind is None:
            self._add(_attrs(None, attrs))
        else:
            self._add(kind + _attr_list(None, attrs))

    def node(self, name: str, label: str | None = None, **attrs: str) -> None:
        self._add(quote(name) + _attr_list(label, attrs))

    def edge(self, tail: str | Port, head: str | Port, label: str | None = None, **attrs: str) -> None:
        self._add(f"{_end(tail)} -> {_end(head)}" + _attr_list(label, attrs))

    @contextmanager
    def subgraph(self, name: str | None = None) -> Iterator[Digraph]:
        """A subgraph (a cluster when `name` starts with `cluster`), written where the `with` began.

        Without a name it is anonymous (`{ rank=same ... }`): a group of nodes with attributes of its own.
        """
        child = Digraph(name or "", self.depth + 1)
        yield child
        self._add(f"subgraph {quote(name)} {{" if name else "{")
        self.lines += child.lines
        self._add("}")

    @property
    def source(self) -> str:
        return "\n".join([f"digraph {quote(self.name)} {{", *self.lines, "}"]) + "\n"
