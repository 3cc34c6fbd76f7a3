"""PyTorch backend: readable, standalone Python source from the IR.

One nn.Module class per block template, written in the template's own terms
(`nn.Conv2d(width, width, 3, stride=stride, ...)`), and a top-level class
that builds the network's modules and stages with each instance's concrete
arguments. The module tree says what each class holds; each op writes its
own module or forward expression (`Op.torch_module`, `Op.torch_call`).
Module attribute names are the IR's module paths, so the state_dict keys are
the paths themselves (torchvision's, for the bundled ResNets).
"""

from __future__ import annotations

import hashlib
import itertools
import keyword
import linecache
import sys
import types
from dataclasses import dataclass, field

from ..diagnostics import file_name
from ..ir.expr import Bool, Expr, Num, Str, Var, print_expr
from ..ir.graph import IR
from ..ir.node import Node
from ..ir.tree import Module, ModuleKind, ShortcutSlot, Template


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
        return repr(node.value)

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
class _Body:
    """The code of one class: a block template's, or the network's."""

    nodes: list[Node]  # the representative nodes, in walk order
    input: Node
    relative: int  # length of the module path prefix (`layer1.0.`) to strip
    symbolic: bool  # write attributes in the template's terms
    chain: str  # the running forward variable
    names: dict[str, str] = field(default_factory=dict)  # spec name → Python, in a block class
    shortcuts: dict[Node, Shortcut] = field(default_factory=dict)
    units: dict[Node, tuple[str, Node]] = field(default_factory=dict)  # output node -> (attr, input node)
    unit_init: dict[Node, str] = field(default_factory=dict)  # output node -> its constructor line
    init: list[str] = field(default_factory=list)
    forward: list[str] = field(default_factory=list)
    sym: dict[Node, str] = field(default_factory=dict)
    hyper: dict[Node, str] = field(default_factory=dict)  # functional op -> prefix of its stored arguments


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
        if self.body.symbolic and name in self.node.exprs:
            return python(self.node.exprs[name], self.body.names)
        return repr(getattr(self.node.op, name))

    def stored(self, name: str) -> str:
        text = self.attr(name)
        body = self.body
        if self.store is not None:
            attribute = f"self.{self.store}_{name}"
        elif body.symbolic and name in self.node.exprs:
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


class _Emitter:
    def __init__(self, ir: IR):
        self.ir = ir
        self.walk = ir.walk()
        self.live: dict[Module | None, list[Node]] = {}  # block instance -> its nodes, shortcuts included
        for node in self.walk:
            self.live.setdefault(node.block, []).append(node)
        self.chains = ir.shortcut_chains()
        self.helpers: dict[str, str] = {}
        for node in self.walk:
            self.helpers.update(node.op.torch_helpers())
        taken = set(self.helpers)
        self.templates = [t for t in ir.templates.values() if t.instances]
        self.classes = {t.name: class_name(t.name, taken) for t in self.templates}
        self.top_name = class_name(ir.name, taken)

    # -- small queries --------------------------------------------------------

    def _input_of(self, nodes: list[Node]) -> Node:
        inside = set(nodes)
        for node in nodes:
            for operand in self.ir.operands(node):
                if operand not in inside:
                    return operand
        raise GenerationError("a block instance without an input")

    def channels(self, body: _Body, node: Node) -> str:
        assert node.shape is not None
        return body.sym.get(node) or repr(node.shape[0])

    def _track(self, body: _Body, node: Node) -> None:
        """Record the output channel count of `node` in the class's terms."""
        preds = self.ir.operands(node)
        writer = _OpWriter(self, body, node)
        if node.op.kind == "conv":
            body.sym[node] = writer.attr("out_channels")
        elif node.op.kind == "linear":
            body.sym[node] = writer.attr("out_features")
        elif node.op.kind == "flatten" and len(preds[0].shape or ()) == 3:
            _, h, w = preds[0].shape  # type: ignore[misc]
            cin = self.channels(body, preds[0])
            body.sym[node] = cin if h * w == 1 else f"{cin} * {h * w}"
        elif preds:
            body.sym[node] = self.channels(body, preds[0])

    # -- shortcuts ------------------------------------------------------------

    def _branch_stride_text(self, body: _Body, add: Node) -> str:
        """The product of the strides on `add`'s residual branch, as source in the class's terms."""
        factors = []
        for node in body.nodes:
            if node.branch is add and node.shortcut_of is None and hasattr(node.op, "stride"):
                text = _OpWriter(self, body, node).attr("stride")
                if text != "1":
                    factors.append(text)
        return " * ".join(factors) or "1"

    def _shortcut(self, body: _Body, add: Node, owners: list[Node], index: int, slot: ShortcutSlot | None) -> Shortcut:
        """Describe `add`'s shortcut, taking its ops from the first of `owners` (maybe in another instance)."""
        owner_add = owners[0]
        chain = self.chains[owner_add]
        if slot is not None and slot.stride is not None:
            stride = repr(slot.stride)
        elif body.symbolic:
            stride = self._branch_stride_text(body, add)
        else:
            stride = repr(chain[0].op.downsampling())
        suffix = str(index + 1) if index else ""
        assert owner_add.residual is not None
        preact = self.ir.operands(chain[0])[0] is not owner_add.residual.source
        flag = ("downsample" + suffix) if slot is not None and slot.optional else None
        pools = (n for owner in owners for n in self.chains[owner] if n.op.kind == "avgpool")
        pool = next(pools, None)
        return Shortcut("downsample" + suffix, "identity" + suffix, chain, pool, stride, flag, preact)

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
        attr, stride = spec.attr, spec.stride
        if spec.chain[0].op.kind == "pad_shortcut":
            body.init.append(f"self.{attr} = {spec.flag or 'True'}")
            writer = _OpWriter(
                self,
                body,
                spec.chain[0],
                overrides={"stride": stride, "pad": "(0, 0, 0, 0, _extra // 2, _extra - _extra // 2)"},
                store=attr,
                preambles={"pad": [f"_extra = {cout} - {cin}"]},
            )
            code = spec.chain[0].op.torch_call(writer, [source])
            guard = f"if self.{attr}:"
        else:
            sequential = f"nn.Sequential({', '.join(self._projection(body, spec, cin, cout))})"
            body.init.append(f"self.{attr} = {sequential}" + (f" if {spec.flag} else None" if spec.flag else ""))
            code = f"self.{attr}({source})"
            guard = f"if self.{attr} is not None:"
        if spec.flag:
            body.forward += [f"{spec.ident} = {names[raw]}", guard, f"    {spec.ident} = {code}"]
        else:
            body.forward.append(f"{spec.ident} = {code}")
        return spec.ident

    def _projection(self, body: _Body, spec: Shortcut, cin: str, cout: str) -> list[str]:
        """The modules of a projection shortcut's nn.Sequential, in the class's terms."""
        stride = spec.stride
        modules = []
        if self.ir.policies.projection == "avgpool":
            # The pool is `.0` whether or not this use strides: an Identity stands in at stride 1.
            if spec.pool is None or stride == "1":
                modules.append("nn.Identity()")
            else:
                pool = spec.pool.op.torch_module(_OpWriter(self, body, spec.pool, {"kernel": stride, "stride": stride}))
                modules.append(pool if stride.isdigit() else f"({pool} if {stride} > 1 else nn.Identity())")
        for node in spec.chain:
            if node.op.kind == "avgpool":
                continue
            overrides = {"in_channels": cin if node.op.kind == "conv" else cout, "out_channels": cout}
            if node.op.kind == "conv" and self.ir.policies.projection != "avgpool":
                overrides["stride"] = stride
            modules.append(node.op.torch_module(_OpWriter(self, body, node, overrides)))
        return modules

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

    def _consumers(self, body: _Body, steps: list[Node]) -> tuple[dict[Node, set[int]], set[Node]]:
        """Which steps read each value; and the pre-activations a shortcut module reads as well as the branch."""
        consumers: dict[Node, set[int]] = {}
        preacts: set[Node] = set()
        for index, node in enumerate(steps):
            reads = [body.units[node][1]] if node in body.units else self.ir.operands(node)
            if node.residual is not None and node not in body.units:
                assert node.residual.source is not None
                reads = [reads[0], node.residual.source]
                if node in body.shortcuts:
                    reads.append(self._module_input(body, node))
                    if body.shortcuts[node].preact:
                        preacts.add(reads[-1])
            for value in reads:
                consumers.setdefault(value, set()).add(index)
        return consumers, preacts

    def _emit(self, body: _Body) -> None:
        steps = [n for n in body.nodes if n.shortcut_of is None and n is not body.input]
        consumers, preacts = self._consumers(body, steps)
        names = {body.input: "x"}
        labels = {n.name for n in steps if n.name} | {attr for attr, _ in body.units.values()}
        taken: set[str] = {"x", body.chain} | labels
        temporaries = (f"t{k}" for k in itertools.count(1))

        def var(node: Node, index: int, label: str | None) -> str:
            users = consumers.get(node, set())
            if index == len(steps) - 1 or users == {index + 1}:
                return body.chain
            if label and label not in ("x", body.chain):
                return label
            name = next(t for t in temporaries if t not in taken)
            taken.add(name)
            return name

        for index, node in enumerate(steps):
            if node in body.units:
                attr, source = body.units[node]
                body.init.append(body.unit_init[node])
                names[node] = var(node, index, attr)
                body.forward.append(f"{names[node]} = self.{attr}({names[source]})")
                continue
            label = node.name
            if node in preacts and label is None and "preact" not in taken:
                label = "preact"
                taken.add(label)
            names[node] = var(node, index, label)
            body.forward.append(f"{names[node]} = {self._step(body, node, names)}")
        body.forward.append(f"return {names[steps[-1]]}")

    def _step(self, body: _Body, node: Node, names: dict[Node, str]) -> str:
        """Write one op: its module into __init__ (modules), and its forward expression."""
        self._track(body, node)
        args = [names[p] for p in self.ir.operands(node)[:1]]
        if node.residual is not None:
            args.append(self._shortcut_code(body, node, names))
        if not node.op.is_module:
            return node.op.torch_call(_OpWriter(self, body, node), args)
        assert node.path is not None
        local = node.path[body.relative :]
        if not local.isidentifier():
            raise GenerationError(f"module path {node.path} is not an attribute name")
        body.init.append(f"self.{local} = {node.op.torch_module(_OpWriter(self, body, node))}")
        if node.zero_init:
            body.init.append(f"nn.init.zeros_(self.{local}.weight)  # the residual branch starts at zero")
        return f"self.{local}({args[0]})"

    def template_class(self, template: Template) -> str:
        instances = template.instances
        rep = self.live[instances[0]]
        body = _Body(rep, self._input_of(rep), len(instances[0].path) + 1, True, "out")
        body.names = {p.name: p.name for p in template.params} | {name: name for name, _ in template.lets}
        if template.expansion is not None:
            body.names["expansion"] = "self.expansion"
        body.sym[body.input] = "inplanes"
        flags = []
        for add in rep:
            if add.residual is None or add.residual.index not in template.shortcuts:
                continue
            index = add.residual.index
            slot = template.shortcuts[index]
            body.shortcuts[add] = self._shortcut(body, add, self._owners(template, index), index, slot)
            if slot.optional:
                flags.append(body.shortcuts[add].flag)
        self._emit(body)
        params = ["self", "inplanes"]
        params += [p.name if p.default is None else f"{p.name}={python(p.default, {})}" for p in template.params]
        params += [f"{flag}=False" for flag in flags]
        lines = [f"class {self.classes[template.name]}(nn.Module):", f'    """Block `{template.name}`."""', ""]
        if template.expansion is not None:
            lines += [f"    expansion = {template.expansion}", ""]
        lines.append(f"    def __init__({', '.join(params)}):")
        lines.append("        super().__init__()")
        lines += [f"        {name} = {python(value, body.names)}" for name, value in template.lets]
        lines += [f"        {line}" for line in body.init]
        lines += ["", "    def forward(self, x: torch.Tensor) -> torch.Tensor:"]
        lines += [f"        {line}" for line in body.forward]
        return "\n".join(lines)

    def _owners(self, template: Template, index: int) -> list[Node]:
        """The instances' residual adds number `index` that have shortcut ops, in instance order."""
        return [
            node
            for module in template.instances
            for node in self.live[module]
            if node.residual is not None and node.residual.index == index and node in self.chains
        ]

    def _instance_call(self, module: Module) -> str:
        template = module.template
        assert template is not None
        nodes = self.live[module]
        shape = self._input_of(nodes).shape
        assert shape is not None
        args = [repr(shape[0])]
        for param in template.params:
            if param.default is None:
                args.append(repr(module.args[param.name]))
            elif param.name in module.explicit:
                args.append(f"{param.name}={module.args[param.name]!r}")
        for add in nodes:
            if add.residual is None:
                continue
            slot = template.shortcuts.get(add.residual.index)
            if slot is not None and slot.optional and add in self.chains:
                index = add.residual.index
                args.append(f"downsample{index + 1 if index else ''}=True")
        return f"{self.classes[template.name]}({', '.join(args)})"

    def _top_units(self) -> tuple[list[Node], dict[Node, tuple[str, Node]], dict[Node, str]]:
        """The network's forward steps: its own ops, and one call per stage or standalone block."""
        nodes: list[Node] = []
        units: dict[Node, tuple[str, Node]] = {}
        unit_init: dict[Node, str] = {}
        seen: set[Module] = set()
        for node in self.walk:
            block = node.block
            if block is None:
                nodes.append(node)
                continue
            unit = block.parent if block.parent is not None and block.parent.kind is ModuleKind.STAGE else block
            if unit in seen:
                continue
            seen.add(unit)
            members = unit.children if unit.kind is ModuleKind.STAGE else [unit]
            calls = [self._instance_call(m) for m in members]
            last = self.live[members[-1]][-1]
            nodes.append(last)
            units[last] = (unit.name, self._input_of(self.live[members[0]]))
            if unit.kind is ModuleKind.STAGE:
                inner = "".join(f"\n            {call}," for call in calls)
                unit_init[last] = f"self.{unit.name} = nn.Sequential({inner}\n        )"
            else:
                unit_init[last] = f"self.{unit.name} = {calls[0]}"
        return nodes, units, unit_init

    def top_class(self) -> str:
        nodes, units, unit_init = self._top_units()
        start = nodes[0]
        chain = "x" if self.ir.graph.out_degree(start) == 1 else "out"
        body = _Body(nodes, start, 0, False, chain, units=units, unit_init=unit_init)
        for add in nodes:
            if add in self.chains and add not in units:
                assert add.residual is not None
                body.shortcuts[add] = self._shortcut(body, add, [add], add.residual.index, None)
        self._emit(body)
        shape = "x".join(map(str, self.ir.input_shape))
        lines = [f"class {self.top_name}(nn.Module):", f'    """Network `{self.ir.name}`: input {shape}."""', ""]
        lines += ["    def __init__(self) -> None:", "        super().__init__()"]
        lines += [f"        {line}" for line in body.init]
        lines += ["", "    def forward(self, x: torch.Tensor) -> torch.Tensor:"]
        lines += [f"        {line}" for line in body.forward]
        return "\n".join(lines)


HEADER = '''\
"""{name}: generated by resdsl from {source}. Edit the spec, not this file.

Standalone: needs only PyTorch.
"""

import torch
from torch import nn
from torch.nn import functional as F
'''


def emit(ir: IR) -> str:
    emitter = _Emitter(ir)
    parts = [HEADER.format(name=ir.name, source=file_name(ir.source)).rstrip()]
    parts += [emitter.helpers[name] for name in sorted(emitter.helpers)]
    parts += [emitter.template_class(template) for template in emitter.templates]
    parts.append(emitter.top_class())
    parts.append(f"Model = {emitter.top_name}")
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
