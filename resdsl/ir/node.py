"""The IR's node record: one op, where it came from, where it lives, and what the passes decided about it."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

from ..diagnostics import Span
from .expr import Expr
from .shape import Shape
from .tree import Module, ModuleKind

if TYPE_CHECKING:
    from ..ops.base import Op


class Origin(Enum):
    """Who made a node: the spec, or the pass that inserted it (the value is the pass's name)."""

    SPEC = "spec"
    NORM = "norm"
    ATTACH = "attach"
    PROJECTION = "projections"


class ShortcutKind(Enum):
    """What the shortcut policy made of a residual add's shortcut."""

    IDENTITY = "identity"
    PROJECTION = "projection"  # a 1×1 conv (+ BatchNorm), maybe after an average pool
    PAD = "pad"  # option A: subsample and zero-pad channels


@dataclass(eq=False)
class Residual:
    """What a residual add knows beyond its operands (operand 1 is the shortcut)."""

    index: int  # which add of its body this is (0, 1, ...): its shortcut module is downsample, downsample2, ...
    kind: ShortcutKind | None = None  # set by the projections pass
    # The tensor the spec's `add` names, set by the projections pass. Operand 1 is
    # this tensor for an identity shortcut, else the end of the inserted chain.
    source: Node | None = None


@dataclass(frozen=True)
class DroppedAdd:
    """A residual add the shortcut policy removed (`none`, or `drop` where its operands' shapes differ)."""

    span: Span | None  # the spec's `add`
    where: str  # the block instance's module path, or the network's name
    main: Shape  # the residual branch's output, which takes the add's place
    shortcut: Shape  # the tensor the `add` named


@dataclass(eq=False, slots=True)
class Node:
    """One op in the graph. Nodes are the networkx graph's nodes themselves, compared by identity.

    `id` orders nodes by creation; every walk breaks ties by it, so outputs are
    reproducible. Fields below `shape` are the passes' decisions; a field that
    only some ops use says which.
    """

    id: int
    op: Op
    origin: Origin
    span: Span | None
    parent: Module  # the module whose forward computes this op (the network, a block instance, a sequence)
    path: str | None = None  # module path (`layer2.0.conv1`): ops with `is_module`; None for functional ops
    name: str | None = None  # the name the spec gave this op's output, if any
    # A block template's symbolic arguments, as the template wrote them (`planes * expansion`).
    exprs: dict[str, Expr] = field(default_factory=dict)
    shape: Shape | None = None  # output shape, set by the shapes pass
    branch: Node | None = None  # the residual add whose branch (main path) holds this op
    # Convs: True when the norm policy places BatchNorm/ReLU around it, False for none,
    # "post" for conv → BN → ReLU whatever the policy (the spec's `norm=` argument).
    norm: bool | str = True
    shortcut_of: Node | None = None  # ops the projections pass inserted: the add whose shortcut they form
    residual: Residual | None = None  # residual adds only
    zero_init: bool = False  # BatchNorms: γ starts at zero (the zero_init_last policy)
    channels_last: bool = False  # its output is a channels-last (N×H×W×C) feature map; set by the shapes pass
    block: Module | None = field(init=False)  # the block instance `parent` is or lies in; None at network level

    def __post_init__(self) -> None:
        module: Module | None = self.parent
        while module is not None and module.kind is not ModuleKind.BLOCK:
            module = module.parent
        self.block = module

    @property
    def label(self) -> str:
        """How messages name the op: its module path, else its kind."""
        return self.path or self.op.kind

    def __repr__(self) -> str:
        where = self.path or self.name or ""
        return f"<node {self.id} {self.op.kind}{' ' + where if where else ''}>"
