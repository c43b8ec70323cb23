"""`speedrift hooks list|test`: what is declared and from where, and a dry run with the JSON sent;
plus a real `speedrift run` whose task-completing hook vetoes landing."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.support import Cli, git, graph_tasks


def script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def declare(repo: Path, toml: str) -> None:
    (repo / "speedrift.toml").write_text(toml)
    git(repo, "add", "speedrift.toml")
    git(repo, "commit", "-q", "-m", "hooks")


def test_hooks_list_names_each_hook_its_event_and_where_it_was_declared(cli: Cli, repo: Path) -> None:
    declare(repo, '[hooks]\ntask-completing = ["./scripts/check-changelog --strict"]\ntimeout_s = 30\n')
    script(repo / ".speedrift" / "hooks" / "task-done.d" / "notify", "true\n")
    listed = cli.json("hooks", "list")
    assert listed["timeout_s"] == 30
    assert listed["hooks"] == [
        {
            "event": "task-completing",
            "command": "./scripts/check-changelog --strict",
            "source": "speedrift.toml [hooks] task-completing #1",
        },
        {
            "event": "task-done",
            "command": str(repo / ".speedrift" / "hooks" / "task-done.d" / "notify"),
            "source": ".speedrift/hooks/task-done.d/notify",
        },
    ]
    shown = cli.ok("hooks", "list").stdout
    assert "task-completing" in shown and ".speedrift/hooks/task-done.d/notify" in shown


def test_hooks_list_without_any_says_how_to_declare_them(cli: Cli) -> None:
    assert cli.json("hooks", "list")["hooks"] == []
    assert "speedrift.toml" in cli.ok("hooks", "list").stdout


def test_hooks_test_sends_a_synthetic_event_and_prints_the_result(cli: Cli, repo: Path) -> None:
    cli.ok("add", "Write the docs", "--id", "docs")
    script(repo / ".speedrift" / "hooks" / "task-completing", "cat\necho checked >&2\n")
    tried = cli.json("hooks", "test", "task-completing", "--task", "docs")
    assert tried["sent"]["event"] == "task-completing"
    assert (tried["sent"]["task"], tried["sent"]["title"]) == ("docs", "Write the docs")
    (run,) = tried["runs"]
    assert run["ok"] is True and run["exit_code"] == 0
    echoed = json.loads(run["output"].split("\n")[0])  # the hook printed what it was sent
    assert echoed == tried["sent"]
    assert "checked" in run["output"]
    plain = cli.ok("hooks", "test", "task-completing").stdout
    assert '"event": "task-completing"' in plain and "exit 0" in plain


def test_hooks_test_exits_1_when_a_hook_fails_and_refuses_an_unknown_task(cli: Cli, repo: Path) -> None:
    declare(repo, "[hooks]\ntask-failed = [\"/bin/sh -c 'echo nope; exit 4'\"]\n")
    failed = cli.fails(1, "hooks", "test", "task-failed", "--json").json()
    assert failed["runs"][0]["exit_code"] == 4 and failed["sent"]["failure_class"]
    assert "no task" in cli.fails(1, "hooks", "test", "task-done", "--task", "nope").stderr
    assert cli.fails(2, "hooks", "test", "task-finished").returncode == 2  # not an event


def test_a_bad_hooks_table_is_a_clear_error_naming_the_key(cli: Cli, repo: Path) -> None:
    (repo / "speedrift.toml").write_text('[hooks]\ntask-complete = ["./x"]\n')
    said = cli.fails(1, "hooks", "list").stderr
    assert "task-complete" in said and "speedrift.toml" in said


def test_speedrift_run_with_a_vetoing_hook_fails_the_task_as_hook_rejected(cli: Cli, repo: Path) -> None:
    declare(repo, '[hooks]\ntask-completing = ["./scripts/check"]\n')
    script(repo / "scripts" / "check", "echo 'no changelog entry'\nexit 1\n")
    git(repo, "add", "scripts/check")
    git(repo, "commit", "-q", "-m", "check")
    cli.ok("add", "Feature", "--id", "feature", "--exec", "echo f > feature.txt")
    ran = cli.fails(1, "run", "feature")
    assert "hook_rejected" in ran.stdout + ran.stderr
    assert not (repo / "feature.txt").exists()
    task = graph_tasks(repo)["feature"]
    assert task["status"] == "failed" and task["speedrift"]["failure_class"] == "hook_rejected"
