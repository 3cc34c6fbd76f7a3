"""Graphviz backend: the diagram model (backends/diagram.py) written as DOT, and drawn by Graphviz's `dot`.

Layout, at the block and op levels:
  - The main path runs straight (one `group`); each shortcut is a parallel path
    beside it, from where the branch leaves to the `+` where it joins.
  - Long networks are wrapped into columns (rows under `rankdir=LR`), as
    backends/columns.py arranges them.
  - No edge runs from one column to the next: a column ends in a marker that
    names the unit it continues to, and the next column starts from a marker
    naming the unit it continues from. Columns are laid out independently, so
    no line crosses another column's content.

The DOT text needs no package (backends/dot_writer.py); images come from
Graphviz's `dot` program. Neither torch nor onnx is imported here.
"""

from __future__ import annotations

import html
import math
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..ir.graph import IR
from ..ir.shape import Shape, shape_text
from .columns import READABLE_PX, SCREEN_PX, arrange, text_width, unit_length, unit_width
from .diagram import SHORTCUT_KINDS, Diagram, Segment, Unit, build
from .dot_writer import Digraph, Html, Port

RANKDIRS = ("TB", "LR")
IMAGE_FORMATS = ("svg", "png", "pdf")

FONT = "Arial"  # metric-compatible fonts are everywhere (Liberation Sans on Linux); browsers show SVGs with it
GREY = "#666666"
STYLE = {  # unit kind -> node attributes
    "input": dict(shape="box", style="rounded", color=GREY),
    "output": dict(shape="box", style="rounded", color=GREY),
    "op": dict(shape="box", style="rounded,filled", fillcolor="#f1f3f5", color="#868e96"),
    "body": dict(shape="box", style="rounded,filled", fillcolor="#e7eef8", color="#4a6fa5"),
    "stage": dict(shape="box", style="rounded,filled", fillcolor="#e7eef8", color="#4a6fa5"),
    "add": dict(shape="circle", style="filled", fillcolor="white", color="#343a40", margin="0.02"),
    "projection": dict(shape="box", style="rounded,filled", fillcolor="#ffe8cc", color="#e8590c"),
    "pad": dict(shape="box", style="rounded,filled", fillcolor="#d0ebff", color="#1971c2"),
    "marker": dict(shape="box", style="rounded,dashed", color="#adb5bd", fontcolor=GREY, fontsize="9"),
}
SHORTCUT_COLOR = {"projection": "#e8590c", "pad": "#1971c2"}
TITLE_FONT = 12  # a cluster's title
BLOCK_FONT = 10  # the title of a block's cluster (and of one called inside it), at op level
CLUSTER_MARGIN = 10
SIDE = "e"  # the port a shortcut leaves its feed by


class RenderError(Exception):
    """Rendering cannot run here (Graphviz's `dot` is missing or fails); not a mistake in the spec."""


# -- labels ----------------------------------------------------------------------


def _html(text: str) -> str:
    return html.escape(text, quote=False)


def _table(lines: list[str], align: str = "CENTER") -> Html:
    """One HTML-like label, a table row per line: Graphviz spaces rows by the font's real height."""
    rows = "".join(
        f'<TR><TD ALIGN="{align}">{line}</TD></TR>' if align != "CENTER" else f"<TR><TD>{line}</TD></TR>"
        for line in lines
    )
    return Html(f'<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="1">{rows}</TABLE>')


def _edge_label(shape: Shape) -> Html:
    # Graphviz sets a label right against its edge (under LR, on it): padding keeps the text clear of the line.
    cell = f"<TR><TD>{shape_text(shape)}</TD></TR>"
    return Html(f'<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="3">{cell}</TABLE>')


def _label(unit: Unit) -> Html:
    lines = []
    if unit.title:
        title = f"<B>{_html(unit.title)}</B>"
        if unit.kind == "body" and unit.note:
            title += f' <FONT COLOR="{GREY}">{_html(unit.note)}</FONT>'
        lines.append(title)
    lines += [_html(row) for row in unit.rows if row]
    if unit.note and unit.kind != "body":
        lines.append(f'<FONT POINT-SIZE="9" COLOR="{GREY}"><I>{_html(unit.note)}</I></FONT>')
    if unit.kind == "op" and len(unit.rows) > 1 and not unit.title:  # op level: the module path, small
        lines[-1] = f'<FONT POINT-SIZE="9" COLOR="{GREY}">{lines[-1]}</FONT>'
    return _table(lines)


def _title(diagram: Diagram) -> Html:
    policies = diagram.policies
    lines = [
        f'<FONT POINT-SIZE="18"><B>{_html(diagram.name)}</B></FONT>',
        f"{diagram.params:,} parameters · {diagram.macs:,} MACs ({diagram.macs / 1e9:.2f} G)",
        f'<FONT POINT-SIZE="10" COLOR="{GREY}">norm policy {_html(policies.norm)} · '
        f"shortcut policy {_html(policies.shortcut)}</FONT>",
    ]
    sized = any(edge.style == "size" for edge in diagram.edges)
    if diagram.level == "stage" and sized:
        lines.append(f'<FONT POINT-SIZE="10" COLOR="{GREY}">dotted = the size to upsample to</FONT>')
    if diagram.level != "stage":
        kinds = {unit.kind for unit in diagram.units}
        legend = ["shortcuts: plain line = identity"]
        legend += ["orange = projection"] * ("projection" in kinds)
        legend += ["blue = subsample and zero-pad"] * ("pad" in kinds)
        if any(unit.note for unit in diagram.units if unit.kind in SHORTCUT_KINDS):
            legend.append("dashed = inserted by the compiler")
        legend += ["dotted = the size to upsample to"] * sized
        lines.append(f'<FONT POINT-SIZE="10" COLOR="{GREY}">{_html("; ".join(legend))}</FONT>')
    return _table(lines)


def _piece_title(segment: Segment, items: list[str], room: float) -> list[str]:
    """`layer3 · bottleneck ×36 · blocks 9–17`, wrapped to lines no wider than `room` points (where it can)."""
    if not segment.instances:
        parts = [segment.name]
    elif segment.name in segment.instances:  # a standalone block
        parts = [segment.name, segment.template]
    else:
        count = len(segment.instances)
        parts = [segment.name, f"{segment.template} ×{count}"]
        blocks = [segment.instances.index(i) for i in items if i in segment.instances]
        if len(blocks) < count:
            parts.append(f"blocks {blocks[0]}–{blocks[-1]}" if len(blocks) > 1 else f"block {blocks[0]}")
    lines = [parts[0]]
    for part in parts[1:]:
        joined = f"{lines[-1]} · {part}"
        if _title_width(joined, TITLE_FONT) <= room:
            lines[-1] = joined
        else:
            lines.append(part)
    return lines


def _title_width(line: str, size: float) -> float:
    return text_width(line, size) * 1.1  # estimated: err on the wide side


def _clear_title(cluster, first: Unit, width: float, room: float, suffix: str = "_spacer") -> None:
    """Keep a cluster's title clear of the main path (TB), which enters the cluster down through the title's band.

    The title is clear when it is narrower than the room left of that path; an
    invisible spacer beside the cluster's first unit makes the room where it is not.
    """
    if width > room:
        spacer = f"{first.id}{suffix}"
        cluster.node(spacer, "", style="invis", width=f"{(width - room) / 72:.2f}", height="0.1")
        with cluster.subgraph() as same:
            same.attr(rank="same")
            same.edge(spacer, first.id, style="invis")


# -- DOT ---------------------------------------------------------------------------


def emit(ir: IR, level: str = "block", rankdir: str = "TB") -> str:
    """The DOT text of one level's diagram."""
    if rankdir not in RANKDIRS:
        raise ValueError(f"rankdir must be TB or LR, got {rankdir!r}")
    return to_dot(build(ir, level), rankdir)


def _lanes(diagram: Diagram) -> tuple[dict[str, str], dict[str, str]]:
    """Where each shortcut runs: beside the first unit of the branch it bypasses.

    Returns the units drawn on a shortcut (projections) and the identity
    shortcuts (by their add), each mapped to that first branch unit.
    """
    first: dict[str, str] = {}  # feed -> the first unit of the branch it feeds
    for edge in diagram.edges:
        if edge.style == "main":
            first.setdefault(edge.tail, edge.head)
    on_branch = set(first.values())
    beside: dict[str, str] = {}
    identity: dict[str, str] = {}
    for edge in diagram.edges:
        partner = first.get(edge.tail)
        if partner is None or partner == edge.head:
            continue
        if edge.style in SHORTCUT_KINDS and edge.head not in on_branch:
            beside.setdefault(edge.head, partner)
        elif edge.style == "identity":
            identity[edge.head] = partner
    return beside, identity


def to_dot(diagram: Diagram, rankdir: str = "TB") -> str:
    """The DOT text of a diagram model."""
    dot = Digraph(diagram.name)
    dot.attr(
        rankdir=rankdir,
        newrank="true",
        nodesep="0.25",
        ranksep="0.3",
        labelloc="t",
        fontname=FONT,
        label=_title(diagram),
    )
    dot.attr("node", fontname=FONT, fontsize="11", margin="0.12,0.05", height="0.3")
    dot.attr("edge", fontname=FONT, fontsize="9", fontcolor=GREY, color="#343a40", arrowsize="0.6")
    beside, identity = _lanes(diagram)
    units = {unit.id: unit for unit in diagram.units}

    def node(target: Digraph, unit: Unit, column: int) -> None:
        attrs = dict(STYLE[unit.kind])
        if unit.kind in SHORTCUT_COLOR and unit.note:
            attrs["style"] += ",dashed"
        if unit.kind == "add" and len(unit.nodes) > 1:  # `+ · ReLU` does not fit a small circle
            attrs["shape"] = "ellipse"
        if unit.kind not in SHORTCUT_KINDS:
            attrs["group"] = f"main{column}"  # the main path runs straight
        target.node(unit.id, _label(unit), **attrs)
        column_of[unit.id] = column
        if unit.id in identity:
            # The identity shortcut into this add runs straight beside the branch, along a
            # zero-width box as long as the branch's first unit.
            length = unit_length(units[identity[unit.id]], rankdir) / 72
            size = (
                {"width": "0", "height": f"{length:.2f}"}
                if rankdir == "TB"
                else {"width": f"{length:.2f}", "height": "0"}
            )
            target.node(f"{unit.id}_bypass", "", shape="box", fixedsize="true", color="#343a40", penwidth="0.5", **size)
            column_of[f"{unit.id}_bypass"] = column

    column_of: dict[str, int] = {}
    if diagram.level == "stage":
        for unit in diagram.units:
            node(dot, unit, 0)
    else:
        _columns(dot, diagram, node, rankdir)
    if diagram.edges[-1].head == "output":  # one output; named ones (`return p2, p3`) are units of their own
        last = column_of[diagram.edges[-1].tail]
        dot.node("output", "output", group=f"main{last}", **STYLE["output"])
        column_of["output"] = last
    for lane, partner in [*beside.items(), *((f"{add}_bypass", p) for add, p in identity.items())]:
        with dot.subgraph() as same:  # the shortcut runs beside the branch: right of it (under LR, above)
            same.attr(rank="same")
            same.edge(partner, lane, style="invis")

    _edges(dot, diagram, column_of, beside, identity, rankdir)
    return dot.source


def _edges(
    dot: Digraph,
    diagram: Diagram,
    column_of: dict[str, int],
    beside: dict[str, str],
    identity: dict[str, str],
    rankdir: str,
) -> None:
    """Write every edge: shortcuts beside their branch, and markers where the network goes on in the next column."""
    # What a column's markers call a unit: its title, else the block it is part of, else its module path.
    names = {u.id: u.title or (u.item if u.item != u.id else u.path) for u in diagram.units}
    entries: dict[tuple[str, int], str] = {}  # (tail, column) -> the marker the column starts from
    exits: set[str] = set()
    word = "column" if rankdir == "TB" else "row"
    for edge in diagram.edges:
        attrs: dict[str, str] = {"label": _edge_label(edge.shape)}
        if edge.style in SHORTCUT_COLOR:
            attrs.update(color=SHORTCUT_COLOR[edge.style], penwidth="1.4")
        elif edge.style == "size":  # `upsample(to=NAME)` reads NAME's size, not its values
            attrs.update(style="dotted", color=GREY)
        tail, head = edge.tail, edge.head
        if column_of[tail] != column_of[head]:
            column = column_of[head]
            entry = entries.get((tail, column))
            if entry is None:
                entry = entries[(tail, column)] = f"{tail}_to_col{column}"
                marker = _table([_html(f"from {names[tail]}, previous {word}")])
                dot.node(entry, marker, group=f"main{column}", **STYLE["marker"])
            if tail not in exits:
                exits.add(tail)
                marker = _table([_html(f"to {names.get(head, head)}, next {word}")])
                dot.node(f"{tail}_exit", marker, group=f"main{column_of[tail]}", **STYLE["marker"])
                dot.edge(tail, f"{tail}_exit", label=_edge_label(edge.shape))
            tail = entry
        if edge.style == "identity" and head in identity:
            bypass = f"{head}_bypass"
            start, end = ("n", "s") if rankdir == "TB" else ("w", "e")
            dot.edge(Port(tail, SIDE), Port(bypass, start), arrowhead="none", **attrs)
            dot.edge(Port(bypass, end), head)
            continue
        if head in beside:  # a shortcut leaves on the side it runs along, clear of the branch's label
            dot.edge(Port(tail, SIDE), Port(head, "n" if rankdir == "TB" else "w"), **attrs)
        elif tail in beside:  # and comes back into the add from that side, its label clear of its own line
            dot.edge(tail, Port(head, SIDE if rankdir == "TB" else "n"), **attrs)
        else:
            dot.edge(tail, head, **attrs)


def _columns(dot: Digraph, diagram: Diagram, node, rankdir: str) -> None:
    """Pack the segments into columns and write one cluster per piece of a segment."""
    columns, units_of = arrange(diagram, rankdir)
    # Graphviz places components in the order they are written; under LR the first comes out at the bottom.
    order = list(enumerate(columns))
    for column, pieces in order if rankdir == "TB" else reversed(order):
        for number, (index, items) in enumerate(pieces):
            segment = diagram.segments[index]
            with dot.subgraph(f"cluster_col{column}_{number}") as cluster:
                first = next(u for i in items for u in units_of[i] if u.kind not in SHORTCUT_KINDS)
                room = unit_width(first) / 2 if rankdir == "TB" else math.inf
                lines = _piece_title(segment, items, room)
                cluster.attr(
                    label=_table([_html(line) for line in lines], align="LEFT"),
                    style="rounded,dashed",
                    color="#ced4da",
                    fontsize=str(TITLE_FONT),
                    labeljust="l",
                    margin=str(CLUSTER_MARGIN),
                )
                _clear_title(cluster, first, max(_title_width(line, TITLE_FONT) for line in lines), room)
                for item in items:
                    units = units_of[item]
                    if diagram.level == "op" and item != units[0].id and len(units) > 1:
                        _module_cluster(cluster, item, units, 0, node, column, rankdir)
                    else:
                        for unit in units:
                            node(cluster, unit, column)


def _module_cluster(target: Digraph, path: str, units: list[Unit], depth: int, node, column: int, rankdir: str) -> None:
    """Op level: a block instance (or a network-level `seq`) as a cluster, the blocks and sequences in it nested."""
    suffix = f"_in{depth}" if depth else ""
    with target.subgraph(f"cluster_{units[0].id}{suffix}") as cluster:
        cluster.attr(label=path, style="rounded", color="#dee2e6", fontsize=str(BLOCK_FONT))
        first = next((u for u in units if u.kind not in SHORTCUT_KINDS), None)
        if rankdir == "TB" and first is not None:
            width = _title_width(path, BLOCK_FONT)
            # A nested cluster's title is centred above its first unit, where the path enters: always clear it.
            room = unit_width(first) / 2 if depth == 0 else 0.0
            _clear_title(cluster, first, width, room, f"_block{suffix}_spacer")
        inner: dict[str, list[Unit]] = {}  # the modules one level down, in the order their first op comes
        for unit in units:
            if len(unit.nest) > depth:
                inner.setdefault(unit.nest[depth][0], []).append(unit)
        written: set[str] = set()
        for unit in units:
            if len(unit.nest) <= depth:
                node(cluster, unit, column)
            elif unit.nest[depth][0] not in written:
                written.add(unit.nest[depth][0])
                module = unit.nest[depth][0]
                _module_cluster(cluster, module, inner[module], depth + 1, node, column, rankdir)


# -- images --------------------------------------------------------------------------


@dataclass(frozen=True)
class Readability:
    """How a drawn diagram reads on a screen SCREEN_PX pixels wide."""

    smallest_px: float  # the smallest text's height there
    width: float  # the page, in points
    height: float

    @property
    def readable(self) -> bool:
        return self.smallest_px >= READABLE_PX


def readability(svg: bytes) -> Readability:
    """Measure an SVG that Graphviz drew: its smallest font size times the scale that makes it SCREEN_PX wide."""
    text = svg.decode("utf-8")
    match = re.search(r'viewBox="([-\d.]+) ([-\d.]+) ([\d.]+) ([\d.]+)"', text)
    if match is None:
        raise ValueError("not an SVG drawn by Graphviz: no viewBox")
    width, height = float(match.group(3)), float(match.group(4))
    sizes = [float(size) for size in re.findall(r'<text [^>]*font-size="([\d.]+)"', text)]
    return Readability(min(sizes, default=0.0) * SCREEN_PX / width, width, height)


def _missing_dot(fmt: str) -> RenderError:
    return RenderError(
        f"writing {fmt.upper()} needs Graphviz's `dot` program, which is not on PATH; install the "
        "graphviz package (Debian/Ubuntu: apt-get install graphviz, macOS: brew install graphviz), "
        "or write the diagram as DOT with `-o FILE.dot`"
    )


def render(dot_source: str, fmt: str) -> bytes:
    """An image (svg, png or pdf) of DOT text, drawn by Graphviz's `dot` program."""
    return render_measured(dot_source, fmt)[0]


def render_measured(dot_source: str, fmt: str) -> tuple[bytes, Readability]:
    """An image of DOT text and how readable it is, from one layout (`dot` writes the SVG beside it)."""
    if fmt not in IMAGE_FORMATS:
        raise ValueError(f"format must be one of {', '.join(IMAGE_FORMATS)}, got {fmt!r}")
    with tempfile.TemporaryDirectory(prefix="resdsl-render-") as folder:
        source = Path(folder) / "diagram.dot"
        source.write_text(dot_source, encoding="utf-8")
        formats = sorted({fmt, "svg"})
        command = ["dot", *(f"-T{f}" for f in formats), "-O", source.name]
        try:
            result = subprocess.run(command, cwd=folder, capture_output=True, env={**os.environ, "LC_ALL": "C"})
        except FileNotFoundError:
            raise _missing_dot(fmt) from None
        if result.returncode != 0:
            raise RenderError(f"Graphviz's dot failed: {result.stderr.decode('utf-8', 'replace').strip()}")
        svg = (Path(folder) / "diagram.dot.svg").read_bytes()
        return (Path(folder) / f"diagram.dot.{fmt}").read_bytes(), readability(svg)
