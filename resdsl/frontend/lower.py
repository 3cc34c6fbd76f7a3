"""AST → IR: bind settings, apply --set overrides, expand block templates and repeats.

Lowering only builds the graph; shapes, norm placement and shortcut
projections are the passes' work.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field

import networkx as nx

from ..diagnostics import Collector, ResdslError, Span, error
from ..ir import ops as irops
from ..ir.graph import POLICY_DEFAULTS, Instance, TemplateInfo, add_node, new_graph
from ..limits import Limits
from . import ast
from .expr import Value, describe, evaluate, is_literal, render
from .loader import Program
from .names import check_name
from .policies import (
    NORM_ORDERS,
    POLICY_VALUES,
    closest_value,
    parse_int,
    parse_number,
    parse_shape,
    policy_allows,
    policy_choices,
)


@dataclass
class Settings:
    name: str
    input_shape: tuple[int, int, int]
    classes: int
    policies: dict[str, str]
    env: dict[str, Value]


@dataclass
class Scope:
    """The state of lowering one body: a network's, or one block instance's."""

    prefix: str  # module path prefix, "" or "layer1.0."
    env: dict[str, Value]
    input: int
    block: str | None = None
    template: str | None = None
    symbols: dict[str, str] | None = None  # spec name → Python name, inside templates
    current: int = -1
    names: dict[str, int] = field(default_factory=dict)
    created: list[int] = field(default_factory=list)
    adds: int = 0
    auto_names: int = 0
    # Network level only: the stride so far and the dilation that replaces
    # stride past the `output_stride` policy.
    total_stride: int = 1
    dilation: int = 1
    explicit: set[str] = field(default_factory=set)  # every name the body's statements give

    def __post_init__(self) -> None:
        self.current = self.input

    def auto_name(self, base: str) -> str:
        """`conv_1`, `conv_2`, ...: a name for an unnamed layer that no statement in the body uses."""
        while True:
            self.auto_names += 1
            name = f"{base}_{self.auto_names}"
            if name not in self.explicit:
                return name


def lower(program: Program, overrides: dict[str, str] | None = None, limits: Limits | None = None) -> nx.DiGraph:
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
        self.graph = new_graph(program.network.name.text)
        self.graph.graph["limits"] = limits
        self.errors = Collector()
        self.block_count = 0

    # -- settings -------------------------------------------------------------

    def settings(self) -> Settings:
        network = self.program.network
        shape: tuple[int, ...] | None = None
        classes: int | None = None
        policies = dict(POLICY_DEFAULTS)
        env: dict[str, Value] = {}
        lets: list[ast.LetStmt] = []
        classes_stmt = None
        for stmt in network.body:
            if isinstance(stmt, ast.InputStmt):
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
            elif isinstance(stmt, ast.ClassesStmt):
                classes_stmt = stmt
            elif isinstance(stmt, ast.PolicyStmt):
                policies[stmt.name.text] = self._policy(stmt.name, stmt.value)
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
        set_keys = setting_names(network)
        unknown = sorted(set(self.overrides) - set_keys)
        if unknown:
            raise error(
                "E0301",
                f"--set {unknown[0]}: no such setting in `{network.name.text}`",
                help="settings: " + ", ".join(sorted(set_keys)),
            )
        if "input" in self.overrides:
            shape = parse_shape(self.overrides["input"])
        if "in_channels" in self.overrides:
            shape = (parse_int("in_channels", self.overrides["in_channels"]),) + tuple(shape[1:])
        for key in POLICY_VALUES:
            if key in self.overrides:
                value = self.overrides[key]
                if not policy_allows(key, value):
                    close = closest_value(key, value)
                    hint = f"did you mean `{close}`? " if close else ""
                    raise error("E0301", f"--set {key}={value}: not a {key} policy", help=hint + policy_choices(key))
                policies[key] = value
        policies["norm"] = NORM_ORDERS[policies["norm"]]
        if policies["output_stride"] != "none":
            policies["output_stride"] = str(int(policies["output_stride"]))
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
            check_name(let.name, "setting")
            if let.name.text in self.overrides:
                env[let.name.text] = parse_number(let.name.text, self.overrides[let.name.text])
            else:
                env[let.name.text] = evaluate(let.value, env)
        return Settings(network.name.text, (shape[0], shape[1], shape[2]), classes, policies, env)

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

    def _int(self, expr: ast.Expr, env, what: str, minimum: int | None = 1) -> int:
        value = evaluate(expr, env)
        if isinstance(value, bool) or not isinstance(value, int):
            raise error("E0107", f"{what} must be an integer, got {describe(value)}", expr.span, "not an integer")
        if minimum is not None and value < minimum:
            raise error("E0108", f"{what} must be at least {minimum}, got {value}", expr.span, "out of range")
        return value

    # -- bodies ---------------------------------------------------------------

    def run(self) -> nx.DiGraph:
        settings = self.settings()
        graph = self.graph
        graph.graph.update(
            input_shape=settings.input_shape,
            classes=settings.classes,
            policies=settings.policies,
            source=self.program.module.source.name,
        )
        network = self.program.network
        limit = settings.policies["output_stride"]
        self.output_stride = None if limit == "none" else int(limit)
        start = add_node(graph, irops.Input(), [], span=network.name.span, name="x")
        scope = Scope(prefix="", env=dict(settings.env), input=start)
        self._body(network.body, scope)
        self.errors.raise_if_any()
        if scope.current == start:
            raise error(
                "E0005",
                f"network `{network.name.text}` has no layers",
                network.name.span,
                "nothing after `input`",
                "add ops such as `conv1 = conv(64, k=7, s=2)`",
            )
        return graph

    def _body(self, stmts, scope: Scope) -> None:
        scope.explicit |= {s.target.text for s in stmts if getattr(s, "target", None) is not None}
        for stmt in stmts:
            try:
                self._stmt(stmt, scope)
            except ResdslError as exc:
                # Keep going: later statements may hold independent mistakes.
                self.errors.extend(exc)
            except _Reported:
                pass

    def _stmt(self, stmt, scope: Scope) -> None:
        in_block = scope.template is not None
        if isinstance(stmt, (ast.InputStmt, ast.ClassesStmt, ast.PolicyStmt)):
            if in_block:
                word = {ast.InputStmt: "input", ast.ClassesStmt: "classes", ast.PolicyStmt: "policy"}[type(stmt)]
                raise error(
                    "E0114",
                    f"`{word}` belongs in a network, not in a block",
                    stmt.span,
                    "network setting inside a block",
                )
            return  # read by settings()
        if isinstance(stmt, ast.LetStmt):
            if in_block:
                check_name(stmt.name, "value")
                scope.env[stmt.name.text] = evaluate(stmt.value, scope.env)
            return
        if isinstance(stmt, ast.AddStmt):
            self._add(stmt, scope)
            return
        self._call(stmt, scope)

    def _bind_target(self, target: ast.Ident | None, node: int, scope: Scope) -> None:
        if target is None:
            return
        if target.text in scope.names:
            first = self.graph.nodes[scope.names[target.text]]["span"]
            raise error(
                "E0104",
                f"`{target.text}` is defined twice in this scope",
                target.span,
                "second definition",
                f"the first is at {first.location}",
            )
        scope.names[target.text] = node

    def _new(self, scope: Scope, op, operands, span, **attrs) -> int:
        self.limits.check("nodes", self.graph.graph["next_id"] + 1, "the number of ops", span)
        node = add_node(self.graph, op, operands, span=span, block=scope.block, template=scope.template, **attrs)
        scope.created.append(node)
        scope.current = node
        return node

    def _add(self, stmt: ast.AddStmt, scope: Scope) -> None:
        name = stmt.operand.text
        if name == "input":
            other = scope.input
        elif name in scope.names:
            other = scope.names[name]
        else:
            close = difflib.get_close_matches(name, [*scope.names, "input"], n=1)
            raise error(
                "E0205",
                f"no tensor named `{name}` to add",
                stmt.operand.span,
                "unknown tensor",
                f"did you mean `{close[0]}`?" if close else "add `input` or a name defined earlier in this body",
            )
        if other == scope.current:
            raise error(
                "E0206",
                f"`add {name}` adds a tensor to itself",
                stmt.span,
                "no residual branch",
                "the add needs ops between the tensor and this point",
            )
        start = scope.created.index(other) + 1 if other in scope.created else 0
        branch = scope.created[start:]
        if stmt.target is not None:
            check_name(stmt.target, "tensor")
        node = self._new(
            scope,
            irops.Add(),
            [scope.current, other],
            stmt.span,
            name=stmt.target and stmt.target.text,
            add_index=scope.adds,
        )
        scope.adds += 1
        for member in branch:
            if self.graph.nodes[member]["branch"] is None:
                self.graph.nodes[member]["branch"] = node
        self._bind_target(stmt.target, node, scope)

    def _call(self, stmt: ast.CallStmt, scope: Scope) -> None:
        callee = stmt.callee.text
        if stmt.target is not None:
            check_name(stmt.target, "layer")
        if callee in irops.SIGNATURES:
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
            if scope.template is not None:
                raise error(
                    "E0116",
                    f"block `{callee}` is used inside a block",
                    stmt.callee.span,
                    "blocks cannot call blocks",
                    "call both blocks from the network body",
                )
            node = self._blocks(stmt, self.program.blocks[callee], scope)
            self._bind_target(stmt.target, node, scope)
            return
        options = [*irops.SIGNATURES, *self.program.blocks]
        close = difflib.get_close_matches(callee, options, n=1)
        help_text = (
            f"did you mean `{close[0]}`?"
            if close
            else (
                "ops: "
                + ", ".join(irops.SIGNATURES)
                + "; blocks: "
                + (", ".join(sorted(self.program.blocks)) or "none")
            )
        )
        if not close and not self.program.blocks:
            help_text += ' (`use "std/blocks.res"` brings basic and bottleneck)'
        raise error("E0101", f"unknown op or block `{callee}`", stmt.callee.span, "not defined", help_text)

    # -- ops ----------------------------------------------------------------

    def _op(self, stmt: ast.CallStmt, scope: Scope) -> int:
        callee = stmt.callee.text
        signature = irops.SIGNATURES[callee]
        given = _match_args(
            stmt.args or (),
            [a.name for a in signature.args],
            stmt,
            lookup=lambda n: (s := signature.lookup(n)) and s.name,
        )
        values: dict[str, object] = {}
        exprs: dict[str, str] = {}
        for spec in signature.args:
            if spec.name in given:
                arg = given[spec.name]
                values[spec.name] = self._typed(arg.value, scope.env, spec, callee)
                if scope.symbols is not None and not is_literal(arg.value):
                    exprs[spec.name] = render(arg.value, scope.symbols)
            elif spec.default is irops.REQUIRED:
                raise error(
                    "E0103",
                    f"`{callee}` needs its `{spec.name}` argument",
                    stmt.span,
                    f"`{spec.name}` missing",
                    _signature_text(callee, signature),
                )
            else:
                values[spec.name] = spec.default
        if "padding" in values and values["padding"] is None:
            values["padding"] = irops.default_padding(callee, values)
            if "kernel" in exprs or "dilation" in exprs:  # the padding follows symbolic arguments
                exprs["padding"] = _padding_source(callee, values, exprs)
        if "stride" in values and values["stride"] is None:  # pools stride by their kernel
            values["stride"] = values["kernel"]
            if "kernel" in exprs:
                exprs["stride"] = exprs["kernel"]
        for width in ("out_channels", "out_features"):
            if width in values:
                count = values[width]
                assert isinstance(count, int)  # _typed checked it
                self.limits.check("channels", count, f"`{callee}` argument `{width}`", _arg_span(given, width, stmt))
        if "kernel" in values:
            kernel = values["kernel"]
            assert isinstance(kernel, int)
            self.limits.check("spatial", kernel, f"`{callee}` kernel size", _arg_span(given, "kernel", stmt))
        node_attrs = {name: values.pop(name) for name in signature.node_args}
        op = signature.make(**values)
        name = stmt.target.text if stmt.target else None
        path = None
        if op.has_params:
            if name is None:
                name = scope.auto_name(callee)
            path = scope.prefix + name
        if "norm" in node_attrs:
            node_attrs["auto_norm"] = node_attrs.pop("norm")
        if scope.template is None and hasattr(op, "stride"):
            scope.total_stride *= op.stride
            if self.output_stride is not None and scope.total_stride > self.output_stride:
                raise error(
                    "E0121",
                    f"output_stride {self.output_stride} is below the stride {scope.total_stride} reached here",
                    stmt.span,
                    "this op strides past the limit",
                    "only block stages can trade stride for dilation; raise output_stride",
                )
        return self._new(scope, op, [scope.current], stmt.span, name=name, path=path, exprs=exprs, **node_attrs)

    def _typed(self, expr: ast.Expr, env, spec: irops.ArgSpec, callee: str):
        if isinstance(expr, ast.Var) and expr.name in spec.words and expr.name not in env:
            return expr.name
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
            return self._int(expr, env, f"`{callee}` argument `{spec.name}`", spec.minimum)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise error(
                "E0107",
                f"`{callee}` argument `{spec.name}` is a number, got {describe(value)}",
                expr.span,
                "not a number",
            )
        if not math.isfinite(value) or abs(value) > 10**18:
            raise error("E0108", "number too large", expr.span, "this overflows")
        if spec.name == "p" and not 0 <= value < 1:
            raise error("E0108", f"dropout probability must be in [0, 1), got {value}", expr.span, "out of range")
        return float(value)

    # -- blocks -------------------------------------------------------------

    def _template_info(self, block: ast.BlockDef) -> TemplateInfo:
        templates = self.graph.graph["templates"]
        if block.name.text not in templates:
            symbols = {p.name.text: p.name.text for p in block.params}
            params: list[tuple[str, str | None]] = []
            for p in block.params:
                check_name(p.name, "block parameter")
                if p.default is None and params and params[-1][1] is not None:
                    raise error(
                        "E0118",
                        f"parameter `{p.name.text}` without a default follows one with a default",
                        p.span,
                        "needs a default",
                        "put parameters with defaults last",
                    )
                if p.default is not None:
                    evaluate(p.default, {})  # defaults are constants, as in the generated Python signature
                params.append((p.name.text, None if p.default is None else render(p.default, symbols)))
            lets = []
            if block.expansion is not None:
                symbols["expansion"] = "self.expansion"
            for stmt in block.body:
                if isinstance(stmt, ast.LetStmt):
                    check_name(stmt.name, "value")
                    lets.append((stmt.name.text, _render_checked(stmt.value, symbols)))
                    symbols[stmt.name.text] = stmt.name.text
            expansion = None
            if block.expansion is not None:
                expansion = self._int(block.expansion, {}, "expansion")
            templates[block.name.text] = TemplateInfo(block.name.text, params, lets, expansion, block.name.span)
        return templates[block.name.text]

    def _blocks(self, stmt: ast.CallStmt, block: ast.BlockDef, scope: Scope) -> int:
        info = self._template_info(block)
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
        target = stmt.target.text if stmt.target else None
        if target is None:
            target = scope.auto_name(block.name.text)
        base = scope.prefix + target
        paths = []
        for index in range(count):
            self.block_count += 1
            self.limits.check("blocks", self.block_count, "the number of block instances", stmt.span)
            path = f"{base}.{index}" if stmt.repeat is not None else base
            call_args = {**args, **first} if index == 0 else args
            if self.output_stride is not None:
                call_args = self._dilate(block, call_args, stmt, scope)
            explicit = [p for p in params if p in call_args]
            env = self._bind(block, call_args, stmt)
            self._instance(block, info, path, env, explicit, stmt, scope)
            paths.append(path)
        if stmt.repeat is not None:
            self.graph.graph["stages"][base] = paths
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

    def _instance(self, block, info: TemplateInfo, path: str, env, explicit, stmt, outer: Scope) -> None:
        args = dict(env)
        if info.expansion is not None:
            env["expansion"] = info.expansion
        symbols = {p: p for p in env}
        if info.expansion is not None:
            symbols["expansion"] = "self.expansion"
        for name, _ in info.lets:
            symbols[name] = name
        inner = Scope(
            prefix=path + ".", env=env, input=outer.current, block=path, template=block.name.text, symbols=symbols
        )
        first_node = self.graph.graph["next_id"]
        known = len(self.errors.items)
        self._body(block.body, inner)
        if len(self.errors.items) > known:
            raise _Reported  # the template's mistakes are reported once, not once per repetition
        if inner.current == inner.input:
            raise error("E0117", f"block `{block.name.text}` has no ops", block.name.span, "empty block")
        instance = Instance(
            path, block.name.text, args, explicit, stmt.span, list(range(first_node, self.graph.graph["next_id"]))
        )
        self.graph.graph["instances"][path] = instance
        outer.created.extend(inner.created)
        outer.current = inner.current


def _padding_source(callee: str, values: dict, exprs: dict[str, str]) -> str:
    """Python source of the default padding, in the template's terms (see ops.default_padding)."""

    def atom(src: str) -> str:
        return src if src.isidentifier() or src.isdigit() else f"({src})"

    kernel = atom(exprs["kernel"]) if "kernel" in exprs else None
    if callee != "conv":
        return f"({kernel} - 1) // 2"
    dilation = atom(exprs.get("dilation", repr(values["dilation"])))
    if kernel is None:
        half = values["kernel"] // 2
        return dilation if half == 1 else f"{half} * {dilation}"
    return f"{kernel} // 2 * {dilation}" if dilation != "1" else f"{kernel} // 2"


class _Reported(Exception):
    """Stops a statement whose errors are already collected."""


def _arg_span(given: dict[str, ast.Arg], name: str, stmt: ast.CallStmt) -> Span:
    return given[name].value.span if name in given else stmt.span


def _render_checked(expr: ast.Expr, symbols: dict[str, str]) -> str:
    try:
        return render(expr, symbols)
    except KeyError as exc:
        raise error("E0105", f"unknown name `{exc.args[0]}`", expr.span, "not defined here") from None


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


def _signature_text(callee: str, signature: irops.OpSignature) -> str:
    parts = []
    for spec in signature.args:
        parts.append(spec.name if spec.default is irops.REQUIRED else f"{spec.name}={_show(spec.default)}")
    return f"usage: {callee}({', '.join(parts)})"


def _or(choices: str) -> str:
    """`true, false` → `true or false`; `true, false, post` → `true, false or post`."""
    head, _, last = choices.rpartition(", ")
    return f"{head} or {last}"


def _show(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return "auto" if value is None else str(value)


__all__ = ["lower"]
