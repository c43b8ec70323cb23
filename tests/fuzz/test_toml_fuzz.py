"""``speedrift.toml`` and ``ecosystem.toml`` under arbitrary bytes: a config, or a SpeedriftError
that names the file (and, for syntax, the line) — never a traceback, never a RecursionError."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from speedrift import safetoml
from speedrift.control.ecosystem.load import load_ecosystem
from speedrift.errors import SpeedriftError
from speedrift.fleet.config import CONFIG_FILE, RepoConfig, load_config
from tests.fuzz.support import BOM, FUZZ, tried

_DEPTHS = st.sampled_from([1, 5, 31, 32, 33, 200, 1000, 3000])


@st.composite
def nasty_toml(draw: st.DrawFn) -> bytes:
    """TOML a hostile hand could write: deep arrays, inline tables and dotted keys, a BOM, NUL
    and control characters, surrogate escapes, invalid UTF-8, CRLF, huge numbers."""
    depth = draw(_DEPTHS)
    pieces = draw(
        st.lists(
            st.sampled_from(
                [
                    b"a = " + b"[" * depth + b"1" + b"]" * depth,
                    b"a = " + b"{b=" * depth + b"1" + b"}" * depth,
                    b".".join([b"k"] * depth) + b" = 1",
                    b"[service]\nmax_agents = 99999999999999999999999999",
                    b"[service]\nmax_agents = 1e400",
                    b"[service]\npoll_seconds = nan",
                    b'[budgets]\nwall_clock_minutes = "x\\ud800"',
                    b'name = "a\x00b"',
                    b'name = "\x1b[2J\xe2\x80\xae"',
                    b"name = '\xff\xfe'",
                    b'[repos.app]\npath = "app"\r\ntags = ["x"]\r\n',
                    b"[[[x]]]",
                    b"schema = 1",
                    b"[policy]\nplan_only = true",
                ]
            ),
            min_size=1,
            max_size=4,
        )
    )
    data = b"\n".join(pieces)
    return (BOM + data) if draw(st.booleans()) else data


inputs = st.one_of(st.binary(max_size=300), st.text(max_size=200).map(str.encode), nasty_toml())


@FUZZ
@given(inputs)
def test_speedrift_toml_is_a_config_or_an_error_naming_the_file(data: bytes) -> None:
    tried("toml: speedrift.toml")
    with tempfile.TemporaryDirectory() as folder:
        repo = Path(folder)
        (repo / CONFIG_FILE).write_bytes(data)
        try:
            config = load_config(repo)
        except SpeedriftError as error:
            assert str(repo / CONFIG_FILE) in error.message
            return
        assert isinstance(config, RepoConfig)


@FUZZ
@given(inputs)
def test_ecosystem_toml_is_an_ecosystem_or_an_error_naming_the_file(data: bytes) -> None:
    tried("toml: ecosystem.toml")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ecosystem.toml"
        path.write_bytes(data)
        try:
            load_ecosystem(path)
        except SpeedriftError as error:
            assert str(path.resolve()) in error.message
            assert error.hint


@FUZZ
@given(inputs)
def test_a_syntax_error_names_a_line_inside_the_file(data: bytes) -> None:
    tried("toml: syntax positions")
    try:
        text = safetoml.decode(data)
        safetoml.loads(text)
    except safetoml.MalformedToml as bad:
        lines = data.count(b"\n") + 1
        assert 0 <= bad.line <= lines + 1, (bad.line, lines)
        assert bad.problem
