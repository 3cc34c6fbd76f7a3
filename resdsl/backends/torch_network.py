"""The generated network class: its constructor, timm's model API and the initialisation torchvision uses.

The network's forward steps split into features and a head. The head is
everything from the network's last global pooling (`gap`) on; without one, the
flat layers at its end. The features are tapped, as timm's `features_only`
taps them, at the last tensor of each reduction before the head (ResNet:
`act1` at 2, `layer1` at 4, ..., `layer4` at 32); a group's members are
tapped one by one (timm's ResNetV2: `stem.conv` at 2, `stages.0` at 4, ...),
so `forward_intermediates` calls a tapped group member by member. The class gets
`forward_features`, `forward_head(x, pre_logits=False)`,
`forward_intermediates`, `get_classifier`, `reset_classifier`,
`feature_info` and `num_features`, and a `...Features` subclass that drops the
head and returns the tapped feature maps (`features_only` with `out_indices`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..ir.graph import IR
from ..ir.node import Node
from ..ir.tree import Module, ModuleKind
from ..pysource import docstring_text
from .torch_layout import INDENT, line, method_body, statement

if TYPE_CHECKING:
    from .torch_src import _Body


@dataclass
class Tap:
    """A feature map `features_only` returns: a step's output, its channels, reduction and module."""

    step: int
    channels: int
    reduction: int
    module: str
    member: int | None = None  # inside a group step: the position of the member whose output this is


def head_start(ir: IR, body: _Body) -> int:
    """The index of the head's first step (len(steps) when there is no head, or when the steps after the
    features would read another tensor of them than the last: a network whose statements read named
    tensors, which `forward_head(x)` could not be given)."""
    start = _head_start(body)
    if 0 < start < len(body.steps):
        reads = {p for step in body.steps[start:] for p in _reads(ir, step)}
        if reads - set(body.outputs[start - 1 :]):
            return len(body.steps)
    return start


def _reads(ir: IR, step) -> list[Node]:
    if isinstance(step, Node):
        return ir.operands(step)
    return [step.input]


def _head_start(body: _Body) -> int:
    steps = body.steps
    for index in range(len(steps) - 1, -1, -1):
        step = steps[index]
        if isinstance(step, Node) and step.op.kind == "gap":
            return index
    start = len(steps)
    while start > 0 and len(body.outputs[start - 1].shape or ()) == 1:
        start -= 1
    return start


def taps(ir: IR, body: _Body, end: int) -> list[Tap]:
    """The last 3-d tensor at each reduction among the first `end` steps, by reduction."""
    height = ir.input_shape[1]
    found: dict[int, Tap] = {}
    for index in range(end):
        step = body.steps[index]
        outputs: list[tuple[Node, str, int | None]]
        if isinstance(step, Node) or step.module.kind is not ModuleKind.GROUP:
            outputs = [(body.outputs[index], _module_of(body, index), None)]
        else:
            members = group_members(step.module, step.nodes)
            outputs = [(node, f"{step.module.name}.{name}", at) for at, (name, node) in enumerate(members)]
        for output, module, member in outputs:
            shape = output.shape
            if shape is not None and len(shape) == 3:
                reduction = max(1, round(height / shape[1]))
                found[reduction] = Tap(index, shape[0], reduction, module, member)
    tapped = [found[r] for r in sorted(found)]
    for tap in tapped:  # a group whose only tap is its last member is tapped whole (timm's RegNet: `s1`, not `s1.b2`)
        inside = [t.member for t in tapped if t.step == tap.step]
        step = body.steps[tap.step]
        if tap.member is not None and not isinstance(step, Node):
            if inside == [len(group_members(step.module, step.nodes)) - 1]:
                tap.module, tap.member = step.module.name, None
    return tapped


def group_members(group: Module, nodes: list[Node]) -> list[tuple[str, Node]]:
    """A group's members in the order it runs them (its ops with modules, its child modules), with their outputs."""
    members: dict[str, Node] = {}
    for node in nodes:
        module = node.parent
        if module is group:
            if node.op.is_module and node.path is not None:
                members[node.path.rpartition(".")[2]] = node
            continue
        while module.parent is not group:
            assert module.parent is not None
            module = module.parent
        members[module.name] = node  # the last op inside a child module is its output
    return list(members.items())


def _module_of(body: _Body, index: int) -> str:
    step = body.steps[index]
    if isinstance(step, Node):
        return step.path or step.name or step.op.kind
    return step.module.name


def network_class(ir: IR, body: _Body, name: str, params: list[str], zeroed_blocks: bool) -> str:
    """The network's class and its `Features` subclass, as source."""
    if ir.outputs():
        return _outputs_class(ir, body, name, params, zeroed_blocks)
    end = head_start(ir, body)
    tapped = taps(ir, body, end)
    shape = "x".join(map(str, ir.input_shape))
    lines = [f"class {name}(nn.Module):", f'    """Network `{docstring_text(ir.name)}`: input {shape}."""', ""]
    info = [f'dict(num_chs={t.channels}, reduction={t.reduction}, module="{t.module}")' for t in tapped]
    lines += statement(INDENT, "feature_info = [", info, "]")
    lines.append(f"{INDENT}num_features = {tapped[-1].channels if tapped else ir.input_shape[0]}")
    lines.append("")
    lines += statement(INDENT, "def __init__(", ["self", *params], ") -> None:")
    lines.append(f"{INDENT * 2}super().__init__()")
    lines += method_body(body.init)
    lines.append(f"{INDENT * 2}self.init_weights()")
    lines += _forward(body, end)
    lines += _intermediates(body, end, tapped)
    lines += _head(body, end)
    lines += _classifier(body, end)
    lines += _init_weights(body, zeroed_blocks, ir.policies.init)
    lines += ["", "", *_features_class(body, name, end, tapped, params)]
    return "\n".join(lines)


def _outputs_class(ir: IR, body: _Body, name: str, params: list[str], zeroed_blocks: bool) -> str:
    """A network with named outputs (an FPN's P2…P5): forward returns them as a dict, in the spec's order.

    A dict, as torchvision's FeaturePyramidNetwork and BackboneWithFPN return theirs: the names a
    detection head reads are the spec's, and TorchScript, torch.compile and ONNX (one graph output
    per name) keep them. It has no head, so timm's classifier methods do not apply; `feature_info`
    lists the outputs, and the `Features` subclass returns them as a list (timm's features_only).
    """
    height = ir.input_shape[1]
    shape = "x".join(map(str, ir.input_shape))
    outputs = ir.outputs()
    info = []
    for node in outputs:
        assert node.shape is not None
        reduction = max(1, round(height / node.shape[1])) if len(node.shape) == 3 else 0
        info.append(f'dict(num_chs={node.shape[0]}, reduction={reduction}, module="{node.name}")')
    names = ", ".join(f"`{docstring_text(node.name or '')}`" for node in outputs)
    lines = [
        f"class {name}(nn.Module):",
        f'    """Network `{docstring_text(ir.name)}`: input {shape}, outputs {names}."""',
        "",
    ]
    lines += statement(INDENT, "feature_info = [", info, "]")
    lines.append("")
    lines += statement(INDENT, "def __init__(", ["self", *params], ") -> None:")
    lines.append(f"{INDENT * 2}super().__init__()")
    lines += method_body(body.init)
    lines.append(f"{INDENT * 2}self.init_weights()")
    lines += [
        "",
        f"{INDENT}def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:",
        f'{INDENT * 2}"""The named outputs, in the order of the spec\'s `return` statement."""',
        f"{INDENT * 2}return self.forward_features(x)",
        "",
        f"{INDENT}def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:",
        *method_body(body.forward),
    ]
    lines += _init_weights(body, zeroed_blocks, ir.policies.init)
    every = tuple(range(len(outputs)))
    inherited = [p for p in params if p.startswith("in_chans")]
    passed = ", ".join(f"{p.split('=')[0]}={p.split('=')[0]}" for p in inherited)
    lines += [
        "",
        "",
        f"class {name}Features({name}):",
        f'    """`{name}` returning its outputs at `out_indices` as a list (timm\'s features_only)."""',
        "",
        *statement(
            INDENT, "def __init__(", ["self", f"out_indices: tuple[int, ...] = {every!r}", *inherited], ") -> None:"
        ),
        f"{INDENT * 2}super().__init__({passed})",
        f"{INDENT * 2}self.out_indices = list(out_indices)",
        f"{INDENT * 2}self.feature_info = [{name}.feature_info[i] for i in self.out_indices]",
        "",
        f"{INDENT}def forward(self, x: torch.Tensor) -> list[torch.Tensor]:",
        f"{INDENT * 2}outputs = list(self.forward_features(x).values())",
        f"{INDENT * 2}return [outputs[i] for i in self.out_indices]",
    ]
    return "\n".join(lines)


def _forward(body: _Body, end: int) -> list[str]:
    # A chain of its own, not forward_intermediates: holding every feature map to the end of the forward
    # pass costs memory, and time at small batches (measured by bench/module_speed.py).
    statements = body.forward[: _stop(body, end - 1)] if end else []
    statements.append(f"return {body.variables[end - 1] if end else 'x'}")
    return [
        "",
        f"{INDENT}def forward(self, x: torch.Tensor) -> torch.Tensor:",
        f"{INDENT * 2}return self.forward_head(self.forward_features(x))",
        "",
        f"{INDENT}def forward_features(self, x: torch.Tensor) -> torch.Tensor:",
        f'{INDENT * 2}"""The stem and the stages: the last feature map, before the head."""',
        *method_body(statements),
    ]


def _intermediates(body: _Body, end: int, tapped: list[Tap]) -> list[str]:
    lines = [
        "",
        f"{INDENT}def forward_intermediates(self, x: torch.Tensor) -> list[torch.Tensor]:",
        f'{INDENT * 2}"""Every feature map `feature_info` describes, from the finest to the coarsest."""',
        f"{INDENT * 2}features: list[torch.Tensor] = []",
    ]
    statements = []
    points = {t.step: t for t in tapped if t.member is None}
    members = {(t.step, t.member) for t in tapped if t.member is not None}
    for index in range(end):
        inside = sorted(member for step, member in members if step == index)
        if inside:
            statements += _member_calls(body, index, inside)
            continue
        statements += body.forward[body.starts[index] : _stop(body, index)]
        if index in points:
            statements.append(f"features.append({body.variables[index]})")
    statements.append("return features")
    return lines + method_body(statements)


def _member_calls(body: _Body, index: int, tapped: list[int]) -> list[str]:
    """A group step called member by member, appending the tapped members' outputs."""
    step = body.steps[index]
    assert not isinstance(step, Node)
    (call,) = body.forward[body.starts[index] : _stop(body, index)]  # `out = self.group(x)`
    target, _, rest = call.partition(" = ")
    source = rest.rpartition("(")[2].rstrip(")")
    lines = []
    for at, (name, _) in enumerate(group_members(step.module, step.nodes)):
        member = f"self.{step.module.name}.{name}" if name.isidentifier() else f"self.{step.module.name}[{at}]"
        lines.append(f"{target} = {member}({source})")
        source = target
        if at in tapped:
            lines.append(f"features.append({target})")
    return lines


def _stop(body: _Body, index: int) -> int:
    """Where step `index`'s forward lines end."""
    return body.starts[index + 1] if index + 1 < len(body.starts) else len(body.forward) - 1  # before `return`


def _head(body: _Body, end: int) -> list[str]:
    lines = ["", f"{INDENT}def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:"]
    lines.append(f'{INDENT * 2}"""Pooling and classifier; `pre_logits` stops before the classifier."""')
    if end == len(body.steps):
        return lines + [f"{INDENT * 2}return x"]
    statements = []
    source = body.variables[end - 1] if end else "x"
    if source != "x":
        statements.append(f"{source} = x")
    classifier = _classifier_step(body, end)
    for index in range(end, len(body.steps)):
        grouped = _group_classifier(body, index) if index == classifier else None
        if grouped is not None:  # timm's NormMlpClassifierHead: the head's members one by one
            source, target = body.variables[index - 1] if index else "x", body.variables[index]
            for member in body.steps[index].nodes:  # type: ignore[union-attr]  # a group's unit
                if member is grouped:
                    statements += ["if pre_logits:", f"{INDENT}return {source}"]
                statements.append(f"{target} = {member.op.torch_apply(f'self.{member.path}', source)}")
                source = target
            continue
        if index == classifier:
            features = body.variables[index - 1]
            if isinstance(body.steps[index], Node):
                statements += ["if pre_logits:", f"{INDENT}return {features}"]
            else:  # a 1×1 conv classifier on the pooled map: the features flattened, as timm's ClassifierHead
                statements += ["if pre_logits:", f"{INDENT}return torch.flatten({features}, 1)"]
        statements += body.forward[body.starts[index] : _stop(body, index)]
    statements.append(f"return {body.variables[-1]}")
    return lines + method_body(statements)


def _classifier_step(body: _Body, end: int) -> int | None:
    """The head's classifier, timm's: its last step when that is a linear layer; or a group holding one 1×1
    conv, followed by `flatten` (`head.fc`, timm's ClassifierHead with `use_conv=True`)."""
    last = len(body.steps) - 1
    step = body.steps[last] if last >= end else None
    if isinstance(step, Node) and step.op.kind == "linear" and step.path is not None:
        return last
    if isinstance(step, Node) and step.op.kind == "flatten" and last - 1 >= end and _conv_classifier(body, last - 1):
        return last - 1
    if last >= end and _group_classifier(body, last) is not None:
        return last
    return None


def _group_classifier(body: _Body, index: int) -> Node | None:
    """The linear layer that ends group step `index` when the group holds only ops (`head.norm`,
    `head.fc`: timm's NormMlpClassifierHead), if it does."""
    step = body.steps[index]
    if isinstance(step, Node) or step.module.kind is not ModuleKind.GROUP:
        return None
    last = step.nodes[-1]
    if last.op.kind != "linear" or any(node.parent is not step.module or not node.op.is_module for node in step.nodes):
        return None
    return last


def _conv_classifier(body: _Body, index: int) -> Node | None:
    """The 1×1 conv that group step `index` holds alone, if it does."""
    step = body.steps[index]
    if isinstance(step, Node) or step.module.kind is not ModuleKind.GROUP:
        return None
    members = [node for node in step.nodes if node.op.is_module]
    if len(members) == 1 and "conv" in members[0].op.families and getattr(members[0].op, "kernel", 0) == 1:
        return members[0]
    return None


def _classifier(body: _Body, end: int) -> list[str]:
    index = _classifier_step(body, end)
    if index is None:
        return []
    step = body.steps[index]
    conv = _conv_classifier(body, index)
    grouped = _group_classifier(body, index)
    if conv is not None:
        assert conv.path is not None
        attr, new = conv.path, "nn.Conv2d(self.num_features, num_classes, 1)"
    elif grouped is not None:
        assert grouped.path is not None
        attr, new = grouped.path, "nn.Linear(self.num_features, num_classes)"
    else:
        assert isinstance(step, Node) and step.path is not None
        attr, new = step.path, "nn.Linear(self.num_features, num_classes)"
    return [
        "",
        f"{INDENT}def get_classifier(self) -> nn.Module:",
        f"{INDENT * 2}return self.{attr}",
        "",
        f"{INDENT}def reset_classifier(self, num_classes: int) -> None:",
        f'{INDENT * 2}"""A new classifier for `num_classes` classes (0: none, the head ends in its features)."""',
        *line(INDENT * 2, f"self.{attr} = {new} if num_classes > 0 else nn.Identity()"),
    ]


def _init_weights(body: _Body, zeroed_blocks: bool, init: str) -> list[str]:
    if init == "trunc_normal":  # timm's ConvNeXt._init_weights
        doc = "timm's ConvNeXt initialisation: convs and linear layers N(0, 0.02²) truncated, biases 0"
        weights = [
            f"{INDENT * 3}if isinstance(m, (nn.Conv2d, nn.Linear)):",
            f"{INDENT * 4}nn.init.trunc_normal_(m.weight, std=0.02)",
            f"{INDENT * 4}if m.bias is not None:",
            f"{INDENT * 5}nn.init.zeros_(m.bias)",
            f"{INDENT * 3}elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)):",
        ]
    else:
        doc = "torchvision's and timm's initialisation: He-normal convs (fan-out), norms γ = 1, β = 0"
        weights = [
            f"{INDENT * 3}if isinstance(m, nn.Conv2d):",
            f'{INDENT * 4}nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")',
            f"{INDENT * 3}elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):",
        ]
    lines = [
        "",
        f"{INDENT}def init_weights(self) -> None:",
        f'{INDENT * 2}"""{doc}."""',
        f"{INDENT * 2}for m in self.modules():",
        *weights,
        f"{INDENT * 4}nn.init.ones_(m.weight)",
        f"{INDENT * 4}nn.init.zeros_(m.bias)",
    ]
    if zeroed_blocks:  # once every norm's γ is 1: the blocks' last norms start at zero
        lines += [
            f"{INDENT * 2}for m in self.modules():",
            f'{INDENT * 3}if hasattr(m, "zero_init_last"):',
            f"{INDENT * 4}m.zero_init_last()",
        ]
    lines += [f"{INDENT * 2}nn.init.zeros_({attribute}.weight)" for attribute in body.zeroed]
    return lines


def _features_class(body: _Body, name: str, end: int, tapped: list[Tap], params: list[str]) -> list[str]:
    """timm's features_only: the network without its head, returning the feature maps at `out_indices`."""
    head = _head_modules(body, end)
    every = tuple(range(len(tapped)))
    inherited = [p for p in params if p.startswith("in_chans")]
    lines = [
        f"class {name}Features({name}):",
        f'    """`{name}` without its head, returning the feature maps at `out_indices` (timm\'s features_only)."""',
        "",
    ]
    args = ["self", f"out_indices: tuple[int, ...] = {every!r}", *inherited]
    lines += statement(INDENT, "def __init__(", args, ") -> None:")
    passed = ", ".join(f"{p.split('=')[0]}={p.split('=')[0]}" for p in inherited)
    lines.append(f"{INDENT * 2}super().__init__({passed})")
    if head:
        lines.append(f"{INDENT * 2}del {', '.join(f'self.{attr}' for attr in head)}")
    lines += [
        f"{INDENT * 2}self.out_indices = list(out_indices)",
        f"{INDENT * 2}self.feature_info = [{name}.feature_info[i] for i in self.out_indices]",
        "",
        f"{INDENT}def forward(self, x: torch.Tensor) -> list[torch.Tensor]:",
        f"{INDENT * 2}features = self.forward_intermediates(x)",
        f"{INDENT * 2}return [features[i] for i in self.out_indices]",
    ]
    return lines


def _head_modules(body: _Body, end: int) -> list[str]:
    """The attributes of the head's modules, which `features_only` drops."""
    found = []
    for step in body.steps[end:]:
        if isinstance(step, Node):
            if step.op.is_module and step.path is not None:
                found.append(step.path)
        else:
            found.append(step.module.name)
    return found
