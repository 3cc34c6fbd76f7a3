"""`resdsl fmt`: canonical, idempotent, comment-preserving, and meaning-preserving."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_fuzz import EXAMPLES, GRAMMAR_SPACED, SPEC_TEXTS, TOKEN

import resdsl
from resdsl.cli import main
from resdsl.diagnostics import ResdslError, Source
from resdsl.frontend.format import _COMMENT_SCAN, format_source

ROOT = Path(__file__).resolve().parent.parent
FORMAT = settings(
    max_examples=max(50, EXAMPLES // 2),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def fmt(text: str) -> str:
    return format_source(Source("<text>", text))


def comments(text: str) -> list[str]:
    return [m.group(1).rstrip() for m in _COMMENT_SCAN.finditer(text) if m.group(1)]


def meaning(text: str) -> tuple:
    """What a spec compiles to, without source locations; or the error codes it raises."""
    try:
        net = resdsl.compile(Source("<text>", text))
    except ResdslError as exc:
        return ("error", tuple(d.code for d in exc.diagnostics))
    return (re.sub(r" @ \S+", "", net.ir_text), net.torch_source)


WHITESPACE = st.sampled_from([" ", "  ", "\t", "\n", "\n\n\n", " \r\n ", "  # a note\n", "\n# own line\n\n"])


@st.composite
def relaid_spec(draw) -> str:
    """A real spec with its whitespace and comments rearranged, and `;` between some statements."""
    text = draw(st.sampled_from(SPEC_TEXTS))
    if draw(st.booleans()):
        text = text.replace("\n  gap\n  flatten\n", "\n  gap; flatten;\n")
    out = []
    for token in TOKEN.findall(text):
        if token.isspace() and draw(st.booleans()):
            after_comment = out and out[-1].startswith("#")
            token = draw(WHITESPACE.filter(lambda w: "\n" in w.split("#")[0]) if after_comment else WHITESPACE)
        out.append(token)
    return "".join(out)


@FORMAT
@given(relaid_spec())
def test_format_keeps_meaning_comments_and_is_idempotent(text):
    if "network" in re.sub(r"#[^\n]*", "", text):
        # Only the layout changed: a spec (not std/blocks.res) still compiles.
        assert meaning(text)[0] != "error"
    formatted = fmt(text)
    assert fmt(formatted) == formatted
    assert comments(formatted) == comments(text)
    assert meaning(formatted) == meaning(text)


@FORMAT
@given(GRAMMAR_SPACED)
def test_format_of_grammar_strings(text):
    try:
        formatted = fmt(text)
    except ResdslError:
        assume(False)
    assert fmt(formatted) == formatted
    assert comments(formatted) == comments(text)
    assert meaning(formatted) == meaning(text)


@pytest.mark.parametrize(
    "path", sorted((ROOT / "specs").glob("*.res")) + sorted((ROOT / "resdsl/std").glob("*.res")), ids=lambda p: p.name
)
def test_bundled_specs_are_formatted(path):
    assert main(["fmt", "--check", str(path)]) == 0


def test_fmt_rewrites_and_check_reports(tmp_path, capsys):
    spec = tmp_path / "net.res"
    messy = (
        'use   "std/blocks.res"  # blocks\nnetwork  n{input 3x32x32 ;conv1=conv( 16,k=3 )  # stem\n\n\n'
        "  layer1 = basic(16)x 2 first( stride = 2 )\n# tail\n gap;flatten\nfc=linear(10)}\n"
    )
    spec.write_text(messy)
    assert main(["fmt", "--check", str(spec)]) == 1
    assert spec.read_text() == messy
    assert main(["fmt", str(spec)]) == 0
    assert spec.read_text() == (
        'use "std/blocks.res"  # blocks\n'
        "\n"
        "network n {\n"
        "  input 3x32x32\n"
        "  conv1 = conv(16, k=3)  # stem\n"
        "\n"
        "  layer1 = basic(16) x 2 first(stride=2)\n"
        "  # tail\n"
        "  gap\n"
        "  flatten\n"
        "  fc = linear(10)\n"
        "}\n"
    )
    assert main(["fmt", "--check", str(spec)]) == 0
    assert not [p for p in tmp_path.iterdir() if p.name != "net.res"]  # no temporary files left


def test_fmt_refuses_a_broken_spec_without_touching_it(tmp_path, capsys):
    spec = tmp_path / "bad.res"
    spec.write_text("network n {\n  input 3x8x8\n  conv(8, k=\n")
    assert main(["fmt", str(spec)]) == 1
    assert "error[E0003]" in capsys.readouterr().err
    assert spec.read_text() == "network n {\n  input 3x8x8\n  conv(8, k=\n"


def test_expressions_get_minimal_parentheses():
    text = "network n { input 3x8x8\n let a = ((1 + 2)) * (3 - (4 - 5)) // -(6)\n conv(a, k=1) }"
    assert "let a = (1 + 2) * (3 - (4 - 5)) // -6" in fmt(text)


def test_trailing_comments_of_consecutive_lines_share_a_column():
    text = (
        "network n {  # header\n  input 3x8x8 # shape\n  classes 2\n"
        "  c = conv(8, k=3)   # a conv\n  relu # then\n  gap  # pooled\n\n  flatten # alone\n}\n"
    )
    assert fmt(text) == (
        "network n {  # header\n  input 3x8x8  # shape\n  classes 2\n"
        "  c = conv(8, k=3)  # a conv\n  relu              # then\n  gap               # pooled\n\n"
        "  flatten  # alone\n}\n"
    )
