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
    inserted: list[tuple[str, Node]] = []
    for node in ir.graph:  # creation order, which is id order
        if node.path:
            if node.origin is origin:
                inserted.append((node.path, node))
            else:
                spec[node.path] = node
    parents: dict[str, Node] = {}  # every proper prefix of those paths → the first node below it
    for path, node in spec.items() if inserted else ():
        cut = path.rfind(".")
        while cut > 0 and path[:cut] not in parents:  # a prefix already in has its own prefixes in too
            parents[path[:cut]] = node
            cut = path.rfind(".", 0, cut)
    errors = []
    reported = set()  # the spec statements reported: once each, whatever it clashes with in each instance
    for path, node in inserted:
        user = _taken(path, spec) or parents.get(path)
        if user is not None and (user.span or user.path) not in reported:
            reported.add(user.span or user.path)
            errors.append(
                Diagnostic(
                    "E0209",
                    f"layer `{user.path}` clashes with the {node.op.kind} that the {origin.value} pass inserts "
                    f"as `{path}`",
                    user.span,
                    "this name is taken",
                    "rename this layer",
                )
            )
    if errors:
        raise ResdslError(errors)


def _taken(path: str, spec: dict[str, Node]) -> Node | None:
    """The spec layer at `path` or at its nearest parent path, if any."""
    while True:
        if path in spec:
            return spec[path]
        cut = path.rfind(".")
        if cut < 0:
            return None
        path = path[:cut]
