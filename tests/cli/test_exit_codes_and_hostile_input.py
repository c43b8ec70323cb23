"""Exit codes (0 ok, 1 refused/failed, 2 usage) and input that must never reach graph.jsonl."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.support import Cli, append_line, graph_bytes, graph_tasks, seed, task_node

MAX_TITLE = 1_000


# --- exit codes --------------------------------------------------------------------------------
def test_success_exits_zero_and_writes_nothing_to_stderr(cli: Cli) -> None:
    result = cli.ok("add", "Fine")

    assert result.stderr == ""


def test_refused_request_exits_one_with_an_error_line(cli: Cli, repo: Path) -> None:
    seed(repo, task_node("t", status="done"))

    result = cli.fails(1, "claim", "t")

    assert result.stderr.startswith("error: ")


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["add", "x", "--bogus"], id="unknown-option"),
        pytest.param(["frobnicate"], id="unknown-command"),
        pytest.param(["add"], id="missing-argument"),
        pytest.param(["bottlenecks", "--limit", "0"], id="out-of-range"),
    ],
)
def test_command_line_mistakes_exit_two(cli: Cli, repo: Path, argv: list[str]) -> None:
    result = cli.fails(2, *argv)

    assert "Usage:" in result.stderr or "error:" in result.stderr
    assert graph_bytes(repo) == b""


@pytest.mark.parametrize(
    ("argv", "code"),
    [(["list", "--json"], 0), (["list"], 0), (["claim", "nope"], 1), (["frobnicate"], 2)],
    ids=str,
)
def test_the_console_script_exits_and_prints_as_the_in_process_runs_do(
    repo: Path, argv: list[str], code: int
) -> None:
    # Subprocess smoke test: the real `python -m speedrift` (`run()`, which ends in os._exit) next
    # to the in-process runner every other test uses: the same exit code and the same output
    # (a Rich table included).
    seed(repo, task_node("t", "A task"))
    real = Cli(repo, process=True)(*argv)
    here = Cli(repo)(*argv)

    assert real.returncode == here.returncode == code, (str(real), str(here))
    assert (real.stdout, real.stderr) == (here.stdout, here.stderr)


@pytest.mark.parametrize("value", ["urgent", "-1"])
def test_a_bad_priority_exits_two_naming_the_accepted_values(cli: Cli, repo: Path, value: str) -> None:
    result = cli.fails(2, "add", "x", "-p", value)

    assert "priority" in result.stderr
    assert "critical, high, normal, low, idle" in result.stderr
    assert graph_bytes(repo) == b""


@pytest.mark.parametrize("value", ["2", "-1h"])
def test_a_bad_delay_exits_two_with_an_example(cli: Cli, repo: Path, value: str) -> None:
    result = cli.fails(2, "add", "x", f"--delay={value}")  # `=`: argparse reads a bare -1h as an option

    assert "duration" in result.stderr
    assert "2h" in result.stderr
    assert graph_bytes(repo) == b""


def test_a_bad_not_before_exits_two(cli: Cli, repo: Path) -> None:
    result = cli.fails(2, "add", "x", "--not-before", "tomorrow")

    assert "RFC 3339" in result.stderr


# --- hostile ids -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "task_id",
    [
        pytest.param("../x", id="parent-traversal"),
        pytest.param("a/b", id="path-separator"),
        pytest.param("-rf", id="leading-dash"),
        pytest.param("x\ny", id="newline"),
        pytest.param("x.lock", id="git-ref-lock-suffix"),
        pytest.param("a" * 129, id="over-128-chars"),
    ],
)
def test_a_hostile_id_exits_two_and_writes_nothing(cli: Cli, repo: Path, task_id: str) -> None:
    result = cli.fails(2, "add", "Harmless title", f"--id={task_id}")

    assert "task id" in result.stderr
    assert graph_bytes(repo) == b""


@pytest.mark.parametrize("dep", ["../x", "-rf"], ids=repr)
def test_a_hostile_dependency_id_exits_two(cli: Cli, repo: Path, dep: str) -> None:
    result = cli.fails(2, "add", "Harmless title", "--id", "t", f"--after={dep}")

    assert "dependency id" in result.stderr
    assert graph_bytes(repo) == b""


def test_a_dash_title_is_a_title_not_an_option(cli: Cli, repo: Path) -> None:
    cli.ok("add", "--", "-rf")

    assert graph_tasks(repo)["rf"]["title"] == "-rf"


def test_looking_up_a_path_like_id_is_a_plain_not_found(cli: Cli, repo: Path) -> None:
    result = cli.fails(1, "show", "../../etc/passwd")

    assert "no task" in result.stderr


# --- hostile titles ----------------------------------------------------------------------------
def test_a_title_at_the_limit_is_accepted(cli: Cli, repo: Path) -> None:
    cli.ok("add", "x" * MAX_TITLE, "--id", "long")

    assert len(graph_tasks(repo)["long"]["title"]) == MAX_TITLE


def test_a_100_kb_title_exits_two_with_the_limit(cli: Cli, repo: Path) -> None:
    # 100 KB, not 200 KB: Linux refuses a single argv string over 128 KiB (MAX_ARG_STRLEN) before
    # speedrift ever runs, so a larger title cannot reach the CLI through its arguments.
    result = cli.fails(2, "add", "x" * 100_000)

    assert "title is 100,000 characters long" in result.stderr
    assert "1,000" in result.stderr
    assert graph_bytes(repo) == b""


@pytest.mark.parametrize(
    "title",
    ["bell\x07", "clear\x1b[2J", "two\nlines"],
    ids=repr,
)
def test_control_characters_in_a_title_exit_two(cli: Cli, repo: Path, title: str) -> None:
    result = cli.fails(2, "add", title)

    assert "title" in result.stderr
    assert graph_bytes(repo) == b""


def test_rich_markup_in_a_title_is_stored_and_printed_literally(cli: Cli, repo: Path) -> None:
    title = "[red]boom[/red] [bold]x[/] [link=http://evil]y[/link]"
    cli.ok("add", title, "--id", "boom")

    assert graph_tasks(repo)["boom"]["title"] == title
    assert title in cli.ok("list").stdout
    assert title in cli.ok("ready").stdout
    assert title in cli.ok("show", "boom").stdout


def test_a_10_mb_title_written_into_the_graph_still_loads(cli: Cli, repo: Path) -> None:
    huge = "x" * 10_000_000
    append_line(repo, task_node("huge", huge))
    huge_line = graph_bytes(repo)

    rows = {row["id"]: row for row in cli.json("list")}
    assert len(rows["huge"]["title"]) == 10_000_000
    assert cli.json("show", "huge")["title"] == huge

    cli.ok("add", "Small", "--id", "small")  # a write keeps the huge line byte for byte
    assert graph_bytes(repo).startswith(huge_line)
    assert [row["id"] for row in cli.json("ready")] == ["huge", "small"]


def test_human_list_with_a_10_mb_title_finishes_promptly(cli: Cli, repo: Path) -> None:
    append_line(repo, task_node("huge", "x" * 10_000_000))

    result = cli("list")
    assert result.returncode == 0
    assert "huge" in result.stdout
    # Promptly, shown without a clock: the cell is cut to MAX_CELL before Rich lays out the
    # table, so Rich never folds the 10 MB title into lines, and the table stays small.
    assert result.stdout.count("x") < 1_000 and len(result.stdout) < 10_000


def test_escape_sequences_from_the_graph_never_reach_the_terminal(cli: Cli, repo: Path) -> None:
    append_line(repo, task_node("t", "ti\x1b]0;pwned\x07tle\x1b[2J", assigned="ev\x1b[31mil"))

    for argv in (["list"], ["show", "t"], ["viz"]):
        out = cli.ok(*argv).stdout
        assert "\x1b" not in out, argv
        assert "\x07" not in out, argv


def test_unicode_titles_round_trip(cli: Cli, repo: Path) -> None:
    title = "Résumé 日本語 🚀 — “quotes”"
    task = cli.json("add", title)

    assert task["title"] == title
    assert json.loads(graph_bytes(repo))["title"] == title
    assert title in cli.ok("list").stdout
