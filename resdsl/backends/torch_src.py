"""PyTorch backend: readable, standalone Python source from the IR.

One nn.Module class per block template, written in the template's own terms
(`nn.Conv2d(width, width, 3, stride=stride, ...)`), and a top-level class
that builds the network's modules, sequences, blocks and stages with each
instance's concrete arguments and takes `num_classes` and `in_chans`. The
module tree says what each class holds: a class's forward calls its own ops
and one step per child module (a sequence, a block, a stage). Each op writes
its own module (`Op.torch_module`) or forward expression (`Op.torch_call`).
Module attribute names are the IR's module paths, so the state_dict keys are
the paths themselves (torchvision's and timm's, for the bundled ResNets).

The code is written as a careful person writes it: parameterless layers are
modules, ReLUs run in place and residual adds are `+=` wherever autograd
allows it, and the layout is what `ruff format` gives.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import keyword
import linecache
import sys
import types
from dataclasses import dataclass, field

from ..diagnostics import file_name
from ..ir.expr import Bool, Expr, Num, Str, Var, names_in, print_expr
from ..ir.graph import IR
from ..ir.node import Node
from ..ir.tree import Module, ModuleKind, ShortcutSlot, Template
from ..ops.chunk import Chunk
from ..passes.templates import branch_path, inner_stride
from ..pysource import docstring_text, literal
from .torch_layout import INDENT, method_body, statement
from .torch_network import network_class

# What the spec calls the network's class count and input channels, and what the top-level class calls them.
NETWORK_ARGS = {"classes": "num_classes", "in_channels": "in_chans"}


GROUP = "Group"
# The module a group of named network modules becomes (`stem.conv`, `stem.pool`): timm's nn.Sequential
# of an OrderedDict, without importing collections.
GROUP_SOURCE = f'''\
class {GROUP}(nn.Sequential):
    """Named modules run in order, as an nn.Sequential built from an OrderedDict."""

    def __init__(self, **modules: nn.Module):
        super().__init__()
        for name, module in modules.items():
            self.add_module(name, module)'''


class GenerationError(RuntimeError):
    """The IR holds something the PyTorch backend cannot express: a resdsl bug."""


def class_name(name: str, taken: set[str]) -> str:
    base = "".join(part[:1].upper() + part[1:] for part in name.split("_") if part) or "Block"
    if keyword.iskeyword(base) or base in ("Model", "Module", "Tensor", "F"):
        base += "Block"
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}{n}", n + 1
    taken.add(candidate)
    return candidate


def python(expr: Expr, names: dict[str, str]) -> str:
    """Python source for a spec expression, with names mapped through `names`."""

    def leaf(node: Expr) -> str:
        if isinstance(node, Var):
            return names.get(node.name, node.name)
        if isinstance(node, Bool):
            return "True" if node.value else "False"
        assert isinstance(node, (Num, Str)), node  # print_expr hands over leaves only
        return literal(node.value)

    return print_expr(expr, leaf)


@dataclass
class Shortcut:
    """How one residual add's shortcut is written in a class."""

    attr: str  # module attribute / flag name: downsample, downsample2, ...
    ident: str  # forward variable: identity, identity2, ...
    chain: list[Node]  # the shortcut's ops, from an instance that has them
    pool: Node | None  # projection=avgpool: an average pool of any instance, for the class's conditional pool
    stride: str
    flag: str | None  # constructor flag when only some instances have it
    preact: bool  # the module reads the block's pre-activated input, not the raw one (norm = pre)


@dataclass
class Unit:
    """A child module of a class, called as one forward step: a sequence, a block or a stage."""

    module: Module
    nodes: list[Node]  # its ops, in walk order
    input: Node  # the tensor it reads


@dataclass
class _Body:
    """The code of one class: a block template's, or the network's."""

    owner: Module  # the network, or the template's first instance
    nodes: list[Node]  # the ops of the owner and everything in it, in walk order
    input: Node
    chain: str  # the running forward variable
    names: dict[str, str]  # spec name → Python, for the symbolic arguments the class writes
    used: set[str] = field(default_factory=set)  # the names of `names` the code uses
    shortcuts: dict[Node, Shortcut] = field(default_factory=dict)
    init: list[str] = field(default_factory=list)
    forward: list[str] = field(default_factory=list)
    sym: dict[Node, str] = field(default_factory=dict)
    hyper: dict[Node, str] = field(default_factory=dict)  # functional op -> prefix of its stored arguments
    # Filled by _emit: the forward steps, their output tensors and variables, where each step's lines start.
    steps: list[Node | Unit] = field(default_factory=list)
    outputs: list[Node] = field(default_factory=list)
    variables: list[str] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    zeroed: list[str] = field(default_factory=list)  # norms whose scale starts at zero (zero_init_last): `self.bn3`
    zero_guards: dict[str, str] = field(default_factory=dict)  # zeroed norm -> the flag of its add (drop)
    leading: int = 0  # how many lines at the start of `init` build shortcuts that lead the state_dict
    # A block's groups (`convs`): the placeholder `init` line that will build each, its members' names and modules.
    lists: dict[Module, tuple[str, list[tuple[str, str]]]] = field(default_factory=dict)

    @property
    def relative(self) -> int:
        """The length of the module path prefix (`layer1.0.`) the class's attributes drop."""
        return len(self.owner.prefix())


class _OpWriter:
    """What an op sees of the backend while writing its source (ops.base.TorchWriter)."""

    def __init__(
        self,
        emitter: _Emitter,
        body: _Body,
        node: Node,
        overrides: dict[str, str] | None = None,
        store: str | None = None,
        preambles: dict[str, list[str]] | None = None,
    ):
        self.emitter = emitter
        self.body = body
        self.node = node
        self.overrides = overrides or {}
        self.store = store  # shortcut ops: every stored argument goes to `self.<store>_<name>`
        self.preambles = preambles or {}

    def attr(self, name: str) -> str:
        if name in self.overrides:
            return self.overrides[name]
        expr = self.node.exprs.get(name)
        if expr is not None and all(n in self.body.names for n in names_in(expr)):
            self.body.used.update(names_in(expr))
            return python(expr, self.body.names)
        return literal(getattr(self.node.op, name))

    def stored(self, name: str) -> str:
        text = self.attr(name)
        body = self.body
        if self.store is not None:
            attribute = f"self.{self.store}_{name}"
        elif name in self.node.exprs and text != literal(getattr(self.node.op, name)):
            if self.node not in body.hyper:
                body.hyper[self.node] = f"_{self.node.op.kind}{len(body.hyper) + 1}"
            attribute = f"self.{body.hyper[self.node]}_{name}"
        else:
            return text
        body.init += self.preambles.get(name, [])
        body.init.append(f"{attribute} = {text}")
        return attribute

    def in_channels(self) -> str:
        if "in_channels" in self.overrides:
            return self.overrides["in_channels"]
        return self.emitter.channels(self.body, self.emitter.ir.operands(self.node)[0])

    def channels_last(self) -> bool:
        return self.emitter.ir.operands(self.node)[0].channels_last

    def rank(self) -> int:
        return len(self.emitter.ir.operands(self.node)[0].shape or ())

    def inplace(self) -> bool:
        return self.emitter.overwritable(self.body, self.emitter.ir.operands(self.node)[0])

    def helper(self, name: str) -> str:
        return self.emitter.helper_names[name]


class _Emitter:
    def __init__(self, ir: IR):
        self.ir = ir
        self.walk = ir.walk()
        self.position = {node: index for index, node in enumerate(self.walk)}
        self.chains = ir.shortcut_chains()
        helpers: dict[str, str] = {}
        for node in self.walk:
            helpers.update(node.op.torch_helpers())
        if any(m.kind is ModuleKind.GROUP for m in ir.root.walk()) or (
            ir.policies.projection_names != "numbered" and self.chains
        ):
            helpers[GROUP] = GROUP_SOURCE
        self.templates = _dependency_order([t for t in ir.templates.values() if t.instances])
        # A class name must not be a local of a block's __init__ (a parameter or `let`), which
        # would hide the class from the code that instantiates it there.
        taken = {p.name for t in self.templates for p in t.params} | {n for t in self.templates for n, _ in t.lets}
        self.helper_names = {name: class_name(name, taken) for name in sorted(helpers)}
        self.helpers = {
            self.helper_names[name]: source.replace(f"class {name}(", f"class {self.helper_names[name]}(", 1)
            for name, source in helpers.items()
        }
        self.classes = {t.name: class_name(t.name, taken) for t in self.templates}
        self.top_name = class_name(ir.name, taken)
        # Blocks' groups whose members are not numbered 0, 1, …: an nn.ModuleDict, read by key.
        members: dict[Module, set[str]] = {}
        for group in ir.root.walk():
            if group.kind is ModuleKind.LIST:
                members[group] = {child.name for child in group.children}
        for node in self.walk:
            if node.parent.kind is ModuleKind.LIST and node.path is not None:
                members[node.parent].add(node.path.rpartition(".")[2])
        self.keyed = {group.path for group, names in members.items() if names != {str(i) for i in range(len(names))}}
        self.inside: dict[Module, list[Node]] = {}  # module → the ops in it and below, in walk order
        for node in self.walk:
            module: Module | None = node.parent
            while module is not None:
                self.inside.setdefault(module, []).append(node)
                module = module.parent

    # -- small queries --------------------------------------------------------

    def _input_of(self, nodes: list[Node]) -> Node:
        inside = set(nodes)
        for node in nodes:
            for operand in self.ir.operands(node):
                if operand not in inside:
                    return operand
        raise GenerationError("a module without an input")

    def channels(self, body: _Body, node: Node) -> str:
        assert node.shape is not None
        return body.sym.get(node) or repr(node.shape[0])

    def overwritable(self, body: _Body, node: Node) -> bool:
        """Whether an op may overwrite `node`'s tensor: nothing else reads it, and autograd does not need it."""
        if node is body.input or self.ir.graph.out_degree(node) != 1 or node.op.saves_output:
            return False
        if any(user.op.kind == "output" for user in self.ir.users(node)):
            return False
        # A view shares its operand's memory: the operand must be free to overwrite too. So does an add that
        # `shortcut = drop` removes in some uses of the class: there its output is its main operand itself.
        template = body.owner.template
        dropped = node.residual is not None and template is not None and node.residual.index in template.skips
        return not (node.op.view or dropped) or self.overwritable(body, self.ir.operands(node)[0])

    def _track(self, body: _Body, node: Node) -> None:
        """Record the output channel count of `node` in the class's terms."""
        preds = self.ir.operands(node)
        writer = _OpWriter(self, body, node)
        if "conv" in node.op.families or node.op.kind == "conv_transpose":
            body.sym[node] = writer.attr("out_channels")
        elif isinstance(node.op, Chunk):
            whole, count = self.channels(body, preds[0]), node.op.count
            simple = not any(sign in whole for sign in "+-(")
            body.sym[node] = (
                whole.removesuffix(f" * {count}")
                if simple and whole.endswith(f" * {count}")
                else (f"{whole} // {count}" if simple else f"({whole}) // {count}")
            )
        elif node.op.kind == "concat":
            terms = [self.channels(body, operand) for operand in preds]
            alike = len(set(terms)) == 1 and not any(sign in terms[0] for sign in "+-")
            body.sym[node] = f"{terms[0]} * {len(terms)}" if alike else " + ".join(terms)
        elif node.op.kind == "linear":
            body.sym[node] = writer.attr("out_features")
        elif node.op.kind == "flatten" and len(preds[0].shape or ()) == 3:
            _, h, w = preds[0].shape  # type: ignore[misc]
            cin = self.channels(body, preds[0])
            body.sym[node] = cin if h * w == 1 else f"{cin} * {h * w}"
        elif preds:
            body.sym[node] = self.channels(body, preds[-1] if node.op.kind == "mul" else preds[0])

    # -- units ----------------------------------------------------------------

    def _steps(self, body: _Body) -> tuple[list[Node | Unit], dict[Node, Unit]]:
        """The forward steps of a class: its own ops and one unit per child module, in walk order."""
        steps: list[Node | Unit] = []
        units: dict[Module, Unit] = {}
        for node in body.nodes:
            if node is body.input or node.shortcut_of is not None or node.op.kind == "output":
                continue
            child = _child_of(node.parent, body.owner)
            if child is not None and child.kind is ModuleKind.LIST:  # a member of a block's group: on its own
                child = _child_of(node.parent, child)
            if child is None:
                steps.append(node)
            elif child not in units:
                members = self.inside[child]
                units[child] = Unit(child, members, self._input_of(members))
                steps.append(units[child])
        return steps, {unit.nodes[-1]: unit for unit in units.values()}

    def _unit_init(self, body: _Body, unit: Unit) -> None:
        """The constructor statement of a child module (a member of a group: its place in the group's)."""
        module = unit.module
        expr = self._module_expr(body, module, unit.nodes)
        if module.parent is not None and module.parent.kind is ModuleKind.LIST:
            self._list_member(body, module.parent, module.name, expr)
        else:
            body.init.append(f"self.{module.name} = {expr}")

    def _list_member(self, body: _Body, group: Module, name: str, expr: str) -> None:
        """Member `name` of a block's group: the group's constructor statement goes where its first member
        would be (so the state_dict holds `convs.0`, `convs.1`, … before `bns.0`, as timm's), written once
        every member is known (`_close_lists`)."""
        if group not in body.lists:
            # A line of its own that `_close_lists` finds by value: lines before it may still move (a named
            # projection is moved to the front of the block).
            body.lists[group] = (f"<group {group.path}>", [])
            body.init.append(body.lists[group][0])
        body.lists[group][1].append((name, expr))

    def _attribute(self, body: _Body, local: str) -> str:
        """The attribute expression of the class's module at path `local`: `self.conv1`, `self.convs[0]` (a
        member of a block's group numbered 0, 1, …), `self.attn.fc` or `self.paths_bn["1"]` (one keyed by name)."""
        head, _, last = local.partition(".")
        if not last:
            return f"self.{head}"
        if body.owner.prefix() + head in self.keyed:
            return f"self.{head}.{last}" if last.isidentifier() else f'self.{head}["{last}"]'
        return f"self.{head}[{last}]"

    def _close_lists(self, body: _Body) -> None:
        """Write each group's constructor: an nn.ModuleList of members numbered 0, 1, …, else an nn.ModuleDict
        (named members; or numbers with gaps, where the norm policy placed norms beside some members only)."""
        for group, (placeholder, members) in body.lists.items():
            line = body.init.index(placeholder)
            # The layout `ruff format` gives: one member a line, kept so by the trailing comma.
            if group.path not in self.keyed:  # numbered 0, 1, …: in that order, whatever order the forward met them
                members = sorted(members, key=lambda member: int(member[0]))
                items = "".join(f"\n{INDENT * 2}{_nested(expr)}," for _, expr in members)
                body.init[line] = f"self.{group.name} = nn.ModuleList(\n{INDENT}[{items}\n{INDENT}]\n)"
            else:
                items = "".join(f"\n{INDENT * 2}{json.dumps(name)}: {_nested(expr)}," for name, expr in members)
                body.init[line] = f"self.{group.name} = nn.ModuleDict(\n{INDENT}{{{items}\n{INDENT}}}\n)"

    def _module_expr(self, body: _Body, module: Module, nodes: list[Node]) -> str:
        """The expression that builds a sequence, a stage, a block instance or a group."""
        if module.kind is ModuleKind.SEQUENCE:
            members = [n for n in nodes if n.op.is_module]
            for node in members:
                self._track(body, node)
            args = [node.op.torch_module(_OpWriter(self, body, node)) for node in members]
            return f"nn.Sequential({', '.join(args)})"
        if module.kind is ModuleKind.STAGE:
            # One block a line, kept so by the trailing comma whatever the length.
            calls = "".join(f"\n{INDENT}{self._instance_call(body, block)}," for block in module.children)
            return f"nn.Sequential({calls}\n)"
        if module.kind is ModuleKind.GROUP:
            return self._group_expr(body, module, nodes)
        return self._instance_call(body, module)

    def _group_expr(self, body: _Body, group: Module, nodes: list[Node]) -> str:
        """A group's members in order: an nn.Sequential when they are numbered, else a `Group` by name."""
        members: list[tuple[str, str]] = []
        seen: set[Module] = set()
        for node in nodes:
            if node.parent is group:
                if node.op.is_module:
                    self._track(body, node)
                    assert node.path is not None
                    writer = _OpWriter(self, body, node)
                    members.append((node.path.rpartition(".")[2], node.op.torch_module(writer)))
                continue
            child = _child_of(node.parent, group)
            if child is None or child in seen:
                continue
            seen.add(child)
            inner = [n for n in nodes if n in set(self.inside[child])]
            expr = self._module_expr(body, child, inner)
            last, first = inner[-1], self._input_of(inner)
            if last.shape and first.shape and last.shape[0] == first.shape[0]:
                body.sym[last] = self.channels(body, first)
            members.append((child.name, expr))
        numbered = [name for name, _ in members] == [str(i) for i in range(len(members))]
        items = "".join(
            "\n" + INDENT + (expr if numbered else f"{name}={expr}").replace("\n", "\n" + INDENT) + ","
            for name, expr in members
        )
        return f"{'nn.Sequential' if numbered else self.helper_names[GROUP]}({items}\n)"

    def _unit_output(self, body: _Body, unit: Unit) -> None:
        """The output channels of a child module, in the class's terms."""
        last = unit.nodes[-1]
        owner = body.owner.template
        local = unit.module.path[body.relative :]
        if owner is not None and local in owner.widths:  # the width an argument of the call gives, in every use
            param = owner.widths[local]
            expr = unit.module.arg_exprs.get(param)
            if expr is not None and all(n in body.names for n in names_in(expr)):
                body.used.update(names_in(expr))
                body.sym[last] = python(expr, body.names)
            else:
                body.sym[last] = literal(unit.module.args[param])
        elif last.shape is not None and unit.input.shape is not None and last.shape[0] == unit.input.shape[0]:
            body.sym[last] = self.channels(body, unit.input)
        elif unit.module.kind is ModuleKind.SEQUENCE:
            body.sym[last] = body.sym.get(last) or repr(last.shape[0])  # type: ignore[index]

    # -- shortcuts ------------------------------------------------------------

    def _branch_stride_text(self, body: _Body, add: Node) -> str:
        """The product of the strides on `add`'s residual branch, as source in the class's terms.

        The class's own ops write their stride; an op of a block the class calls counts through the call's
        argument for it, as passes/templates.py checked (`conv2 = conv_norm_act(w, k=3, s=stride)`: `stride`).
        """
        factors = []
        for node in reversed(branch_path(self.ir, add)):
            if hasattr(node.op, "stride"):
                if node.block is add.block:
                    text = _OpWriter(self, body, node).attr("stride")
                else:  # in a block this class calls: the call's argument (the templates pass checked it)
                    expr = inner_stride(node, add.block)  # type: ignore[arg-type]
                    if isinstance(expr, bool) or expr is None or not all(n in body.names for n in names_in(expr)):
                        text = literal(node.op.stride)  # type: ignore[attr-defined]
                    else:
                        body.used.update(names_in(expr))
                        text = python(expr, body.names)
                if text != "1":
                    factors.append(text)
        return " * ".join(factors) or "1"

    def _shortcut(
        self, body: _Body, add: Node, owners: list[Node], index: int, slot: ShortcutSlot | None, symbolic: bool
    ) -> Shortcut:
        """Describe `add`'s shortcut, taking its ops from the first of `owners` (maybe in another instance)."""
        owner_add = owners[0]
        chain = self.chains[owner_add]
        if slot is not None and slot.stride is not None:
            stride = repr(slot.stride)
        elif symbolic:
            stride = self._branch_stride_text(body, add)
        else:
            stride = repr(chain[0].op.downsampling())
        suffix = str(index + 1) if index else ""
        assert owner_add.residual is not None
        preact = self.ir.operands(chain[0])[0] is not owner_add.residual.source
        flag = ("downsample" + suffix) if slot is not None and slot.optional else None
        pools = (n for owner in owners for n in self.chains[owner] if n.op.kind == "avgpool")
        pool = next(pools, None)
        attr = self.ir.policies.shortcut_module + suffix  # `downsample`, or `shortcut` (CIFAR ResNets)
        return Shortcut(attr, "identity" + suffix, chain, pool, stride, flag, preact)

    def _shortcut_code(self, body: _Body, add: Node, names: dict[Node, str]) -> str:
        """Write the shortcut of `add` into the body; returns the variable holding it."""
        spec = body.shortcuts.get(add)
        assert add.residual is not None and add.residual.source is not None
        raw = add.residual.source
        if spec is None:
            return names[raw]
        source = names[self._module_input(body, add)]
        main = self.ir.operands(add)[0]
        cin = self.channels(body, raw)
        cout = self.channels(body, main)
        attr = spec.attr
        if spec.chain[0].op.kind == "pad_shortcut":
            body.init.append(f"self.{attr} = {spec.flag or 'True'}")
            writer = _OpWriter(
                self,
                body,
                spec.chain[0],
                overrides={"stride": spec.stride, "pad": "(0, 0, 0, 0, _extra // 2, _extra - _extra // 2)"},
                store=attr,
                preambles={"pad": [f"_extra = {cout} - {cin}"]},
            )
            code = spec.chain[0].op.torch_call(writer, [source])
            guard = f"if self.{attr}:"
        else:
            start = len(body.init)
            sequential = f"self.{attr} = {self._projection(body, spec, cin, cout)}"
            if spec.flag:
                body.init += [f"self.{attr} = None", f"if {spec.flag}:", INDENT + sequential]
            else:
                body.init.append(sequential)
            if self.ir.policies.projection_names == "named":
                # timm's pre-activation blocks build their downsample first: it leads the state_dict.
                lines = body.init[start:]
                del body.init[start:]
                body.init[body.leading : body.leading] = lines
                body.leading += len(lines)
            code = f"self.{attr}({source})"
            guard = f"if self.{attr} is not None:"
        if spec.flag:
            body.forward += [f"{spec.ident} = {names[raw]}", guard, f"    {spec.ident} = {code}"]
        else:
            body.forward.append(f"{spec.ident} = {code}")
        return spec.ident

    def _projection(self, body: _Body, spec: Shortcut, cin: str, cout: str) -> str:
        """The module of a projection shortcut, in the class's terms: an nn.Sequential of its numbered
        members, or a `Group` of its named ones (`projection_names = named`)."""
        stride = spec.stride
        named = self.ir.policies.projection_names != "numbered"
        modules: list[tuple[str, str]] = []
        if self.ir.policies.projection == "avgpool":
            # The pool is `.0` whether or not this use strides: an Identity stands in at stride 1.
            name = "pool" if named else "0"
            if spec.pool is None or stride == "1":
                modules.append((name, "nn.Identity()"))
            else:
                pool = spec.pool.op.torch_module(_OpWriter(self, body, spec.pool, {"kernel": stride, "stride": stride}))
                if stride.isdigit():
                    modules.append((name, pool))
                else:
                    body.init.append(f"_pool = {pool} if {stride} > 1 else nn.Identity()")
                    modules.append((name, "_pool"))
        for node in spec.chain:
            if node.op.kind == "avgpool":
                continue
            is_conv = "conv" in node.op.families
            overrides = {"in_channels": cin if is_conv else cout, "out_channels": cout}
            if is_conv and self.ir.policies.projection != "avgpool":
                overrides["stride"] = stride
                kernel = self.ir.policies.down_kernel
                if kernel > 1 and not stride.isdigit():  # the wide kernel only where this use strides
                    overrides["kernel"] = f"{kernel} if {stride} > 1 else 1"
                    overrides["padding"] = f"{(kernel - 1) // 2} if {stride} > 1 else 0"
            assert node.path is not None
            modules.append((node.path.rpartition(".")[2], node.op.torch_module(_OpWriter(self, body, node, overrides))))
        if named:
            return f"{self.helper_names[GROUP]}({', '.join(f'{name}={module}' for name, module in modules)})"
        return f"nn.Sequential({', '.join(module for _, module in modules)})"

    def _module_input(self, body: _Body, add: Node) -> Node:
        """The tensor `add`'s shortcut module reads in this body: the raw shortcut or its pre-activation."""
        assert add.residual is not None and add.residual.source is not None
        raw = add.residual.source
        if not body.shortcuts[add].preact:
            return raw
        chain = self.chains.get(add)
        source = self.ir.operands(chain[0])[0] if chain else self.ir.preactivation(raw, add)
        if source is None:
            raise GenerationError(f"{add.parent.path}: a shortcut reads a pre-activation it lacks")
        return source

    # -- forward and __init__ ---------------------------------------------------

    def _consumers(self, body: _Body, steps: list[Node | Unit]) -> tuple[dict[Node, set[int]], set[Node]]:
        """Which steps read each value; and the pre-activations a shortcut module reads as well as the branch."""
        consumers: dict[Node, set[int]] = {}
        preacts: set[Node] = set()
        for index, step in enumerate(steps):
            if isinstance(step, Unit):
                reads = [step.input]
            else:
                reads = self.ir.operands(step)
                if step.residual is not None:
                    assert step.residual.source is not None
                    reads = [reads[0], step.residual.source]
                    if step in body.shortcuts:
                        reads.append(self._module_input(body, step))
                        if body.shortcuts[step].preact:
                            preacts.add(reads[-1])
            for value in reads:
                consumers.setdefault(value, set()).add(index)
        return consumers, preacts

    def _emit(self, body: _Body) -> None:
        steps, _ = self._steps(body)
        consumers, preacts = self._consumers(body, steps)
        # The network's named outputs: read after the last step, so kept in variables of their own.
        finals = (
            [(node.name, self.ir.operands(node)[0]) for node in self.ir.outputs()] if body.owner.parent is None else []
        )
        returned = {operand: name for name, operand in reversed(finals)}
        for _, operand in finals:
            consumers.setdefault(operand, set()).add(-1)  # not the step after any other
        names = {body.input: "x"}
        outputs = [step.nodes[-1] if isinstance(step, Unit) else step for step in steps]
        spec_labels = [_label(body, step) for step in steps]
        labels = {label for label in spec_labels if label}
        taken: set[str] = {"x", body.chain} | labels
        temporaries = (f"t{k}" for k in itertools.count(1))

        def var(index: int, label: str | None, named: bool = False) -> str:
            """The variable of step `index`'s output: the running one where only the next step reads it
            (unless the spec's name is to be kept: a split's pieces), else its label or a temporary."""
            users = consumers.get(outputs[index], set())
            chained = (index == len(steps) - 1 and not finals) or users == {index + 1}
            if chained and not (named and label and label not in ("x", body.chain)):
                return body.chain
            label = label or returned.get(outputs[index])
            if label and label not in ("x", body.chain):
                return label
            name = next(t for t in temporaries if t not in taken)
            taken.add(name)
            return name

        body.steps, body.outputs = steps, outputs
        for index, step in enumerate(steps):
            body.starts.append(len(body.forward))
            if isinstance(step, Unit):
                self._unit_init(body, step)
                self._unit_output(body, step)
                names[outputs[index]] = var(index, spec_labels[index])
                call = self._attribute(body, step.module.path[body.relative :])
                body.forward.append(f"{names[outputs[index]]} = {call}({names[step.input]})")
                continue
            if isinstance(step.op, Chunk) and step in names:
                continue  # written with the first piece of its split
            label = spec_labels[index]
            if step in preacts and label is None and "preact" not in taken:
                label = "preact"
                taken.add(label)
            pieces = _pieces(steps, index)
            if pieces:  # a split: its pieces in one statement, `a, b = x.chunk(2, 1)`
                for offset, piece in enumerate(pieces):
                    self._track(body, piece)
                    names[piece] = var(index + offset, spec_labels[index + offset], named=True)
                source = names[self.ir.operands(step)[0]]
                targets = ", ".join(names[piece] for piece in pieces)
                body.forward.append(f"{targets} = {source}.chunk({len(pieces)}, 1)")
                continue
            target = var(index, label)
            body.forward += self._step(body, step, names, target)
            names[step] = target
        self._close_lists(body)
        body.variables = [names[output] for output in outputs]
        if finals:
            items = [f"{json.dumps(name)}: {names[operand]}" for name, operand in finals]
            body.forward += statement("", "return {", items, "}")
        else:
            body.forward.append(f"return {names[outputs[-1]]}")

    def _step(self, body: _Body, node: Node, names: dict[Node, str], target: str) -> list[str]:
        """Write one op: its module into __init__ (modules), and its forward lines."""
        self._track(body, node)
        operands = self.ir.operands(node)
        if node.residual is not None:
            identity = self._shortcut_code(body, node, names)
            main = operands[0]
            template = body.owner.template
            if template is not None and node.residual.index in template.skips:
                # `shortcut = drop`: only the instances whose shapes match add (timm's has_skip).
                flag = skip_flag(node.residual.index)
                body.init.append(f"self.{flag} = {flag}")
                if names[main] == target and self.overwritable(body, main):
                    return [f"if self.{flag}:", f"{INDENT}{target} += {identity}"]
                return [f"{target} = {names[main]} + {identity} if self.{flag} else {names[main]}"]
            if names[main] == target and self.overwritable(body, main):
                return [f"{target} += {identity}"]
            return [f"{target} = {names[main]} + {identity}"]
        args = [names[p] for p in operands]
        if not node.op.is_module:
            return [f"{target} = {node.op.torch_call(_OpWriter(self, body, node), args)}"]
        assert node.path is not None
        local = node.path[body.relative :]
        if not local.replace(".", "_").isidentifier():
            raise GenerationError(f"module path {node.path} is not an attribute name")
        module = node.op.torch_module(_OpWriter(self, body, node))
        if node.parent.kind is ModuleKind.LIST:
            self._list_member(body, node.parent, local.rpartition(".")[2], module)
        else:
            body.init.append(f"self.{local} = {module}")
        attribute = self._attribute(body, local)
        if node.zero_init:
            body.zeroed.append(attribute)
            template, add = body.owner.template, node.branch
            if template is not None and add is not None and add.residual and add.residual.index in template.skips:
                body.zero_guards[attribute] = skip_flag(add.residual.index)  # only where the add is kept
        return [f"{target} = {node.op.torch_apply(attribute, args[0])}"]

    # -- classes ----------------------------------------------------------------

    def template_class(self, template: Template) -> str:
        first = _representative(template, self.inside)
        nodes = self.inside[first]
        body = _Body(first, nodes, self._input_of(nodes), "out", _template_names(template))
        body.sym[body.input] = "inplanes"
        flags = []
        for add in nodes:
            if add.block is not first or add.residual is None or add.residual.index not in template.shortcuts:
                continue
            index = add.residual.index
            slot = template.shortcuts[index]
            body.shortcuts[add] = self._shortcut(body, add, self._owners(template, index), index, slot, True)
            if slot.optional:
                flags.append(body.shortcuts[add].flag)
        self._emit(body)
        params = ["self", "inplanes"]
        params += [p.name if p.default is None else f"{p.name}={python(p.default, {})}" for p in template.params]
        params += [f"{flag}=False" for flag in flags]
        params += [f"{skip_flag(index)}=False" for index in sorted(template.skips)]
        doc = f'    """Block `{docstring_text(template.name)}`."""'
        lines = [f"class {self.classes[template.name]}(nn.Module):", doc, ""]
        if template.expansion is not None:
            lines += [f"    expansion = {template.expansion}", ""]
        lines += statement(INDENT, "def __init__(", params, "):")
        lines.append(f"{INDENT * 2}super().__init__()")
        for name, value in template.lets:
            lines.append(f"{INDENT * 2}{name} = {python(value, body.names)}")
        lines += method_body(body.init)
        lines += ["", f"{INDENT}def forward(self, x: torch.Tensor) -> torch.Tensor:", *method_body(body.forward)]
        if body.zeroed:
            lines += ["", f"{INDENT}def zero_init_last(self) -> None:"]
            lines.append(
                f'{INDENT * 2}"""Start the residual branch at zero: its last norm\'s scale is 0 (zero_init_last)."""'
            )
            for local in body.zeroed:
                zero = f"nn.init.zeros_({local}.weight)"
                guard = body.zero_guards.get(local)
                lines += [f"{INDENT * 2}if self.{guard}:", f"{INDENT * 3}{zero}"] if guard else [f"{INDENT * 2}{zero}"]
        return "\n".join(lines)

    def _owners(self, template: Template, index: int) -> list[Node]:
        """The instances' residual adds number `index` that have shortcut ops, in instance order."""
        return [
            node
            for module in template.instances
            for node in self.inside[module]
            if node.block is module and node.residual is not None and node.residual.index == index
            if node in self.chains
        ]

    def _instance_parts(self, body: _Body, module: Module) -> tuple[str, list[str]]:
        """The class and arguments that build block instance `module` from `body`'s class."""
        template = module.template
        assert template is not None
        nodes = self.inside[module]
        args = [self.channels(body, self._input_of(nodes))]
        for param in template.params:
            given = param.default is None or param.name in module.explicit
            expr = module.arg_exprs.get(param.name)
            if expr is not None and all(n in body.names for n in names_in(expr)):
                value = python(expr, body.names)
            else:
                value = literal(module.args[param.name])
            if given:
                args.append(value if param.default is None else f"{param.name}={value}")
        for add in nodes:
            if add.block is not module or add.residual is None:
                continue
            slot = template.shortcuts.get(add.residual.index)
            if slot is not None and slot.optional and add in self.chains:
                index = add.residual.index
                args.append(f"downsample{index + 1 if index else ''}=True")
        kept = {n.residual.index for n in nodes if n.block is module and n.residual is not None}
        args += [f"{skip_flag(index)}=True" for index in sorted(template.skips & kept)]
        return self.classes[template.name], args

    def _instance_call(self, body: _Body, module: Module) -> str:
        func, args = self._instance_parts(body, module)
        return f"{func}({', '.join(args)})"

    def top_class(self) -> str:
        root = self.ir.root
        nodes = self.walk
        start = nodes[0]
        chain = "x" if self.ir.graph.out_degree(start) == 1 else "out"
        body = _Body(root, nodes, start, chain, dict(NETWORK_ARGS))
        body.sym[start] = NETWORK_ARGS["in_channels"]
        for add in nodes:
            if add in self.chains and add.block is None:
                assert add.residual is not None
                body.shortcuts[add] = self._shortcut(body, add, [add], add.residual.index, None, False)
        self._emit(body)
        defaults = {"classes": repr(self.output_classes()), "in_channels": repr(self.ir.input_shape[0])}
        taken = [n for n in NETWORK_ARGS if n in body.used or n == "in_channels"]  # in_chans feeds the first layer
        params = [f"{NETWORK_ARGS[n]}={defaults[n]}" for n in taken]
        zeroed = any(n.zero_init and n.block is not None for n in self.walk)
        return network_class(self.ir, body, self.top_name, params, zeroed)

    def output_classes(self) -> int:
        shape = self.walk[-1].shape
        assert shape is not None
        return shape[0]


def skip_flag(index: int) -> str:
    """The constructor flag of a residual add that only some instances keep: `has_skip`, `has_skip2`, ..."""
    return "has_skip" + (str(index + 1) if index else "")


def _representative(template: Template, inside: dict[Module, list[Node]]) -> Module:
    """The instance a template's class is written from: the first that keeps every residual add."""
    for module in template.instances:
        kept = {n.residual.index for n in inside[module] if n.block is module and n.residual is not None}
        if template.skips <= kept:
            return module
    return template.instances[0]


def _child_of(module: Module, owner: Module) -> Module | None:
    """The child of `owner` that `module` is or lies in; None when `module` is `owner` itself."""
    child = None
    while module is not owner:
        if module.parent is None:
            raise GenerationError(f"{module.path} is not inside {owner.path or 'the network'}")
        child, module = module, module.parent
    return child


def _nested(expr: str) -> str:
    """A member's expression two levels into a group's constructor: its own lines indented to match."""
    return expr.replace("\n", "\n" + INDENT * 2)


def _label(body: _Body, step: Node | Unit) -> str | None:
    """The variable name a step's spec name gives its output: `convs_0` for the member `convs.0`."""
    if isinstance(step, Unit):
        local = step.module.path[body.relative :]
    elif step.parent.kind is ModuleKind.LIST and step.path is not None:
        local = step.path[body.relative :]
    else:
        return step.name
    return local.replace(".", "_")


def _pieces(steps: list[Node | Unit], index: int) -> list[Node]:
    """The pieces of a split starting at `steps[index]`, when they are its steps from there on in order."""
    first = steps[index]
    if not isinstance(first, Node) or not isinstance(first.op, Chunk) or first.op.index:
        return []
    pieces = steps[index : index + first.op.count]
    if len(pieces) < first.op.count or not all(
        isinstance(p, Node) and isinstance(p.op, Chunk) and p.op.index == i for i, p in enumerate(pieces)
    ):
        return []
    return pieces  # type: ignore[return-value]


def _template_names(template: Template) -> dict[str, str]:
    """A template's spec names as its class writes them: parameters and lets as they are, `self.expansion`."""
    names = {p.name: p.name for p in template.params} | {name: name for name, _ in template.lets}
    if template.expansion is not None:
        names["expansion"] = "self.expansion"
    return names


def _dependency_order(templates: list[Template]) -> list[Template]:
    """Templates in first-use order, except that a template another one uses comes before it."""
    done: list[Template] = []

    def visit(template: Template) -> None:
        if template in done:
            return
        for inner in _used_by(template):
            visit(inner)
        done.append(template)

    for template in templates:
        visit(template)
    return done


def _used_by(template: Template) -> list[Template]:
    """The templates whose instances sit directly in `template`'s first instance."""
    found: list[Template] = []
    stack = list(template.instances[0].children)
    while stack:
        module = stack.pop(0)
        if module.kind is ModuleKind.BLOCK and module.template is not None:
            if module.template not in found:
                found.append(module.template)
        else:
            stack.extend(module.children)
    return found


HEADER = '''\
"""{name}: generated by resdsl from {source}. Edit the spec, not this file.

Standalone: needs only PyTorch.
"""

import torch
from torch import nn'''


def emit(ir: IR) -> str:
    emitter = _Emitter(ir)
    classes = [emitter.helpers[name] for name in sorted(emitter.helpers)]
    classes += [emitter.template_class(template) for template in emitter.templates]
    classes.append(emitter.top_class())
    # The spec's file name is the user's to choose, quotes and backslashes included.
    header = HEADER.format(name=docstring_text(ir.name), source=docstring_text(file_name(ir.source)))
    if any("F." in text for text in classes):
        header += "\nfrom torch.nn import functional as F"
    parts = [header, *classes, f"Model = {emitter.top_name}\nFeatures = {emitter.top_name}Features"]
    return "\n\n\n".join(parts) + "\n"


def load_module(source: str, ir: IR) -> types.ModuleType:
    """Import generated source as a module, as if it had been written to a file.

    The module is registered in `sys.modules` and its source in `linecache`, so
    that `torch.jit.script`, `torch.compile`, `inspect` and in-process pickling
    find it. Identical sources share one module.
    """
    digest = hashlib.sha256(source.encode()).hexdigest()[:12]
    name = f"resdsl_generated_{ir.name}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    filename = f"<resdsl:{ir.name}:{digest}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    module = types.ModuleType(name)
    module.__file__ = filename
    exec(compile(source, filename, "exec"), module.__dict__)  # noqa: S102 - resdsl's own generated code
    sys.modules[name] = module
    return module


def instantiate(source: str, ir: IR):
    """A fresh instance of the generated top-level module."""
    return load_module(source, ir).Model()


__all__ = ["emit", "load_module", "instantiate", "GenerationError"]
