"""A small IR built by hand, for testing the verifier and single passes without the front end."""

from __future__ import annotations

from dataclasses import dataclass

from resdsl.ir.graph import IR
from resdsl.ir.node import Node, Residual
from resdsl.ir.policies import Policies
from resdsl.ir.tree import Module, ModuleKind, Param, Template
from resdsl.ops.add import Add
from resdsl.ops.conv import Conv
from resdsl.ops.flatten import Flatten
from resdsl.ops.input import Input
from resdsl.ops.linear import Linear
from resdsl.ops.pool import GlobalAvgPool


@dataclass
class Tiny:
    """input → [block b: conv1 (channels `out`, stride `stride`) + input] → gap → flatten → fc."""

    ir: IR
    input: Node
    block: Module
    conv: Node
    add: Node
    fc: Node


def tiny(out: int = 4, stride: int = 1, policies: Policies | None = None, channels: int = 4) -> Tiny:
    ir = IR("tiny", (channels, 8, 8), policies or Policies(norm="none"), "tiny.res")
    x = ir.add(Input(), [], parent=ir.root, span=None, name="x")
    template = Template("blk", [Param("c", None)], [], None, None)  # type: ignore[arg-type]
    ir.templates["blk"] = template
    block = Module("b", ModuleKind.BLOCK, ir.root, template=template, args={"c": out}, explicit=("c",))
    template.instances.append(block)
    return _finish(ir, x, block, out, stride)


def _finish(ir: IR, x: Node, block: Module, out: int, stride: int) -> Tiny:
    conv = ir.add(Conv(out, 3, stride, 1), [x], parent=block, span=None, path="b.conv1")
    add = ir.add(Add(), [conv, x], parent=block, span=None, residual=Residual(0))
    conv.branch = add
    gap = ir.add(GlobalAvgPool(), [add], parent=ir.root, span=None, path="gap")
    flat = ir.add(Flatten(), [gap], parent=ir.root, span=None)
    fc = ir.add(Linear(3), [flat], parent=ir.root, span=None, path="fc")
    return Tiny(ir, x, block, conv, add, fc)
