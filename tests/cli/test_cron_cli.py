"""`speedrift add/edit --cron`, `edit --no-cron`, and recurring tasks re-armed by `speedrift done`
and by a real landing (`speedrift run`): wg's cron fields, written so wg reads the same schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from speedrift.graph import cron, query
from speedrift.graph.codec import Graph
from speedrift.times import format_time, parse_time
from tests.cli.support import GRAPH_DIR, GRAPH_FILE, Cli, git, graph_tasks, seed, task_node

FAST = '[gates]\nskip = ["sast", "sca"]\n'  # the audits are not what these tests are about


def moment(value: Any) -> datetime:
    parsed = parse_time(value)
    assert parsed is not None, value
    return parsed


def graph(repo: Path) -> Graph:
    return Graph.from_bytes((repo / GRAPH_DIR / GRAPH_FILE).read_bytes())


def test_add_with_cron_sets_wgs_cron_fields_and_the_first_slot(cli: Cli, repo: Path) -> None:
    result = cli.ok("add", "Nightly sweep", "--id", "sweep", "--cron", "0 3 * * *")
    task = graph_tasks(repo)["sweep"]
    assert task["cron_schedule"] == "0 3 * * *" and task["cron_enabled"] is True
    created = moment(task["created_at"])
    assert task["next_cron_fire"] == format_time(cron.next_slot_after("0 3 * * *", created))
    assert "last_cron_fire" not in task and "not_before" not in task
    assert f"recurs on 0 3 * * * (UTC), next at {task['next_cron_fire']}" in result.stdout
    assert query.ready_ids(graph(repo), created) == []  # not before its first slot


def test_add_with_an_alias_stores_the_five_fields_wg_can_read(cli: Cli, repo: Path) -> None:
    task = cli.json("add", "Weekly report", "--id", "weekly", "--cron", "@weekly")
    assert task["cron_schedule"] == "0 0 * * SUN"
    assert moment(task["next_cron_fire"]).strftime("%A %H:%M") == "Sunday 00:00"
    assert graph_tasks(repo)["weekly"] == task


def test_add_with_an_invalid_cron_is_refused_naming_it_with_an_example_and_writes_nothing(
    cli: Cli, repo: Path
) -> None:
    for expression, said in (
        ("0 3 * *", "cron schedule '0 3 * *' has 4 field(s)"),
        ("@fortnightly", "cron schedule '@fortnightly' is not a known alias"),
        ("0 25 * * *", "cron schedule '0 25 * * *' is not valid"),
        ("0 3 * * 1", "names a day of the week by number"),
    ):
        result = cli.fails(1, "add", "Bad", "--id", "bad", "--cron", expression)
        assert said in result.stderr and "0 3 * * " in result.stderr, result
    assert "fix: name the day instead: '0 3 * * MON'" in result.stderr
    assert graph_tasks(repo) == {}


def test_edit_cron_sets_the_schedule_and_no_cron_clears_every_cron_field(cli: Cli, repo: Path) -> None:
    fired = format_time(datetime(2026, 12, 1, 3, 0, tzinfo=UTC))
    seed(repo, task_node("job", "Job"), task_node("other", "Other", last_cron_fire=fired))
    edited = cli.json("edit", "job", "--cron", "*/30 * * * MON-FRI", "-p", "high")
    assert (edited["cron_schedule"], edited["cron_enabled"], edited["priority"]) == (
        "*/30 * * * MON-FRI",
        True,
        50,
    )
    assert moment(edited["next_cron_fire"]).minute in (0, 30)
    kept = cli.json("edit", "other", "--cron", "@hourly")  # as wg: the last fire stays
    assert kept["last_cron_fire"] == fired and kept["cron_schedule"] == "0 * * * *"
    cleared = cli.json("edit", "other", "--no-cron")
    assert not {"cron_schedule", "cron_enabled", "last_cron_fire", "next_cron_fire"} & set(cleared)
    assert graph_tasks(repo)["other"] == cleared
    assert cli.fails(2, "edit", "job", "--cron", "@daily", "--no-cron").stderr  # one or the other
    refused = cli.fails(1, "edit", "job", "--cron", "")
    assert "the cron schedule is empty" in refused.stderr
    assert graph_tasks(repo)["job"]["cron_schedule"] == "*/30 * * * MON-FRI"


def test_list_json_shows_a_recurring_tasks_cron_fields_as_wg_does(cli: Cli, repo: Path) -> None:
    cli.ok("add", "Nightly", "--id", "nightly", "--cron", "0 3 * * *")
    cli.ok("add", "Once", "--id", "once")
    rows = {r["id"]: r for r in cli.json("list")}
    assert rows["nightly"]["cron_enabled"] is True and rows["nightly"]["cron_schedule"] == "0 3 * * *"
    assert rows["nightly"]["next_cron_fire"] == graph_tasks(repo)["nightly"]["next_cron_fire"]
    assert "cron_enabled" not in rows["once"]


def test_done_re_arms_a_recurring_task_for_its_next_slot(cli: Cli, repo: Path) -> None:
    due = format_time(datetime(2026, 12, 1, 3, 0, tzinfo=UTC))
    seed(
        repo,
        task_node("nightly", "Nightly", cron_schedule="0 3 * * *", cron_enabled=True, next_cron_fire=due),
    )
    cli.ok("claim", "nightly")
    result = cli.ok("done", "nightly")
    task = graph_tasks(repo)["nightly"]
    fired = moment(task["last_cron_fire"])
    slot = cron.next_slot_after("0 3 * * *", fired)
    assert task["status"] == "open" and "assigned" not in task and "completed_at" not in task
    assert task["next_cron_fire"] == format_time(slot) and slot > fired
    assert task["log"][-1]["message"] == f"Recurring task re-armed for {format_time(slot)}"
    assert "task 'nightly' recurs: re-armed for" in result.stderr
    assert query.ready_ids(graph(repo), slot - timedelta(seconds=1)) == []
    assert query.ready_ids(graph(repo), slot) == ["nightly"]


def test_a_landing_by_the_supervisor_re_arms_a_recurring_task(cli: Cli, repo: Path) -> None:
    for rel, text in {
        ".gitignore": ".speedrift/\n",
        "speedrift.toml": FAST,
        "notes.py": "NOTES = []\n",
    }.items():
        (repo / rel).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    due = format_time(datetime(2026, 12, 1, 3, 0, tzinfo=UTC))
    seed(
        repo,
        task_node(
            "note",
            "Note",
            exec="printf 'NOTES = [1]\\n' > notes.py",
            cron_schedule="0 3 * * *",
            cron_enabled=True,
            next_cron_fire=due,
        ),
    )
    out = cli.ok("run", "note").stdout  # due: its slot has passed, so no --force
    assert "note attempt 1: done (unverified) — Landed" in out
    assert (repo / "notes.py").read_text() == "NOTES = [1]\n"  # it landed on main
    task = graph_tasks(repo)["note"]
    fired = moment(task["last_cron_fire"])
    slot = cron.next_slot_after("0 3 * * *", fired)
    assert task["status"] == "open" and task["next_cron_fire"] == format_time(slot)
    assert task["speedrift"]["landed_commit"] == git(repo, "rev-parse", "HEAD").strip()
    messages = [e["message"] for e in task["log"]]
    assert (
        messages[-2].startswith("Landed ")
        and messages[-1] == f"Recurring task re-armed for {format_time(slot)}"
    )
    assert query.ready_ids(graph(repo), slot - timedelta(seconds=1)) == []
    assert query.ready_ids(graph(repo), slot) == ["note"]
    # before its slot a second run is refused with when it is due
    refused = cli.fails(1, "run", "note")
    assert f"cron not due until {format_time(slot)}" in refused.stderr
