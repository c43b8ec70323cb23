"""How output behaves when it is piped: no hard wrapping of paths, a closed pipe is not a failure."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.support import Cli, append_line, base_env, git, seed, task_node


def _piped_at_default_width(cwd: Path) -> Cli:
    """No COLUMNS: what a script or CI log sees (Rich would assume 80 columns)."""
    return Cli(cwd, env={k: v for k, v in base_env().items() if k != "COLUMNS"})


@pytest.fixture
def deep_repo(tmp_path: Path) -> Path:
    repo = tmp_path / ("d" * 60) / ("e" * 60) / "repo"
    repo.mkdir(parents=True)
    git(repo, "init", "-q")
    return repo


def test_init_prints_a_long_graph_path_on_one_line(deep_repo: Path) -> None:
    result = _piped_at_default_width(deep_repo).ok("init")

    assert f"Initialized {deep_repo / '.workgraph'}\n" in result.stdout


def test_a_malformed_line_warning_keeps_path_and_line_together(deep_repo: Path) -> None:
    cli = _piped_at_default_width(deep_repo)
    cli.ok("init")
    append_line(deep_repo, b"{not json")

    result = cli.ok("list", "--json")

    assert f"{deep_repo / '.workgraph' / 'graph.jsonl'}:1:" in result.stderr


def test_json_output_is_a_single_document_even_for_long_values(repo: Path) -> None:
    seed(repo, task_node("t", "word " * 150))

    result = _piped_at_default_width(repo).ok("list", "--json")

    assert result.stdout.count("\n") == 1
    assert result.json()[0]["title"] == "word " * 150


def test_a_closed_stdout_is_not_reported_as_a_failure(cli: Cli, repo: Path) -> None:
    seed(repo, *(task_node(f"t{i}") for i in range(50)))
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before speedrift writes a byte, as with `| head -0`
    try:  # a real process: the console script's own handling of EPIPE on its real stdout
        done = subprocess.run(
            [sys.executable, "-m", "speedrift", "list", "--json"],
            cwd=repo,
            env=cli.env,
            stdout=write_end,
            stderr=subprocess.PIPE,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)

    assert done.returncode == 0, done.stderr
