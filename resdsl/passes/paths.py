"""What the passes that insert modules share: refusing module paths a spec layer already holds."""

from __future__ import annotations

from ..diagnostics import Diagnostic, ResdslError
from ..ir.graph import IR
from ..ir.node import Node, Origin


def check_inserted_paths(ir: IR, origin: Origin) -> None:
    """Raise E0209 where a module path inserted by the pass `origin` is taken by a spec layer.

    A path clashes when it equals a spec layer's path or one is the other's
    parent (`l.downsample` vs `l.downsample.0`): both name one attribute.
    """
    spec: dict[str, Node] = {}  # path → node, for the layers the pass did not insert
    parents: dict[str, Node] = {}  # every proper prefix of those paths → a node below it
    nodes = list(ir)
    for node in nodes:
        if node.path and node.origin is not origin:
            spec[node.path] = node
            parts = node.path.split(".")
            for i in range(1, len(parts)):
                parents.setdefault(".".join(parts[:i]), node)
    errors = []
    for node in nodes:
        if node.origin is not origin or not node.path:
            continue
        parts = node.path.split(".")
        taken = [spec[p] for p in (".".join(parts[:i]) for i in range(len(parts), 0, -1)) if p in spec]
        if not taken and node.path in parents:
            taken = [parents[node.path]]
        if taken:
            user = taken[0]
            errors.append(
                Diagnostic(
                    "E0209",
                    f"layer `{user.path}` clashes with the {node.op.kind} that the {origin.value} pass inserts "
                    f"as `{node.path}`",
                    user.span,
                    "this name is taken",
                    "rename this layer",
                )
            )
    if errors:
        raise ResdslError(errors)
