"""Specs the benchmarks compile: CIFAR ResNets (He et al. 2015, §4.2) of any depth.

A CIFAR ResNet of depth 6n+2 has three stages of n basic blocks (16, 32 and 64
channels) and parameter-free shortcuts (option A). `cifar_spec` also spreads
an arbitrary block count over the three stages, for the scaling runs.
"""

from __future__ import annotations

TEMPLATE = """\
use "std/blocks.res"

network {name} {{
  input 3x32x32
  classes 10
  policy shortcut = A

  conv1 = conv(16, k=3)
  layer1 = basic(16) x {n1}
  layer2 = basic(32) x {n2} first(stride=2)
  layer3 = basic(64) x {n3} first(stride=2)
  gap
  flatten
  fc = linear(classes)
}}
"""

CIFAR_DEPTHS = (20, 32, 44, 56, 110, 1202)


def cifar_spec(blocks: int, name: str | None = None) -> str:
    """A CIFAR-style ResNet with `blocks` basic blocks in total (at least 3)."""
    n1 = blocks - 2 * (blocks // 3)
    n2 = n3 = blocks // 3
    return TEMPLATE.format(name=name or f"cifar_{blocks}_blocks", n1=n1, n2=n2, n3=n3)


def cifar_resnet(depth: int) -> str:
    """`cifar_resnet20` … `cifar_resnet1202`: depth = 6n + 2."""
    if (depth - 2) % 6:
        raise ValueError(f"a CIFAR ResNet has depth 6n+2, not {depth}")
    return cifar_spec(3 * ((depth - 2) // 6), name=f"cifar_resnet{depth}")
