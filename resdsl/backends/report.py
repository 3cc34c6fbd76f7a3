"""What the passes placed on their own: the lines of `resdsl check -v`."""

from __future__ import annotations

import networkx as nx

from ..ir.graph import operands, order, policy_text, shape_text


def inserted(graph: nx.DiGraph) -> list[str]:
    policies = graph.graph["policies"]
    lines = ["policies: " + policy_text(graph)]
    norms = sum(1 for n in graph if graph.nodes[n]["origin"] == "norm")
    lines.append(f"norm policy placed {norms} BatchNorm/ReLU ops")
    walk = order(graph)
    chains: dict[int, list[int]] = {}
    for node in walk:
        if graph.nodes[node]["shortcut_of"] is not None:
            chains.setdefault(graph.nodes[node]["shortcut_of"], []).append(node)
    for add in walk:
        data = graph.nodes[add]
        if data["op"].kind != "add" or data.get("shortcut_kind") in (None, "identity"):
            continue
        chain = chains[add]
        source = operands(graph, chain[0])[0]
        parts = []
        for node in chain:
            op = graph.nodes[node]["op"]
            if op.kind == "conv":
                parts.append(f"1×1 conv, stride {op.stride}")
            elif op.kind == "pad_shortcut":
                parts.append(f"stride-{op.stride} subsample + {op.pad_before}+{op.pad_after} zero channels")
            elif op.kind == "avgpool":
                parts.append(f"{op.kernel}×{op.kernel} avg-pool")
            else:
                parts.append("BN" if op.kind == "batchnorm" else op.kind)
        path = next((graph.nodes[n]["path"] for n in chain if graph.nodes[n]["path"]), None)
        name = path.rsplit(".", 1)[0] if path else f"{data['block'] or 'network'} shortcut"
        reads = ", reading the block's pre-activation" if source != data["shortcut_from"] else ""
        lines.append(
            f"inserted {name}: {' + '.join(parts)}, "
            f"{shape_text(graph.nodes[source]['shape'])} → {shape_text(data['shape'])}{reads}"
            f" (shortcut policy {policies['shortcut']}) at {data['span'].location}"
        )
    return lines
