"""`speedrift add`: ids, fields, dependencies and cycle checks, as wg's `add` does them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.cli.support import Cli, graph_tasks, seed, task_node


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


# --- ids ---------------------------------------------------------------------------------------
def test_id_is_the_slug_of_the_first_three_words(cli: Cli, repo: Path) -> None:
    result = cli.ok("add", "Design the API surface for v2")

    assert "design-the-api" in graph_tasks(repo)
    assert "(design-the-api)" in result.stdout


def test_a_colliding_slug_gets_a_numeric_suffix(cli: Cli, repo: Path) -> None:
    cli.ok("add", "Design the API")
    cli.ok("add", "Design the API")
    cli.ok("add", "design THE api!")

    assert list(graph_tasks(repo)) == ["design-the-api", "design-the-api-2", "design-the-api-3"]


def test_explicit_id_is_used_verbatim(cli: Cli, repo: Path) -> None:
    cli.ok("add", "Anything at all", "--id", "my.task_1")

    assert graph_tasks(repo)["my.task_1"]["title"] == "Anything at all"


def test_explicit_id_that_exists_is_refused(cli: Cli, repo: Path) -> None:
    seed(repo, task_node("dup", "First"))

    result = cli.fails(1, "add", "Second", "--id", "dup")

    assert "'dup' already exists" in result.stderr
    assert graph_tasks(repo)["dup"]["title"] == "First"


def test_json_prints_the_created_task_object(cli: Cli, repo: Path) -> None:
    task = cli.json("add", "Write docs", "--id", "docs")

    assert task == graph_tasks(repo)["docs"]
    assert task["kind"] == "task"
    assert task["status"] == "open"
    assert task["title"] == "Write docs"
    _parse(task["created_at"])  # an RFC 3339 timestamp


# --- fields ------------------------------------------------------------------------------------
def test_description_tags_assignee_model_and_exec_are_stored(cli: Cli, repo: Path) -> None:
    cli.ok(
        "add", "Build it", "--id", "build",
        "-d", "Line one\nline two",
        "-t", "backend", "-t", "urgent",
        "--assign", "alice",
        "--model", "claude:sonnet",
        "--exec", "make test && make lint",
    )  # fmt: skip

    task = graph_tasks(repo)["build"]
    assert task["description"] == "Line one\nline two"
    assert task["tags"] == ["backend", "urgent"]
    assert task["assigned"] == "alice"
    assert task["model"] == "claude:sonnet"
    assert task["exec"] == "make test && make lint"


def test_named_priority_maps_to_wg_level(cli: Cli) -> None:
    assert cli.json("add", "Hot", "-p", "high")["priority"] == 50
    assert cli.json("add", "Cold", "--priority", "idle")["priority"] == 0


def test_numeric_priority_is_kept(cli: Cli) -> None:
    assert cli.json("add", "Seven", "-p", "7")["priority"] == 7


def test_paused_task_is_stored_paused_and_is_not_ready(cli: Cli, repo: Path) -> None:
    cli.ok("add", "Later", "--id", "later", "--paused")

    assert graph_tasks(repo)["later"]["paused"] is True
    assert cli.json("ready") == []


def test_not_before_is_stored_as_rfc3339_and_holds_the_task(cli: Cli) -> None:
    task = cli.json("add", "Future", "--not-before", "2099-01-01T09:00:00Z")

    assert _parse(task["not_before"]) == datetime(2099, 1, 1, 9, tzinfo=UTC)
    assert cli.json("ready") == []


def test_delay_sets_not_before_relative_to_now(cli: Cli) -> None:
    before = datetime.now(UTC)
    task = cli.json("add", "Soon", "--delay", "2h")
    after = datetime.now(UTC)

    not_before = _parse(task["not_before"])
    assert before + timedelta(hours=2) <= not_before <= after + timedelta(hours=2)
    assert cli.json("ready") == []


def test_not_before_and_delay_together_are_a_usage_error(cli: Cli, repo: Path) -> None:
    cli.fails(2, "add", "Both", "--delay", "1h", "--not-before", "2099-01-01T00:00:00Z")

    assert graph_tasks(repo) == {}


# --- dependencies ------------------------------------------------------------------------------
def test_after_accepts_comma_lists_and_repeats(cli: Cli, repo: Path) -> None:
    seed(repo, task_node("a"), task_node("b"), task_node("c"))

    cli.ok("add", "Joined", "--id", "j", "--after", "a,b", "--after", "c")

    assert graph_tasks(repo)["j"]["after"] == ["a", "b", "c"]


def test_blocked_by_is_an_alias_of_after(cli: Cli, repo: Path) -> None:
    seed(repo, task_node("a"))

    cli.ok("add", "B", "--id", "b", "--blocked-by", "a")

    assert graph_tasks(repo)["b"]["after"] == ["a"]
    assert [r["id"] for r in cli.json("ready")] == ["a"]


def test_unknown_dependency_warns_but_succeeds(cli: Cli, repo: Path) -> None:
    result = cli.ok("add", "Waits", "--id", "w", "--after", "ghost")

    assert "ghost" in result.stderr
    assert "does not exist" in result.stderr
    assert graph_tasks(repo)["w"]["after"] == ["ghost"]


def test_unknown_dependency_with_strict_is_refused_and_writes_nothing(cli: Cli, repo: Path) -> None:
    result = cli.fails(1, "add", "Waits", "--id", "w", "--after", "ghost", "--strict")

    assert "'ghost' does not exist" in result.stderr
    assert graph_tasks(repo) == {}


def test_a_task_cannot_run_after_itself(cli: Cli, repo: Path) -> None:
    result = cli.fails(1, "add", "Selfish", "--id", "s", "--after", "s")

    assert "after itself" in result.stderr
    assert graph_tasks(repo) == {}


def test_a_dependency_closing_a_cycle_is_refused_showing_the_cycle(cli: Cli, repo: Path) -> None:
    # `a` waits on `b`, which does not exist yet; adding `b` after `a` would close a loop
    seed(repo, task_node("a", after=["b"]))

    result = cli.fails(1, "add", "B", "--id", "b", "--after", "a")

    assert "would create a cycle" in result.stderr
    assert "b -> a -> b" in result.stderr
    assert "max-iterations" in result.stderr  # the hint
    assert "b" not in graph_tasks(repo)


def test_a_cycle_is_allowed_when_a_member_declares_max_iterations(cli: Cli, repo: Path) -> None:
    seed(repo, task_node("a", after=["b"]))

    cli.ok("add", "B", "--id", "b", "--after", "a", "--max-iterations", "3")

    tasks = graph_tasks(repo)
    assert tasks["b"]["after"] == ["a"]
    assert tasks["b"]["cycle_config"] == {"max_iterations": 3}
    cycles = cli.json("cycles")
    assert [(sorted(c["members"]), c["configured"]) for c in cycles] == [(["a", "b"], True)]


def test_before_adds_the_new_task_to_the_dependents_after_list(cli: Cli, repo: Path) -> None:
    seed(repo, task_node("release"))

    cli.ok("add", "Test", "--id", "test", "--before", "release")

    assert graph_tasks(repo)["release"]["after"] == ["test"]
    assert [r["id"] for r in cli.json("ready")] == ["test"]
