"""A stable text form of the IR, one node per line (`resdsl build --emit ir`, and the IR goldens)."""

from __future__ import annotations

from .graph import IR


def dump(ir: IR) -> str:
    names = {}
    lines = [f"network {ir.name}  # policies: " + ir.policies.text()]
    for index, node in enumerate(ir.walk()):
        names[node] = f"%{index}"
        args = ", ".join(names[o] + (" (shortcut)" if ir.is_shortcut_edge(o, node) else "") for o in ir.operands(node))
        attrs = ", ".join(f"{k}={v}" for k, v in node.op.attrs().items())
        shape = "x".join(str(d) for d in node.shape) if node.shape else "?"
        label = node.path or node.name or ""
        line = f"  %{index} = {node.op.kind}({attrs})"
        line += f"({args})" if args else ""
        line += f" -> {shape}" + (" channels-last" if node.channels_last else "")
        if label:
            line += f"  [{label}]"
        line += f"  # {node.origin.value}"
        if node.span is not None:
            line += f" @ {node.span.location}"
        lines.append(line)
    return "\n".join(lines) + "\n"
