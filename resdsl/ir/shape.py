"""Tensor shapes as the IR holds them: (C, H, W) for feature maps, (F,) once flat; batch left out."""

from __future__ import annotations

Shape = tuple[int, ...]


def shape_text(shape: Shape) -> str:
    """`64×56×56`, as every message, table and diagram writes a shape."""
    return "×".join(str(d) for d in shape)
