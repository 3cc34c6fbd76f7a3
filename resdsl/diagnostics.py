"""Source text, spans and the resdsl error family.

Spans are character offsets into a `Source`; line and column are computed only
when an error is printed, so the rest of the compiler never deals with them.
"""

from __future__ import annotations

import bisect
import json
import os
import re
from dataclasses import dataclass, field
from functools import cached_property


@dataclass(frozen=True, eq=False)
class Source:
    """One spec file's text, the name it is shown under in messages, and the file it was read from."""

    name: str
    text: str = field(repr=False)
    path: str | None = field(default=None, repr=False)  # None for text that came from no file

    @cached_property
    def _line_starts(self) -> list[int]:
        """The offset where each line starts: found once, so that thousands of errors print in linear time."""
        return [0, *(match.end() for match in re.finditer("\n", self.text))]

    def line_col(self, offset: int) -> tuple[int, int]:
        """1-based line and column of a character offset."""
        offset = max(0, min(offset, len(self.text)))
        line = bisect.bisect_right(self._line_starts, offset)
        return line, offset - self._line_starts[line - 1] + 1

    def line_text(self, line: int) -> str:
        starts = self._line_starts
        if not 0 < line <= len(starts):
            return ""
        end = starts[line] - 1 if line < len(starts) else len(self.text)
        return self.text[starts[line - 1] : end].rstrip("\r")


def display_name(name: str) -> str:
    """A path as printable text: bytes of a file name that are not UTF-8 (kept by Python as
    surrogates) are shown as `\\xNN`, so that printing the name, or writing it into an
    output, never fails."""
    try:
        data = name.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # surrogates that stand for no byte
        data = name.encode("utf-8", "backslashreplace")
    return data.decode("utf-8", "backslashreplace")


def printable(text: str) -> str:
    """`text` safe to print on a terminal: characters it would act on rather than show (escape
    sequences, bells, NULs, bidirectional overrides, line breaks) written as Python escapes."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def file_name(name: str) -> str:
    """A source's file name without its folders: generated outputs never record a machine path.

    Folders are split at `/` and at this system's own separators only: on POSIX a
    backslash belongs to the name (and display_name writes undecodable bytes with one).
    """
    for separator in (os.sep, os.altsep):
        if separator:
            name = name.replace(separator, "/")
    return name.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Span:
    """A half-open range [start, end) of characters in a source."""

    source: Source
    start: int
    end: int

    def __repr__(self) -> str:
        return f"Span({self.location})"

    def to(self, other: Span) -> Span:
        """The span covering both this one and `other` (same source)."""
        return Span(self.source, min(self.start, other.start), max(self.end, other.end))

    @property
    def location(self) -> str:
        line, col = self.source.line_col(self.start)
        return f"{self.source.name}:{line}:{col}"


@dataclass
class Label:
    span: Span
    message: str


@dataclass
class Diagnostic:
    """One user-facing problem: a code, a message, where, and how to fix it.

    An `error` (code E…) stops compilation; a `warning` (code W…) reports a
    valid network that is probably not what its author meant.
    """

    code: str
    message: str
    span: Span | None = None
    label: str = ""
    help: str = ""
    notes: list[Label] = field(default_factory=list)
    severity: str = "error"

    def sort_key(self) -> tuple:
        if self.span is None:
            return ("", 0)
        return (self.span.source.name, self.span.start)

    def render(self, color: bool = False) -> str:
        def paint(text: str, code: str) -> str:
            return f"\x1b[{code}m{text}\x1b[0m" if color else text

        accent = "1;33" if self.severity == "warning" else "1;31"
        out = [paint(f"{self.severity}[{self.code}]", accent) + paint(f": {printable(self.message)}", "1")]
        labelled = [Label(self.span, self.label)] if self.span is not None else []
        items = labelled + self.notes
        # One gutter for every excerpt, as wide as the longest line number among them.
        digits = max((len(str(item.span.source.line_col(item.span.start)[0])) for item in items), default=1)
        for index, item in enumerate(items):
            out.extend(_snippet(item, paint, accent if index == 0 else None, digits))
        if self.help:
            out.append(paint("  = help: ", "1;36") + printable(self.help))
        return "\n".join(out)

    def to_json(self) -> dict:
        def where(span: Span) -> dict:
            line, col = span.source.line_col(span.start)
            end_line, end_col = span.source.line_col(span.end)
            return {
                "file": span.source.name,
                "line": line,
                "column": col,
                "end_line": end_line,
                "end_column": end_col,
            }

        data: dict = {"severity": self.severity, "code": self.code, "message": self.message}
        if self.span is not None:
            data["location"] = where(self.span)
            data["label"] = self.label
        data["notes"] = [{"message": n.message, "location": where(n.span)} for n in self.notes]
        data["help"] = self.help
        return data


def _shown(line: str) -> tuple[str, list[int]]:
    """A source line as printed (a tab as one space, other unprintable characters escaped),
    and the printed column where each of its characters starts (one more for the line's end)."""
    pieces, starts = [], []
    width = 0
    for char in line:
        piece = " " if char == "\t" else char if char.isprintable() else repr(char)[1:-1]
        starts.append(width)
        pieces.append(piece)
        width += len(piece)
    starts.append(width)
    return "".join(pieces), starts


def _snippet(item: Label, paint, accent: str | None, digits: int) -> list[str]:
    """The source line of `item` with its span underlined: `^` in `accent` for the primary label, else `-`;
    line numbers padded to `digits`."""
    source = item.span.source
    line, col = source.line_col(item.span.start)
    end_line, end_col = source.line_col(item.span.end)
    text, starts = _shown(source.line_text(line))

    def column(col: int) -> int:  # the printed column of a 1-based character column
        return starts[min(col - 1, len(starts) - 1)] + max(0, col - len(starts))

    first = column(col)
    # A span running past its first line is underlined to that line's end.
    last = column(end_col) if end_line == line else len(text)
    width = max(1, last - first)
    gutter = " " * digits
    marker = "^" if accent else "-"
    underline = " " * first + marker * width
    if item.message:
        underline += " " + printable(item.message)
    return [
        f"{gutter}--> {printable(item.span.location)}",
        f"{gutter} |",
        f"{line:<{digits}} | {text}",
        f"{gutter} | " + paint(underline, accent or "1;34"),
    ]


class ResdslError(Exception):
    """One or more diagnostics caused by the user's spec or command line.

    `str(error)` is the full report, every diagnostic with its location,
    source line and help, as the command line prints it; `diagnostics` holds
    them one by one.
    """

    def __init__(self, diagnostics: list[Diagnostic] | Diagnostic):
        if isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics = sorted(diagnostics, key=Diagnostic.sort_key)
        super().__init__(self.diagnostics[0].message if self.diagnostics else "error")

    def __str__(self) -> str:
        return self.render()

    def render(self, color: bool = False) -> str:
        """Every diagnostic as text, with carets under the source; ANSI colours with `color`."""
        return "\n\n".join(d.render(color) for d in self.diagnostics)

    def to_json(self) -> str:
        """`{"errors": [...]}`: each diagnostic's code, message, location, notes and help."""
        return json.dumps({"errors": [d.to_json() for d in self.diagnostics]}, indent=2)


class ResdslWarning(UserWarning):
    """A warning about a valid spec (code W…), raised through Python's `warnings`; `str()` is the full report."""

    def __init__(self, diagnostic: Diagnostic):
        self.diagnostic = diagnostic
        super().__init__(diagnostic.render())


def error(code: str, message: str, span: Span | None = None, label: str = "", help: str = "") -> ResdslError:
    return ResdslError(Diagnostic(code, message, span, label, help))


class Collector:
    """Gathers independent diagnostics so a pass can report them all at once."""

    def __init__(self) -> None:
        self.items: list[Diagnostic] = []

    def add(self, code: str, message: str, span: Span | None = None, label: str = "", help: str = "") -> None:
        self.items.append(Diagnostic(code, message, span, label, help))

    def extend(self, err: ResdslError) -> None:
        self.items.extend(err.diagnostics)

    def raise_if_any(self) -> None:
        if self.items:
            raise ResdslError(self.items)
