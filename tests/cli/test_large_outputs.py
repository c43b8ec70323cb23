"""Large outputs: capped tables with a count and a hint, ids never cut, JSON pretty only on a
terminal, and `agents --json` naming the task and the agent's own pid.

Pipes are what the default in-process runs and the subprocess runs see; the terminal branch runs a
real ``speedrift`` process whose stdout is a pseudo-terminal (``pty``)."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest

from speedrift import layout, records
from speedrift.procs import identity_of
from tests.cli.support import Cli, base_env, seed, task_node

LONG_ID = "billing-reconciliation-report-2026-q4-eu"  # 40 characters, one word to fold
LONG_TITLE = " ".join(f"word{i}" for i in range(25))  # 140 characters


def _rows_between_rule_and_end(stdout: str) -> list[str]:
    lines = stdout.splitlines()
    rule = next(i for i, line in enumerate(lines) if line.startswith("─"))
    return [line for line in lines[rule + 1 :] if not line.startswith("…")]


def test_a_big_table_shows_fifty_rows_then_counts_the_rest_and_says_how_to_see_them(
    cli: Cli, repo: Path
) -> None:
    seed(repo, *(task_node(f"t{i:03}") for i in range(120)))

    out = cli.ok("ready").stdout

    assert len(_rows_between_rule_and_end(out)) == 50
    last = out.splitlines()[-1]
    assert last.startswith("… 70 more row(s), 120 in all")
    assert "`--all`" in last and "`--json`" in last


def test_limit_and_all_choose_how_many_rows_a_table_shows(cli: Cli, repo: Path) -> None:
    seed(repo, *(task_node(f"t{i:03}") for i in range(120)))

    limited = cli.ok("blocked", "--limit", "5").stdout  # nothing is blocked: a table with no row
    five = cli.ok("ready", "--limit", "5").stdout
    every = cli.ok("ready", "--all").stdout

    assert _rows_between_rule_and_end(limited) == []
    assert len(_rows_between_rule_and_end(five)) == 5 and "115 more row(s)" in five
    assert len(_rows_between_rule_and_end(every)) == 120 and "more row(s)" not in every
    assert len(cli.json("ready", "--json", "--limit", "5")) == 120  # --json always has every row


def test_list_all_shows_every_row_and_the_system_tasks(cli: Cli, repo: Path) -> None:
    seed(repo, *(task_node(f"t{i:03}") for i in range(60)), task_node(".evaluate-t000"))

    capped = cli.ok("list").stdout
    every = cli.ok("list", "--all").stdout

    assert "10 more row(s), 60 in all" in capped and ".evaluate-t000" not in capped
    assert len(_rows_between_rule_and_end(every)) == 61 and ".evaluate-t000" in every


def test_a_piped_list_keeps_every_id_and_title_whole_on_one_line(repo: Path) -> None:
    seed(
        repo, task_node(LONG_ID, LONG_TITLE, after=["t-one", "t-two"]), task_node("t-one"), task_node("t-two")
    )
    env = {k: v for k, v in base_env().items() if k != "COLUMNS"}  # a script's pipe: no width at all

    out = Cli(repo, env=env, process=True).ok("list").stdout

    line = next(line for line in out.splitlines() if LONG_ID in line)
    assert LONG_TITLE in line and "t-one, t-two" in line


def test_a_narrow_columns_setting_folds_titles_but_never_an_id(repo: Path) -> None:
    seed(repo, task_node(LONG_ID, LONG_TITLE))
    env = {**base_env(), "COLUMNS": "100"}

    out = Cli(repo, env=env, process=True).ok("list").stdout
    rows = _rows_between_rule_and_end(out)

    assert rows[0].startswith(LONG_ID + "  ")
    assert all(len(line) <= 100 for line in out.splitlines())
    header = out.splitlines()[0]
    start, end = header.index("title"), header.index("status")
    assert len(rows) > 1  # folded
    assert " ".join(r[start:end].strip() for r in rows) == LONG_TITLE


def test_json_is_one_compact_document_in_a_pipe(cli: Cli, repo: Path) -> None:
    seed(repo, task_node("t", "a title"))

    for argv in (("show", "t", "--json"), ("why-blocked", "t", "--json"), ("ready", "--json")):
        out = cli.ok(*argv).stdout
        assert out.count("\n") == 1, argv
        json.loads(out)


# --- the terminal branch: a real process whose stdout is a pseudo-terminal ------------------------------
def _on_a_terminal(repo: Path, *argv: str, columns: int = 100) -> str:
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {k: v for k, v in base_env().items() if k not in ("COLUMNS", "NO_COLOR")}
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", "speedrift", *argv],
            cwd=repo,
            env=env,
            stdout=secondary,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        os.close(secondary)
        chunks: list[bytes] = []
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # EIO: the child closed its end
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert child.wait(timeout=60) == 0
    finally:
        os.close(primary)
    return b"".join(chunks).decode().replace("\r\n", "\n")


def test_json_is_indented_on_a_terminal(repo: Path) -> None:
    seed(repo, task_node("t", "a title"))

    out = _on_a_terminal(repo, "show", "t", "--json")

    assert '\n  "id": "t"' in out
    assert json.loads(out)["title"] == "a title"


def test_a_table_on_a_terminal_fits_its_width_and_keeps_the_id_whole(repo: Path) -> None:
    seed(repo, task_node(LONG_ID, LONG_TITLE))

    out = _on_a_terminal(repo, "ready", columns=100)

    assert "\x1b[1mid" in out  # the header in bold: a terminal
    plain = out.replace("\x1b[1m", "").replace("\x1b[0m", "")
    assert all(len(line) <= 100 for line in plain.splitlines())
    assert any(line.startswith(LONG_ID + "  ") for line in plain.splitlines())


# --- agents --json ------------------------------------------------------------------------------------
@pytest.fixture
def agent_process() -> Iterator[subprocess.Popen[bytes]]:
    """A stand-in for a running agent: its own process group, as the supervisor starts agents."""
    child = subprocess.Popen(["sleep", "120"], start_new_session=True)
    try:
        yield child
    finally:
        child.kill()
        child.wait()


def test_agents_json_names_the_task_and_the_agents_own_pid(
    cli: Cli, repo: Path, agent_process: subprocess.Popen[bytes]
) -> None:
    task_id = "fix: the login page"  # its run folder has another name (layout.safe_name)
    seed(repo, task_node(task_id, status="in-progress"))
    run_dir = layout.attempt_dir(repo, task_id, 1)
    run_dir.mkdir(parents=True)
    records.update_attempt(run_dir, {"state": "running", "runtime": "shell"})  # this process: the worker
    pid = agent_process.pid
    records.update_attempt(run_dir, {"agent_pgid": pid, "agent_start": identity_of(pid).started})

    (row,) = cli.json("agents", "--json")
    table = cli.ok("agents").stdout

    assert row["task"] == task_id and row["attempt"] == 1
    assert row["pid"] == pid and row["worker_pid"] == os.getpid()
    assert task_id in table and str(pid) in table


def test_wide_characters_fold_by_their_width_on_the_screen(repo: Path) -> None:
    title = "数据" * 40  # 80 characters, 160 terminal cells
    seed(repo, task_node("t-wide", title))

    out = Cli(repo, env={**base_env(), "COLUMNS": "60"}).ok("ready").stdout

    def cells(line: str) -> int:
        return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line)

    assert all(cells(line) <= 60 for line in out.splitlines()[:-1] if not line.startswith("…"))
    assert (
        "".join(line[len("t-wide  ") :].split("  ")[0].strip() for line in _rows_between_rule_and_end(out))
        == title
    )
