"""Final checks on the fully built IR.

Needs: every other pass done. Guarantees: every residual add has operands of
equal shape, and every op with parameters has a unique module path. A failure
here is a bug in resdsl (the earlier passes report user mistakes), so it
raises VerifyError, not a spec error.
"""

from __future__ import annotations

import networkx as nx

from ..ir.graph import VerifyError, operands

NAME = "validate"


def apply(graph: nx.DiGraph) -> None:
    for node in graph:
        data = graph.nodes[node]
        if data["shape"] is None:
            raise VerifyError(f"node {node} has no shape")
        if data["op"].kind == "add":
            shapes = {graph.nodes[o]["shape"] for o in operands(graph, node)}
            if len(shapes) != 1:
                raise VerifyError(f"add {node} has operands of shapes {shapes}")
        if data["op"].has_params and not data["path"]:
            raise VerifyError(f"node {node} ({data['op'].kind}) has parameters but no module path")
