"""Property tests: any input either compiles or raises a located ResdslError, in bounded time.

CI runs a few hundred examples. The long run (see docs/errors.md) is

    RESDSL_FUZZ_EXAMPLES=10000 .venv/bin/python -m pytest -q tests/test_fuzz.py

which gives every property test that many examples.
"""

from __future__ import annotations

import builtins
import keyword
import os
import re
import signal
import time
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.lark import from_lark
from lark import Lark

import resdsl
from resdsl.diagnostics import ResdslError, Source
from resdsl.frontend.loader import decode

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.res"))
SPEC_TEXTS = [p.read_text() for p in SPECS] + [(ROOT / "resdsl/std/blocks.res").read_text()]
EXAMPLES = int(os.environ.get("RESDSL_FUZZ_EXAMPLES", "150"))
SECONDS_PER_INPUT = 10  # CPU seconds; generous: a real spec compiles in a fraction of a second
HANG_SECONDS = 60  # wall clock, so a loaded machine does not pass for a hang

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=timedelta(seconds=HANG_SECONDS),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)


@contextmanager
def time_bound(seconds: float):
    """Turn a hang into a test failure instead of a stuck CI job."""

    def expire(signum, frame):
        raise TimeoutError(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def compile_or_error(data: str | bytes) -> ResdslError | None:
    """Compile `data` to the IR and PyTorch source; a ResdslError is a fine answer, anything else a bug."""
    start = time.process_time()
    with time_bound(HANG_SECONDS):
        try:
            text = decode(data, "<fuzz>") if isinstance(data, bytes) else data
            net = resdsl.compile(Source("<fuzz>", text))
            builtins.compile(net.torch_source, "<generated>", "exec")  # valid Python, never run
            assert net.ir_text
            assert net.summary()
            return None
        except ResdslError as exc:
            assert exc.diagnostics
            for diag in exc.diagnostics:
                assert re.fullmatch(r"E0\d{3}", diag.code), diag.code
                assert diag.message
            assert exc.render() and exc.to_json()
            return exc
        finally:
            assert time.process_time() - start < SECONDS_PER_INPUT


# -- mutations of the real specs ---------------------------------------------

_NUMBER = r"(?:\d+\.\d*|\.\d+)(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+|\d+"  # as the grammar's FLOAT and INT
TOKEN = re.compile(r'\s+|#[^\n]*|"[^"\n]*"|\d+(?:x\d+)+|' + _NUMBER + r"|[A-Za-z_]\w*|//|.", re.S)
NUMBERS = ["0", "-1", "1000000", "1000000000", "10" * 20, "1.5", "0.0", "9" * 40, "2147483648", "1e-3", "2E5", "1e400"]
NAMES = [
    *keyword.kwlist,
    "self",
    "__init__",
    "__class__",
    "forward",
    "x",
    "torch",
    "nn",
    "input",
    "x" * 300,
    "None",
    "exec",
    "eval",
    "__import__",
    "add",
    "conv",
    "layer1",
    "bn1",
    "downsample",
    "_",
]


def tokens(text: str) -> list[str]:
    return TOKEN.findall(text)


def significant(toks: list[str]) -> list[int]:
    return [i for i, t in enumerate(toks) if not t.isspace()]


@st.composite
def mutated_spec(draw) -> str | bytes:
    text = draw(st.sampled_from(SPEC_TEXTS))
    for _ in range(draw(st.integers(1, 3))):
        toks = tokens(text)
        sig = significant(toks)
        if not sig:
            break
        kind = draw(
            st.sampled_from(["delete", "duplicate", "swap", "number", "name", "truncate", "insert", "crlf", "tabs"])
        )
        if kind == "delete":
            toks[draw(st.sampled_from(sig))] = ""
        elif kind == "duplicate":
            i = draw(st.sampled_from(sig))
            toks[i] = toks[i] + " " + toks[i]
        elif kind == "swap":
            i, j = draw(st.sampled_from(sig)), draw(st.sampled_from(sig))
            toks[i], toks[j] = toks[j], toks[i]
        elif kind == "number":
            numbers = [i for i in sig if re.fullmatch(r"[\d.x]+", toks[i])]
            if numbers:
                toks[draw(st.sampled_from(numbers))] = draw(st.sampled_from(NUMBERS))
        elif kind == "name":
            names = [i for i in sig if re.fullmatch(r"[A-Za-z_]\w*", toks[i])]
            if names:
                toks[draw(st.sampled_from(names))] = draw(st.sampled_from(NAMES))
        elif kind == "insert":
            i = draw(st.integers(0, len(toks)))
            toks.insert(i, draw(st.text(min_size=1, max_size=8)))
        text = "".join(toks)
        if kind == "truncate":
            text = text[: draw(st.integers(0, len(text)))]
        elif kind == "crlf":
            text = text.replace("\n", "\r\n")
        elif kind == "tabs":
            text = text.replace("  ", "\t")
    if draw(st.booleans()):
        return text
    # Raw bytes: NULs, stray bytes and invalid UTF-8 sequences at a random place.
    data = text.encode("utf-8")
    at = draw(st.integers(0, len(data)))
    junk = (
        draw(st.sampled_from([b"\x00", b"\xff", b"\xc3(", b"\xed\xa0\x80", b"\r", b"\t"]))
        if draw(st.booleans())
        else draw(st.binary(min_size=1, max_size=16))
    )
    return data[:at] + junk + data[at:]


@pytest.mark.parametrize("text", SPEC_TEXTS[:-1], ids=[p.name for p in SPECS])
def test_unmutated_specs_compile(text):
    assert compile_or_error(text) is None


@FUZZ
@given(mutated_spec())
def test_mutated_specs_compile_or_fail_cleanly(data):
    compile_or_error(data)


# -- strings from the grammar -------------------------------------------------


def _terminal(term) -> st.SearchStrategy[str]:
    if term.name == "NAME":
        plain = st.from_regex(r"\A[a-z_][a-z0-9_]{0,6}\Z")
        return st.one_of(
            plain,
            st.sampled_from(
                [
                    "conv",
                    "basic",
                    "bottleneck",
                    "relu",
                    "gap",
                    "flatten",
                    "linear",
                    "maxpool",
                    "planes",
                    "stride",
                    "k",
                    "s",
                    "norm",
                    "shortcut",
                    "post",
                    "pre",
                    "B",
                    "A",
                    *NAMES[:6],
                ]
            ),
        )
    if term.name == "INT":
        return st.integers(0, 300).map(str)
    if term.name == "SHAPE":
        return st.lists(st.integers(0, 64).map(str), min_size=1, max_size=4).map(lambda p: "3x" + "x".join(p))
    if term.name == "STRING":
        return st.sampled_from(['"std/blocks.res"', '"missing.res"', '"specs"', '""', '"std/../x.res"'])
    if term.pattern.type == "str":
        return st.just(term.pattern.value)
    return st.from_regex(term.pattern.to_regexp(), fullmatch=True)


def _spaced(strategy):
    return strategy.map(lambda text: text + " ")


# A freshly built parser: the compiler's own may come from a table cache, without the grammar that
# hypothesis draws from.
GRAMMAR = Lark((ROOT / "resdsl" / "grammar.lark").read_text(), parser="lalr")
_TERMINALS = {t.name: t for t in GRAMMAR.terminals}
# Grammar strings with a space after every token, so most of them lex as intended.
GRAMMAR_SPACED = from_lark(
    GRAMMAR, explicit={n: _spaced(_terminal(t)) for n, t in _TERMINALS.items() if n not in ("WS", "COMMENT")}
)
# And glued together as drawn, which exercises the lexer's corners.
GRAMMAR_RAW = from_lark(GRAMMAR, explicit={"NAME": _terminal(_TERMINALS["NAME"])})


@FUZZ
@given(st.one_of(GRAMMAR_SPACED, GRAMMAR_RAW))
def test_grammar_strings_compile_or_fail_cleanly(text):
    compile_or_error(text)


@FUZZ
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_arbitrary_text_fails_cleanly(data):
    compile_or_error(data)


# -- fixed absurd inputs --------------------------------------------------------


def test_ten_megabyte_file_is_refused_quickly(tmp_path):
    big = tmp_path / "big.res"
    filler = "  conv(64, k=3)\n" * (10 * 1024 * 1024 // 16)
    big.write_text('use "std/blocks.res"\nnetwork big {\n  input 3x32x32\n' + filler + "}\n")
    start = time.monotonic()
    with pytest.raises(ResdslError) as info:
        resdsl.compile(big)
    assert time.monotonic() - start < 2
    assert info.value.diagnostics[0].code == "E0120"
    assert "--limit source_bytes=" in info.value.diagnostics[0].help


@pytest.mark.parametrize(
    "text",
    [
        "network n { input 3x8x8\n conv(8, k=3, s=" + "1+" * 20000 + "1) }",
        "network n { input 3x8x8\n conv(8, k=3, s=" + "-" * 20000 + "1) }",
        "network n { input 3x8x8\n conv(" + "9" * 5000 + ", k=3) }",
        "network n { input 3x" + "9" * 5000 + "x8\n conv(8, k=3) }",
        "network n { input 3x8x8\n batchnorm(eps=" + "9" * 400 + ".0) }",
        "network n { input 3x8x8\n let a = 999999999 * 999999999 * 999999999\n conv(a, k=1) }",
        "\x00" * 1000,
        "network n {" * 3000,
    ],
)
def test_pathological_inputs_fail_cleanly(text):
    assert compile_or_error(text) is not None


def test_deep_parentheses_compile():
    # Parentheses add no tree depth, so this is an ordinary, valid spec.
    assert compile_or_error("network n { input 3x8x8\n conv(8, k=3, p=" + "(" * 5000 + "1" + ")" * 5000 + ") }") is None
