"""PyTorch backend: readable, standalone Python source from the IR.

One nn.Module class per block template, written in the template's own terms
(`nn.Conv2d(width, width, 3, stride=stride, ...)`), and a top-level class
that builds the stages with each instance's concrete arguments. Module
attribute names are the IR's module paths, so the state_dict keys are the
paths themselves (torchvision's, for the bundled ResNets).
"""

from __future__ import annotations

import hashlib
import itertools
import keyword
import linecache
import sys
import types
from dataclasses import dataclass, field

import networkx as nx

from ..diagnostics import error, file_name
from ..ir.graph import Instance, operands, order, preactivation


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


@dataclass
class Shortcut:
    """How one residual add's shortcut is written in a class."""

    attr: str  # module attribute / flag name: downsample, downsample2, ...
    ident: str  # forward variable: identity, identity2, ...
    ops: list[str]  # op kinds on the shortcut path: conv, batchnorm, avgpool or pad_shortcut
    stride: str
    flag: str | None  # constructor flag when only some instances have it
    preact: bool  # the module reads the block's pre-activated input, not the raw one (norm = pre)


@dataclass
class _Body:
    """The code of one class: a block template's, or the network's."""

    nodes: list[int]  # the representative nodes, in walk order
    input: int
    relative: int  # length of the module path prefix (`layer1.0.`) to strip
    symbolic: bool  # write attributes in the template's terms
    chain: str  # the running forward variable
    shortcuts: dict[int, Shortcut] = field(default_factory=dict)
    units: dict[int, tuple[str, int]] = field(default_factory=dict)  # output node -> (attr, input node)
    unit_init: dict[int, str] = field(default_factory=dict)  # output node -> its constructor line
    init: list[str] = field(default_factory=list)
    forward: list[str] = field(default_factory=list)
    sym: dict[int, str] = field(default_factory=dict)
    hyper: dict[int, str] = field(default_factory=dict)  # functional op -> prefix of its stored arguments


class _Emitter:
    def __init__(self, graph: nx.DiGraph):
        self.graph = graph
        self.walk = order(graph)
        self.instances: dict[str, Instance] = graph.graph["instances"]
        self.live: dict[str | None, list[int]] = {}
        self.chains: dict[int, list[int]] = {}
        for node in self.walk:
            data = graph.nodes[node]
            self.live.setdefault(data["block"], []).append(node)
            if data["shortcut_of"] is not None:
                self.chains.setdefault(data["shortcut_of"], []).append(node)
        self.by_template: dict[str, list[Instance]] = {}
        for inst in self.instances.values():
            self.by_template.setdefault(inst.template, []).append(inst)
        taken: set[str] = set()
        self.uses_se = any(graph.nodes[n]["op"].kind == "se" for n in graph)
        if self.uses_se:
            taken.add(SE_CLASS)
        self.classes = {t: class_name(t, taken) for t in self.by_template}
        self.top_name = class_name(graph.graph["name"], taken)
        self.flags: dict[str, list[str]] = {}  # template -> its constructor's shortcut flags

    # -- small queries --------------------------------------------------------

    def _input_of(self, nodes: list[int]) -> int:
        inside = set(nodes)
        for node in nodes:
            for operand in operands(self.graph, node):
                if operand not in inside:
                    return operand
        raise GenerationError("a block instance without an input")

    def _adds(self, nodes: list[int]) -> list[int]:
        return [n for n in nodes if self.graph.nodes[n]["op"].kind == "add"]

    def _attr(self, body: _Body, node: int, name: str) -> str:
        data = self.graph.nodes[node]
        if body.symbolic and name in data["exprs"]:
            return data["exprs"][name]
        return repr(getattr(data["op"], name))

    def _channels(self, body: _Body, node: int) -> str:
        return body.sym.get(node) or repr(self.graph.nodes[node]["shape"][0])

    def _track(self, body: _Body, node: int) -> None:
        """Record the output channel count of `node` in the class's terms."""
        op = self.graph.nodes[node]["op"]
        preds = operands(self.graph, node)
        if op.kind == "conv":
            body.sym[node] = self._attr(body, node, "out_channels")
        elif op.kind == "linear":
            body.sym[node] = self._attr(body, node, "out_features")
        elif op.kind == "flatten" and len(self.graph.nodes[preds[0]]["shape"]) == 3:
            _, h, w = self.graph.nodes[preds[0]]["shape"]
            cin = self._channels(body, preds[0])
            body.sym[node] = cin if h * w == 1 else f"{cin} * {h * w}"
        elif preds:
            body.sym[node] = self._channels(body, preds[0])

    # -- modules and calls ----------------------------------------------------

    def _module(self, body: _Body, node: int) -> str:
        op = self.graph.nodes[node]["op"]
        cin = self._channels(body, operands(self.graph, node)[0])

        def a(name: str) -> str:
            return self._attr(body, node, name)

        if op.kind == "conv":
            args = [cin, a("out_channels"), a("kernel")]
            for name, default in (("stride", "1"), ("padding", "0"), ("dilation", "1"), ("groups", "1")):
                if a(name) != default:
                    args.append(f"{name}={a(name)}")
            if a("bias") != "True":
                args.append(f"bias={a('bias')}")
            return f"nn.Conv2d({', '.join(args)})"
        if op.kind == "batchnorm":
            args = [cin]
            for name, default in (("eps", repr(1e-5)), ("momentum", repr(0.1))):
                if a(name) != default:
                    args.append(f"{name}={a(name)}")
            return f"nn.BatchNorm2d({', '.join(args)})"
        if op.kind == "linear":
            bias = "" if a("bias") == "True" else f", bias={a('bias')}"
            return f"nn.Linear({cin}, {a('out_features')}{bias})"
        if op.kind == "se":
            args = [cin]
            for name, default in (("reduction", "16"), ("divisor", "8")):
                if a(name) != default:
                    args.append(f"{name}={a(name)}")
            return f"{SE_CLASS}({', '.join(args)})"
        raise GenerationError(f"no module for {op.kind}")

    def _call(self, body: _Body, node: int, args: list[str]) -> str:
        data = self.graph.nodes[node]
        op = data["op"]
        x = args[0]

        def a(name: str) -> str:
            """A literal, or for a template's symbolic argument the attribute __init__ stores it in."""
            text = self._attr(body, node, name)
            if not (body.symbolic and name in data["exprs"]):
                return text
            if node not in body.hyper:
                body.hyper[node] = f"_{op.kind}{len(body.hyper) + 1}"
            attribute = f"self.{body.hyper[node]}_{name}"
            body.init.append(f"{attribute} = {text}")
            return attribute

        if op.has_params:
            return f"self.{data['path'][body.relative :]}({x})"
        if op.kind == "relu":
            return f"torch.relu({x})"
        if op.kind == "maxpool":
            ceil = a("ceil_mode")
            ceil = "" if ceil == "False" else f", ceil_mode={ceil}"
            return f"F.max_pool2d({x}, {a('kernel')}, {a('stride')}, {a('padding')}{ceil})"
        if op.kind == "avgpool":
            return (
                f"F.avg_pool2d({x}, {a('kernel')}, {a('stride')}, {a('padding')}, "
                f"ceil_mode={a('ceil_mode')}, count_include_pad={a('count_include_pad')})"
            )
        if op.kind == "gap":
            return f"F.adaptive_avg_pool2d({x}, 1)"
        if op.kind == "flatten":
            return f"torch.flatten({x}, 1)"
        if op.kind == "dropout":
            return f"F.dropout({x}, {a('p')}, self.training)"
        if op.kind == "add":
            return f"{x} + {args[1]}"
        raise GenerationError(f"no forward for {op.kind}")

    # -- shortcuts ------------------------------------------------------------

    def _branch_stride(self, body: _Body | None, nodes: list[int], add: int) -> tuple[int, str]:
        """The product of the strides on `add`'s residual branch, as a value and as source."""
        value, factors = 1, []
        for node in nodes:
            data = self.graph.nodes[node]
            if data["branch"] == add and data["shortcut_of"] is None and hasattr(data["op"], "stride"):
                value *= data["op"].stride
                text = self._attr(body, node, "stride") if body else repr(data["op"].stride)
                if text != "1":
                    factors.append(text)
        return value, " * ".join(factors) or "1"

    def _shortcut(self, body: _Body, add: int, owner: list[int], owner_add: int, index: int, flag) -> Shortcut:
        """Describe `add`'s shortcut, taking its ops from `owner_add` (maybe in another instance)."""
        chain = self.chains[owner_add]
        concrete = self.graph.nodes[chain[0]]["op"].stride  # the pool's, pad's or conv's
        kinds = [self.graph.nodes[n]["op"].kind for n in chain]
        if self.graph.graph["policies"]["projection"] == "avgpool" and kinds[0] == "conv":
            kinds.insert(0, "avgpool")  # a stride-1 instance: the class writes an Identity for it
        owner_value, _ = self._branch_stride(None, owner, owner_add)
        _, text = self._branch_stride(body, body.nodes, add)
        stride = text if (body.symbolic and owner_value == concrete) else repr(concrete)
        suffix = str(index + 1) if index else ""
        preact = operands(self.graph, chain[0])[0] != self.graph.nodes[owner_add]["shortcut_from"]
        return Shortcut("downsample" + suffix, "identity" + suffix, kinds, stride, flag, preact)

    def _shortcut_code(self, body: _Body, add: int, names: dict[int, str]) -> str:
        """Write the shortcut of `add` into the body; returns the variable holding it."""
        spec = body.shortcuts.get(add)
        raw = self.graph.nodes[add]["shortcut_from"]
        if spec is None:
            return names[raw]
        source = names[self._module_input(body, add)]
        main = operands(self.graph, add)[0]
        cin = self._channels(body, raw)
        cout = self._channels(body, main)
        attr, stride = spec.attr, spec.stride
        if spec.ops == ["pad_shortcut"]:
            body.init += [
                f"self.{attr} = {spec.flag or 'True'}",
                f"self.{attr}_stride = {stride}",
                f"_extra = {cout} - {cin}",
                f"self.{attr}_pad = (0, 0, 0, 0, _extra // 2, _extra - _extra // 2)",
            ]
            code = f"F.pad({source}[:, :, ::self.{attr}_stride, ::self.{attr}_stride], self.{attr}_pad)"
            guard = f"if self.{attr}:"
        else:
            modules = []
            for kind in spec.ops:
                if kind == "conv":
                    step = "" if stride == "1" or "avgpool" in spec.ops else f", stride={stride}"
                    modules.append(f"nn.Conv2d({cin}, {cout}, 1{step}, bias=False)")
                elif kind == "batchnorm":
                    modules.append(f"nn.BatchNorm2d({cout})")
                elif kind == "avgpool":
                    pool = f"nn.AvgPool2d({stride}, {stride}, ceil_mode=True, count_include_pad=False)"
                    if stride == "1":
                        modules.append("nn.Identity()")
                    elif stride.isdigit():
                        modules.append(pool)
                    else:
                        modules.append(f"({pool} if {stride} > 1 else nn.Identity())")
                else:
                    raise GenerationError(f"{kind} on a projection shortcut")
            sequential = f"nn.Sequential({', '.join(modules)})"
            body.init.append(f"self.{attr} = {sequential}" + (f" if {spec.flag} else None" if spec.flag else ""))
            code = f"self.{attr}({source})"
            guard = f"if self.{attr} is not None:"
        if spec.flag:
            body.forward += [f"{spec.ident} = {names[raw]}", guard, f"    {spec.ident} = {code}"]
        else:
            body.forward.append(f"{spec.ident} = {code}")
        return spec.ident

    def _module_input(self, body: _Body, add: int) -> int:
        """The tensor `add`'s shortcut module reads in this body: the raw shortcut or its pre-activation."""
        raw = self.graph.nodes[add]["shortcut_from"]
        if not body.shortcuts[add].preact:
            return raw
        chain = self.chains.get(add)
        source = operands(self.graph, chain[0])[0] if chain else preactivation(self.graph, raw, add)
        if source is None:
            raise GenerationError(f"{self.graph.nodes[add]['block']}: a shortcut reads a pre-activation it lacks")
        return source

    # -- forward and __init__ ---------------------------------------------------

    def _emit(self, body: _Body) -> None:
        graph = self.graph
        steps = [n for n in body.nodes if graph.nodes[n]["shortcut_of"] is None and n != body.input]
        consumers: dict[int, set[int]] = {}
        preacts: set[int] = set()  # pre-activations a shortcut module reads as well as the branch
        for index, node in enumerate(steps):
            reads = [body.units[node][1]] if node in body.units else operands(graph, node)
            if graph.nodes[node]["op"].kind == "add" and node not in body.units:
                reads = [reads[0], graph.nodes[node]["shortcut_from"]]
                if node in body.shortcuts:
                    reads.append(self._module_input(body, node))
                    if body.shortcuts[node].preact:
                        preacts.add(reads[-1])
            for value in reads:
                consumers.setdefault(value, set()).add(index)
        names = {body.input: "x"}
        labels = {graph.nodes[n]["name"] for n in steps} | {attr for attr, _ in body.units.values()}
        taken: set[str] = {"x", body.chain} | labels
        temporaries = (f"t{k}" for k in itertools.count(1))

        def var(node: int, index: int, label: str | None) -> str:
            users = consumers.get(node, set())
            if index == len(steps) - 1 or users == {index + 1}:
                return body.chain
            if label and label not in ("x", body.chain):
                return label
            name = next(t for t in temporaries if t not in taken)
            taken.add(name)
            return name

        for index, node in enumerate(steps):
            data = graph.nodes[node]
            if node in body.units:
                attr, source = body.units[node]
                body.init.append(body.unit_init[node])
                names[node] = var(node, index, attr)
                body.forward.append(f"{names[node]} = self.{attr}({names[source]})")
                continue
            self._track(body, node)
            if data["op"].has_params:
                local = data["path"][body.relative :]
                if not local.isidentifier():
                    raise GenerationError(f"module path {data['path']} is not an attribute name")
                body.init.append(f"self.{local} = {self._module(body, node)}")
                if data.get("zero_init"):
                    body.init.append(f"nn.init.zeros_(self.{local}.weight)  # the residual branch starts at zero")
            args = [names[p] for p in operands(graph, node)[:1]]
            if data["op"].kind == "add":
                args.append(self._shortcut_code(body, node, names))
            label = data["name"]
            if node in preacts and label is None and "preact" not in taken:
                label = "preact"
                taken.add(label)
            names[node] = var(node, index, label)
            body.forward.append(f"{names[node]} = {self._call(body, node, args)}")
        body.forward.append(f"return {names[steps[-1]]}")

    def template_class(self, template: str) -> str:
        graph = self.graph
        info = graph.graph["templates"][template]
        instances = self.by_template[template]
        rep = self.live[instances[0].path]
        self._check_flat_sizes(template, instances)
        body = _Body(rep, self._input_of(rep), len(instances[0].path) + 1, True, "out")
        body.sym[body.input] = "inplanes"
        flags = []
        # Shortcut modules are written from any instance that has them; a flag
        # says which instances do when they differ (`downsample=True`).
        for index, add in enumerate(self._adds(rep)):
            owners = [(self.live[i.path], self._adds(self.live[i.path])[index]) for i in instances]
            with_module = [(nodes, a) for nodes, a in owners if a in self.chains]
            if not with_module:
                continue
            flag = None
            if len(with_module) < len(owners):
                flag = "downsample" + (str(index + 1) if index else "")
                flags.append(flag)
            body.shortcuts[add] = self._shortcut(body, add, *with_module[0], index, flag)
        self._emit(body)
        params = ["self", "inplanes"]
        params += [name if default is None else f"{name}={default}" for name, default in info.params]
        params += [f"{flag}=False" for flag in flags]
        lines = [f"class {self.classes[template]}(nn.Module):", f'    """Block `{template}`."""', ""]
        if info.expansion is not None:
            lines += [f"    expansion = {info.expansion}", ""]
        lines.append(f"    def __init__({', '.join(params)}):")
        lines.append("        super().__init__()")
        lines += [f"        {name} = {src}" for name, src in info.lets]
        lines += [f"        {line}" for line in body.init]
        lines += ["", "    def forward(self, x: torch.Tensor) -> torch.Tensor:"]
        lines += [f"        {line}" for line in body.forward]
        self.flags[template] = flags
        return "\n".join(lines)

    def _check_flat_sizes(self, template: str, instances: list[Instance]) -> None:
        """A `flatten` in a block must see one spatial size in every use: the class writes it as a number."""
        for position, node in enumerate(self.live[instances[0].path]):
            if self.graph.nodes[node]["op"].kind != "flatten":
                continue
            sizes = {
                self.graph.nodes[operands(self.graph, self.live[i.path][position])[0]]["shape"][1:] for i in instances
            }
            if len(sizes) > 1:
                shown = ", ".join("×".join(map(str, size)) or "flat" for size in sorted(sizes))
                raise error(
                    "E0211",
                    f"`flatten` in block `{template}` sees different spatial sizes ({shown})",
                    self.graph.nodes[node]["span"],
                    "one size per block template",
                    "put `gap` before `flatten`, or flatten outside the block",
                )

    def _instance_call(self, inst: Instance) -> str:
        info = self.graph.graph["templates"][inst.template]
        nodes = self.live[inst.path]
        args = [repr(self.graph.nodes[self._input_of(nodes)]["shape"][0])]
        for name, default in info.params:
            if default is None:
                args.append(repr(inst.args[name]))
            elif name in inst.explicit:
                args.append(f"{name}={inst.args[name]!r}")
        for index, add in enumerate(self._adds(nodes)):
            flag = "downsample" + (str(index + 1) if index else "")
            if flag in self.flags[inst.template] and add in self.chains:
                args.append(f"{flag}=True")
        return f"{self.classes[inst.template]}({', '.join(args)})"

    def top_class(self) -> str:
        graph = self.graph
        stage_of = {path: base for base, paths in graph.graph["stages"].items() for path in paths}
        nodes: list[int] = []
        units: dict[int, tuple[str, int]] = {}
        unit_init: dict[int, str] = {}
        seen: set[str] = set()
        for node in self.walk:
            block = graph.nodes[node]["block"]
            if block is None:
                nodes.append(node)
                continue
            unit = stage_of.get(block, block)
            if unit in seen:
                continue
            seen.add(unit)
            members = graph.graph["stages"].get(unit, [unit])
            calls = [self._instance_call(self.instances[p]) for p in members]
            last = self.live[members[-1]][-1]
            nodes.append(last)
            units[last] = (unit, self._input_of(self.live[members[0]]))
            if unit in graph.graph["stages"]:
                inner = "".join(f"\n            {call}," for call in calls)
                unit_init[last] = f"self.{unit} = nn.Sequential({inner}\n        )"
            else:
                unit_init[last] = f"self.{unit} = {calls[0]}"
        start = nodes[0]
        first_users = {u for u in graph.succ[start]}
        chain = "x" if len(first_users) == 1 else "out"
        body = _Body(nodes, start, 0, False, chain, units=units, unit_init=unit_init)
        for add in self._adds(nodes):
            if add in self.chains and add not in units:
                body.shortcuts[add] = self._shortcut(body, add, nodes, add, graph.nodes[add].get("add_index", 0), None)
        self._emit(body)
        shape = "x".join(map(str, graph.graph["input_shape"]))
        lines = [f"class {self.top_name}(nn.Module):", f'    """Network `{graph.graph["name"]}`: input {shape}."""', ""]
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


SE_CLASS = "SqueezeExcite"

# Written out only when a network uses `se`; the squeezed width is ir.ops.se_channels.
SE_SOURCE = f'''\
class {SE_CLASS}(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018), laid out as timm's SEModule."""

    def __init__(self, channels, reduction=16, divisor=8):
        super().__init__()
        squeezed = max(divisor, int(channels / reduction + divisor / 2) // divisor * divisor)
        self.fc1 = nn.Conv2d(channels, squeezed, 1)
        self.fc2 = nn.Conv2d(squeezed, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = torch.relu(self.fc1(x.mean((2, 3), keepdim=True)))
        return x * torch.sigmoid(self.fc2(scale))'''


def emit(graph: nx.DiGraph) -> str:
    emitter = _Emitter(graph)
    parts = [HEADER.format(name=graph.graph["name"], source=file_name(graph.graph.get("source", "<text>"))).rstrip()]
    if emitter.uses_se:
        parts.append(SE_SOURCE)
    parts += [emitter.template_class(template) for template in emitter.by_template]
    parts.append(emitter.top_class())
    parts.append(f"Model = {emitter.top_name}")
    return "\n\n\n".join(parts) + "\n"


def load_module(source: str, graph: nx.DiGraph) -> types.ModuleType:
    """Import generated source as a module, as if it had been written to a file.

    The module is registered in `sys.modules` and its source in `linecache`, so
    that `torch.jit.script`, `torch.compile`, `inspect` and in-process pickling
    find it. Identical sources share one module.
    """
    digest = hashlib.sha256(source.encode()).hexdigest()[:12]
    name = f"resdsl_generated_{graph.graph['name']}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    filename = f"<resdsl:{graph.graph['name']}:{digest}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    module = types.ModuleType(name)
    module.__file__ = filename
    exec(compile(source, filename, "exec"), module.__dict__)  # noqa: S102 - resdsl's own generated code
    sys.modules[name] = module
    return module


def instantiate(source: str, graph: nx.DiGraph):
    """A fresh instance of the generated top-level module."""
    return load_module(source, graph).Model()
