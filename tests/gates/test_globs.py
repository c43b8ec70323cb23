"""Scope and schema globs: whole-path matching with `*`, `**`, `?`, classes and directories."""

from __future__ import annotations

import pytest

from speedrift.gates.globs import first_match, matches


@pytest.mark.parametrize(
    ("path", "pattern", "expected"),
    [
        ("src/app.py", "src/*.py", True),
        ("src/pkg/app.py", "src/*.py", False),  # `*` stays inside one directory
        ("src/pkg/app.py", "src/**", True),
        ("src/pkg/app.py", "src/**/*.py", True),
        ("src/app.py", "src/**/*.py", True),  # `**/` also matches no directory at all
        ("app.py", "**/*.py", True),
        ("docs/a/b.md", "docs/", True),  # a trailing slash names a directory and its contents
        ("docsx/b.md", "docs/", False),
        ("README.md", "./README.md", True),
        ("notes/a1.txt", "notes/a?.txt", True),
        ("notes/ab.txt", "notes/a[0-9].txt", False),
        ("notes/a1.txt", "notes/a[!x].txt", True),
        ("config/prod.json", "config/*.json", True),
        ("config/prod.jsonx", "config/*.json", False),
        ("a[b.txt", "a[b.txt", True),  # an unclosed class is a literal character
    ],
)
def test_a_glob_matches_the_whole_repo_relative_path(path: str, pattern: str, expected: bool) -> None:
    assert matches(path, pattern) is expected


def test_the_first_matching_pattern_is_the_one_that_applies() -> None:
    assert first_match("config/a.json", ["docs/**", "config/*.json", "**/*.json"]) == "config/*.json"
    assert first_match("other.txt", ["docs/**"]) is None
