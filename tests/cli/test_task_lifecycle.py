"""Changing tasks: edit, dependencies, and the status lifecycle (claim ... done/fail/retry)."""

from __future__ import annotations

from pathlib import Path

from tests.cli.support import Cli, graph_bytes, graph_tasks, seed, task_node


def _ready_ids(cli: Cli) -> list[str]:
    return [row["id"] for row in cli.json("ready")]


# --- edit --------------------------------------------------------------------------------------
def test_edit_changes_only_the_named_fields(cli: Cli, repo: Path) -> None:
    seed(repo, task_node("t", "Old", tags=["keep", "drop"], model="m1", custom={"x": 1}))

    cli.ok("edit", "t", "--title", "New", "-p", "critical", "--add-tag", "extra", "--remove-tag", "drop")

    task = graph_tasks(repo)["t"]
    assert task["title"] == "New"
    assert task["priority"] == 100
    assert task["tags"] == ["keep", "extra"]
    assert task["model"] == "m1"
    assert task["custom"] == {"x": 1}


def test_edit_leaves_every_other_line_byte_identical(cli: Cli, repo: Path) -> None:
    seed(repo, task_node("a"), task_node("t"), task_node("z", extra=[1, 2]))
    lines = graph_bytes(repo).splitlines()

    cli.ok("edit", "t", "--title", "Changed")

    after = graph_bytes(repo).splitlines()
    assert (after[0], after[2]) == (lines[0], lines[2])
    assert after[1] != lines[1]


def test_edit_without_any_field_is_a_usage_error(cli: Cli, repo: Path) -> None:
    seed(repo, task_node("t"))

    result = cli.fails(2, "edit", "t")

    assert "nothing to change" in result.stderr


def test_edit_of_an_unknown_task_is_refused(cli: Cli) -> None:
    result = cli.fails(1, "edit", "ghost", "--title", "x")

    assert "no task 'ghost'" in result.stderr


def test_edit_refuses_an_empty_title_like_add_does(cli: Cli, repo: Path) -> None:
    seed(repo, task_node("t", "Keep"))

    cli.fails(2, "edit", "t", "--title", "")

    assert graph_tasks(repo)["t"]["title"] == "Keep"


def test_edit_refuses_control_characters_in_the_assignee_like_add_does(cli: Cli, repo: Path) -> None:
    seed(repo, task_node("t"))
    hostile = "ev\x1b[31mil"
    cli.fails(2, "add", "Other", "--assign", hostile)  # add refuses it ...

    cli.fails(2, "edit", "t", "--assign", hostile)  # ... so edit must too

    assert "assigned" not in graph_tasks(repo)["t"]


# --- add-dep / rm-dep --------------------------------------------------------------------------
def test_add_dep_makes_a_task_wait(cli: Cli, repo: Path) -> None:
    seed(repo, task_node("a"), task_node("b"))

    cli.ok("add-dep", "b", "a")

    assert graph_tasks(repo)["b"]["after"] == ["a"]
    assert _ready_ids(cli) == ["a"]


def test_add_dep_that_closes_a_cycle_is_refused_showing_it(cli: Cli, repo: Path) -> None:
    seed(repo, task_node("a"), task_node("b", after=["a"]), task_node("c", after=["b"]))
    before = graph_bytes(repo)

    result = cli.fails(1, "add-dep", "a", "c")

    assert "a -> c -> b -> a" in result.stderr
    assert graph_bytes(repo) == before


def test_add_dep_closing_a_declared_loop_is_allowed(cli: Cli, repo: Path) -> None:
    seed(
        repo,
        task_node("a", cycle_config={"max_iterations": 2}),
        task_node("b", after=["a"]),
    )

    cli.ok("add-dep", "a", "b")

    assert graph_tasks(repo)["a"]["after"] == ["b"]


def test_add_dep_on_an_unknown_blocker_warns_and_strict_refuses(cli: Cli, repo: Path) -> None:
    seed(repo, task_node("t"))

    refused = cli.fails(1, "add-dep", "t", "ghost", "--strict")
    assert "after" not in graph_tasks(repo)["t"]
    assert "ghost" in refused.stderr

    warned = cli.ok("add-dep", "t", "ghost")
    assert "ghost" in warned.stderr
    assert graph_tasks(repo)["t"]["after"] == ["ghost"]


def test_add_dep_twice_is_refused(cli: Cli, repo: Path) -> None:
    seed(repo, task_node("a"), task_node("b", after=["a"]))

    result = cli.fails(1, "add-dep", "b", "a")

    assert "already runs after" in result.stderr


def test_rm_dep_removes_the_edge_and_frees_the_task(cli: Cli, repo: Path) -> None:
    seed(repo, task_node("a"), task_node("b", after=["a"]))

    cli.ok("rm-dep", "b", "a")

    assert "after" not in graph_tasks(repo)["b"]
    assert sorted(_ready_ids(cli)) == ["a", "b"]


def test_rm_dep_of_an_edge_that_does_not_exist_is_refused(cli: Cli, repo: Path) -> None:
    seed(repo, task_node("a"), task_node("b"))

    result = cli.fails(1, "rm-dep", "b", "a")

    assert "does not run after" in result.stderr


# --- claim / unclaim ---------------------------------------------------------------------------
def test_claim_with_actor_marks_the_task_in_progress_for_that_actor(cli: Cli, repo: Path) -> None:
    seed(repo, task_node("t"))

    result = cli.ok("claim", "t", "--actor", "alice")

    task = graph_tasks(repo)["t"]
    assert task["status"] == "in-progress"
    assert task["assigned"] == "alice"
    assert "started_at" in task
    assert task["log"][-1]["actor"] == "alice"
    assert "alice" in result.stdout


def test_claim_without_actor_uses_wg_agent_id_then_the_user(cli: Cli, repo: Path) -> None:
    seed(repo, task_node("a"), task_node("b"))

    cli.ok("claim", "a", env={"WG_AGENT_ID": "agent-7"})
    cli.ok("claim", "b")

    tasks = graph_tasks(repo)
    assert tasks["a"]["assigned"] == "agent-7"
    assert tasks["b"]["assigned"] == "tester"


def test_claim_of_a_claimed_task_is_refused_naming_the_holder(cli: Cli, repo: Path) -> None:
    seed(repo, task_node("t", status="in-progress", assigned="alice"))

    result = cli.fails(1, "claim", "t", "--actor", "bob")

    assert "held by alice" in result.stderr
    assert graph_tasks(repo)["t"]["assigned"] == "alice"


def test_claim_of_a_done_task_is_refused(cli: Cli, repo: Path) -> None:
    seed(repo, task_node("t", status="done"))

    result = cli.fails(1, "claim", "t")

    assert "is done" in result.stderr
    assert graph_tasks(repo)["t"]["status"] == "done"


def test_unclaim_returns_the_task_to_open_and_unassigns_it(cli: Cli, repo: Path) -> None:
    seed(repo, task_node("t", status="in-progress", assigned="alice"))

    cli.ok("unclaim", "t")

    task = graph_tasks(repo)["t"]
    assert task["status"] == "open"
    assert "assigned" not in task
    assert _ready_ids(cli) == ["t"]


def test_unclaim_of_an_open_task_is_refused(cli: Cli, repo: Path) -> None:
    seed(repo, task_node("t"))

    result = cli.fails(1, "unclaim", "t")

    assert "not in-progress" in result.stderr


# --- done / fail / abandon / retry -------------------------------------------------------------
def test_done_from_open_completes_the_task_and_unblocks_dependents(cli: Cli, repo: Path) -> None:
    seed(repo, task_node("a"), task_node("b", after=["a"]))

    cli.ok("done", "a")

    task = graph_tasks(repo)["a"]
    assert task["status"] == "done"
    assert "completed_at" in task
    assert _ready_ids(cli) == ["b"]


def test_done_from_in_progress_completes_the_task(cli: Cli, repo: Path) -> None:
    seed(repo, task_node("t", status="in-progress", assigned="alice"))

    cli.ok("done", "t")

    assert graph_tasks(repo)["t"]["status"] == "done"


def test_done_of_a_failed_task_is_refused(cli: Cli, repo: Path) -> None:
    seed(repo, task_node("t", status="failed"))

    result = cli.fails(1, "done", "t")

    assert "is failed" in result.stderr
    assert graph_tasks(repo)["t"]["status"] == "failed"


def test_fail_records_the_reason_and_keeps_dependents_blocked(cli: Cli, repo: Path) -> None:
    seed(repo, task_node("a", status="in-progress"), task_node("b", after=["a"]))

    cli.ok("fail", "a", "--reason", "tests are red")

    task = graph_tasks(repo)["a"]
    assert task["status"] == "failed"
    assert task["failure_reason"] == "tests are red"
    assert _ready_ids(cli) == []


def test_abandon_unblocks_dependents(cli: Cli, repo: Path) -> None:
    seed(repo, task_node("a"), task_node("b", after=["a"]))

    cli.ok("abandon", "a", "--reason", "not needed")

    assert graph_tasks(repo)["a"]["status"] == "abandoned"
    assert _ready_ids(cli) == ["b"]


def test_retry_reopens_a_failed_task_keeping_the_context_and_counting(cli: Cli, repo: Path) -> None:
    seed(repo, task_node("t", status="failed", failure_reason="flaky network", retry_count=1))

    cli.ok("retry", "t", "--context", "use the mirror")

    task = graph_tasks(repo)["t"]
    assert task["status"] == "open"
    assert task["retry_count"] == 2
    assert task["speedrift"]["retry_context"] == "use the mirror"
    assert task["speedrift"]["failures"][-1]["reason"] == "flaky network"
    assert _ready_ids(cli) == ["t"]


def test_retry_of_an_open_task_is_refused(cli: Cli, repo: Path) -> None:
    seed(repo, task_node("t"))

    result = cli.fails(1, "retry", "t")

    assert "only failed or incomplete" in result.stderr


# --- log / pause / resume ----------------------------------------------------------------------
def test_log_appends_a_note_with_actor_and_timestamp(cli: Cli, repo: Path) -> None:
    seed(repo, task_node("t", log=[{"timestamp": "2026-01-01T00:00:00Z", "message": "older"}]))

    cli.ok("log", "t", "halfway there", env={"WG_AGENT_ID": "agent-7"})

    log = graph_tasks(repo)["t"]["log"]
    assert [entry["message"] for entry in log] == ["older", "halfway there"]
    assert log[-1]["actor"] == "agent-7"
    assert log[-1]["timestamp"]


def test_log_of_an_empty_message_is_a_usage_error(cli: Cli, repo: Path) -> None:
    seed(repo, task_node("t"))

    cli.fails(2, "log", "t", "   ")

    assert "log" not in graph_tasks(repo)["t"]


def test_pause_holds_a_task_and_resume_releases_it(cli: Cli, repo: Path) -> None:
    seed(repo, task_node("t"))

    cli.ok("pause", "t")
    assert graph_tasks(repo)["t"]["paused"] is True
    assert _ready_ids(cli) == []

    cli.ok("resume", "t")
    assert "paused" not in graph_tasks(repo)["t"]
    assert _ready_ids(cli) == ["t"]


def test_pausing_a_paused_task_is_refused(cli: Cli, repo: Path) -> None:
    seed(repo, task_node("t", paused=True))

    result = cli.fails(1, "pause", "t")

    assert "already paused" in result.stderr


def test_claim_refuses_an_actor_with_control_characters(cli: Cli, repo: Path) -> None:
    seed(repo, task_node("t"))

    cli.fails(2, "claim", "t", "--actor", "bob\nmallory")

    assert graph_tasks(repo)["t"]["status"] == "open"
