"""Mark the BatchNorms whose γ starts at zero, by the `zero_init_last` policy.

Needs: norms placed and shortcuts settled (a removed add has no branch to mark).
Guarantees: with `zero_init_last = true`, the last BatchNorm on each residual
add's branch has `zero_init` set, so that (BatchNorm β starting at zero) every
residual branch starts at zero (Goyal et al. 2017); no node has it otherwise.
"""

from __future__ import annotations

import networkx as nx

from ..ir.graph import order

NAME = "zero_init"


def apply(graph: nx.DiGraph) -> None:
    if graph.graph["policies"]["zero_init_last"] != "true":
        return
    last_bn: dict[int, int] = {}
    for node in order(graph):
        data = graph.nodes[node]
        if data["op"].kind == "batchnorm" and data["branch"] in graph:
            last_bn[data["branch"]] = node
    for node in last_bn.values():
        graph.nodes[node]["zero_init"] = True
