"""Write docs/model-zoo.md from the specs: `.venv/bin/python scripts/model_zoo.py`."""

from __future__ import annotations

import re
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
    "cifar_preact_resnet18": "He et al. 2016, as pytorch-cifar's PreActResNet18 (its state_dict keys)",
    "fpn_resnet50": (
        f"Lin et al. 2017, Feature Pyramid Networks; {TORCHVISION}'s resnet_fpn_backbone without its extra "
        "max-pooled level: outputs `p2`…`p5`, 256 channels at strides 4…32"
    ),
}

# The models of timm's resnet.py (all but its test_resnet), bundled under timm's names; the rest of each
# source is the paper of the feature that sets the model apart, found by its name.
TIMM_RESNET = """
ecaresnet26t ecaresnet50d ecaresnet50d_pruned ecaresnet50t ecaresnet101d ecaresnet101d_pruned ecaresnet200d
ecaresnet269d ecaresnetlight ecaresnext26t_32x4d ecaresnext50t_32x4d resnet10t resnet14t resnet18 resnet18d
resnet26 resnet26d resnet26t resnet34 resnet34d resnet50 resnet50_gn resnet50c resnet50d resnet50s resnet50t
resnet101 resnet101c resnet101d resnet101s resnet152 resnet152c resnet152d resnet152s resnet200 resnet200d
resnetaa34d resnetaa50 resnetaa50d resnetaa101d resnetblur18 resnetblur50 resnetblur50d resnetblur101d
resnetrs50 resnetrs101 resnetrs152 resnetrs200 resnetrs270 resnetrs350 resnetrs420 resnext50_32x4d
resnext50d_32x4d resnext101_32x4d resnext101_32x8d resnext101_32x16d resnext101_32x32d resnext101_64x4d
senet154 seresnet18 seresnet34 seresnet50 seresnet50t seresnet101 seresnet152 seresnet152d seresnet200d
seresnet269d seresnetaa50d seresnext26d_32x4d seresnext26t_32x4d seresnext50_32x4d seresnext101_32x4d
seresnext101_32x8d seresnext101_64x4d seresnext101d_32x8d seresnextaa101d_32x8d seresnextaa201d_32x8d
wide_resnet50_2 wide_resnet101_2
""".split()
# The 20 models of timm's resnetv2.py (pre-activation ResNets and BiT), bundled under timm's names too.
TIMM_RESNETV2 = """
resnetv2_18 resnetv2_18d resnetv2_34 resnetv2_34d resnetv2_50 resnetv2_50d resnetv2_50d_evos resnetv2_50d_frn
resnetv2_50d_gn resnetv2_50t resnetv2_50x1_bit resnetv2_50x3_bit resnetv2_101 resnetv2_101d resnetv2_101x1_bit
resnetv2_101x3_bit resnetv2_152 resnetv2_152d resnetv2_152x2_bit resnetv2_152x4_bit
""".split()
# timm's MobileNetV2 (efficientnet.py), at width multipliers 1.0 and 1.4.
TIMM_MOBILENETV2 = ["mobilenetv2_100", "mobilenetv2_140"]
# timm's ConvNeXt (convnext.py): the conv_mlp=True form (atto) and the channels-last one (tiny).
TIMM_CONVNEXT = ["convnext_atto", "convnext_tiny"]
# timm's RegNets (regnet.py) and its legacy SE-ResNet (senet.py).
TIMM_REGNET = ["regnetx_016", "regnety_016", "regnety_032", "regnetz_005"]
TIMM_LEGACY_SENET = ["legacy_seresnet18"]
# timm's Res2Net (res2net.py), ResNeSt (resnest.py) and SK-ResNets (sknet.py).
TIMM_SPLIT = [
    "res2net50_26w_4s",
    "res2net50d",
    "res2next50",
    "resnest14d",
    "resnest50d",
    "skresnet18",
    "skresnet50",
    "skresnext50_32x4d",
]
TIMM = (
    set(TIMM_RESNET)
    | set(TIMM_RESNETV2)
    | set(TIMM_MOBILENETV2)
    | set(TIMM_CONVNEXT)
    | set(TIMM_REGNET)
    | set(TIMM_LEGACY_SENET)
    | set(TIMM_SPLIT)
)
TIMM_SOURCES = (  # the first pattern a name matches
    (r"resnetv2_.*_bit", "Kolesnikov et al. 2020, Big Transfer (BiT): weight standardisation, GroupNorm"),
    (r"resnetv2_.*_evos", "Liu et al. 2020, Evolving Normalization-Activation Layers (EvoNorm-S0)"),
    (r"resnetv2_.*_frn", "Singh & Krishnan 2020, Filter Response Normalization"),
    (r"resnetv2_.*_gn", "He et al. 2016, Identity Mappings, with Wu & He 2018's GroupNorm"),
    (
        r"resnetv2_\d+[dt]",
        "He et al. 2016, Identity Mappings (pre-activation); deep stem, ResNet-D shortcuts",
    ),
    (r"resnetv2_", "He et al. 2016, Identity Mappings (full pre-activation)"),
    (r"convnext_", "Liu et al. 2022, A ConvNet for the 2020s (ConvNeXt)"),
    (r"mobilenetv2_", "Sandler et al. 2018, MobileNetV2 (inverted residuals, linear bottlenecks)"),
    (r"res2", "Gao et al. 2019, Res2Net (multi-scale splits in the bottleneck)"),
    (r"resnest", "Zhang et al. 2020, ResNeSt (split attention); deep stem, ResNet-D shortcuts"),
    (r"sk", "Li et al. 2019, Selective Kernel Networks"),
    (r"regnetz", "Dollár et al. 2021, Fast and Accurate Model Scaling (RegNetZ)"),
    (r"regnet", "Radosavovic et al. 2020, Designing Network Design Spaces (RegNet)"),
    (r"legacy_se", "Hu et al. 2018, Squeeze-and-Excitation (timm's legacy senet.py)"),
    (r"resnetrs", "Bello et al. 2021, Revisiting ResNets (ResNet-RS)"),
    (r".*_pruned", "Aflalo et al. 2020, knapsack pruning, of ECA-ResNet-D"),
    (r"eca", "Wang et al. 2020, ECA-Net"),
    (r"se", "Hu et al. 2018, Squeeze-and-Excitation"),
    (r"resnetblur", "Zhang 2019, Making CNNs Shift-Invariant Again (blur pool)"),
    (r"resnetaa", "Zhang 2019 (average-pool anti-aliasing)"),
    (r".*_gn", "Wu & He 2018, Group Normalization"),
    (r"resnext101_32x(16|32)d", "Mahajan et al. 2018 (ResNeXt-101 32x16d/32x32d)"),
    (r"resnext", "Xie et al. 2017, ResNeXt"),
    (r"wide_", "Zagoruyko & Komodakis 2016"),
    (r"resnet\d+[cdst]", "He et al. 2019, Bag of Tricks (deep stem; d, t: average-pool shortcuts)"),
    (r"", "He et al. 2015"),
)


def source(name: str) -> str:
    """Where a spec comes from: its entry in SOURCES, or for timm's models the paper behind its name."""
    if name in SOURCES:
        return SOURCES[name] + ("; timm" if name in TIMM else "")
    if name not in TIMM:
        return ""
    return next(text for pattern, text in TIMM_SOURCES if re.match(pattern, name)) + "; timm"


# The families of bundled specs: (family, its specs, what they are tested against).
FAMILIES = [
    (
        "ResNet, ResNeXt, Wide ResNet (He et al. 2015; Xie et al. 2017; Zagoruyko & Komodakis 2016)",
        "`resnet18` … `resnet152`, `resnext50_32x4d` …, `wide_resnet50_2`, `wide_resnet101_2`, and "
        "the `_v1` variants (stride on the first 1×1)",
        "torchvision's keys, parameters, published GMACs and logits (tests/test_parity.py)",
    ),
    (
        "timm's `resnet.py` (ResNet-C/D/S/T, SE-ResNe(X)t, SENet-154, ECA-ResNets, pruned, "
        "anti-aliased, GroupNorm, ResNet-RS)",
        "all 80 of its models",
        "timm's facts or a reference written from timm's arguments (tests/test_timm_zoo.py)",
    ),
    (
        "CIFAR ResNets and pre-activation ResNets (He et al. 2015, §4.2; He et al. 2016)",
        "`cifar_resnet20` … `cifar_resnet1202`, `preact_resnet164`, `preact_resnet1001`, `cifar_preact_resnet18`",
        "the papers' parameter counts, the structure of the papers' reference code, and the widely copied "
        "pytorch-cifar PreActResNet18's keys and function (tests/test_preact_reference.py)",
    ),
    (
        "timm's ResNetV2 and BiT (`resnetv2.py`: pre-activation, GroupNorm, EvoNorm, FRN, weight-standardised convs)",
        "all 20 of its models",
        "timm's facts or a reference (tests/test_timm_resnetv2.py)",
    ),
    (
        "MobileNetV2 (Sandler et al. 2018; timm's `efficientnet.py`)",
        "`mobilenetv2_100`, `mobilenetv2_140`",
        "timm's facts and a reference (tests/test_timm_mobilenetv2.py)",
    ),
    (
        "RegNetX, RegNetY, RegNetZ (Radosavovic et al. 2020; Dollár et al. 2021; timm's `regnet.py`)",
        "`regnetx_016`, `regnety_016`, `regnety_032`, `regnetz_005`",
        "timm's facts and a reference (tests/test_timm_regnet.py)",
    ),
    (
        "SENet, timm's legacy form (Hu et al. 2018; `senet.py`)",
        "`legacy_seresnet18`",
        "timm's facts (tests/test_timm_regnet.py)",
    ),
    (
        "Res2Net, ResNeSt, SK-ResNets (Gao et al. 2019; Zhang et al. 2020; Li et al. 2019; timm's `res2net.py`, "
        "`resnest.py`, `sknet.py`)",
        "`res2net50_26w_4s`, `res2net50d`, `res2next50`, `resnest14d`, `resnest50d`, `skresnet18`, `skresnet50`, "
        "`skresnext50_32x4d`",
        "timm's facts and references (tests/test_timm_res2net.py, test_timm_resnest.py, test_timm_sknet.py)",
    ),
    (
        "ConvNeXt (Liu et al. 2022; timm's `convnext.py`)",
        "`convnext_atto`, `convnext_tiny` (below)",
        "timm's facts and a reference (tests/test_timm_convnext.py)",
    ),
    (
        "Feature pyramid (Lin et al. 2017)",
        "`fpn_resnet50`: ResNet-50 with a 4-level FPN, outputs P2–P5",
        "torchvision's FPN forward over the generated layers, output shapes, ONNX (tests/test_pyramid.py)",
    ),
]


HEADER = """\
# Model zoo

The specs in `specs/`, compiled by resdsl. Parameters count trainable
weights (`sum(p.numel())`); MACs are multiply-accumulates of the convs and
linear layers at the spec's input size (FLOPs = 2 × MACs, `resdsl summary
--flops`); depth counts the convs and linear layers the spec writes
(projection shortcuts and squeeze-and-excitation excluded). Regenerate with
`python scripts/model_zoo.py`; a test keeps this table true.

The families, and what each is tested against (a model under its timm name,
the `timm` column, has timm's state_dict keys, order and shapes, so a timm
checkpoint of it loads with `strict=True`, and timm's logits; its input is
timm's default for the model):

{families}

Variants of any spec are a `--set` away: `--set norm=full_preact` (the five
activation orders), `--set shortcut=none` (plain networks: plain-34 has
21,623,848 parameters), `--set projection=avgpool` (ResNet-D shortcuts),
`--set output_stride=8`, `--set zero_init_last=true`, `--set in_channels=1`.

| spec | timm | input | depth | parameters | MACs | source |
| --- | --- | --- | ---: | ---: | ---: | --- |
"""


def row(name: str) -> str:
    net = resdsl.compile(ROOT / "specs" / f"{name}.res")
    shape = "×".join(map(str, net.input_shape))
    timm = f"`{name}`" if name in TIMM else ""
    return (
        f"| `{name}` | {timm} | {shape} | {depth(net.ir)} | {net.params:,} | {net.macs / 1e9:.3f} G | {source(name)} |"
    )


CONVNEXT = """
## ConvNeXt

timm's ConvNeXt family (`convnext.py`): a 4×4 patch stem, blocks of a 7×7
depthwise conv, a LayerNorm, an MLP of 4× width with GELU and a layer scale,
and a LayerNorm with a 2×2 strided conv between stages. `convnext_atto` is
timm's `conv_mlp=True` form (LayerNorm2d, 1×1 convs); `convnext_tiny` runs its
norm and MLP channels-last, between two permutes, as timm's blocks do (see
docs/language.md, "Memory layout").

| spec | timm | input | depth | parameters | MACs | source |
| --- | --- | --- | ---: | ---: | ---: | --- |
"""


def table() -> str:
    names = sorted(
        (p.stem for p in (ROOT / "specs").glob("*.res") if p.stem not in TIMM_CONVNEXT),
        key=lambda n: (list(SOURCES).index(n) if n in SOURCES else len(SOURCES), n),
    )
    families = "\n".join(
        ["| family | specs | tested against |", "| --- | --- | --- |"]
        + [f"| {f} | {n} | {t} |" for f, n, t in FAMILIES]
    )
    main = HEADER.replace("{families}", families) + "\n".join(row(name) for name in names) + "\n"
    return main + CONVNEXT + "\n".join(row(name) for name in TIMM_CONVNEXT) + "\n"


if __name__ == "__main__":
    write_atomic(ROOT / "docs" / "model-zoo.md", table())
