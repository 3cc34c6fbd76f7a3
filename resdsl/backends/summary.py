"""`resdsl summary`: per-layer shapes, parameters and MACs, as a table or JSON."""

from __future__ import annotations

import json

from ..ir.cost import macs, params
from ..ir.graph import IR
from ..ir.shape import shape_text


def rows(ir: IR) -> list[dict]:
    out = []
    for node in ir.walk():
        assert node.shape is not None
        out.append(
            {
                "name": node.path or node.name or "",
                "op": node.op.kind,
                "shape": list(node.shape),
                "params": params(ir, node),
                "macs": macs(ir, node),
                "origin": node.origin.value,
            }
        )
    return out


def as_dict(ir: IR, flops: bool = False) -> dict:
    layers = rows(ir)
    result = {
        "network": ir.name,
        "input": list(ir.input_shape),
        "params": sum(r["params"] for r in layers),
        "macs": sum(r["macs"] for r in layers),
        "layers": layers,
    }
    named = ir.outputs()
    if named:  # a network's named outputs (`return p2, p3`), in order
        result["outputs"] = {node.name: list(node.shape or ()) for node in named}
    if flops:
        result["flops"] = 2 * result["macs"]
    return result


def emit(ir: IR, fmt: str = "table", flops: bool = False) -> str:
    data = as_dict(ir, flops)
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    unit = "FLOPs" if flops else "MACs"
    factor = 2 if flops else 1
    header = ("layer", "op", "output", "params", unit)
    table = [header]
    for r in data["layers"]:
        shape = shape_text(r["shape"])
        table.append(
            (
                r["name"],
                r["op"],
                shape,
                f"{r['params']:,}" if r["params"] else "",
                f"{factor * r['macs']:,}" if r["macs"] else "",
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = []
    for index, row in enumerate(table):
        cells = [row[i].ljust(widths[i]) if i < 3 else row[i].rjust(widths[i]) for i in range(len(header))]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    total_ops = factor * data["macs"]
    lines.append("")
    lines.append(f"network {data['network']}: input {'×'.join(map(str, data['input']))}")
    if "outputs" in data:
        shown = ", ".join(f"{name} {shape_text(shape)}" for name, shape in data["outputs"].items())
        lines.append(f"  outputs     {shown}")
    lines.append(f"  parameters  {data['params']:,} ({data['params'] / 1e6:.3f} M)")
    what = "floating-point operations (2 × MACs)" if flops else "multiply-accumulates (MACs; FLOPs = 2 × MACs: --flops)"
    lines.append(f"  {unit:<10}  {total_ops:,} ({total_ops / 1e9:.3f} G) {what}")
    return "\n".join(lines) + "\n"
