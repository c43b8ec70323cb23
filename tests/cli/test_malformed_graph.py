"""A graph.jsonl with lines speedrift cannot parse: reads go on, writes stop, `repair` sets them aside."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.support import (
    Cli,
    append_line,
    git,
    graph_bytes,
    graph_path,
    graph_tasks,
    seed,
    task_node,
)

BAD_LINE = b'{"kind":"task","id":"broken","title":"cut off'


@pytest.fixture
def damaged(repo: Path) -> Path:
    """Line 2 of four is truncated JSON; the other three are good tasks."""
    seed(repo, task_node("first"))
    append_line(repo, BAD_LINE)
    seed(repo, task_node("third", after=["first"]), task_node("fourth"))
    return repo


def _repair_dir(repo: Path) -> Path:
    return repo / ".speedrift" / "repair"


def test_read_commands_still_work_and_warn_naming_the_line(cli: Cli, damaged: Path) -> None:
    result = cli.ok("list", "--json")

    assert [row["id"] for row in result.json()] == ["first", "third", "fourth"]
    assert f"{graph_path(damaged)}:2:" in result.stderr
    assert "speedrift repair" in result.stderr


def test_every_read_command_survives_a_malformed_line(cli: Cli, damaged: Path) -> None:
    for argv in (["ready"], ["show", "first"], ["why-blocked", "third"], ["viz"]):
        result = cli.ok(*argv)
        assert "graph.jsonl:2" in result.stderr, argv


def test_a_mutation_is_refused_naming_the_file_line_and_repair(cli: Cli, damaged: Path) -> None:
    before = graph_bytes(damaged)

    result = cli.fails(1, "add", "New task")

    assert f"{graph_path(damaged)}:2:" in result.stderr
    assert "speedrift repair" in result.stderr
    assert graph_bytes(damaged) == before


def test_repair_dry_run_reports_without_changing_anything(cli: Cli, damaged: Path) -> None:
    before = graph_bytes(damaged)

    report = cli.json("repair", "--dry-run")

    assert [entry["line"] for entry in report["would_move"]] == [2]
    assert graph_bytes(damaged) == before
    assert not _repair_dir(damaged).exists()


def test_repair_moves_the_bad_line_aside_byte_for_byte(cli: Cli, damaged: Path) -> None:
    good_lines = [line for line in graph_bytes(damaged).splitlines() if line != BAD_LINE]

    cli.ok("repair")

    (side_file,) = _repair_dir(damaged).glob("*.rejected.jsonl")
    assert side_file.read_bytes() == BAD_LINE + b"\n"
    assert graph_bytes(damaged).splitlines() == good_lines


def test_repair_writes_a_report_naming_the_line_and_problem(cli: Cli, damaged: Path) -> None:
    result = cli.json("repair")

    report = json.loads(Path(result["report"]).read_text())
    assert Path(result["report"]).parent == _repair_dir(damaged)
    assert report["graph"] == str(graph_path(damaged))
    assert report["side_file"] == result["side_file"]
    assert [entry["line"] for entry in report["lines"]] == [2]
    assert "invalid JSON" in report["lines"][0]["problem"]


def test_after_repair_mutations_work_and_reads_are_quiet(cli: Cli, damaged: Path) -> None:
    cli.ok("repair")

    cli.ok("add", "New task", "--id", "new")
    listed = cli.ok("list", "--json")

    assert [row["id"] for row in listed.json()] == ["first", "third", "fourth", "new"]
    assert listed.stderr == ""


def test_repair_keeps_the_repair_dir_out_of_git(cli: Cli, damaged: Path) -> None:
    cli.ok("repair")

    assert ".speedrift" not in git(damaged, "status", "--porcelain", "--untracked-files=all")


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(b"[1, 2, 3]", id="not-an-object"),
        pytest.param(b'{"kind":"task","title":"no id"}', id="task-without-id"),
        pytest.param(b'{"kind":"task","id":"bin","title":"\xff\xfe"}', id="invalid-utf8"),
        pytest.param(b'{"kind":"task","id":"both","after":[],"blocked_by":[]}', id="after-and-blocked-by"),
    ],
)
def test_repair_handles_every_kind_of_bad_line(cli: Cli, repo: Path, bad: bytes) -> None:
    seed(repo, task_node("ok"))
    append_line(repo, bad)

    cli.ok("repair")

    (side_file,) = _repair_dir(repo).glob("*.rejected.jsonl")
    assert side_file.read_bytes() == bad + b"\n"
    assert list(graph_tasks(repo)) == ["ok"]


def test_repair_of_a_clean_graph_changes_nothing(cli: Cli, repo: Path) -> None:
    seed(repo, task_node("ok"))
    before = graph_bytes(repo)

    result = cli.ok("repair")

    assert "no malformed lines" in result.stdout
    assert graph_bytes(repo) == before
    assert not _repair_dir(repo).exists()


def test_blank_and_comment_lines_are_not_malformed(cli: Cli, repo: Path) -> None:
    seed(repo, task_node("a"))
    append_line(repo, b"")
    append_line(repo, b"# a note someone left")
    seed(repo, task_node("b"))
    before = graph_bytes(repo)

    result = cli.ok("add", "C", "--id", "c")

    assert result.stderr == ""
    assert graph_bytes(repo).startswith(before)
