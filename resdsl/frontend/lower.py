"""AST → IR: bind settings, apply --set overrides, expand block templates and repeats.

Lowering builds the graph and the module tree; shapes, norm placement and
shortcut projections are the passes' work. Arguments a block template writes
in terms of its parameters keep their expression trees (`Node.exprs`), so the
PyTorch backend can write the template's class in the template's own terms.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Collection
from dataclasses import dataclass, field

from ..diagnostics import Collector, Diagnostic, ResdslError, Span, error
from ..ir.expr import Expr, Value, is_literal, names_in
from ..ir.graph import IR
from ..ir.names import check_name
from ..ir.node import Node, Residual
from ..ir.policies import OpChoice, Policies
from ..ir.tree import Module, ModuleKind, Param, Template
from ..limits import Limits
from ..ops import REQUIRED, SPEC_OPS, ArgSpec, Op, Signature
from ..ops.add import Add
from ..ops.base import TensorRef
from ..ops.chunk import Chunk
from ..ops.concat import Concat
from ..ops.input import Input
from ..ops.mul import Mul
from ..ops.output import Output
from ..ops.select import Select
from ..ops.sum import Sum
from . import ast
from .expr import describe, evaluate
from .loader import Program
from .policies import (
    OP_POLICIES,
    POLICY_VALUES,
    closest_value,
    parse_int,
    parse_number,
    parse_shape,
    policy_allows,
    policy_choices,
    resolve,
)


@dataclass
class Settings:
    name: str
    input_shape: tuple[int, int, int]
    classes: int
    policies: Policies
    env: dict[str, Value]


@dataclass
class Scope:
    """The state of lowering one body: the network's, or one block instance's."""

    module: Module  # the network or the block instance being lowered
    env: dict[str, Value]
    input: Node
    in_template: bool = False
    current: Node = field(init=False)
    names: dict[str, Node] = field(default_factory=dict)
    created: list[Node] = field(default_factory=list)
    adds: int = 0
    auto_names: set[str] = field(default_factory=set)  # the names auto_name gave
    # Network level only: the stride so far and the dilation that replaces
    # stride past the `output_stride` policy.
    total_stride: int = 1
    dilation: int = 1
    explicit: set[str] = field(default_factory=set)  # every name the body's statements give
    branched: bool = False  # a statement read a named tensor with `from`: the body is not one chain
    lists: dict[str, Module] = field(default_factory=dict)  # a block's groups (`convs` of `convs.0`), by name
    stale: Node | None = None  # the current tensor when a statement last failed (reported): its ops are missing
    lost: set[str] = field(default_factory=set)  # the names failed statements would have given

    def __post_init__(self) -> None:
        self.current = self.input

    def auto_name(self, base: str) -> str:
        """`maxpool`, then `maxpool_2`, ...: a name for an unnamed layer that no statement in the body uses."""
        name, n = base, 1
        while name in self.explicit or name in self.auto_names:
            n += 1
            name = f"{base}_{n}"
        self.auto_names.add(name)
        return name


def lower(program: Program, overrides: dict[str, str] | None = None, limits: Limits | None = None) -> IR:
    return _Lowerer(program, overrides or {}, limits or Limits()).run()


def setting_names(network: ast.NetworkDef) -> set[str]:
    """What `--set` may override in `network`: its input, classes, the policies and its `let`s."""
    lets = (stmt.name.text for stmt in network.body if isinstance(stmt, ast.LetStmt))
    return {"input", "in_channels", "classes", *POLICY_VALUES, *lets}


class _Lowerer:
    def __init__(self, program: Program, overrides: dict[str, str], limits: Limits):
        self.program = program
        self.overrides = overrides
        self.limits = limits
        self.errors = Collector()
        self.block_count = 0
        self.expanding: list[str] = []  # the templates being expanded, outermost first
        self._sizes: dict[str, tuple[int, int]] = {}  # per template: the blocks and ops one instance builds
        self.bad_templates: set[str] = set()  # templates whose definition has a reported mistake
        self.template_errors: set[tuple] = set()  # the errors inside templates reported so far
        self.kept: set[int] = set()  # ids of those diagnostics (a block inside a block passes them up)
        self.failures = 0  # statements that failed, their errors reported (maybe by an earlier instance)
        self.groups: dict[str, Module] = {}  # the network's groups (`stem` of `stem.conv`), by path
        self.open_groups: tuple[str, ...] = ()  # the groups the previous network statement was in
        self.bind_as: tuple[Scope, str] | None = None  # the name a grouped statement's output is known by

    # -- settings -------------------------------------------------------------

    def settings(self) -> Settings:
        network = self.program.network
        shape: tuple[int, ...] | None = None
        policy_stmts: dict[str, str] = {}
        op_choices: dict[str, OpChoice] = {}
        lets: list[ast.LetStmt] = []
        classes_stmt = None
        for stmt in network.body:
            if isinstance(stmt, ast.InputStmt):
                shape = _input_shape(stmt)
            elif isinstance(stmt, ast.ClassesStmt):
                classes_stmt = stmt
            elif isinstance(stmt, ast.PolicyStmt):
                policy_stmts[stmt.name.text] = self._policy(stmt.name, stmt.value)
                if stmt.args is not None:
                    op_choices[stmt.name.text] = self._op_choice(stmt)
            elif isinstance(stmt, ast.LetStmt):
                lets.append(stmt)
        if shape is None:
            raise error(
                "E0112",
                f"network `{network.name.text}` has no input shape",
                network.name.span,
                "no `input` statement",
                "add `input 3x224x224` (channels x height x width)",
            )
        self._check_overrides()
        shape = self._overridden_shape(shape)
        env: dict[str, Value] = {}
        input_span = next((s.span for s in network.body if isinstance(s, ast.InputStmt)), None)
        self.limits.check("channels", shape[0], "the input's channel count", input_span)
        self.limits.check("spatial", max(shape[1:]), "the input's largest side", input_span)
        env["in_channels"] = shape[0]
        if "classes" in self.overrides:
            classes = parse_int("classes", self.overrides["classes"])
        elif classes_stmt is not None:
            classes = self._int(classes_stmt.value, env, "classes")
        else:
            classes = 1000
        self.limits.check("channels", classes, "the class count", classes_stmt.value.span if classes_stmt else None)
        env["classes"] = classes
        for let in lets:
            check_name(let.name.text, let.name.span, "setting")
            if let.name.text in self.overrides:
                env[let.name.text] = parse_number(let.name.text, self.overrides[let.name.text])
            else:
                env[let.name.text] = evaluate(let.value, env)
        overridden = {k: v for k, v in self.overrides.items() if k in POLICY_VALUES}
        for key in overridden:
            op_choices.pop(key, None)  # `--set attn=eca` replaces `policy attn = se(...)`, arguments and all
        chosen = {**policy_stmts, **overridden}
        policies = resolve(chosen, op_choices)
        return Settings(network.name.text, (shape[0], shape[1], shape[2]), classes, policies, env)

    def _check_overrides(self) -> None:
        network = self.program.network.name.text
        set_keys = setting_names(self.program.network)
        unknown = sorted(set(self.overrides) - set_keys)
        if unknown:
            raise error(
                "E0301",
                f"--set {unknown[0]}: no such setting in `{network}`",
                help="settings: " + ", ".join(sorted(set_keys)),
            )
        for key in POLICY_VALUES:
            if key in self.overrides and not policy_allows(key, self.overrides[key]):
                value = self.overrides[key]
                close = closest_value(key, value)
                hint = f"did you mean `{close}`? " if close else ""
                raise error("E0301", f"--set {key}={value}: not a {key} policy", help=hint + policy_choices(key))

    def _overridden_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        if "input" in self.overrides:
            shape = parse_shape(self.overrides["input"])
        if "in_channels" in self.overrides:
            shape = (parse_int("in_channels", self.overrides["in_channels"]),) + tuple(shape[1:])
        return shape

    def _policy(self, name: ast.Ident, value: ast.Ident) -> str:
        if name.text not in POLICY_VALUES:
            close = difflib.get_close_matches(name.text, list(POLICY_VALUES), n=1)
            raise error(
                "E0113",
                f"unknown policy `{name.text}`",
                name.span,
                "no such policy",
                f"did you mean `{close[0]}`?" if close else "policies: " + ", ".join(POLICY_VALUES),
            )
        if not policy_allows(name.text, value.text):
            meant = closest_value(name.text, value.text)
            raise error(
                "E0113",
                f"`{value.text}` is not a {name.text} policy",
                value.span,
                "unknown value",
                (f"did you mean `{meant}`? " if meant else "") + policy_choices(name.text),
            )
        return value.text

    def _op_choice(self, stmt: ast.PolicyStmt) -> OpChoice:
        """`policy attn = se(rd_ratio=0.25)`: the op's arguments, checked as a call to it would be."""
        kind = SPEC_OPS.get(stmt.value.text) if stmt.name.text in OP_POLICIES else None
        if kind is None or kind.signature is None:
            raise error(
                "E0113",
                f"policy `{stmt.name.text}` takes no arguments",
                stmt.value.span,
                "arguments to a value that is not an op",
            )
        signature = kind.signature
        callee = stmt.value.text
        call = ast.CallStmt(None, stmt.value, stmt.args or (), None, stmt.span)
        given = _match_args(stmt.args or (), [a.name for a in signature.args], call, lookup=signature.lookup_name)
        values = {}
        for name, arg in given.items():
            spec = signature.lookup(name)
            assert spec is not None  # _match_args found it
            values[name] = self._typed(arg.value, {}, spec, callee)
        return OpChoice(callee, tuple(sorted(values.items())))

    def _int(self, expr: ast.Expr, env, what: str, minimum: int | None = 1) -> int:
        value = evaluate(expr, env)
        if isinstance(value, bool) or not isinstance(value, int):
            raise error("E0107", f"{what} must be an integer, got {describe(value)}", expr.span, "not an integer")
        if minimum is not None and value < minimum:
            raise error("E0108", f"{what} must be at least {minimum}, got {value}", expr.span, "out of range")
        return value

    # -- bodies ---------------------------------------------------------------

    def run(self) -> IR:
        settings = self.settings()
        network = self.program.network
        self.ir = ir = IR(
            settings.name,
            settings.input_shape,
            settings.policies,
            self.program.module.source.name,
            span=network.name.span,
        )
        self.output_stride = settings.policies.output_stride
        self._check_size(network.body, settings.env)
        start = ir.add(Input(), [], parent=ir.root, span=network.name.span, name="x")
        scope = Scope(ir.root, dict(settings.env), start)
        self.outputs: ast.OutputStmt | None = None
        self._body(network.body, scope)
        self.errors.raise_if_any()
        if scope.current is start:
            raise error(
                "E0005",
                f"network `{network.name.text}` has no layers",
                network.name.span,
                "nothing after `input`",
                "add ops such as `conv1 = conv(64, k=7, s=2)`",
            )
        self._outputs(scope)
        return ir

    def _outputs(self, scope: Scope) -> None:
        """The `return` statement's nodes; and no tensor left unread (a `from` can leave one behind)."""
        ends: list[Node] = [scope.current]
        if self.outputs is not None:
            ends = []
            for ident in self.outputs.names:
                if ident.text == "input":
                    raise error(
                        "E0131",
                        "the network's input cannot be one of its outputs",
                        ident.span,
                        "the input",
                        "return tensors the network computes",
                    )
                node = self._tensor(ident, scope, "return")
                if any(n.name == ident.text for n in ends):
                    raise error("E0131", f"`{ident.text}` is listed twice in `return`", ident.span, "listed twice")
                ends.append(self.ir.add(Output(), [node], parent=self.ir.root, span=ident.span, name=ident.text))
        unread = [n for n in self.ir if n not in ends and self.ir.graph.out_degree(n) == 0]
        spans = set()
        for node in unread:
            if node.span in spans:  # a block's statement: once, whatever the instances
                continue
            spans.add(node.span)
            what = f"`{node.name}`" if node.name else "the output of this statement"
            self.errors.add(
                "E0133",
                f"{what} is never used",
                node.span,
                "nothing reads this tensor",
                "read it with `from`, `add`, `mul` or `concat`, or list it in the network's `return` statement"
                if self.outputs is not None
                else "read it with `from`, `add`, `mul` or `concat`; a network with several outputs names them "
                "in a `return` statement",
            )
        self.errors.raise_if_any()

    def _tensor(self, ident: ast.Ident, scope: Scope, what: str) -> Node:
        """The tensor a statement names (`from NAME`, `concat NAME`, `to=NAME`, `return NAME`)."""
        if ident.text == "input":
            return scope.input
        if ident.text in scope.names:
            return scope.names[ident.text]
        if ident.text in scope.lost:  # its statement failed: reported there
            raise _Reported
        close = difflib.get_close_matches(ident.text, [*scope.names, "input"], n=1)
        raise error(
            "E0205",
            f"no tensor named `{ident.text}` to {what}",
            ident.span,
            "unknown tensor",
            f"did you mean `{close[0]}`?" if close else "name `input` or a tensor defined earlier in this body",
        )

    def _check_size(self, body, env: dict[str, Value]) -> None:
        """Refuse a network over the `blocks` or `nodes` limit before any block is expanded.

        Counts from the repeat counts and the templates' statements alone (a
        block's instance costs its own statements plus the blocks it calls); a
        count that cannot be evaluated counts once here and is reported by lowering.
        """
        blocks = nodes = 0
        for stmt in body:
            if isinstance(stmt, (ast.MergeStmt, ast.SplitStmt)):
                nodes += len(stmt.targets) if isinstance(stmt, ast.SplitStmt) else 1
                self.limits.check("nodes", nodes, "the number of ops", stmt.span)
            calls = [(s, stmt.span) for s in stmt.body] if isinstance(stmt, ast.SeqStmt) else [(stmt, stmt.span)]
            for call, span in calls:
                if not isinstance(call, ast.CallStmt):
                    continue
                template = self.program.blocks.get(call.callee.text)
                if template is None:
                    nodes += 1
                    self.limits.check("nodes", nodes, "the number of ops", span)
                    continue
                count = 1
                if call.repeat is not None:
                    span = call.repeat.count.span
                    try:
                        value = evaluate(call.repeat.count, env)
                    except ResdslError:
                        value = 1
                    count = value if isinstance(value, int) and not isinstance(value, bool) and value > 1 else 1
                inner_blocks, inner_ops = self._template_size(template.name.text, set())
                blocks += count * (1 + inner_blocks)
                self.limits.check("blocks", blocks, "the number of block instances", span)
                nodes += count * inner_ops
                self.limits.check("nodes", nodes, "the number of ops", span)

    def _template_size(self, name: str, expanding: set[str]) -> tuple[int, int]:
        """The blocks an instance of template `name` calls (itself not counted), and the ops it builds."""
        if name in self._sizes:
            return self._sizes[name]
        if name in expanding:  # a cycle of blocks: lowering reports it (E0122)
            return 0, 0
        expanding.add(name)
        blocks = ops = 0
        for stmt in self.program.blocks[name].body:
            for call in stmt.body if isinstance(stmt, ast.SeqStmt) else (stmt,):
                if isinstance(call, ast.MergeStmt):
                    ops += 1
                elif isinstance(call, ast.SplitStmt):
                    ops += len(call.targets)
                elif isinstance(call, ast.CallStmt):
                    if call.callee.text in self.program.blocks:
                        inner_blocks, inner_ops = self._template_size(call.callee.text, expanding)
                        blocks, ops = blocks + 1 + inner_blocks, ops + inner_ops
                    else:
                        ops += 1
        expanding.discard(name)
        self._sizes[name] = blocks, ops
        return blocks, ops

    def _body(self, stmts, scope: Scope) -> None:
        scope.explicit |= {s.target.text for s in stmts if getattr(s, "target", None) is not None}
        scope.explicit |= {t.text for s in stmts if isinstance(s, ast.SplitStmt) for t in s.targets}
        for stmt in stmts:
            try:
                self._stmt(stmt, scope)
            except ResdslError as exc:
                # Keep going: later statements may hold independent mistakes.
                self.errors.extend(exc)
                self._failed(stmt, scope)
            except _Reported:
                self._failed(stmt, scope)

    def _failed(self, stmt, scope: Scope) -> None:
        """Count a statement whose mistake is reported; what reads its names or its output later is not
        reported again."""
        self.failures += 1
        scope.stale = scope.current
        targets = stmt.targets if isinstance(stmt, ast.SplitStmt) else [getattr(stmt, "target", None)]
        scope.lost |= {t.text for t in targets if t is not None}

    def _stmt(self, stmt, scope: Scope) -> None:
        if isinstance(stmt, (ast.InputStmt, ast.ClassesStmt, ast.PolicyStmt)):
            if scope.in_template:
                word = {ast.InputStmt: "input", ast.ClassesStmt: "classes", ast.PolicyStmt: "policy"}[type(stmt)]
                raise error(
                    "E0114",
                    f"`{word}` belongs in a network, not in a block",
                    stmt.span,
                    "network setting inside a block",
                )
            return  # read by settings()
        if isinstance(stmt, ast.LetStmt):
            if scope.in_template:
                check_name(stmt.name.text, stmt.name.span, "value")
                scope.env[stmt.name.text] = evaluate(stmt.value, scope.env)
            return
        if isinstance(stmt, ast.OutputStmt):
            self._output_stmt(stmt, scope)
            return
        source = getattr(stmt, "source", None)
        if source is not None and self.bind_as is None:  # a grouped statement's source is read once, outside
            scope.current = self._tensor(source, scope, "read")
            scope.branched = True
        target = getattr(stmt, "target", None)
        if scope.module is self.ir.root:
            self._regroup(stmt, target)
        if isinstance(stmt, ast.SplitStmt):
            self._split(stmt, scope)
            return
        if target is not None and "." in target.text:
            if scope.in_template:
                self._listed(stmt, target, scope)
            else:
                self._grouped(stmt, target, scope)
            return
        if isinstance(stmt, ast.MergeStmt):
            self._merge(stmt, scope)
            return
        if isinstance(stmt, ast.SeqStmt):
            self._seq(stmt, scope)
            return
        self._call(stmt, scope)

    def _output_stmt(self, stmt: ast.OutputStmt, scope: Scope) -> None:
        """`return NAME, ...`: read after the body (lowering's `_outputs`), once per network."""
        if scope.in_template:
            raise error(
                "E0114",
                "`return` belongs in a network, not in a block",
                stmt.span,
                "network setting inside a block",
                "a block's output is its last statement's tensor",
            )
        if self.outputs is not None:
            raise error(
                "E0131",
                "a network has one `return` statement",
                stmt.span,
                "a second `return`",
                f"list every output in the first, at {self.outputs.span.location}",
            )
        self.outputs = stmt

    # -- groups: network statements named by module paths of several levels --------

    def _regroup(self, stmt, target: ast.Ident | None) -> None:
        """Close the groups a network statement leaves: a group's members are consecutive statements."""
        if isinstance(stmt, (ast.InputStmt, ast.ClassesStmt, ast.PolicyStmt, ast.LetStmt, ast.OutputStmt)):
            return
        levels = target.text.split(".")[:-1] if target is not None else []
        prefixes = tuple(".".join(levels[: i + 1]) for i in range(len(levels)))
        for path in prefixes:
            if path in self.groups and path not in self.open_groups:
                assert target is not None
                raise error(
                    "E0124",
                    f"group `{path}` is already closed: its members must be consecutive statements",
                    target.span,
                    "a member after the group ended",
                    f"move this statement next to the other members of `{path}`",
                )
        self.open_groups = prefixes

    def _check_member(self, group: Module, levels: list[str], target: ast.Ident) -> None:
        """`levels[-1]`, a new member of `group` (a group itself, or the statement's module): not taken, and
        numbered 0, 1, 2, … in order or named, as its siblings are (the class writes an nn.Sequential or a Group)."""
        taken = {child.name for child in group.children} | {
            n.path.rpartition(".")[2] for n in self.ir if n.parent is group and n.path
        }
        _check_numbering(".".join(levels), levels[-1], taken, target.span, "stage")

    def _grouped(self, stmt, target: ast.Ident, scope: Scope) -> None:
        """`stem.conv = conv(...)`: the statement's module, named by the last level, inside nested groups
        (the others), each group a module of the network that runs its members in order."""
        levels = target.text.split(".")
        if getattr(stmt, "source", None) is not None:
            raise error(
                "E0124",
                f"`{target.text}`: a group runs its members in order, so a member cannot read a named tensor",
                stmt.source.span,
                "`from` in a group",
                "put the statement outside the group, or read the tensor before the group starts",
            )
        self._check_module_form(stmt, target)
        for i, level in enumerate(levels[:-1]):
            if not level.isdigit():
                check_name(level, target.span, "group", group_member=i > 0)  # a deeper level is a member too
        if levels[-1].isdigit() and not _is_stage(stmt):
            raise error(
                "E0124",
                f"`{target.text}`: the last level names the module and must be a name",
                target.span,
                "a number",
                "number modules with `seq { ... }`; a stage (`x N`, a `seq` of blocks) may be numbered",
            )
        parent = scope.module
        for i, level in enumerate(levels[:-1]):
            path = ".".join(levels[: i + 1])
            if path not in self.groups:
                if parent.kind is not ModuleKind.GROUP and parent is not scope.module:
                    raise error("E0124", f"`{path}` is not a group", target.span, "not a group")
                if parent.kind is ModuleKind.GROUP:  # a new member of an enclosing group
                    self._check_member(parent, levels[: i + 1], target)
                self.groups[path] = self.ir.module(level, ModuleKind.GROUP, parent, target.span)
            parent = self.groups[path]
        self._check_member(parent, levels, target)
        self._member(stmt, target, parent, scope)

    @staticmethod
    def _check_module_form(stmt, target: ast.Ident) -> None:
        """A group holds modules: not a function (`flatten`, `add`) or a bare parameter (`layer_scale`)."""
        op = SPEC_OPS.get(stmt.callee.text) if isinstance(stmt, ast.CallStmt) else None
        if isinstance(stmt, ast.MergeStmt) or (op is not None and (not op.is_module or op.parameter)):
            raise error(
                "E0124",
                f"`{target.text}`: only modules can be in a group, and this op has no module form",
                target.span,
                "a function in a group",
                "put it before or after the group",
            )

    def _listed(self, stmt, target: ast.Ident, scope: Scope) -> None:
        """`convs.0 = conv(...)` in a block: a member of the block's group `convs`, a module of the block
        that holds its members (numbered 0, 1, … in order, or named) wherever they are in the body; each
        member is called on its own and may read any tensor (Res2Net's `convs`, SKNet's `paths`)."""
        levels = target.text.split(".")
        if len(levels) != 2:
            raise error(
                "E0124",
                f"`{target.text}`: a block's group has one level, `GROUP.MEMBER`",
                target.span,
                "a path of several levels in a block",
                "name the member `convs.0` or `attn.fc`; nest deeper with a block of its own",
            )
        self._check_module_form(stmt, target)
        group_name, member = levels
        check_name(group_name, target.span, "group")
        if not member.isdigit():
            check_name(member, target.span, "layer", group_member=True)
        group = scope.lists.get(group_name)
        if group is None:
            if group_name in scope.names or any(child.name == group_name for child in scope.module.children):
                first = scope.names[group_name].span if group_name in scope.names else None
                first = first or next(c.span for c in scope.module.children if c.name == group_name)
                raise error(
                    "E0104",
                    f"`{group_name}` is defined twice in this scope",
                    target.span,
                    "a group of this name, where the name is taken",
                    f"the first is at {first.location}" if first else "",
                )
            group = self.ir.module(group_name, ModuleKind.LIST, scope.module, target.span)
            scope.lists[group_name] = group
        taken = [key.rpartition(".")[2] for key in scope.names if key.startswith(group_name + ".")]
        _check_numbering(target.text, member, taken, target.span, "member")
        self._member(stmt, target, group, scope)

    def _member(self, stmt, target: ast.Ident, group: Module, scope: Scope) -> None:
        """Lower `stmt` as the member of `group` its path's last level names; its output's name is the
        whole path (`stem.conv`, `convs.0`)."""
        inner = dataclasses.replace(stmt, target=ast.Ident(target.text.rpartition(".")[2], target.span))
        outer = scope.module
        scope.module, self.bind_as = group, (scope, target.text)
        try:
            self._stmt(inner, scope)
        finally:
            scope.module, self.bind_as = outer, None

    def _split(self, stmt: ast.SplitStmt, scope: Scope) -> None:
        """`a, b = split`: one `chunk` node per name, each reading the split tensor; the first is current."""
        if stmt.word is not None and (stmt.word.text != "split" or stmt.called):
            raise error(
                "E0126",
                "`split` takes no arguments: it cuts into one equal piece per name"
                if stmt.word.text == "split"
                else f"several names take the pieces of a `split`, not the output of `{stmt.word.text}`",
                stmt.word.span,
                "not `split`",
                "write `a, b = split` to cut the channels in two; an op or block call names one output",
            )
        for ident in stmt.targets:
            if "." in ident.text:
                raise error(
                    "E0126",
                    f"`{ident.text}`: the pieces of a `split` are tensors, named by plain names",
                    ident.span,
                    "a module path",
                    "name the piece `a`, and the module that reads it `convs.0`",
                )
            check_name(ident.text, ident.span, "tensor")
        source = scope.current
        count = len(stmt.targets)
        pieces = [
            self._new(scope, Chunk(i, count), [source], stmt.span, name=ident.text)
            for i, ident in enumerate(stmt.targets)
        ]
        for ident, piece in zip(stmt.targets, pieces, strict=True):
            self._bind_target(ident, piece, scope)
        scope.current = pieces[0]
        scope.branched = True

    def _numbered_member(self, target: ast.Ident) -> bool:
        """A stage numbered in its group (`blocks.0`): `_grouped` has checked its number."""
        return self.bind_as is not None and target.text.isdigit()

    def _bind_target(self, target: ast.Ident | None, node: Node, scope: Scope) -> None:
        if target is None:
            return
        if self.bind_as is not None and self.bind_as[0] is scope:
            target = ast.Ident(self.bind_as[1], target.span)
        if target.text in scope.names:
            first = scope.names[target.text].span
            raise error(
                "E0104",
                f"`{target.text}` is defined twice in this scope",
                target.span,
                "second definition",
                f"the first is at {first.location}" if first else "",
            )
        group = scope.lists.get(target.text)
        if group is not None:  # `convs = ...` after `convs.0 = ...`: one attribute, two modules
            raise error(
                "E0104",
                f"`{target.text}` is defined twice in this scope",
                target.span,
                "the name of a group of this block",
                f"the group starts at {group.span.location}" if group.span else "",
            )
        scope.names[target.text] = node

    def _new(
        self, scope: Scope, op: Op, operands: list[Node], span: Span, parent: Module | None = None, **fields
    ) -> Node:
        self.limits.check("nodes", len(self.ir) + 1, "the number of ops", span)
        if len(set(operands)) < len(operands):  # `concat input` right after the input; `upsample(to=x)` on x
            if scope.current is scope.stale:  # the statement that should have come between failed: reported
                raise _Reported
            raise error(
                "E0206",
                f"`{op.kind}` reads one tensor twice",
                span,
                "the same tensor twice",
                "an op reads a tensor once: name another tensor, or put ops between the two",
            )
        node = self.ir.add(op, operands, parent=parent or scope.module, span=span, **fields)
        scope.created.append(node)
        scope.current = node
        return node

    def _merge(self, stmt: ast.MergeStmt, scope: Scope) -> None:
        if stmt.op in ("concat", "select"):
            self._join(stmt, scope)
            return
        if stmt.rest:
            raise error(
                "E0102",
                f"`{stmt.op}` takes one tensor, got {1 + len(stmt.rest)}",
                stmt.rest[0].span,
                "extra tensor",
                "only `concat` and `select` take several tensors",
            )
        name = stmt.operand.text
        if name == "input":
            other = scope.input
        elif name in scope.names:
            other = scope.names[name]
        elif name in scope.lost:  # its statement failed: reported there
            raise _Reported
        else:
            close = difflib.get_close_matches(name, [*scope.names, "input"], n=1)
            raise error(
                "E0205",
                f"no tensor named `{name}` to add",
                stmt.operand.span,
                "unknown tensor",
                f"did you mean `{close[0]}`?" if close else "add `input` or a name defined earlier in this body",
            )
        if other is scope.current:
            if scope.current is scope.stale:  # the statements that should have come between failed: reported
                raise _Reported
            does = "adds a tensor to itself" if stmt.op == "add" else "multiplies a tensor by itself"
            raise error(
                "E0206",
                f"`{stmt.op} {name}` {does}",
                stmt.span,
                "no residual branch" if stmt.op == "add" else "nothing between them",
                f"the {stmt.op} needs ops between the tensor and this point",
            )
        if stmt.target is not None:
            check_name(stmt.target.text, stmt.target.span, "tensor")
        target = stmt.target and stmt.target.text
        if stmt.op == "mul":
            node = self._new(scope, Mul(), [scope.current, other], stmt.span, name=target)
        elif not _upstream(self.ir, other, scope.current):
            # Two separate paths (an FPN's top-down add): no shortcut to project, shapes must match.
            node = self._new(scope, Sum(), [scope.current, other], stmt.span, name=target)
        else:
            start = scope.created.index(other) + 1 if other in scope.created else 0
            branch = scope.created[start:]
            if scope.branched:  # only the ops on the way from the shortcut's source to the add
                branch = _between(self.ir, branch, scope.current)
            node = self._new(
                scope, Add(), [scope.current, other], stmt.span, name=target, residual=Residual(scope.adds)
            )
            scope.adds += 1
            for member in branch:
                if member.branch is None:
                    member.branch = node
        self._bind_target(stmt.target, node, scope)

    def _join(self, stmt: ast.MergeStmt, scope: Scope) -> None:
        """`concat NAME, ...`: the current tensor and the named ones, joined along the channels;
        `select NAME, NAME, ...`: the named tensors weighed by the current one's chunks."""
        others = [self._tensor(ident, scope, stmt.op) for ident in (stmt.operand, *stmt.rest)]
        if stmt.op == "select" and len(others) < 2:
            raise error(
                "E0102",
                "`select` weighs two or more tensors, got 1",
                stmt.operand.span,
                "one branch",
                "name every branch (`select a, b`); `mul NAME` multiplies by one tensor",
            )
        if stmt.target is not None:
            check_name(stmt.target.text, stmt.target.span, "tensor")
        operands = [scope.current, *others]
        target = stmt.target and stmt.target.text
        op = Concat(len(operands)) if stmt.op == "concat" else Select(len(others))
        node = self._new(scope, op, operands, stmt.span, name=target)
        self._bind_target(stmt.target, node, scope)

    def _seq(self, stmt: ast.SeqStmt, scope: Scope) -> None:
        """A sequence of ops, numbered by the norm pass as nn.Sequential numbers its modules; or of blocks."""
        if not self._numbered_member(stmt.target):
            check_name(stmt.target.text, stmt.target.span, "layer", self.bind_as is not None)
        if not stmt.body:
            raise error("E0117", f"sequence `{stmt.target.text}` has no ops", stmt.target.span, "empty sequence")
        if any(self._is_block_call(inner) for inner in stmt.body):
            self._stage(stmt, scope)
            return
        for inner in stmt.body:
            if not isinstance(inner, ast.CallStmt) or inner.callee.text not in SPEC_OPS or inner.repeat is not None:
                raise error(
                    "E0123",
                    "a `seq` holds ops or blocks only",
                    inner.span,
                    "not an op call",
                    "write `add`, `mul` and `let` outside the sequence",
                )
            if not SPEC_OPS[inner.callee.text].is_module or SPEC_OPS[inner.callee.text].parameter:
                raise error(
                    "E0123",
                    f"`{inner.callee.text}` cannot be in a `seq`: it is a "
                    f"{'parameter' if SPEC_OPS[inner.callee.text].parameter else 'function'}, not a module",
                    inner.callee.span,
                    "not a module",
                    "an nn.Sequential holds modules; put this op after the sequence",
                )
            if inner.target is not None:
                raise error(
                    "E0123",
                    "the ops of a `seq` are numbered, not named",
                    inner.target.span,
                    "a name inside a sequence",
                    f"name the sequence (`{stmt.target.text} = seq {{...}}`) and add or multiply with that",
                )
        sequence = self.ir.module(stmt.target.text, ModuleKind.SEQUENCE, scope.module, stmt.span)
        modules = 0
        for inner in stmt.body:
            node = self._op(inner, scope, sequence, str(modules))
            modules += node.op.is_module
        self._bind_target(stmt.target, scope.current, scope)

    def _is_block_call(self, stmt: object) -> bool:
        return isinstance(stmt, ast.CallStmt) and stmt.callee.text in self.program.blocks

    def _stage(self, stmt: ast.SeqStmt, scope: Scope) -> None:
        """`NAME = seq { block calls }`: one stage whose blocks may differ (a pruned network's widths),
        numbered 0, 1, ... across the calls and their repeats, as `x N` numbers one call's."""
        for inner in stmt.body:
            if not self._is_block_call(inner):
                raise error(
                    "E0123",
                    "a `seq` holds ops or blocks, not both",
                    inner.span,
                    "not a block call" if isinstance(inner, ast.CallStmt) else "not a call",
                    "a sequence of blocks is a stage: put the other statements before or after it",
                )
            assert isinstance(inner, ast.CallStmt)
            if inner.target is not None:
                raise error(
                    "E0123",
                    "the blocks of a `seq` are numbered, not named",
                    inner.target.span,
                    "a name inside a sequence",
                    f"the blocks are `{stmt.target.text}.0`, `{stmt.target.text}.1`, ...: name the sequence only",
                )
        if scope.in_template:
            raise error(
                "E0116",
                f"`{stmt.target.text}` is a `seq` of blocks (a stage) inside a block",
                stmt.span,
                "stages belong in the network body",
                "a block may call another block once per statement; write the stage in the network",
            )
        stage = self.ir.module(stmt.target.text, ModuleKind.STAGE, scope.module, stmt.span)
        for inner in stmt.body:
            assert isinstance(inner, ast.CallStmt)
            self._check_block_call(inner, scope)
            self._blocks(inner, self.program.blocks[inner.callee.text], scope, stage)
        self._bind_target(stmt.target, scope.current, scope)

    def _call(self, stmt: ast.CallStmt, scope: Scope) -> None:
        callee = stmt.callee.text
        if callee == "split" and callee not in self.program.blocks:
            raise error(
                "E0126",
                "`split` cuts a tensor into two or more pieces, one per name",
                stmt.span,
                "one name" if stmt.target is not None else "no names",
                "name every piece: `a, b = split` halves the channels",
            )
        if stmt.target is not None and not self._numbered_member(stmt.target):
            check_name(stmt.target.text, stmt.target.span, "layer", self.bind_as is not None)
        if callee in SPEC_OPS:
            if stmt.repeat is not None:
                raise error(
                    "E0115",
                    f"`x N` repeats blocks; `{callee}` is an op",
                    stmt.repeat.span,
                    "repeat of an op",
                    "define a block with this op and repeat the block",
                )
            node = self._op(stmt, scope)
            self._bind_target(stmt.target, node, scope)
            return
        if callee in self.program.blocks:
            self._check_block_call(stmt, scope)
            node = self._blocks(stmt, self.program.blocks[callee], scope)
            self._bind_target(stmt.target, node, scope)
            return
        raise error("E0101", f"unknown op or block `{callee}`", stmt.callee.span, "not defined", self._unknown(callee))

    def _check_block_call(self, stmt: ast.CallStmt, scope: Scope) -> None:
        callee = stmt.callee.text
        if scope.in_template and stmt.repeat is not None:
            raise error(
                "E0116",
                f"`x N` repeats block `{callee}` inside a block",
                stmt.repeat.span,
                "repeats belong in the network body",
                "a block may call another block once per statement; repeat blocks in the network",
            )
        if callee in self.expanding:
            chain = " → ".join([*self.expanding[self.expanding.index(callee) :], callee])
            raise error("E0122", f"block `{callee}` calls itself ({chain})", stmt.callee.span, "a cycle of blocks")

    def _unknown(self, callee: str) -> str:
        """The help line for an unknown callee: the closest name, or everything there is."""
        close = difflib.get_close_matches(callee, [*SPEC_OPS, *self.program.blocks], n=1)
        if close:
            return f"did you mean `{close[0]}`?"
        text = "ops: " + ", ".join(sorted(SPEC_OPS)) + "; blocks: " + (", ".join(sorted(self.program.blocks)) or "none")
        if not self.program.blocks:
            text += ' (`use "std/blocks.res"` brings basic and bottleneck)'
        return text

    # -- ops ----------------------------------------------------------------

    def _op(self, stmt: ast.CallStmt, scope: Scope, parent: Module | None = None, member: str | None = None) -> Node:
        """An op call; in a sequence (`parent`), its module is named `member`, its number there."""
        callee = stmt.callee.text
        kind = SPEC_OPS[callee]
        signature = kind.signature
        assert signature is not None  # SPEC_OPS holds the ops with one
        given = _match_args(
            stmt.args or (),
            [a.name for a in signature.args],
            stmt,
            lookup=signature.lookup_name,
        )
        values: dict[str, object] = {}
        exprs: dict[str, Expr] = {}
        refs: list[Node] = []  # tensors the call names as arguments (`upsample(to=lat4)`): further operands
        for spec in signature.args:
            if spec.name in given and spec.type is TensorRef:
                arg = given[spec.name]
                if not isinstance(arg.value, ast.Var):
                    raise error(
                        "E0107",
                        f"`{callee}` argument `{spec.name}` names a tensor, got {describe(evaluate(arg.value, {}))}"
                        if not names_in(arg.value)
                        else f"`{callee}` argument `{spec.name}` names a tensor, not an expression",
                        arg.value.span,
                        "not a tensor name",
                        f"for example `{callee}({spec.name}=lat4)`",
                    )
                refs.append(self._tensor(ast.Ident(arg.value.name, arg.value.span), scope, "resize to"))
                values[spec.name] = refs[-1]
            elif spec.name in given:
                arg = given[spec.name]
                values[spec.name] = self._typed(arg.value, scope.env, spec, callee)
                if self._symbolic(arg.value, scope) and spec.name not in signature.node_args:
                    exprs[spec.name] = arg.value
            elif spec.default is REQUIRED:
                raise error(
                    "E0103",
                    f"`{callee}` needs its `{spec.name}` argument",
                    stmt.span,
                    f"`{spec.name}` missing",
                    signature.usage(callee),
                )
            else:
                values[spec.name] = spec.default
        kind.complete(values, exprs, stmt.span)
        self._check_sizes(callee, signature, values, given, stmt)
        node_fields = {name: values.pop(name) for name in signature.node_args}
        for spec in signature.args:  # a named tensor is an operand (`refs`), not a field of the node
            if spec.type is TensorRef:
                node_fields.pop(spec.name, None)
        op = kind(**values)
        if callee == "conv" and node_fields["norm"] is not False:
            op = self.ir.policies.conv(op)  # `policy conv_op = std_conv(...)`
        parent = parent or scope.module
        name = stmt.target.text if stmt.target else None
        path = None
        if op.is_module:
            path = parent.prefix() + (member or name or scope.auto_name(callee))
        if not scope.in_template:
            self._stride(op, scope, stmt)
        return self._new(
            scope,
            op,
            [scope.current, *refs],
            stmt.span,
            parent=parent,
            name=name,
            path=path,
            exprs=exprs,
            **node_fields,
        )

    @staticmethod
    def _symbolic(expr: ast.Expr, scope: Scope) -> bool:
        """Whether to keep `expr`'s tree: in a block, anything not a constant (the class writes it in the
        block's terms); in the network, what reads only the class count and the input channels, which
        the generated network takes as arguments."""
        if is_literal(expr):
            return False
        return scope.in_template or set(names_in(expr)) <= NETWORK_ARGUMENTS

    def _check_sizes(
        self, callee: str, signature: Signature, values: dict[str, object], given: dict[str, ast.Arg], stmt
    ) -> None:
        """Integer arguments within the size limit their ArgSpec names (`bound`)."""
        for spec in signature.args:
            value = values.get(spec.name)
            if spec.bound is not None and isinstance(value, int) and not isinstance(value, bool):
                self.limits.check(
                    spec.bound, value, f"`{callee}` argument `{spec.name}`", _arg_span(given, spec.name, stmt)
                )

    def _stride(self, op: Op, scope: Scope, stmt: ast.CallStmt) -> None:
        """Track the network's total stride, which `output_stride` bounds."""
        if op.downsampling() == 1:
            return
        scope.total_stride *= op.downsampling()
        if self.output_stride is not None and scope.total_stride > self.output_stride:
            raise error(
                "E0121",
                f"output_stride {self.output_stride} is below the stride {scope.total_stride} reached here",
                stmt.span,
                "this op strides past the limit",
                "only block stages can trade stride for dilation; raise output_stride",
            )

    def _typed(self, expr: ast.Expr, env, spec: ArgSpec, callee: str):
        if isinstance(expr, ast.Var) and expr.name in spec.words and expr.name not in env:
            return expr.name
        if spec.type is str:  # one of its words only (`se`'s `act`)
            given = f"`{expr.name}`" if isinstance(expr, ast.Var) else describe(evaluate(expr, env))
            raise error(
                "E0107",
                f"`{callee}` argument `{spec.name}` is {_or(', '.join(spec.words))}, got {given}",
                expr.span,
                "not one of its choices",
            )
        value = evaluate(expr, env)
        if spec.type is bool:
            if not isinstance(value, bool):
                choices = ", ".join(("true", "false", *spec.words))
                raise error(
                    "E0107",
                    f"`{callee}` argument `{spec.name}` is {_or(choices)}, got {describe(value)}",
                    expr.span,
                    "not a boolean",
                )
            return value
        if spec.type is int:
            value = self._int(expr, env, f"`{callee}` argument `{spec.name}`", spec.minimum)
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            raise error(
                "E0107",
                f"`{callee}` argument `{spec.name}` is a number, got {describe(value)}",
                expr.span,
                "not a number",
            )
        elif not math.isfinite(value) or abs(value) > 10**18:
            raise error("E0108", "number too large", expr.span, "this overflows")
        if spec.range is not None and value not in spec.range:
            raise error(
                "E0108",
                f"`{callee}` argument `{spec.name}` must be {spec.range}, got {value}",
                expr.span,
                "out of range",
            )
        return value if spec.type is int else float(value)

    # -- blocks -------------------------------------------------------------

    def _template(self, block: ast.BlockDef) -> Template:
        """The IR's record of a block template, made at its first use (its mistakes reported at that use only)."""
        templates = self.ir.templates
        if block.name.text in templates:
            return templates[block.name.text]
        if block.name.text in self.bad_templates:
            raise _Reported
        self.bad_templates.add(block.name.text)  # until it is made
        params: list[Param] = []
        for p in block.params:
            check_name(p.name.text, p.name.span, "block parameter")
            if p.default is None and params and params[-1].default is not None:
                raise error(
                    "E0118",
                    f"parameter `{p.name.text}` without a default follows one with a default",
                    p.span,
                    "needs a default",
                    "put parameters with defaults last",
                )
            if p.default is not None:
                evaluate(p.default, {})  # defaults are constants, as in the generated Python signature
            params.append(Param(p.name.text, p.default))
        known = {p.name for p in params} | ({"expansion"} if block.expansion is not None else set())
        lets = []
        for stmt in block.body:
            if isinstance(stmt, ast.LetStmt):
                check_name(stmt.name.text, stmt.name.span, "value")
                unknown = [name for name in names_in(stmt.value) if name not in known]
                if unknown:  # a let reads parameters and earlier lets only
                    raise error("E0105", f"unknown name `{unknown[0]}`", stmt.value.span, "not defined here")
                lets.append((stmt.name.text, stmt.value))
                known.add(stmt.name.text)
        expansion = None if block.expansion is None else self._int(block.expansion, {}, "expansion")
        templates[block.name.text] = Template(block.name.text, params, lets, expansion, block.name.span)
        self.bad_templates.discard(block.name.text)
        return templates[block.name.text]

    def _blocks(self, stmt: ast.CallStmt, block: ast.BlockDef, scope: Scope, stage: Module | None = None) -> Node:
        """A block call's instances: one module, or under `x N` (or in a `seq` of blocks, `stage`) numbered ones."""
        template = self._template(block)
        params = [p.name.text for p in block.params]
        given = _match_args(stmt.args or (), params, stmt, lookup=lambda n: n if n in params else None)
        args = {name: evaluate(arg.value, scope.env) for name, arg in given.items()}
        count, first = 1, {}
        if stmt.repeat is not None:
            count = self._int(stmt.repeat.count, scope.env, "the repeat count")
            self.limits.check(
                "blocks", self.block_count + count, "the number of block instances", stmt.repeat.count.span
            )
            first_given = _match_args(
                stmt.repeat.first, params, stmt, lookup=lambda n: n if n in params else None, positional_ok=False
            )
            first = {name: evaluate(arg.value, scope.env) for name, arg in first_given.items()}
        target = ""
        if stage is None:
            target = stmt.target.text if stmt.target else scope.auto_name(block.name.text)
            if stmt.repeat is not None:
                stage = self.ir.module(target, ModuleKind.STAGE, scope.module, stmt.span)
        start = len(stage.children) if stage else 0
        for index in range(count):
            self.block_count += 1
            self.limits.check("blocks", self.block_count, "the number of block instances", stmt.span)
            call_args = {**args, **first} if index == 0 else args
            if self.output_stride is not None and not scope.in_template:
                call_args = self._dilate(block, call_args, stmt, scope)
            explicit = tuple(p for p in params if p in call_args)
            env = self._bind(block, call_args, stmt)
            module = self.ir.module(
                str(start + index) if stage else target,
                ModuleKind.BLOCK,
                stage or scope.module,
                stmt.span,
                template=template,
                args=dict(env),
                explicit=explicit,
                # A block calling a block: the arguments in the caller's terms, for its class.
                arg_exprs={n: a.value for n, a in given.items() if scope.in_template and not is_literal(a.value)},
            )
            template.instances.append(module)
            self._instance(block, template, module, env, scope)
        return scope.current

    def _dilate(self, block: ast.BlockDef, call_args: dict, stmt: ast.CallStmt, scope: Scope) -> dict:
        """torchvision's replace_stride_with_dilation: past `output_stride`, a block keeps stride 1
        and its dilation grows by the stride it gave up; the blocks after it use the grown dilation."""
        params = {p.name.text for p in block.params}
        stride = self._bind(block, call_args, stmt).get("stride", 1)
        if isinstance(stride, bool) or not isinstance(stride, int):
            raise error(
                "E0107",
                f"the stride of block `{block.name.text}` must be an integer, got {describe(stride)}",
                stmt.span,
                "not an integer",
            )
        assert self.output_stride is not None  # only called under an output_stride policy
        dilated = scope.total_stride * stride > self.output_stride
        if (dilated or scope.dilation > 1) and "dilation" not in params:
            raise error(
                "E0121",
                f"output_stride {self.output_stride} needs dilation, but block "
                f"`{block.name.text}` has no `dilation` parameter",
                stmt.span,
                "strides past the limit",
                f"give `{block.name.text}` a `dilation` parameter and use it in its 3x3 convs",
            )
        if not dilated:
            scope.total_stride *= stride
            return {**call_args, "dilation": scope.dilation} if scope.dilation > 1 else call_args
        # The block that gives up its stride keeps the dilation it had, as torchvision's first block does.
        result = {**call_args, "stride": 1, "dilation": scope.dilation}
        scope.dilation *= stride
        return result

    def _bind(self, block: ast.BlockDef, call_args: dict, stmt: ast.CallStmt) -> dict[str, Value]:
        env: dict[str, Value] = {}
        for param in block.params:
            if param.name.text in call_args:
                env[param.name.text] = call_args[param.name.text]
            elif param.default is not None:
                env[param.name.text] = evaluate(param.default, env)
            else:
                raise error(
                    "E0103",
                    f"block `{block.name.text}` needs its `{param.name.text}` argument",
                    stmt.span,
                    f"`{param.name.text}` missing",
                    f"`{block.name.text}` is defined at {block.name.span.location}",
                )
        return env

    def _once_per_template(self, known: int, module: Module, outer: Scope) -> None:
        """Keep each error an instance's body raised only the first time the template raises it,
        with a note at the call that reached it (the call's arguments may be the cause)."""
        fresh = self.errors.items[known:]
        del self.errors.items[known:]
        note = module.call_note()
        for diag in fresh:
            if id(diag) not in self.kept:
                if _key(diag) in self.template_errors:
                    continue
                self.template_errors.add(_key(diag))
                self.kept.add(id(diag))
            if note is not None:
                diag.notes.append(note)
            self.errors.items.append(diag)

    def _instance(self, block: ast.BlockDef, template: Template, module: Module, env, outer: Scope) -> None:
        env = dict(env)
        if template.expansion is not None:
            env["expansion"] = template.expansion
        inner = Scope(module, env, outer.current, in_template=True)
        known, failures = len(self.errors.items), self.failures
        self.expanding.append(template.name)
        try:
            self._body(block.body, inner)
        finally:
            self.expanding.pop()
        if self.failures > failures:
            self._once_per_template(known, module, outer)
            raise _Reported  # and the other instances of this statement are not built
        if inner.current is inner.input:
            raise error("E0117", f"block `{block.name.text}` has no ops", block.name.span, "empty block")
        outer.created.extend(inner.created)
        outer.current = inner.current


def _upstream(ir: IR, source: Node, end: Node) -> bool:
    """Whether `end` is computed from `source` (a tensor that only lends its size does not count)."""
    seen, stack = {end}, [end]
    while stack:
        node = stack.pop()
        if node is source:
            return True
        for operand in ir.operands(node)[: node.op.value_operands()]:
            if operand.id >= source.id and operand not in seen:  # an older node cannot be computed from it
                seen.add(operand)
                stack.append(operand)
    return False


def _between(ir: IR, candidates: list[Node], end: Node) -> list[Node]:
    """The nodes of `candidates` that `end` reads, directly or through others of them."""
    pool = set(candidates)
    found, stack = {end} & pool, [end]
    while stack:
        for operand in ir.operands(stack.pop()):
            if operand in pool and operand not in found:
                found.add(operand)
                stack.append(operand)
    return [node for node in candidates if node in found]


def _check_numbering(shown: str, name: str, taken: Collection[str], span: Span, what: str) -> None:
    """`name`, a new member of a group (`shown` is its whole path) whose members so far are `taken`: not
    taken, and numbered 0, 1, 2, … in order or named, as they are (an nn.Sequential or ModuleList, or not)."""
    group = shown.rpartition(".")[0]
    if name in taken:
        raise error("E0104", f"`{shown}` is defined twice in this scope", span, "second definition")
    if taken and name.isdigit() != all(member.isdigit() for member in taken):
        raise error(
            "E0124",
            f"`{shown}`: a group's members are all numbered or all named",
            span,
            "a number among names" if name.isdigit() else "a name among numbers",
            f"number a group's {what}s 0, 1, 2, … in order, or give every member a name",
        )
    if name.isdigit() and name != str(len(taken)):
        raise error(
            "E0124",
            f"`{shown}`: the next {what} of group `{group}` is `{group}.{len(taken)}`",
            span,
            f"expected `{group}.{len(taken)}`",
            f"number a group's {what}s 0, 1, 2, … in order",
        )


def _key(diag: Diagnostic) -> tuple:
    span = (diag.span.source.name, diag.span.start, diag.span.end) if diag.span else None
    return (diag.code, diag.message, span)


# The settings a generated network takes as constructor arguments (`num_classes`, `in_chans`).
NETWORK_ARGUMENTS = {"classes", "in_channels"}


class _Reported(Exception):
    """Stops a statement whose errors are already collected."""


def _input_shape(stmt: ast.InputStmt) -> tuple[int, ...]:
    shape = stmt.shape
    if len(shape) != 3:
        raise error(
            "E0112",
            "the input shape is channels x height x width",
            stmt.span,
            f"{len(shape)} dimensions",
            "for example `input 3x224x224`",
        )
    if min(shape) < 1:
        raise error("E0112", "input dimensions must be at least 1", stmt.span, "a zero dimension")
    return shape


def _or(choices: str) -> str:
    """`true, false` → `true or false`; `true, false, post` → `true, false or post`."""
    head, _, last = choices.rpartition(", ")
    return f"{head} or {last}"


def _arg_span(given: dict[str, ast.Arg], name: str, stmt: ast.CallStmt) -> Span:
    return given[name].value.span if name in given else stmt.span


def _match_args(args, names: list[str], stmt, lookup, positional_ok: bool = True) -> dict[str, ast.Arg]:
    """Pair call arguments with parameter names: positional first, then keywords."""
    given: dict[str, ast.Arg] = {}
    positional = [a for a in args if a.name is None]
    callee = stmt.callee.text
    seen_keyword = False
    for arg in args:
        if arg.name is None and seen_keyword:
            raise error("E0102", "a positional argument follows a keyword argument", arg.span, "move it first")
        seen_keyword |= arg.name is not None
    if positional and not positional_ok:
        raise error(
            "E0102",
            "`first(...)` takes keyword arguments only",
            positional[0].span,
            "positional",
            "for example `first(stride=2)`",
        )
    if len(positional) > len(names):
        raise error(
            "E0102",
            f"`{callee}` takes at most {len(names)} positional arguments, got {len(positional)}",
            positional[len(names)].span,
            "extra argument",
        )
    for name, arg in zip(names, positional, strict=False):  # fewer arguments than parameters
        given[name] = arg
    for arg in args:
        if arg.name is None:
            continue
        name = lookup(arg.name.text)
        if name is None:
            close = difflib.get_close_matches(arg.name.text, names, n=1)
            raise error(
                "E0102",
                f"`{callee}` has no argument `{arg.name.text}`",
                arg.name.span,
                "unknown argument",
                f"did you mean `{close[0]}`?" if close else "arguments: " + ", ".join(names),
            )
        if name in given:
            raise error("E0102", f"`{callee}` argument `{name}` is given twice", arg.span, "repeated argument")
        given[name] = arg
    return given


__all__ = ["lower"]


def _is_stage(stmt: object) -> bool:
    """Whether a statement makes a stage (`x N`, or a `seq` of block calls): a group may number it."""
    if isinstance(stmt, ast.CallStmt):
        return stmt.repeat is not None
    return isinstance(stmt, ast.SeqStmt) and all(call.callee.text not in SPEC_OPS for call in stmt.body)
