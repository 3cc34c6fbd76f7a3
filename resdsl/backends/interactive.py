"""Interactive HTML backend: one self-contained page that expands and folds a network in place.

The page shows the stage level first; clicking a stage expands it to its
blocks, a block to its ops, and a frame's title folds it again. Hovering a
node shows its module path, shapes in and out, parameters and MACs; a search
box finds a module path; the view pans and zooms.

The page is the same diagram model as the DOT backend (backends/diagram.py),
at all three levels at once, with the same labels, grouping and colours: the
script (resdsl/web/view.js) only lays it out and draws it as SVG. Everything
it needs is inside the one file: no network access, no external library.
Text from the spec reaches the page as JSON inside a script element, with
`<`, `>` and `&` escaped, and the script sets it as text, never as markup.
"""

from __future__ import annotations

import html
import json
import re
from importlib import resources

from ..ir.graph import IR
from ..ir.shape import shape_text
from .diagram import LEVELS, SHORTCUT_KINDS, Nesting, nesting
from .dot import SHORTCUT_COLOR, STYLE

PREFIX = {"stage": "s", "block": "b", "op": "o"}  # unit ids per level: levels share walk-index keys


def emit(ir: IR, level: str = "stage") -> str:
    """The HTML page, opened at `level`: stage (all folded), block (stages expanded) or op (everything expanded)."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")
    model = _model(nesting(ir), ir, level)
    web = resources.files("resdsl") / "web"
    page = (web / "view.html").read_text(encoding="utf-8")
    parts = {
        "TITLE": html.escape(f"{ir.name} · resdsl"),
        "STYLE": (web / "view.css").read_text(encoding="utf-8"),
        "MODEL": _script_json(model),
        "SCRIPT": (web / "view.js").read_text(encoding="utf-8"),
    }
    # One pass: what is put in is never searched for markers again.
    return re.sub(r"/\*(TITLE|STYLE|MODEL|SCRIPT)\*/", lambda match: parts[match.group(1)], page)


def _script_json(value) -> str:
    """JSON that can sit inside a <script> element: nothing in it can close the element or open a comment."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    for char in "&<>\u2028\u2029":
        text = text.replace(char, f"\\u{ord(char):04x}")
    return text


def _model(nest: Nesting, ir: IR, level: str) -> dict:
    units = []
    for name, diagram in nest.levels.items():
        prefix = PREFIX[name]
        for unit in diagram.units:
            parent = nest.parent[name].get(unit.id)
            units.append(
                {
                    "id": prefix + unit.id,
                    "level": LEVELS.index(name),
                    "kind": unit.kind,
                    "title": unit.title,
                    "rows": [row for row in unit.rows if row],
                    "note": unit.note,
                    "path": unit.path,
                    # What expands together: a block instance's units, or a network-level unit alone.
                    "group": f"unit:{prefix}{unit.id}" if unit.item == unit.id else f"block:{unit.item}",
                    "parent": PREFIX[LEVELS[LEVELS.index(name) - 1]] + parent if parent else None,
                    # Op level: the blocks called (and sequences held) between its block and the op.
                    "nest": [list(module) for module in unit.nest],
                    "inputs": [shape_text(shape) for shape in unit.inputs],
                    "output": shape_text(unit.output),
                    "params": unit.params,
                    "macs": unit.macs,
                }
            )
    ops = nest.levels["op"]
    sink = ops.edges[-1].head == "output"  # one output; named outputs (`return p2, p3`) are units
    drawn = ops.edges[:-1] if sink else ops.edges
    edges = [[PREFIX["op"] + e.tail, PREFIX["op"] + e.head, e.style == "identity"] for e in drawn]
    colors = {kind: {"fill": style.get("fillcolor", "white"), "line": style["color"]} for kind, style in STYLE.items()}
    return {
        "name": ops.name,
        "params": ops.params,
        "macs": ops.macs,
        "policies": ir.policies.text(),
        "level": LEVELS.index(level),
        "units": units,
        "edges": edges,
        "output": PREFIX["op"] + ops.edges[-1].tail if sink else None,
        "shortcutKinds": list(SHORTCUT_KINDS),
        "colors": colors,
        "shortcutColors": SHORTCUT_COLOR,
    }
