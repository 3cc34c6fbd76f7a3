"""What the passes placed on their own: the lines of `resdsl check -v`."""

from __future__ import annotations

from ..ir.graph import IR
from ..ir.node import Origin, ShortcutKind
from ..ir.shape import shape_text


def inserted(ir: IR) -> list[str]:
    lines = ["policies: " + ir.policies.text()]
    norms = sum(1 for n in ir.graph if n.origin is Origin.NORM)
    lines.append(f"norm policy placed {norms} BatchNorm/ReLU ops")
    chains = ir.shortcut_chains()
    for add in ir.walk():
        if add.residual is None or add.residual.kind in (None, ShortcutKind.IDENTITY):
            continue
        chain = chains[add]
        source = ir.operands(chain[0])[0]
        assert source.shape is not None and add.shape is not None and add.span is not None
        parts = [node.op.label(channels=False) for node in chain]
        path = next((n.path for n in chain if n.path), None)
        name = path.rsplit(".", 1)[0] if path else f"{add.block.path if add.block else 'network'} shortcut"
        reads = ", reading the block's pre-activation" if source is not add.residual.source else ""
        lines.append(
            f"inserted {name}: {' + '.join(parts)}, "
            f"{shape_text(source.shape)} → {shape_text(add.shape)}{reads}"
            f" (shortcut policy {ir.policies.shortcut}) at {add.span.location}"
        )
    for dropped in ir.dropped:
        differ = f": the shortcut's {shape_text(dropped.shortcut)} and the branch's {shape_text(dropped.main)} differ"
        why = "" if ir.policies.shortcut == "none" else differ
        at = f" at {dropped.span.location}" if dropped.span is not None else ""
        lines.append(f"dropped the add of {dropped.where}{why} (shortcut policy {ir.policies.shortcut}){at}")
    return lines
