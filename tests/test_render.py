"""`resdsl render` and Compiled.to_dot: golden DOT, images from Graphviz's dot, diagram structure."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import SPEC_SAMPLE

import resdsl
from resdsl.backends import columns, diagram, dot, dot_writer
from resdsl.cli import main

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).parent / "golden"
REFERENCE = Path(__file__).parent / "reference"
HAS_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(not HAS_DOT, reason="Graphviz's dot is not installed (scripts/setup.sh installs it)")


@pytest.fixture(scope="module")
def compiled():
    cache: dict[str, resdsl.Compiled] = {}

    def get(name: str, **overrides) -> resdsl.Compiled:
        key = name + repr(sorted(overrides.items()))
        if key not in cache:
            cache[key] = resdsl.compile(ROOT / "specs" / f"{name}.res", {k: str(v) for k, v in overrides.items()})
        return cache[key]

    return get


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


# -- golden DOT ------------------------------------------------------------------


@pytest.mark.parametrize("level", diagram.LEVELS)
def test_golden_dot_resnet18(compiled, level, golden):
    golden(f"resnet18.{level}.dot", compiled("resnet18").to_dot(level=level))


def test_dot_is_deterministic_across_compiles():
    first = resdsl.compile(ROOT / "specs" / "resnet50.res").to_dot()
    second = resdsl.compile(ROOT / "specs" / "resnet50.res").to_dot()
    assert first == second


def test_cli_writes_dot_equal_to_api(compiled, tmp_path, capsys):
    out = tmp_path / "r18.dot"
    assert main(["render", str(ROOT / "specs" / "resnet18.res"), "-o", str(out), "--level", "op"]) == 0
    assert out.read_text(encoding="utf-8") == compiled("resnet18").to_dot(level="op")
    assert main(["render", str(ROOT / "specs" / "resnet18.res"), "-o", "-", "--rankdir", "LR"]) == 0
    assert capsys.readouterr().out == compiled("resnet18").to_dot(rankdir="LR")


# -- what the block-level diagram shows ---------------------------------------------


def test_resnet18_blocks_and_shortcut_bypasses(compiled):
    blocks = diagram.build(compiled("resnet18").ir, "block")
    units = {u.id: u for u in blocks.units}
    bodies = [u for u in blocks.units if u.kind == "body"]
    assert [u.title for u in bodies] == [f"layer{s}.{b}" for s in range(1, 5) for b in range(2)]
    assert {u.note for u in bodies} == {"basic"}
    layer2_0 = next(u for u in bodies if u.title == "layer2.0")
    assert layer2_0.rows == ["3×3 conv, 128, stride 2 · BN · ReLU", "3×3 conv, 128 · BN"]

    projections = [u for u in blocks.units if u.kind == "projection"]
    assert [u.item for u in projections] == ["layer2.0", "layer3.0", "layer4.0"]
    assert {tuple(u.rows) for u in projections} == {("1×1 conv, stride 2 · BN",)}
    assert all(u.note == "inserted · shortcut policy B" for u in projections)

    into = lambda head: [e for e in blocks.edges if e.head == head]  # noqa: E731
    adds = [u for u in blocks.units if u.kind == "add"]
    assert len(adds) == 8 and {tuple(u.rows) for u in adds} == {("+ · ReLU",)}
    styles = []
    for body, add in zip(bodies, adds, strict=True):
        (feed,) = into(body.id)
        main_edge, bypass = sorted(into(add.id), key=lambda e: e.tail != body.id)
        assert main_edge.tail == body.id and main_edge.style == "main"
        # The shortcut leaves where the block's input does, and rejoins at the add.
        if bypass.style == "identity":
            assert bypass.tail == feed.tail and bypass.shape == feed.shape
        else:
            (proj_feed,) = into(bypass.tail)
            assert units[bypass.tail].kind == "projection" and proj_feed.tail == feed.tail
            assert bypass.shape == main_edge.shape
        styles.append(bypass.style)
    assert styles == [
        "identity",
        "identity",
        "projection",
        "identity",
        "projection",
        "identity",
        "projection",
        "identity",
    ]

    text = dot.to_dot(blocks)
    assert text.count('style="rounded,filled,dashed"') == 3  # the inserted projections
    assert text.count('color="#e8590c" penwidth=1.4') == 6  # into and out of each projection
    # Every edge carries its tensor's shape; an identity shortcut is one labelled line that bends
    # around a straight stretch beside its block and ends in the add's arrow.
    drawn = [line for line in text.splitlines() if " -> " in line and "invis" not in line]
    bends = [line for line in drawn if "_bypass:s ->" in line]
    assert len(bends) == styles.count("identity") and not any("label=" in line for line in bends)
    assert all("label=<" in line for line in drawn if line not in bends)


def test_title_has_name_parameters_and_macs(compiled):
    facts = json.loads((REFERENCE / "resnet50.json").read_text())
    net = compiled("resnet50")
    text = net.to_dot(level="stage")
    assert "<B>resnet50</B>" in text
    assert f"{facts['num_params']:,} parameters" in text
    assert f"({facts['torchvision_gmacs']:.2f} G)" in text
    assert f"{net.macs:,} MACs" in text


def test_stage_level_rows(compiled):
    stages_ = diagram.build(compiled("resnet50").ir, "stage")
    stages = {u.title: u.rows for u in stages_.units}
    assert stages["layer1"] == ["bottleneck ×3 · 64→256 · 56×56", "shortcuts: 2 identity, 1 projection"]
    assert stages["layer3"] == ["bottleneck ×6 · 512→1024 · 28×28→14×14", "shortcuts: 5 identity, 1 projection"]
    assert stages["stem"] == ["7×7 conv, 64, stride 2 · BN · ReLU", "3×3 max-pool, stride 2"]
    assert stages["head"] == ["global avg-pool", "flatten", "linear, 1000"]
    assert [e.shape for e in stages_.edges] == [
        (3, 224, 224),
        (64, 56, 56),
        (256, 56, 56),
        (512, 28, 28),
        (1024, 14, 14),
        (2048, 7, 7),
        (1000,),
    ]


def test_resnet152_stages_are_wrapped_into_columns(compiled):
    text = compiled("resnet152").to_dot()
    clusters = re.findall(r"subgraph (cluster_col(\d+)_\d+) \{\n\t\t[^\n]*? label=<(.*?)> labeljust", text)
    titles = {name: " · ".join(re.findall(r'<TD ALIGN="LEFT">(.*?)</TD>', label)) for name, _, label in clusters}
    assert titles["cluster_col0_0"] == "stem"
    assert titles["cluster_col0_2"] == "layer2 · bottleneck ×8"
    pieces = [t for t in titles.values() if t.startswith("layer3")]
    assert len(pieces) == 3 and pieces[0].endswith("blocks 0–13") and pieces[-1].endswith("blocks 28–35")
    # No edge runs from one column to the next: each column ends in a marker naming where the
    # network continues, and the next one starts from a marker naming where it came from.
    columns = 1 + max(int(column) for _, column, _ in clusters)
    assert columns == 4
    assert text.count("next column</TD>") == text.count("previous column</TD>") == columns - 1
    assert "to layer3.0, next column" in text and "from layer2.7, previous column" in text


def test_pack_fills_columns_in_order():
    segments = [[("stem", 3)], [(f"b{i}", 2) for i in range(36)], [("head", 3)]]
    # 20 ranks a column: the stem and 8 blocks, two columns of 10 blocks, the last 8 and the head.
    packed = [[(seg, len(items)) for seg, items in col] for col in columns.pack(segments, 20)]
    assert packed == [[(0, 1), (1, 8)], [(1, 10)], [(1, 10)], [(1, 8), (2, 1)]]
    assert [[(seg, len(items)) for seg, items in col] for col in columns.fewest_columns(segments, 3)] == [
        [(0, 1), (1, 12)],
        [(1, 13)],
        [(1, 11), (2, 1)],
    ]
    # A stage that fits a column is never split: it starts the next one instead.
    blocks = {"a": 3, "b": 4, "c": 6, "d": 3}
    stages = [[("stem", 3)], *([(f"{s}{i}", 2) for i in range(n)] for s, n in blocks.items()), [("head", 3)]]
    assert [[(seg, len(items)) for seg, items in col] for col in columns.pack(stages, 12)] == [
        [(0, 1), (1, 3)],
        [(2, 4)],
        [(3, 6)],
        [(4, 3), (5, 1)],
    ]


@pytest.mark.parametrize(
    "overrides",
    [
        {"norm": "pre"},
        {"norm": "relu_preact"},
        {"norm": "bn_after_add"},
        {"norm": "none"},
        {"shortcut": "A"},
        {"shortcut": "C"},
        {"shortcut": "none"},
    ],
)
def test_every_policy_renders_at_every_level(compiled, overrides):
    net = compiled("resnet34", **overrides)
    texts = {level: net.to_dot(level=level) for level in diagram.LEVELS}
    block = diagram.build(net.ir, "block")
    kinds = [u.kind for u in block.units]
    if overrides == {"shortcut": "A"}:
        assert kinds.count("pad") == 3 and "stride-2 subsample + 32+32 zero channels" in texts["block"]
    elif overrides == {"shortcut": "C"}:
        assert kinds.count("projection") == 16
    elif overrides == {"shortcut": "none"}:
        assert "add" not in kinds and "shortcuts:" not in texts["stage"]
    if overrides == {"norm": "pre"}:
        first = next(u for u in block.units if u.kind == "body")
        assert first.rows == ["BN · ReLU · 3×3 conv, 64", "BN · ReLU · 3×3 conv, 64"]


def test_bad_level_and_rankdir(compiled):
    with pytest.raises(ValueError, match="level"):
        compiled("resnet18").to_dot(level="layer")
    with pytest.raises(ValueError, match="rankdir"):
        compiled("resnet18").to_dot(rankdir="BT")


# -- images ------------------------------------------------------------------------


@needs_dot
@pytest.mark.parametrize("spec", SPEC_SAMPLE, ids=lambda p: p.stem)
def test_every_spec_renders_svg_png_pdf(compiled, spec):
    text = compiled(spec.stem).to_dot()
    svg = dot.render(text, "svg")
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert f"{compiled(spec.stem).params:,} parameters".encode() in svg
    width, height = png_size(dot.render(text, "png"))
    assert min(width, height) > 300
    pdf = dot.render(text, "pdf")
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")


@needs_dot
def test_cli_says_when_a_diagram_is_too_large_to_read(tmp_path, capsys):
    spec = str(ROOT / "specs" / "resnet152.res")
    # Block level fits a 1920-pixel screen (tests/test_diagram_layout.py measures every spec): no note.
    assert main(["render", spec, "-o", str(tmp_path / "block.svg")]) == 0
    assert "note:" not in capsys.readouterr().err
    # Every op in rows of a readable width makes a page far taller than wide; LR cannot hold it.
    assert main(["render", spec, "-o", str(tmp_path / "op.svg"), "--level", "op", "--rankdir", "LR"]) == 0
    err = capsys.readouterr().err
    measured = dot.readability((tmp_path / "op.svg").read_bytes())
    assert not measured.readable
    assert f"at 1920 pixels wide its smallest text is {measured.smallest_px:.1f} pixels high" in err
    assert f"resdsl render {spec} --format html" in err


@needs_dot
@pytest.mark.parametrize("fmt", ["svg", "png", "pdf"])
def test_cli_renders_images(tmp_path, fmt, capsys):
    out = tmp_path / f"resnet18.{fmt}"
    assert main(["render", str(ROOT / "specs" / "resnet18.res"), "-o", str(out), "--level", "stage"]) == 0
    head = out.read_bytes()[:8]
    assert {"svg": b"<?xml", "png": b"\x89PNG", "pdf": b"%PDF-"}[fmt] in head
    assert f"wrote {out}" in capsys.readouterr().err


def test_missing_dot_fails_clearly_and_dot_output_still_works(tmp_path, monkeypatch, capsys):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    spec = str(ROOT / "specs" / "resnet18.res")
    image = tmp_path / "r18.png"
    assert main(["render", spec, "-o", str(image)]) == 2
    err = capsys.readouterr().err
    assert "Graphviz's `dot` program" in err and "install the graphviz package" in err and "-o FILE.dot" in err
    assert "Traceback" not in err and not image.exists()
    assert main(["render", spec, "-o", str(tmp_path / "r18.dot")]) == 0
    assert (tmp_path / "r18.dot").read_text(encoding="utf-8") == (GOLDEN / "resnet18.block.dot").read_text()


def test_unknown_output_suffix_is_a_usage_error(tmp_path, capsys):
    assert main(["render", str(ROOT / "specs" / "resnet18.res"), "-o", str(tmp_path / "r18.jpg")]) == 2
    assert "name it .svg, .png, .pdf, .dot or .html" in capsys.readouterr().err


def test_spec_errors_exit_1(tmp_path, capsys):
    bad = tmp_path / "bad.res"
    bad.write_text("network n {\n  input 3x32x32\n  conv(8, k=3)\n  add nothing\n}\n")
    assert main(["render", str(bad), "-o", str(tmp_path / "bad.svg")]) == 1
    assert "error[E0205]" in capsys.readouterr().err


def test_render_never_imports_torch_or_onnx(tmp_path):
    code = (
        "import sys; from resdsl.cli import main; "
        f"rc = main(['render', {str(ROOT / 'specs' / 'resnet50.res')!r}, '-o', {str(tmp_path / 'r50.dot')!r}]); "
        "print(rc, sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'onnx', 'onnxruntime', 'graphviz')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.stdout.strip() == "0 []"


def test_dot_needs_no_graphviz_package(tmp_path):
    """DOT is text: with the Python package `graphviz` unimportable, `render -o x.dot` still writes the golden."""
    out = tmp_path / "x.dot"
    code = (
        "import sys; sys.modules['graphviz'] = None; from resdsl.cli import main; "
        f"sys.exit(main(['render', {str(ROOT / 'specs' / 'resnet18.res')!r}, '-o', {str(out)!r}]))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert out.read_text(encoding="utf-8") == (GOLDEN / "resnet18.block.dot").read_text(encoding="utf-8")


def test_dot_writer_quotes_everything_but_html_labels():
    assert dot_writer.quote("n12") == "n12" and dot_writer.quote("-0.5") == "-0.5"
    assert dot_writer.quote("node") == '"node"'  # a DOT keyword is not a bare ID
    assert dot_writer.quote("rounded,dashed") == '"rounded,dashed"'
    assert dot_writer.quote('say "hi" \\ bye') == '"say \\"hi\\" \\\\ bye"'
    # A plain string that looks like markup stays a string; only Html is written as a label.
    assert dot_writer.quote("<b>x</b>") == '"<b>x</b>"'
    assert dot_writer.quote(dot_writer.Html("<b>x</b>")) == "<<b>x</b>>"
    graph = dot_writer.Digraph("g")
    graph.attr(rankdir="LR", label="a b")
    graph.attr("node", shape="box")
    with graph.subgraph("cluster_0") as cluster:
        cluster.node("a", dot_writer.Html("A"), color="red")
        with cluster.subgraph("cluster_1") as inner:
            inner.node("b")
    graph.edge("a", "b", "3×8×8", style="dashed")
    graph.edge("b", "a")
    assert graph.source == (
        "digraph g {\n"
        '\tlabel="a b" rankdir=LR\n'
        "\tnode [shape=box]\n"
        "\tsubgraph cluster_0 {\n"
        "\t\ta [label=<A> color=red]\n"
        "\t\tsubgraph cluster_1 {\n"
        "\t\t\tb\n"
        "\t\t}\n"
        "\t}\n"
        '\ta -> b [label="3×8×8" style=dashed]\n'
        "\tb -> a\n"
        "}\n"
    )


def test_dot_writer_ports_and_anonymous_subgraphs():
    graph = dot_writer.Digraph("g")
    with graph.subgraph() as same:  # no name: a group with attributes of its own, not a cluster
        same.attr(rank="same")
        same.edge("a", "b", style="invis")
    graph.edge(dot_writer.Port("a", "e"), dot_writer.Port("b:c", "n"))
    graph.edge("a:e", "b")  # a plain string is a node's name, colon and all
    assert graph.source == (
        'digraph g {\n\t{\n\t\trank=same\n\t\ta -> b [style=invis]\n\t}\n\ta:e -> "b:c":n\n\t"a:e" -> b\n}\n'
    )
    with pytest.raises(ValueError, match="compass"):
        graph.edge(dot_writer.Port("a", "east"), "b")
