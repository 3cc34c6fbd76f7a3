"""Warnings: a valid network that is probably not what its author meant.

Needs: the graph after every pass. Changes nothing; returns W-coded
diagnostics for `compile` to attach to its result.

W0001: under `norm = pre`, convs outside the residual blocks (the stem) get
no BatchNorm or ReLU of their own, since each block normalises its input.
Two such convs in a row are then one linear map: a deep stem (ResNet-C)
collapses. A conv's `norm=post` gives it conv → BN → ReLU whatever the
policy; `norm=false` says the linear chain is meant.
"""

from __future__ import annotations

import networkx as nx

from ..diagnostics import Diagnostic, Label
from ..ir.graph import order, users


def check(graph: nx.DiGraph) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    if graph.graph["policies"]["norm"] != "pre":
        return found
    for node in order(graph):
        data = graph.nodes[node]
        if not _bare_conv(data):
            continue
        after = users(graph, node)
        if len(after) == 1 and _bare_conv(graph.nodes[after[0]]):
            second = graph.nodes[after[0]]
            found.append(
                Diagnostic(
                    "W0001",
                    f"`{data['name'] or data['path']}` and `{second['name'] or second['path']}` are convolutions in a "
                    "row with no BatchNorm or ReLU between them: together they are one linear map",
                    data["span"],
                    "no norm or activation after this conv",
                    "under `norm = pre` only the blocks normalise; write `norm=post` on this conv for "
                    "conv → BN → ReLU, or `norm=false` if a linear chain is meant",
                    notes=[Label(second["span"], "the next conv")],
                    severity="warning",
                )
            )
    return found


def _bare_conv(data: dict) -> bool:
    """A conv outside any block left without norm by the policy (not by its own `norm=false`)."""
    return data["op"].kind == "conv" and data["block"] is None and data.get("auto_norm", True) is True
