"""Property test: for random small specs, the IR, the PyTorch module and ONNX agree.

The specs come from a strategy that writes a block template with parameters
used symbolically (channels, kernels, strides, pool sizes, eps, bias) and a
network that instantiates it with varied arguments, under random norm and
shortcut policies. For each: the module's parameters equal the IR's count,
its output has the IR's shape, and onnxruntime reproduces its output.
"""

from __future__ import annotations

import os

from agreement import assert_backends_agree
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import resdsl

EXAMPLES = int(os.environ.get("RESDSL_DIFF_EXAMPLES", "25"))

BODY_OPS = st.sampled_from(
    [
        "conv1 = conv(c, k=kk)",
        "conv2 = conv(c * 2 // 2, k=3, s=ss)",
        "conv3 = conv(c, k=1, bias=bb)",
        "wide = conv(c, k=3, groups=g, d=dd)",
        "maxpool(k=pk, s=1)",
        "avgpool(k=3, s=1, p=1, count_pad=cp)",
        "batchnorm(eps=ee)",
        "relu",
        "dropout(p=0.25)",
        "se(reduction=2)",
    ]
)


@st.composite
def specs(draw) -> str:
    ops = draw(st.lists(BODY_OPS, min_size=1, max_size=4, unique=True))
    if not any(op.startswith(("conv", "wide")) for op in ops):
        ops.insert(0, "conv1 = conv(c, k=kk)")
    body = "\n  ".join(ops)
    norm = draw(st.sampled_from(["post", "pre", "none", "bn_after_add", "relu_before_add", "relu_preact"]))
    shortcut = draw(st.sampled_from(["A", "B", "C", "none"]))
    projection = draw(st.sampled_from(["conv", "avgpool"]))
    channels = draw(st.sampled_from([4, 8]))
    calls = []
    for index in range(draw(st.integers(1, 3))):
        args = [str(draw(st.sampled_from([4, 8])))]
        for name, values in (
            ("kk", [1, 3]),
            ("ss", [1, 2]),
            ("g", [1, 2]),
            ("dd", [1, 2]),
            ("pk", [1, 3]),
            ("ee", ["0.001", "0.1"]),
            ("bb", ["true", "false"]),
            ("cp", ["true", "false"]),
        ):
            if draw(st.booleans()):
                args.append(f"{name}={draw(st.sampled_from(values))}")
        first = draw(st.sampled_from(["", " first(ss=2)", " first(c=8, kk=1)"]))
        calls.append(f"s{index} = b({', '.join(args)}) x {draw(st.integers(1, 3))}{first}")
    return f"""
block b(c, kk=3, ss=1, g=1, dd=1, pk=3, ee=0.00001, bb=false, cp=true) expansion 1 {{
  {body}
  add input
}}
network rand {{
  input 3x{draw(st.sampled_from([9, 12]))}x{draw(st.sampled_from([9, 12]))}
  classes 5
  policy norm = {norm}
  policy shortcut = {shortcut}
  policy projection = {projection}
  stem = conv({channels}, k=3)
  {chr(10).join("  " + c for c in calls).strip()}
  gap
  flatten
  fc = linear(classes)
}}
"""


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs())
def test_random_specs_agree_across_backends(text):
    try:
        net = resdsl.compile(text)
    except resdsl.ResdslError:
        return  # e.g. a shortcut policy that cannot reconcile a random block: a located error is the answer
    assert assert_backends_agree(net).shape == (2, 5)
