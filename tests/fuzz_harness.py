"""The forked, memory-bounded fuzzing harness: every input checked, built, imported and run in its own process.

Each input is a spec (text or raw bytes) from one of five generators: mutated
bundled specs, random networks, targeted attacks, token soup, and arbitrary
bytes. It runs in a child forked from this process (resdsl and PyTorch already
imported), whose address space and CPU time are bounded; the parent keeps a
wall-clock timeout. The child

1. runs `resdsl check SPEC` with `--error-format json` and in human format:
   it must exit 0 or 1, and every error must have a code, a message and a
   location (errors about the spec file itself excepted);
2. runs `resdsl build SPEC`, which must agree with `check` (the same exit
   code, the same error codes; E0211 is build-only);
3. imports the generated file, instantiates its `Model` and runs it forward on
   random input, in eval mode and (when cheap) in training mode. A network
   past the harness's run budget (`RUN_BUDGET`) is not run: it is counted as
   "too large to run here".

An outcome is one of: compiled and ran; refused (a resdsl error); too large to
run here; and the failures: crash (exit 3, a Python exception, a death by
signal, or a malformed error report), hang (no answer in time), broken
(`check` accepted what `build`, import or the forward pass failed on).

The long run, documented in docs/errors.md:

    .venv/bin/python tests/fuzz_harness.py --inputs 20000 --jobs 2 --save fuzz-failures

tests/test_fuzz.py runs a short one in the suite.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import random
import re
import resource
import select
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC_TEXTS = [p.read_text() for p in sorted((ROOT / "specs").glob("*.res"))]
STD_TEXT = (ROOT / "resdsl" / "std" / "blocks.res").read_text()

# What the harness runs forward: larger networks are checked and built, not run.
RUN_BUDGET = {"params": 100_000_000, "macs": 5_000_000_000, "activations": 64_000_000}
MEMORY_BYTES = 4 * 2**30  # address space a child may add to what it inherits
CPU_SECONDS = 150  # a child's CPU time
WALL_SECONDS = 180  # the parent's timeout for one input
CHECK_SECONDS = 10  # the goal for `resdsl check` within the default limits (reported, not enforced)
OUTCOMES = ("ran", "refused", "too large to run", "crash", "hang", "broken")
FAILURES = ("crash", "hang", "broken")

# -- inputs -----------------------------------------------------------------------------

NUMBERS = [
    "0", "1", "2", "3", "4", "7", "8", "16", "64", "-1", "255", "1000", "65535", "65536", "65537",
    "100000", "1000000", "2147483647", "2147483648", "4294967296", "999999999999999999",
    "1000000000000000000", "9" * 19, "10" * 20, "0.0", "0.5", "1.5", "1.0", "0.000001", "99999.9",
    "\u0663", "\uff16\uff14", "1_000",
]  # fmt: skip
NAMES = [
    "class", "def", "import", "lambda", "None", "True", "self", "__init__", "__class__", "__import__",
    "forward", "training", "state_dict", "x", "out", "identity", "identity2", "preact", "t1", "downsample",
    "downsample2", "torch", "nn", "F", "super", "inplanes", "expansion", "SqueezeExcite", "Model", "Basic",
    "Bottleneck", "Net", "layer1", "bn1", "conv1", "fc", "relu", "input", "classes", "add", "use", "x" * 300,
    "_", "_x", "inf", "nan", "exec", "int", "float", "max",
]  # fmt: skip
STATEMENTS = [
    "batchnorm(eps=0)", "batchnorm(eps=0.000001, momentum=1)", "batchnorm(momentum=1.5)", "relu", "gap",
    "flatten", "linear(10)", "linear(1, bias=false)", "dropout(p=0.99)", "dropout(p=1)", "se",
    "se(reduction=1000, divisor=1)", "se(reduction=1, divisor=65536)", "maxpool(k=2, s=2147483648)",
    "maxpool(k=3, s=2, p=1, ceil=true)", "avgpool(k=3, s=3, ceil=true, count_pad=false)",
    "avgpool(k=2, s=65536)", "conv(8, k=3, p=10000)", "conv(8, k=1, groups=8)", "conv(8, k=3, d=4)",
    "conv(8, k=3, s=65536)", "conv(65536, k=1)", "let SqueezeExcite = 4", "add input", "x = add input",
    "groupnorm(groups=3)", "groupnorm(eps=0)", "blurpool", "blurpool(s=1, filt=2)", "blurpool(s=65536)", "eca",
    "eca(k=4)", "eca(k=65537)", "eca(gamma=0)", "drop_path(0.2)", "drop_path(1)", "gelu", "silu", "relu6",
    "sigmoid", "mul input", "se(rd_ratio=0.25)", "se(rd_ratio=0)", "se(16, rd_ratio=0.5)",
    "se(rd_channels=4, act=silu)", "se(rd_channels=0)", "se(rd_channels=4, divisor=4)", "se(act=gelu)",
    "s = seq { conv(8, k=3); relu }", "s = seq { gap; flatten }", "let EcaModule = 2", "let BlurPool2d = 3",
    "std_conv(8, k=3)", "std_conv(8, k=3, eps=0)", "std_conv(8, k=1, eps=1e-8)", "pad(1)", "pad(p=65536)",
    "pad(1, value=-1)", "evonorm_s0", "evonorm_s0(groups=3)", "evonorm_s0(group_size=8, act=false)",
    "evonorm_s0(eps=0)", "frn", "frn(eps=0)", "frn(act=false)", "let StdConv2d = 2", "let EvoNorm2dS0 = 1",
    "layernorm", "layernorm(eps=0)", "channels_last", "channels_first", "channels_last\n  linear(8)\n  channels_first",
    "channels_last\n  layernorm\n  channels_first", "gamma = layer_scale", "layer_scale(init=0)", "layer_scale(1e-6)",
    "let LayerNorm2d = 1", "let gamma = 2", "hard_swish", "hard_swish(2)", "upsample(2)",
    "upsample(2, mode=bilinear)", "upsample(65536)", "upsample(to=input)", "conv_transpose(8, k=2, s=2)",
    "conv_transpose(8, k=3, s=65536)", "concat input", "c = concat input", "lat = conv(8, k=1) from input",
    "add input from input", "return input", "let upsample = 2", "a, b = split", "a, b, c = split", "a = split",
    "x1, x2 = split from input", "softmax(2)", "softmax(3)", "softmax(65536)", "select input, input",
    "s = select a, b", "convs.0 = conv(8, k=1)", "attn.fc = conv(8, k=1)", "let chunk = 2",
]  # fmt: skip
USE_PATHS = [
    "std/blocks.res", "/proc/self/environ", "../secret.res", "/etc/passwd", "/dev/zero", "std/" + "x" * 300 + ".res",
    "std/../grammar.lark", "missing.res", "", ".", "..", "net.res",
]  # fmt: skip
TOKENS = [
    "network", "block", "use", "input", "classes", "policy", "let", "add", "x", "first", "true", "false", "{", "}",
    "(", ")", ",", "=", ";", "+", "-", "*", "//", "%", "/", "\n", "3x32x32", "conv", "relu", "gap", "flatten",
    "linear", "maxpool", "avgpool", "batchnorm", "dropout", "se", "basic", "bottleneck", "k", "s", "p", "norm",
    "shortcut", "pre", "B", "A", "C", '"std/blocks.res"', "#", "input", "stride", "planes", "n", "16", "2",
    "seq", "mul", "groupnorm", "blurpool", "eca", "drop_path", "gelu", "silu", "expansion", "relu6", "std_conv",
    "pad", "evonorm_s0", "frn", "drop", "value", "eps", "act", "layernorm", "layer_scale", "channels_last",
    "channels_first", "gamma", "init", "from", "return", "concat", "upsample", "conv_transpose", "to", "mode",
    "split", "select", "softmax", "convs.0", "paths.1", "attn.fc",
]  # fmt: skip
TOKEN = re.compile(r'\s+|#[^\n]*|"[^"\n]*"|\d+(?:x\d+)+|\d+\.\d*|\d+|[A-Za-z_]\w*|//|.', re.S)
JUNK = ["\x00", "\x1b[2J", "\x07", "\u202e", "\r", "\t", "\ufeff", "é", "\u0663", "\\", '"', '"""', "{", "}"]


def _number(rng: random.Random, edge: float = 0.2) -> str:
    """A small integer, or with probability `edge` a number from the edges (huge, zero, negative, float, foreign)."""
    if rng.random() >= edge:
        return str(rng.choice([1, 1, 2, 2, 3, 4, 4, 8, 8, 16, 16, 32, 64]))
    return rng.choice(NUMBERS)


POLICIES = {
    "norm": ["post", "pre", "none", "bn_after_add", "relu_before_add", "relu_preact"],
    "shortcut": ["A", "B", "C", "drop", "none"],
    "projection": ["conv", "avgpool"],
    "output_stride": ["none", "2", "4", "8", "16"],
    "zero_init_last": ["true", "false"],
    "norm_op": ["batchnorm", "groupnorm", "evonorm_s0", "frn", "evonorm_s0(groups=3)", "layernorm"],
    "act": ["relu", "gelu", "silu", "relu6", "sigmoid", "hard_swish"],
    "attn": ["none", "se", "eca"],
    "aa": ["none", "blurpool", "avgpool"],
    "down_kernel": ["1", "3", "5", "2"],
    "norm_name": ["bn", "norm"],
    "final_norm": ["true", "false"],
    "projection_names": ["numbered", "named", "named_last"],
    "conv_op": ["conv", "std_conv", "std_conv(eps=1e-8)", "std_conv(eps=0)"],
    "shortcut_module": ["downsample", "shortcut"],
    "init": ["he", "trunc_normal"],
}
MUTATIONS = {"number": 4, "statement": 4, "policy": 2, "input": 2, "name": 1, "delete": 1, "duplicate": 1,
             "swap": 1, "insert": 1, "truncate": 0.5, "crlf": 0.5, "tabs": 0.5}  # fmt: skip


def _mutate_tokens(rng: random.Random, toks: list[str], kind: str) -> None:
    """Apply a token-level mutation `kind` to `toks` in place."""
    sig = [i for i, t in enumerate(toks) if not t.isspace()]
    if kind == "delete":
        toks[rng.choice(sig)] = ""
    elif kind == "duplicate":
        i = rng.choice(sig)
        toks[i] = toks[i] + " " + toks[i]
    elif kind == "swap":
        i, j = rng.choice(sig), rng.choice(sig)
        toks[i], toks[j] = toks[j], toks[i]
    elif kind in ("number", "name"):
        pattern, values = (r"[\d.x]+", None) if kind == "number" else (r"[A-Za-z_]\w*", NAMES)
        found = [i for i in sig if re.fullmatch(pattern, toks[i])]
        if found:
            toks[rng.choice(found)] = _number(rng) if values is None else rng.choice(values)
    elif kind == "insert":
        toks.insert(rng.randint(0, len(toks)), rng.choice(JUNK + TOKENS))
    elif kind in ("statement", "policy"):
        anchor = "{" if kind == "statement" else "network"
        start = toks.index(anchor) if anchor in toks else len(toks)
        lines = [i for i, t in enumerate(toks) if "\n" in t and i > start]
        if kind == "statement":
            if lines:
                toks.insert(rng.choice(lines) + 1, "  " + rng.choice(STATEMENTS) + "\n")
            return
        policy = rng.choice(list(POLICIES))
        value = rng.choice(POLICIES[policy] + ["3", "D"])
        toks.insert(rng.choice(lines or [0]) + 1, f"  policy {policy} = {value}\n")


def _mutate_text(rng: random.Random, text: str, kind: str) -> str:
    """Apply a text-level mutation `kind` (or none) to `text`."""
    if kind == "truncate":
        return text[: rng.randint(0, len(text))]
    if kind == "input":
        return re.sub(r"input \S+", f"input {_number(rng)}x{_number(rng)}x{_number(rng)}", text, count=1)
    if kind == "crlf":
        return text.replace("\n", "\r\n")
    if kind == "tabs":
        return text.replace("  ", "\t")
    return text


def _mutated(rng: random.Random) -> str | bytes:
    text = rng.choice(SPEC_TEXTS)
    for _ in range(rng.randint(1, 2)):
        toks = TOKEN.findall(text)
        kind = rng.choices(list(MUTATIONS), list(MUTATIONS.values()))[0]
        _mutate_tokens(rng, toks, kind)
        text = _mutate_text(rng, "".join(toks), kind)
    if rng.random() < 0.9:
        return text
    data = text.encode("utf-8")
    at = rng.randint(0, len(data))
    return (
        data[:at]
        + rng.choice([b"\x00", b"\xff", b"\xc3(", b"\xed\xa0\x80", bytes(rng.randrange(256) for _ in range(8))])
        + data[at:]
    )


BLOCK_ENDS = ["  add input", "  conv(c, k=1)\n  add input", "  add a", "  relu", "  t = add input\n  relu",
              "  concat input", "  u = upsample(2) from a\n  d = conv(c, k=3, s=2)",
              # Res2Net's hierarchy of pieces, a selective kernel's weighted paths, a named group's members.
              "  s1, s2 = split\n  convs.0 = conv(c // 2, k=3)\n  add s2\n  convs.1 = conv(c // 2, k=3)\n"
              "  concat convs.0\n  add input",
              "  x1, x2 = split\n  paths.0 = conv(c, k=3)\n  paths.1 = conv(c, k=3, d=2) from x2\n  add paths.0\n"
              "  gap\n  attn.fc = conv(c * 2, k=1)\n  softmax(2)\n  select paths.0, paths.1",
              "  gap\n  attn.fc1 = conv(c, k=1, bias=true)\n  attn.gate = sigmoid\n  mul input"]  # fmt: skip
SPATIAL_OPS = ["conv", "conv", "conv", "batchnorm", "relu", "maxpool", "avgpool", "gap", "flatten", "dropout", "se",
               "groupnorm", "blurpool", "eca", "drop_path", "gelu", "silu", "relu6", "std_conv", "pad", "evonorm_s0",
               "frn", "layernorm", "layer_scale", "channels_last", "channels_first", "hard_swish"]  # fmt: skip
BLOCK_OPS = SPATIAL_OPS[:5] + ["se", "eca", "gelu", "drop_path", "relu6", "std_conv", "evonorm_s0", "frn", "layernorm",
                               "layer_scale", "channels_last", "channels_first"]  # fmt: skip
FLAT_OPS = ["linear", "linear", "relu", "dropout", "flatten"]


def _conv(rng: random.Random, n) -> str:
    args = [n(), f"k={rng.choice(['1', '3', '3', '5', '7', n()])}"]
    for name in ("s", "p", "groups", "d"):
        if rng.random() < 0.25:
            args.append(f"{name}={n()}")
    if rng.random() < 0.2:
        args.append(f"bias={rng.choice(['true', 'false'])}")
    if rng.random() < 0.1:
        args.append("norm=false")
    return f"conv({', '.join(args)})"


def _pool(rng: random.Random, n, kind: str) -> str:
    args = [f"k={rng.choice(['1', '2', '3', n()])}"]
    for name in ("s", "p"):
        if rng.random() < 0.5:
            args.append(f"{name}={n() if name == 's' else rng.choice(['0', '1', n()])}")
    if rng.random() < 0.3:
        args.append(f"ceil={rng.choice(['true', 'false'])}")
    if kind == "avgpool" and rng.random() < 0.3:
        args.append(f"count_pad={rng.choice(['true', 'false'])}")
    return f"{kind}({', '.join(args)})"


def _op(rng: random.Random, kind: str, edge: float) -> str:
    """One op statement of `kind` with random arguments; `edge` is how often a number is an edge case."""

    def n() -> str:
        return _number(rng, edge)

    def edgy(usual: list[str], odd: list[str]) -> str:
        return rng.choice(usual if rng.random() >= edge else odd)

    if kind in ("conv", "std_conv"):
        conv = _conv(rng, n)
        if kind == "conv":
            return conv
        eps = f", eps={edgy(['1e-8', '1e-6', '0.001'], ['0', n()])}" if rng.random() < 0.5 else ""
        return "std_" + conv[:-1] + eps + ")"
    if kind in ("maxpool", "avgpool"):
        return _pool(rng, n, kind)
    ops = {
        "batchnorm": lambda: (
            f"batchnorm(eps={edgy(['0.00001', '0.001', '1.0'], ['0', '0.0', n()])}, "
            f"momentum={edgy(['0', '0.1', '1', '0.9'], ['1.5', n()])})"
        ),
        "linear": lambda: f"linear({n()}{', bias=false' if rng.random() < 0.3 else ''})",
        "dropout": lambda: f"dropout(p={edgy(['0', '0.1', '0.5', '0.99'], ['1', n()])})",
        "se": lambda: rng.choice(
            [
                "se",
                f"se(reduction={n()})",
                f"se(reduction={n()}, divisor={n()})",
                "se(rd_ratio=0.25)",
                f"se(rd_channels={n()}, act={rng.choice(['relu', 'silu'])})",
            ]
        ),
        "groupnorm": lambda: rng.choice(
            ["groupnorm", f"groupnorm(groups={n()})", f"groupnorm(groups={n()}, eps=0.001)"]
        ),
        "blurpool": lambda: rng.choice(
            ["blurpool", f"blurpool(s={n()})", f"blurpool(s={n()}, filt={rng.choice(['2', '3', n()])})"]
        ),
        "eca": lambda: rng.choice(["eca", f"eca(k={rng.choice(['3', '5', n()])})", "eca(gamma=1, beta=2)"]),
        "drop_path": lambda: f"drop_path({edgy(['0', '0.1', '0.5'], ['1', n()])})",
        "pad": lambda: rng.choice([f"pad({n()})", f"pad(p={n()}, value={edgy(['0', '0.5', '-1'], [n()])})"]),
        "evonorm_s0": lambda: rng.choice(
            ["evonorm_s0", f"evonorm_s0(groups={n()})", f"evonorm_s0(group_size={n()})", "evonorm_s0(act=false)"]
        ),
        "frn": lambda: rng.choice(["frn", "frn(act=false)", f"frn(eps={edgy(['0.00001', '0.001'], ['0', n()])})"]),
        "layernorm": lambda: rng.choice(["layernorm", f"layernorm(eps={edgy(['0.000001', '0.001'], ['0', n()])})"]),
        "layer_scale": lambda: rng.choice(
            ["gamma = layer_scale", f"layer_scale(init={edgy(['0.000001', '0.1', '1'], ['0', n()])})"]
        ),
    }
    return ops[kind]() if kind in ops else kind


def _random_network(rng: random.Random) -> str:
    """A plausible small network: random ops (in an order that mostly fits), blocks with residual adds, policies."""
    edge = rng.choice([0.0, 0.02, 0.1])
    lines = []
    blocks = []
    if rng.random() < 0.4:
        lines.append('use "std/blocks.res"')
        blocks += ["basic", "bottleneck", "se_bottleneck"]
    for b in range(rng.randint(0, 2)):
        name = f"b{b}"
        params = ["c", "stride=1"] + (["w=1"] if rng.random() < 0.3 else [])
        body = ["  a = conv(c, k=3, s=stride)"] + [
            f"  {_op(rng, rng.choice(BLOCK_OPS), edge)}" for _ in range(rng.randint(0, 3))
        ]
        if rng.random() < 0.2:  # a block calling a block (nested templates)
            body.insert(1, f"  {rng.choice(blocks or ['conv'])}(c)" if blocks else "  conv(c, k=1)")
        body.append(rng.choice(BLOCK_ENDS))
        lines.append(f"block {name}({', '.join(params)}) {{\n" + "\n".join(body) + "\n}")
        blocks.append(name)
    side = rng.choice([1, 2, 4, 7, 8, 16, 32, 32, 64, 224])
    body = [f"  input {rng.choice([1, 3, 3, 4, 16])}x{side}x{rng.choice([side, side, 5, 9])}"]
    if rng.random() < 0.5:
        body.append(f"  classes {_number(rng, edge)}")
    for _ in range(rng.randint(0, 2)):
        policy = rng.choice(list(POLICIES))
        body.append(f"  policy {policy} = {rng.choice(POLICIES[policy])}")
    flat = False
    for i in range(rng.randint(1, 8)):
        if blocks and not flat and rng.random() < 0.35:
            call = f"{rng.choice(blocks)}({_number(rng, edge)}"
            call += ", stride=2)" if rng.random() < 0.3 else ")"
            repeat = f" x {rng.choice(['1', '2', '3', _number(rng, edge)])}" if rng.random() < 0.5 else ""
            first = " first(stride=2)" if repeat and rng.random() < 0.3 else ""
            body.append(f"  l{i} = {call}{repeat}{first}")
            continue
        kind = rng.choice(FLAT_OPS if flat else SPATIAL_OPS)
        flat = flat or kind == "flatten"
        body.append(f"  {'n' + str(i) + ' = ' if rng.random() < 0.3 else ''}{_op(rng, kind, edge)}")
    if not flat and rng.random() < 0.5:
        body += ["  gap", "  flatten", f"  fc = linear({rng.choice(['classes', '10', _number(rng, edge)])})"]
    lines.append("network net {\n" + "\n".join(body) + "\n}")
    return "\n".join(lines) + "\n"


def _net(*statements: str, shape: str = "3x8x8", head: str = "") -> str:
    """A spec: `head` (uses, blocks), then a network of `statements` on input `shape`."""
    return head + f"network n {{\n  input {shape}\n" + "".join(f"  {s}\n" for s in statements) + "}\n"


def _attack(rng: random.Random) -> str:
    """One of the red team's attacks, with a random variation."""
    std = 'use "std/blocks.res"\n'
    kind = rng.choice(["repeat", "statements", "input", "padding", "batchnorm", "stride", "names", "use", "expr",
                       "template", "se", "deep"])  # fmt: skip
    if kind == "repeat":
        n = rng.choice(["1", "100", "9999", "10000", "10001", "100000", "1000000000", "n", "0", "-1"])
        return _net("let n = 5000", "conv1 = conv(16, k=3)", f"l = basic(16) x {n}", f"m = basic(16) x {n}",
                    shape="3x32x32", head=std)  # fmt: skip
    if kind == "statements":
        count = rng.choice([100, 2000, 19_999, 20_000, 20_001, 30_000])
        return _net(*[rng.choice(["relu", "gap;", "relu;"])] * count)
    if kind == "input":
        shape = "x".join(rng.choice(["1", "3", "224", "4096", "16384", "65536", "65537", "0"]) for _ in range(3))
        return _net("conv(8, k=3)", "gap", "flatten", "fc = linear(10)", shape=shape)
    if kind == "padding":
        kernel = rng.choice(["1", "3"])
        padding = rng.choice(["0", "100", "1000", "5000", "10000", "65536"])
        return _net(f"conv(8, k={kernel}, p={padding})", shape="3x32x32")
    if kind == "batchnorm":
        eps = rng.choice(["0", "0.0", "0.00001", "1.0", "100.5"])
        momentum = rng.choice(["0", "1", "0.5", "1.5", "0.0"])
        return _net(f"batchnorm(eps={eps}, momentum={momentum})")
    if kind == "stride":
        s = rng.choice(["1", "2", "2048", "5793", "9000", "65536", "65537", "2147483647", "2147483648", "4294967296"])
        channels = rng.choice(["3", "64"])
        op = rng.choice([f"maxpool(k=2, s={s})", f"avgpool(k=2, s={s})", f"conv(4, k=3, s={s})",
                         f"conv(4, k=3, d={s}, p={s})"])  # fmt: skip
        return _net(op, shape=f"{channels}x8x8")
    if kind == "names":
        name = rng.choice(NAMES)
        return rng.choice([
            f"block b(c, {name}=1) {{\n  conv(c, k=3)\n  se\n}}\n" + _net("l = b(8)"),
            f"block b(c) {{\n  let {name} = c\n  conv({name}, k=3)\n  se\n}}\n" + _net("l = b(8)"),
            _net(f"{name} = conv(8, k=3)", "se"),
            f"block {name.lower()}(c) {{\n  conv(c, k=3)\n  se\n}}\n" + _net(f"l = {name.lower()}(8)").replace(
                "network n", f"network {name}"
            ),
        ])  # fmt: skip
    if kind == "use":
        return _net("conv(8, k=3)", head=f'use "{rng.choice(USE_PATHS)}"\n')
    if kind == "expr":
        n = rng.choice([10, 100, 1000, 3000, 20000])
        op = rng.choice(["1 + ", "1 * ", "-", "(", "2 // "])
        return _net(f"conv(8, k=3, p={op * n}1{')' * n if op == '(' else ''})")
    if kind == "template":
        body = rng.choice(["conv(c, k=3, bias=1)", "cnov(c)", "conv(c // r, k=1)", "add nothing", "input 3x8x8"])
        calls = [f"l{i} = b(8) x {rng.randint(1, 4)} first(r={rng.choice(['2', '11.2', '0'])})" for i in range(3)]
        return _net(*calls, head=f"block b(c, r=1) {{\n  {body}\n}}\n")
    if kind == "se":
        n = [_number(rng) for _ in range(3)]
        return _net(f"conv({n[0]}, k=1)", f"se(reduction={n[1]}, divisor={n[2]})")
    depth = rng.choice([50, 200, 600])
    norm = rng.choice(["none", "pre", "post"])
    return _net(f"policy norm = {norm}", "conv1 = conv(16, k=3)", f"l = basic(16) x {depth}", "gap", "flatten",
                "fc = linear(10)", shape="3x32x32", head=std)  # fmt: skip


def _soup(rng: random.Random) -> str:
    return " ".join(rng.choice(TOKENS) for _ in range(rng.randint(1, 80)))


def _junk(rng: random.Random) -> str | bytes:
    if rng.random() < 0.5:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 300)))
    return "".join(
        chr(rng.choice([rng.randrange(32, 127), rng.randrange(0x10FFFF)])) for _ in range(rng.randint(0, 200))
    ).encode("utf-8", "surrogatepass")


GENERATORS = {"mutated spec": _mutated, "random network": _random_network, "attack": _attack,
              "token soup": _soup, "arbitrary bytes": _junk}  # fmt: skip
WEIGHTS = [35, 30, 20, 10, 5]


def generate(seed: int, index: int) -> tuple[str, bytes]:
    """Input `index` of the run seeded `seed`: its generator's name and its bytes (reproducible)."""
    rng = random.Random(f"{seed}:{index}")
    kind = rng.choices(list(GENERATORS), WEIGHTS)[0]
    data = GENERATORS[kind](rng)
    return kind, data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")


# -- one input, in a child ----------------------------------------------------------------


def _cli(argv: list[str]) -> tuple[int, str, str]:
    from resdsl.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def _codes(report: str) -> list[str]:
    return [e["code"] for e in json.loads(report)["errors"]]


def _bad_report(report: str, human: str, spec: str) -> str | None:
    """What is wrong with the error reports of a refused spec, if anything."""
    errors = json.loads(report)["errors"]
    if not errors:
        return "no errors listed"
    for item in errors:
        if not re.fullmatch(r"E0\d{3}", item["code"]) or not item["message"]:
            return f"malformed error {item}"
        about_the_file = item["code"] in ("E0109", "E0120") and "spec.res" in item["message"]
        if "location" not in item and not about_the_file:
            return f"unlocated error {item['code']}: {item['message']}"
    if human.count("error[E") != len(errors):
        return "the human report lists other errors than the JSON"
    if any(not c.isprintable() for c in human.replace("\n", "")):
        return "unprintable characters in the human report"
    return None


def _run_forward(source: str, compiled) -> dict:
    import torch

    from resdsl.ir.cost import macs, params

    ir = compiled.ir
    size = {
        "params": sum(params(ir, n) for n in ir),
        "macs": sum(macs(ir, n) for n in ir),
        "activations": max(math.prod(n.shape) for n in ir),
    }
    if any(size[k] > RUN_BUDGET[k] for k in RUN_BUDGET):
        return {"outcome": "too large to run"}
    namespace: dict = {"__name__": "fuzzed_model"}
    exec(compile(source, "model.py", "exec"), namespace)  # noqa: S102 - the generated module, as importing it
    model = namespace["Model"]().eval()
    x = torch.randn(2, *compiled.input_shape)

    def outputs(y) -> list:  # a network with named outputs (`return p2, p3`) returns them in a dict
        return list(y.values()) if isinstance(y, dict) else [y]

    with torch.no_grad():
        ys = outputs(model(x))
    finite = all(bool(torch.isfinite(y).all()) for y in ys)
    if size["macs"] < 500_000_000:  # training mode too, when cheap: BatchNorm's batch statistics, dropout, autograd
        model.train()
        trained = outputs(model(x))
        if all(y.requires_grad for y in trained):  # a network without parameters has nothing to differentiate
            sum(y.sum() for y in trained).backward()
    for y in ys:
        if y.shape[0] != 2:
            return {"outcome": "broken", "why": f"an output has shape {tuple(y.shape)} for a batch of 2"}
    return {"outcome": "ran", "finite": finite}


def run_one(data: bytes, folder: Path) -> dict:
    """Check, build, import and run one input; a dict with its outcome (called in the child)."""
    import resdsl

    spec = folder / "spec.res"
    spec.write_bytes(data)
    result: dict = {}
    start = time.perf_counter()
    check, report, _ = _cli(["check", str(spec), "--error-format", "json"])
    result["check_seconds"] = time.perf_counter() - start
    if check not in (0, 1):
        return {**result, "outcome": "crash", "why": f"check exited {check}"}
    build, build_report, build_err = _cli(
        ["build", str(spec), "-o", str(folder / "model.py"), "--error-format", "json"]
    )
    if check == 1:
        _, _, human = _cli(["check", str(spec)])
        bad = _bad_report(report, human, str(spec))
        if bad:
            return {**result, "outcome": "crash", "why": bad}
        codes = _codes(report)
        result["codes"] = sorted(set(codes))
        if build != 1 or _codes(build_report) != codes:
            return {**result, "outcome": "crash", "why": f"check refused ({codes}) but build exited {build}"}
        return {**result, "outcome": "refused"}
    if build == 1 and set(_codes(build_report)) == {"E0211"}:
        return {**result, "outcome": "refused", "codes": ["E0211"]}
    if build != 0:
        return {**result, "outcome": "broken", "why": f"check accepted, build exited {build}: {build_err[-500:]}"}
    compiled = resdsl.compile(spec)
    try:
        return {**result, **_run_forward((folder / "model.py").read_text(), compiled)}
    except Exception as exc:  # noqa: BLE001 - what the harness is looking for
        return {**result, "outcome": "broken", "why": f"{type(exc).__name__}: {exc}"[:2000]}


def _child(data: bytes, write_fd: int) -> None:
    """The forked child: bound itself, run the input, write its outcome as JSON, exit."""
    try:
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        vm = int(re.search(r"VmSize:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (vm + MEMORY_BYTES, vm + MEMORY_BYTES))
        resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS + 5))
        with tempfile.TemporaryDirectory(prefix="resdsl-fuzz-") as tmp:
            os.chdir(tmp)
            try:
                result = run_one(data, Path(tmp))
            except BaseException as exc:  # noqa: BLE001 - a crash of the compiler or of this harness
                tail = traceback.format_exc()[-3000:]
                result = {"outcome": "crash", "why": f"{type(exc).__name__}: {exc}"[:1000], "traceback": tail}
        with os.fdopen(write_fd, "w") as pipe:
            pipe.write(json.dumps(result))
    finally:
        os._exit(0)


# -- the run --------------------------------------------------------------------------------


@dataclass
class Report:
    counts: Counter = field(default_factory=Counter)
    by_generator: dict = field(default_factory=dict)
    codes: Counter = field(default_factory=Counter)
    failures: list = field(default_factory=list)
    slowest_check: float = 0.0
    slow_checks: int = 0  # `check` past CHECK_SECONDS on a spec within the default limits
    non_finite: int = 0  # networks that ran but whose output held NaN or infinity (reported, not failures)
    seconds: float = 0.0

    def add(self, index: int, kind: str, data: bytes, result: dict) -> None:
        outcome = result["outcome"]
        self.counts[outcome] += 1
        self.by_generator.setdefault(kind, Counter())[outcome] += 1
        self.codes.update(result.get("codes", []))
        seconds = result.get("check_seconds", 0.0)
        self.slowest_check = max(self.slowest_check, seconds)
        self.slow_checks += seconds > CHECK_SECONDS
        self.non_finite += outcome == "ran" and not result.get("finite", True)
        if outcome in FAILURES:
            self.failures.append(
                {"index": index, "generator": kind, **result, "input": data.decode("utf-8", "replace")[:3000]}
            )

    def as_dict(self) -> dict:
        return {
            "inputs": sum(self.counts.values()),
            "outcomes": {o: self.counts.get(o, 0) for o in OUTCOMES},
            "by_generator": {k: dict(v) for k, v in sorted(self.by_generator.items())},
            "error_codes": dict(sorted(self.codes.items())),
            "slowest_check_seconds": round(self.slowest_check, 2),
            "checks_over_10_s": self.slow_checks,
            "ran_with_non_finite_output": self.non_finite,
            "seconds": round(self.seconds, 1),
            "failures": self.failures,
        }


def run(inputs: int | list[bytes], seed: int = 0, jobs: int = 2, start: int = 0, wall_seconds: float = WALL_SECONDS,
        progress: bool = False, save: Path | None = None) -> Report:  # fmt: skip
    """Run inputs `start` ... `start + inputs - 1` of the run seeded `seed` (or the given inputs), `jobs` at a time.

    With `save`, the report so far is written there every 100 inputs (a long run stopped early keeps its counts).
    """
    import torch

    import resdsl

    torch.set_num_threads(1)  # before forking: children must not inherit a thread pool
    resdsl.compile("network warm { input 3x8x8\n conv(4, k=3) }")  # parser tables, in the parent
    report = Report()
    began = time.monotonic()
    given = inputs if isinstance(inputs, list) else None
    count = len(given) if given is not None else inputs
    pending = iter(range(start, start + count))
    # A running child's pipe -> its input's index, generator and bytes, its pid, start time and output so far.
    active: dict[int, tuple[int, str, bytes, int, float, list[bytes]]] = {}
    done = 0
    while True:
        while len(active) < jobs:
            index = next(pending, None)
            if index is None:
                break
            kind, data = ("given", given[index - start]) if given is not None else generate(seed, index)
            read_fd, write_fd = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(read_fd)
                _child(data, write_fd)
            os.close(write_fd)
            active[read_fd] = (index, kind, data, pid, time.monotonic(), [])
        if not active:
            break
        readable, _, _ = select.select(list(active), [], [], 1.0)
        for fd in readable:
            chunk = os.read(fd, 1 << 16)
            if chunk:
                active[fd][5].append(chunk)
                continue
            index, kind, data, pid, _, chunks = active.pop(fd)
            os.close(fd)
            _, status = os.waitpid(pid, 0)
            text = b"".join(chunks).decode()
            if text:
                result = json.loads(text)
            elif os.WIFSIGNALED(status) and os.WTERMSIG(status) in (signal.SIGXCPU, signal.SIGKILL):
                result = {"outcome": "hang", "why": f"killed by signal {os.WTERMSIG(status)} (CPU limit)"}
            else:
                result = {"outcome": "crash", "why": f"the child died without an answer (status {status})"}
            report.add(index, kind, data, result)
            done += 1
            if progress and done % 100 == 0:
                print(f"{done}/{count} {dict(report.counts)} ({time.monotonic() - began:.0f} s)", file=sys.stderr)
            if save is not None and done % 100 == 0:
                report.seconds = time.monotonic() - began
                save.write_text(json.dumps({"seed": seed, "start": start, **report.as_dict()}, indent=2))
        now = time.monotonic()
        for fd, (index, kind, data, pid, t0, _) in list(active.items()):
            if now - t0 > wall_seconds:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                os.close(fd)
                del active[fd]
                report.add(index, kind, data, {"outcome": "hang", "why": f"no answer within {wall_seconds} s"})
                done += 1
    report.seconds = time.monotonic() - began
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description="Fuzz resdsl in forked, memory-bounded processes.")
    parser.add_argument("--inputs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start", type=int, default=0, help="the first input's index (to split a run)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--save", type=Path, help="write the report as JSON here (failures with their inputs)")
    args = parser.parse_args()
    report = run(args.inputs, args.seed, args.jobs, args.start, progress=True, save=args.save).as_dict()
    if args.save:
        args.save.write_text(json.dumps({"seed": args.seed, "start": args.start, **report}, indent=2))
    summary = {k: v for k, v in report.items() if k != "failures"}
    print(json.dumps(summary, indent=2))
    for failure in report["failures"][:20]:
        print(json.dumps(failure)[:2000], file=sys.stderr)
    sys.exit(1 if any(report["outcomes"][f] for f in FAILURES) else 0)


if __name__ == "__main__":
    main()
