"""Graph lines an agent (which has WG_DIR and a shell) or a careless editor can write — a lone
surrogate, a line nested 1,100 deep, a byte-order mark, CRLF endings, duplicate ids, titles with
newlines and bidi overrides — are data or a named problem for every command, never a traceback;
and the numbers a command line carries are range-checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.support import Cli, append_line, graph_bytes, graph_path, graph_tasks, seed, task_node

SURROGATE_LINE = b'{"kind":"task","id":"lone","title":"half an emoji \\ud83d","status":"open"}'
DEEP_LINE = b'{"kind":"task","id":"deep","title":"t","x":' + b"[" * 1100 + b"]" * 1100 + b"}"
BOM = b"\xef\xbb\xbf"

READ_COMMANDS = [
    ["list"],
    ["list", "--json"],
    ["ready"],
    ["ready", "--json"],
    ["show", "ok"],
    ["show", "ok", "--json"],
    ["blocked"],
    ["why-blocked", "ok"],
    ["cycles"],
    ["bottlenecks"],
    ["critical-path"],
    ["aging"],
    ["viz"],
    ["viz", "--format", "dot"],
]


def _no_traceback(result: object) -> None:
    assert "Traceback" not in str(result), str(result)


def _repair_dir(repo: Path) -> Path:
    return repo / ".speedrift" / "repair"


# --- a lone surrogate -----------------------------------------------------------------------------
def test_a_lone_surrogate_line_is_skipped_by_list_and_ready_with_a_warning_naming_it(
    cli: Cli, repo: Path
) -> None:
    seed(repo, task_node("ok"))
    lineno = append_line(repo, SURROGATE_LINE)

    for argv in (["list"], ["ready"], ["list", "--json"], ["ready", "--json"]):
        result = cli.ok(*argv)
        _no_traceback(result)
        assert f"{graph_path(repo)}:{lineno}: a lone UTF-16 surrogate escape (\\ud83d)" in result.stderr
        assert "speedrift repair" in result.stderr
    assert [row["id"] for row in cli.json("list")] == ["ok"]


def test_repair_sets_a_lone_surrogate_line_aside_byte_for_byte(cli: Cli, repo: Path) -> None:
    seed(repo, task_node("ok"))
    append_line(repo, SURROGATE_LINE)

    report = cli.json("repair")

    assert [entry["line"] for entry in report["moved"]] == [2]
    assert "surrogate" in report["moved"][0]["problem"]
    assert Path(report["side_file"]).read_bytes() == SURROGATE_LINE + b"\n"
    assert list(graph_tasks(repo)) == ["ok"]
    assert cli.ok("list").stderr == ""


# --- a line nested 1,100 levels deep --------------------------------------------------------------
@pytest.mark.parametrize("argv", READ_COMMANDS, ids=" ".join)
def test_a_line_nested_1100_deep_leaves_every_read_command_working(
    cli: Cli, repo: Path, argv: list[str]
) -> None:
    seed(repo, task_node("ok"))
    append_line(repo, DEEP_LINE)

    result = cli.ok(*argv)

    _no_traceback(result)
    assert f"{graph_path(repo)}:2: nested more than 128 levels deep" in result.stderr


def test_a_line_nested_1100_deep_refuses_writes_by_name_and_repair_sets_it_aside(
    cli: Cli, repo: Path
) -> None:
    seed(repo, task_node("ok"))
    append_line(repo, DEEP_LINE)

    refused = cli.fails(1, "add", "New")
    _no_traceback(refused)
    assert f"{graph_path(repo)}:2: nested more than 128 levels deep" in refused.stderr
    assert "speedrift repair" in refused.stderr

    dry = cli.json("repair", "--dry-run")
    assert [entry["line"] for entry in dry["would_move"]] == [2]
    cli.ok("repair")

    (side_file,) = _repair_dir(repo).glob("*.rejected.jsonl")
    assert side_file.read_bytes() == DEEP_LINE + b"\n"
    cli.ok("add", "New", "--id", "new")
    assert list(graph_tasks(repo)) == ["ok", "new"]


def test_the_service_starts_and_stops_on_a_graph_with_a_line_nested_1100_deep(repo: Path) -> None:
    # Subprocess: `service start` leaves a detached service running, as for a user.
    seed(repo, task_node("ok", paused=True))
    append_line(repo, DEEP_LINE)
    service = Cli(repo, process=True)

    started = service("service", "start")
    try:
        assert started.returncode == 0, str(started)
        status = service.json("service", "status", "--json")
        assert status["running"] is True
    finally:
        stopped = service("service", "stop")
    assert stopped.returncode == 0, str(stopped)
    _no_traceback(started)


# --- byte-order mark, CRLF, duplicates ------------------------------------------------------------
def test_a_leading_byte_order_mark_is_read_and_repair_keeps_the_task(cli: Cli, repo: Path) -> None:
    line = json.dumps(task_node("first"), separators=(",", ":")).encode()
    graph_path(repo).write_bytes(BOM + line + b"\n")
    seed(repo, task_node("second"))

    listed = cli.ok("list", "--json")
    assert [row["id"] for row in listed.json()] == ["first", "second"]
    assert "byte-order mark" in listed.stderr

    report = cli.json("repair")

    assert report["moved"] == [] and report["side_file"] is None
    assert report["fixed"][0]["line"] == 1 and "byte-order mark" in report["fixed"][0]["fix"]
    assert graph_bytes(repo).startswith(line + b"\n")  # the mark gone, the task kept byte for byte
    assert list(graph_tasks(repo)) == ["first", "second"]
    assert cli.ok("list").stderr == ""


def test_a_crlf_graph_round_trips_with_one_line_ending(cli: Cli, repo: Path) -> None:
    lines = [json.dumps(task_node(t), separators=(",", ":")).encode() for t in ("a", "b", "c")]
    graph_path(repo).write_bytes(b"".join(line + b"\r\n" for line in lines))

    cli.ok("claim", "b")
    cli.ok("add", "D", "--id", "d")

    data = graph_bytes(repo)
    assert data.count(b"\r\n") == data.count(b"\n") == 4  # every line CRLF, none bare
    assert data.startswith(lines[0] + b"\r\n") and lines[2] + b"\r\n" in data  # untouched lines kept
    assert graph_tasks(repo)["b"]["status"] == "in-progress"


def test_a_graph_with_mixed_line_endings_is_written_back_in_its_dominant_one(cli: Cli, repo: Path) -> None:
    lines = [json.dumps(task_node(t), separators=(",", ":")).encode() for t in ("a", "b", "c")]
    graph_path(repo).write_bytes(lines[0] + b"\n" + lines[1] + b"\n" + lines[2] + b"\r\n")

    cli.ok("done", "c")

    data = graph_bytes(repo)
    assert b"\r" not in data and data.count(b"\n") == 3


def test_repair_makes_mixed_line_endings_one(cli: Cli, repo: Path) -> None:
    lines = [json.dumps(task_node(t), separators=(",", ":")).encode() for t in ("a", "b", "c")]
    graph_path(repo).write_bytes(lines[0] + b"\r\n" + lines[1] + b"\r\n" + lines[2] + b"\n")

    report = cli.json("repair")

    assert "mixed line endings (2 CRLF, 1 LF)" in report["fixed"][0]["fix"]
    assert graph_bytes(repo) == b"".join(line + b"\r\n" for line in lines)


def test_duplicate_task_ids_are_warned_naming_both_lines_and_the_last_one_wins(cli: Cli, repo: Path) -> None:
    seed(repo, task_node("twin", "first copy"), task_node("other"), task_node("twin", "second copy"))

    result = cli.ok("list", "--json")

    assert (
        f"{graph_path(repo)}: line 3: duplicate task id 'twin', also on line 1; line 3 wins" in result.stderr
    )
    assert [(row["id"], row["title"]) for row in result.json()] == [
        ("twin", "second copy"),
        ("other", "other"),
    ]
    repaired = cli.ok("repair")  # not malformed (wg reads it too), but said again
    assert "duplicate task id 'twin'" in repaired.stderr


# --- what reaches the terminal --------------------------------------------------------------------
def test_a_title_with_a_newline_and_a_bidi_override_is_printed_escaped(cli: Cli, repo: Path) -> None:
    append_line(repo, task_node("evil", "fine\nFAKE LINE \u202eRTL\u2066x\x1b[2J\u200f", assigned="a\nb"))
    seed(repo, task_node("after-evil", after=["evil"]))

    for argv in (
        ["list"],
        ["ready"],
        ["show", "evil"],
        ["viz"],
        ["viz", "--format", "mermaid"],
        ["why-blocked", "after-evil"],
        ["critical-path"],
        ["bottlenecks"],
        ["claim", "evil"],
    ):
        out = cli.ok(*argv).stdout
        for raw in ("\u202e", "\u2066", "\u200f", "\x1b", "FAKE LINE \u202e"):
            assert raw not in out, (argv, out)
        assert not any(line.startswith("FAKE LINE") for line in out.splitlines()), (argv, out)
    assert "fine\\x0aFAKE LINE \\u202eRTL\\u2066x\\x1b[2J\\u200f" in cli.ok("show", "evil").stdout


def test_a_raw_nul_in_a_string_is_a_named_problem_and_an_escaped_one_is_data(cli: Cli, repo: Path) -> None:
    seed(repo, task_node("ok"))
    append_line(repo, b'{"kind":"task","id":"raw","title":"a\x00b"}')
    append_line(repo, b'{"kind":"task","id":"escaped","title":"a\\u0000b"}')

    result = cli.ok("list")

    assert "graph.jsonl:2: a raw control character (0x00) inside a string" in result.stderr
    assert "a\\x00b" in result.stdout and "\x00" not in result.stdout
    assert [row["id"] for row in cli.json("list")] == ["ok", "escaped"]


# --- numbers on the command line --------------------------------------------------------------------
@pytest.fixture
def eco(repo: Path, tmp_path: Path) -> Path:
    path = tmp_path / "ecosystem.toml"
    path.write_text(f'schema = 1\n[repos.app]\npath = "{repo}"\n')
    return path


@pytest.mark.parametrize(
    ("ttl", "says"),
    [
        ("99999999999999999999w", "is too long"),
        ("9" * 5000 + "d", "is too long"),
        ("31d", "between 1 second and 30 days"),
        ("0s", "between 1 second and 30 days"),
    ],
    ids=["overflows", "5000-digits", "past-30-days", "zero"],
)
def test_a_huge_lease_is_a_one_line_usage_error_from_the_cli(
    cli: Cli, eco: Path, ttl: str, says: str
) -> None:
    result = cli.fails(2, "mode", "app", "supervise", "--lease-ttl", ttl, "--ecosystem", str(eco))

    _no_traceback(result)
    assert result.stderr.startswith("error: ") and says in result.stderr
    assert len(result.stderr.splitlines()) == 2  # the error and its fix


@pytest.mark.parametrize(
    "argv",
    [
        ["hub", "up", "--interval", "nan"],
        ["hub", "up", "--interval", "-5"],
        ["hub", "up", "--port", "70000"],
        ["hub", "up", "--cycles", "0"],
        ["service", "start", "--timeout", "inf"],
        ["dashboard", "--refresh", "1e400"],
        ["ledger", "show", "--last", "9" * 30],
        ["add", "x", "--delay=999999999d"],
        ["add", "x", "--max-iterations", "99999999999"],
    ],
    ids=" ".join,
)
def test_an_out_of_range_number_flag_is_a_usage_error(cli: Cli, repo: Path, argv: list[str]) -> None:
    result = cli.fails(2, *argv)

    _no_traceback(result)
    assert "error:" in result.stderr
    assert graph_bytes(repo) == b""
