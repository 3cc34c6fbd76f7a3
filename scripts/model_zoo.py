"""Write docs/model-zoo.md from the specs: `.venv/bin/python scripts/model_zoo.py`."""

from __future__ import annotations

from pathlib import Path

import resdsl
from resdsl.io import write_atomic
from resdsl.ir.cost import depth

ROOT = Path(__file__).resolve().parent.parent

TORCHVISION = "torchvision"
SOURCES = {
    "resnet18": f"He et al. 2015; {TORCHVISION}",
    "resnet34": f"He et al. 2015; {TORCHVISION}",
    "resnet50": f"He et al. 2015; {TORCHVISION} (v1.5: stride on the 3×3)",
    "resnet101": f"He et al. 2015; {TORCHVISION} (v1.5)",
    "resnet152": f"He et al. 2015; {TORCHVISION} (v1.5)",
    "resnet50_v1": "He et al. 2015, Table 1 (stride on the first 1×1)",
    "resnet101_v1": "He et al. 2015, Table 1",
    "resnet152_v1": "He et al. 2015, Table 1",
    "resnext50_32x4d": f"Xie et al. 2017; {TORCHVISION}",
    "wide_resnet50_2": f"Zagoruyko & Komodakis 2016; {TORCHVISION}",
    "cifar_resnet20": "He et al. 2015, §4.2 (option A)",
    "cifar_resnet32": "He et al. 2015, §4.2",
    "cifar_resnet44": "He et al. 2015, §4.2",
    "cifar_resnet56": "He et al. 2015, §4.2",
    "cifar_resnet110": "He et al. 2015, §4.2",
    "cifar_resnet1202": "He et al. 2015, §4.2",
    "preact_resnet164": "He et al. 2016, Identity Mappings (full pre-activation)",
    "preact_resnet1001": "He et al. 2016, Identity Mappings",
    "resnet50d": "He et al. 2019, Bag of Tricks (ResNet-C stem, ResNet-D shortcuts); timm",
    "seresnet50": "Hu et al. 2018, Squeeze-and-Excitation; timm",
}

HEADER = """\
# Model zoo

The specs in `specs/`, compiled by resdsl. Parameters count trainable
weights (`sum(p.numel())`); MACs are multiply-accumulates of the convs and
linear layers at the spec's input size (FLOPs = 2 × MACs, `resdsl summary
--flops`); depth counts the convs and linear layers the spec writes
(projection shortcuts and squeeze-and-excitation excluded). Regenerate with
`python scripts/model_zoo.py`; a test keeps this table true.

Variants of any spec are a `--set` away: `--set norm=full_preact` (the five
activation orders), `--set shortcut=none` (plain networks: plain-34 has
21,623,848 parameters), `--set projection=avgpool` (ResNet-D shortcuts),
`--set output_stride=8`, `--set zero_init_last=true`, `--set in_channels=1`.

| spec | input | depth | parameters | MACs | source |
| --- | --- | ---: | ---: | ---: | --- |
"""


def row(name: str) -> str:
    net = resdsl.compile(ROOT / "specs" / f"{name}.res")
    shape = "×".join(map(str, net.input_shape))
    return (
        f"| `{name}` | {shape} | {depth(net.ir)} | {net.params:,} | {net.macs / 1e9:.3f} G | {SOURCES.get(name, '')} |"
    )


def table() -> str:
    names = sorted(
        (p.stem for p in (ROOT / "specs").glob("*.res")),
        key=lambda n: (list(SOURCES).index(n) if n in SOURCES else len(SOURCES), n),
    )
    return HEADER + "\n".join(row(name) for name in names) + "\n"


if __name__ == "__main__":
    write_atomic(ROOT / "docs" / "model-zoo.md", table())
