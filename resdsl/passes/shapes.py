"""Shape inference, by each op's shape rule (PyTorch's exact conv and pool arithmetic).

Needs: a lowered IR.
Guarantees: every node has `shape` set; every spatial size is at least 1;
conv groups divide their channels; ops get inputs of the rank they need, in
the memory layout they need (`Op.layout`), and `channels_last` is set on
every node whose output is a channels-last feature map; the network's output
is not one.
All independent shape errors are reported together: a node whose operand
failed is skipped rather than reported again. An error inside a block points
at the calls that reached it, innermost first, as lowering's errors do (the
calls' arguments are often the cause).
"""

from __future__ import annotations

from ..diagnostics import Collector, Label
from ..ir.graph import IR
from ..ir.node import Node
from ..ir.shape import shape_text
from ..ir.tree import Module, ModuleKind
from ..limits import Limits
from ..ops.base import ShapeReport

NAME = "shapes"


def apply(ir: IR, limits: Limits | None = None, only: list[Node] | None = None) -> None:
    """Infer every node's shape (or only those of `only`, in that order, whose operands have theirs)."""
    errors = Collector()
    for node in only if only is not None else ir.walk():
        if node.op.arity == 0:
            node.shape = ir.input_shape
            continue
        operands = ir.operands(node)
        shapes = [o.shape for o in operands]
        if any(s is None for s in shapes):
            node.shape = None
            continue
        known = len(errors.items)
        node.shape = infer(node, shapes, errors)  # type: ignore[arg-type]  # none is None here
        if node.shape is not None and not _layout(node, operands, errors):
            node.shape = None
        for diag in errors.items[known:]:
            diag.notes.extend(_calls(node))
    if only is None:
        last = ir.walk()[-1]
        if last.channels_last:
            errors.add(
                "E0213",
                f"the network ends on a channels-last tensor (`{last.label}`)",
                last.span,
                "channels-last output",
                "put `channels_first` after the ops that need channels-last",
            )
    errors.raise_if_any()


def _calls(node: Node) -> list[Label]:
    """A note at each call of a block that `node` is inside, innermost first."""
    notes = []
    module: Module | None = node.parent
    while module is not None:
        note = module.call_note() if module.kind is ModuleKind.BLOCK else None
        if note is not None:
            notes.append(note)
        module = module.parent
    return notes


_NAMES = {"first": "channels-first", "last": "channels-last"}


def _layout(node: Node, operands: list[Node], errors: Collector) -> bool:
    """Check the layout of `node`'s operands against its op's (`Op.layout`); set `node.channels_last`."""
    op = node.op
    spatial = [o for o in operands if o.shape is not None and len(o.shape) == 3]
    layouts = {"last" if o.channels_last else "first" for o in spatial}
    if len(layouts) > 1:
        wanted, got, fix = "operands in one layout", "operands in both", "`channels_first`"
    elif layouts and op.layout != "any" and layouts != {op.layout}:
        if op.layout == "last" and op.out_layout(True):  # a linear layer on a channels-first map: flatten first?
            errors.add(
                "E0207",
                f"`{node.label}` needs a flat or channels-last input, got the channels-first "
                f"{shape_text(spatial[0].shape)}",  # type: ignore[arg-type]  # spatial: shaped
                node.span,
                "input is not flat",
                f"put `flatten` (after `gap`) before the {op.kind} layer, or `channels_last` to apply it "
                "to the channels at every position",
            )
            return False
        wanted, got, fix = {
            "first": ("a channels-first (N×C×H×W) input", "a channels-last one", "`channels_first`"),
            "last": ("a channels-last (N×H×W×C) input", "a channels-first one", "`channels_last`"),
        }[op.layout]
    else:
        node.channels_last = bool(spatial) and len(node.shape or ()) == 3 and op.out_layout(spatial[0].channels_last)
        return True
    errors.add(
        "E0213",
        f"`{node.label}` needs {wanted}, got {got}",
        node.span,
        "wrong memory layout",
        f"put {fix} before it: convs, pools and batch norms read N×C×H×W, a linear layer over a "
        "feature map's channels N×H×W×C",
    )
    return False


def infer(node: Node, shapes: list[tuple[int, ...]], errors: Collector):
    """`node`'s output shape by its op's rule, or None after adding the reason to `errors`."""
    op = node.op
    if op.spatial and len(shapes[0]) != 3:
        errors.add(
            "E0207",
            f"`{node.label}` needs a C×H×W input, got the flat {shape_text(shapes[0])}",
            node.span,
            "input is flat",
            "spatial ops come before `flatten`",
        )
        return None
    return op.infer(shapes, ShapeReport(errors, node.span, node.label))
