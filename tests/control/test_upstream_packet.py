"""The upstream contribution packet: its category from paths and commit subjects, and its page."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from speedrift.control.handlers.upstream_packet import Commit, FileChange, categorize, render


@pytest.mark.parametrize(
    ("subjects", "paths", "category"),
    [
        (["Fix typo"], ["README.md", "docs/guide.rst"], "docs"),
        (["Describe the API"], ["docs/api/index.html"], "docs"),
        (["CI: cache wheels"], [".github/workflows/ci.yml", "pyproject.toml"], "tooling"),
        (["Bump tooling"], ["scripts/release.sh", "CHANGELOG.md"], "tooling"),
        (["Fix crash on empty input"], ["src/parser.py"], "bugfix"),
        (["fix(parser): handle EOF"], ["src/parser.py", "tests/test_parser.py"], "bugfix"),
        (["Add export command", "Handle a regression in export"], ["src/export.py"], "bugfix"),
        (["Add export command"], ["src/export.py", "README.md"], "feature"),
        (["Prefix handling"], ["src/prefix.py"], "feature"),  # "Prefix" is not the word "fix"
    ],
)
def test_the_category_comes_from_the_paths_then_the_commit_subjects(
    subjects: list[str], paths: list[str], category: str
) -> None:
    assert categorize(subjects, paths)[0] == category


def test_the_packet_names_branch_upstream_commits_and_files_and_says_it_is_a_dry_run() -> None:
    category, text = render(
        repo="shop",
        branch="main",
        head="0123456789abcdef0123",
        upstream="origin/main",
        ahead=2,
        behind=1,
        commits=[Commit("a" * 40, "Ann", "Fix crash in parser"), Commit("b" * 40, "Bo", "Tidy lexer")],
        files=[FileChange("M", "src/parser.py"), FileChange("A", "src/odd|name.py")],
        generated_at=datetime(2026, 11, 20, 12, 0, tzinfo=UTC),
        cycle_id="c-1",
    )
    assert category == "bugfix"
    assert "Dry run: nothing was pushed and no pull request was opened" in text
    assert "`main` at `0123456789ab`" in text and "ahead 2, behind 1" in text
    assert "- `aaaaaaaaaaaa` Fix crash in parser — Ann" in text
    assert "| A | `src/odd\\|name.py` |" in text  # a pipe in a path cannot break the table
    assert "1 commit(s) behind `origin/main`; rebase before sending" in text
    assert "bugfix: 2 commits from main" in text


def test_a_long_packet_is_capped() -> None:
    commits = [Commit(f"{i:040x}", "A", f"change {i}") for i in range(5)]
    _category, text = render(
        repo="r",
        branch="b",
        head="f" * 40,
        upstream="o/b",
        ahead=5,
        behind=0,
        commits=commits,
        files=[FileChange("M", f"f{i}.py") for i in range(5)],
        generated_at=datetime(2026, 11, 20, tzinfo=UTC),
        cycle_id=None,
        limit=3,
    )
    assert "… and 2 more" in text and "| … | and 2 more |" in text
    assert "change 3" not in text
