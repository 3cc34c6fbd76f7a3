"""The module tree: network → stages → block instances → nested modules, as PyTorch will nest them.

Lowering builds it from the spec (a stage for each `x N`, a block instance
for each use of a template); the projections pass adds the sequences of
inserted shortcuts. Each op node points at the module whose forward computes
it (`Node.parent`); module paths of ops are their parent's path plus a name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from ..diagnostics import Label, Span
from .expr import Expr, Value


class ModuleKind(Enum):
    NETWORK = "network"  # the root: the generated top-level class
    STAGE = "stage"  # a repeated block (`layer1 = basic(64) x 2`): instances named 0, 1, ...
    BLOCK = "block"  # one use of a block template: a class of its own
    SEQUENCE = "sequence"  # ops numbered 0, 1, ... as nn.Sequential numbers them (a projection shortcut)
    GROUP = "group"  # network statements named by a path of several levels (`stem.conv`): run in order
    # A block's statements named `convs.0` or `attn.fc`: modules held together (an nn.ModuleList when
    # numbered, an nn.ModuleDict when named), each called on its own wherever the block's forward reads it.
    LIST = "list"


@dataclass(eq=False)
class Param:
    """A template parameter and its default, as the spec wrote it (None: the call must give it)."""

    name: str
    default: Expr | None


@dataclass(eq=False)
class Template:
    """A block template: what the PyTorch backend writes one class for."""

    name: str
    params: list[Param]
    lets: list[tuple[str, Expr]]  # in spec order
    expansion: int | None
    span: Span
    instances: list[Module] = field(default_factory=list)  # in creation order
    # Set by the templates pass: the residual adds (by Residual.index) whose
    # shortcut has ops in at least one instance.
    shortcuts: dict[int, ShortcutSlot] = field(default_factory=dict)
    # Residual adds (by index) that only some instances keep (`shortcut = drop`): the class takes a flag.
    skips: set[int] = field(default_factory=set)
    # Set by the templates pass: for a block called inside this one (by its path in it: `conv1`, `paths.0`) that returns
    # as many channels as one of its parameters in every use, that parameter, so the class writes the
    # width as the call's argument (`conv1 = conv_norm_act(w)` returns `w`).
    widths: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ShortcutSlot:
    """How a template's class writes the shortcut of one of its residual adds."""

    optional: bool  # only some instances have shortcut ops: the class takes a flag for them
    stride: int | None  # the stride the class writes as a number; None: the branch's own stride expression


@dataclass(eq=False)
class Module:
    name: str  # the attribute name in the parent (`layer1`, `0`, `downsample`); the network's name at the root
    kind: ModuleKind
    parent: Module | None = None
    span: Span | None = None
    template: Template | None = None  # BLOCK: the template it instantiates
    args: dict[str, Value] = field(default_factory=dict)  # BLOCK: every parameter's value, defaults included
    explicit: tuple[str, ...] = ()  # BLOCK: the parameters its call spelled out
    arg_exprs: dict[str, Expr] = field(default_factory=dict)  # BLOCK in a block: symbolic arguments of its call
    children: list[Module] = field(default_factory=list)
    path: str = field(init=False)  # `layer2.0.downsample`; "" at the root

    def __post_init__(self) -> None:
        if self.parent is None:
            self.path = ""
        else:
            self.path = f"{self.parent.path}.{self.name}" if self.parent.path else self.name
            self.parent.children.append(self)

    def prefix(self) -> str:
        """The module path prefix of what lives inside: `layer2.0.`, or "" at the root."""
        return self.path + "." if self.path else ""

    def walk(self) -> list[Module]:
        """This module and every module below it, parents first, children in order."""
        found, stack = [], [self]
        while stack:
            module = stack.pop()
            found.append(module)
            stack.extend(reversed(module.children))
        return found

    def block_above(self) -> Module | None:
        """The block instance that holds this one, through a group of its members (`paths.0`); None when
        a stage, a network group or the network holds it."""
        above = self.parent
        while above is not None and above.kind is ModuleKind.LIST:
            above = above.parent
        return above if above is not None and above.kind is ModuleKind.BLOCK else None

    def call_note(self) -> Label | None:
        """For a block instance, the note an error inside it carries at its call; None without a call."""
        return Label(self.span, f"in `{self.path}`, called here") if self.span is not None else None

    def __repr__(self) -> str:
        return f"<{self.kind.value} {self.path or self.name}>"
