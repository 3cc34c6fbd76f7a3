"""Refuse networks too large to build, before any backend allocates a weight.

Needs: shapes inferred and shortcuts placed (projections own parameters too).
Guarantees: every tensor's channels and spatial sides, and the network's
parameter count, are within the graph's `limits` (resdsl/limits.py).
"""

from __future__ import annotations

import networkx as nx

from ..backends.cost import params
from ..ir.graph import order
from ..limits import Limits

NAME = "budget"


def apply(graph: nx.DiGraph) -> None:
    limits: Limits = graph.graph.get("limits") or Limits()
    total = 0
    for node in order(graph):
        data = graph.nodes[node]
        shape = data["shape"]
        if len(shape) == 3:
            what = f"`{data['path'] or data['op'].kind}`"
            limits.check("channels", shape[0], f"the channel count after {what}", data["span"])
            limits.check("spatial", max(shape[1:]), f"the largest side after {what}", data["span"])
        total += params(graph, node)
    # Shown at the network's name (the input node's span): the total belongs to the whole network.
    limits.check("params", total, "the network's parameter count", graph.nodes[order(graph)[0]]["span"], "this network")
