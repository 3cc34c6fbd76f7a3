"""The parser-table cache: used when present, rebuilt when missing or broken, never stale."""

from __future__ import annotations

import pytest
from conftest import SPECS

from resdsl.diagnostics import ResdslError, Source
from resdsl.frontend import parser, parser_cache

OPTIONS = {"propagate_positions": True, "maybe_placeholders": True}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RESDSL_CACHE_DIR", str(tmp_path / "cache"))
    parser._parser.cache_clear()
    yield tmp_path / "cache"
    parser._parser.cache_clear()


def grammar() -> str:
    from importlib import resources

    return resources.files("resdsl").joinpath("grammar.lark").read_text()


def test_first_use_writes_the_cache_and_later_uses_parse_the_same(cache):
    source = Source("resnet50.res", (SPECS / "resnet50.res").read_text())
    built = parser.parse(source)
    files = list(cache.iterdir())
    assert [f.suffix for f in files] == [".pickle"]
    parser._parser.cache_clear()
    loaded = parser.parse(source)
    assert loaded == built  # the AST, spans included


def test_a_corrupt_cache_file_is_rebuilt(cache):
    path = parser_cache.cache_path(grammar(), OPTIONS)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a pickle")
    module = parser.parse(Source("x.res", "network n { input 3x8x8\n conv(4, k=3) }"))
    assert module.networks[0].name.text == "n"
    assert path.read_bytes() != b"not a pickle"


def test_errors_read_the_same_from_cached_tables(cache):
    bad = Source("bad.res", "network n { input 3x8x8\n conv(4, k=3 }")
    messages = []
    for _ in range(2):  # built, then loaded from the cache
        parser._parser.cache_clear()
        with pytest.raises(ResdslError) as info:
            parser.parse(bad)
        messages.append(info.value.render(color=False))
    assert messages[0] == messages[1]


def test_key_changes_with_the_grammar(cache):
    assert parser_cache.cache_path(grammar(), OPTIONS) != parser_cache.cache_path(grammar() + "\n// edit", OPTIONS)


def test_unwritable_cache_still_parses(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("RESDSL_CACHE_DIR", str(blocker / "cache"))  # a folder inside a file: cannot exist
    parser._parser.cache_clear()
    try:
        assert parser.parse(Source("x.res", "network n { input 3x8x8\n conv(4, k=3) }")).networks
    finally:
        parser._parser.cache_clear()
