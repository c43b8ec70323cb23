"""Read-only commands: ready, list, show, blocked, why-blocked, cycles, bottlenecks, critical-path,
aging and viz. Each reads a graph written straight into graph.jsonl, as wg would leave it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.cli.support import Cli, append_line, graph_bytes, seed, task_node

ROW_KEYS = {"id", "title", "status", "priority", "assigned", "after", "tags"}


@pytest.fixture
def project(repo: Path) -> Path:
    """design (done) -> endpoints; schema -> models -> endpoints -> release <- ghost (missing)."""
    seed(
        repo,
        task_node("design", "Design the API", status="done"),
        task_node("schema", "Write the schema", priority=50, tags=["db"]),
        task_node("models", "Implement models", after=["schema"], tags=["db", "code"]),
        task_node("endpoints", "Implement endpoints", after=["design", "models"], tags=["code"]),
        task_node("release", "Cut the release", after=["endpoints", "ghost"]),
        task_node(".evaluate-design", "Evaluate design", status="done"),
        task_node("docs", "Write docs", status="in-progress", assigned="alice"),
    )
    return repo


def _ids(rows: list[dict[str, Any]]) -> list[str]:
    return [row["id"] for row in rows]


# --- ready -------------------------------------------------------------------------------------
def test_ready_json_rows_carry_wg_list_keys_and_ready_true(cli: Cli, repo: Path) -> None:
    seed(repo, task_node("a", "Alpha", priority=7, tags=["x"], assigned="bob"))

    rows = cli.json("ready")

    assert rows == [
        {
            "id": "a",
            "title": "Alpha",
            "status": "open",
            "priority": 7,
            "assigned": "bob",
            "after": [],
            "tags": ["x"],
            "ready": True,
        }
    ]


def test_ready_lists_only_unblocked_open_tasks_highest_priority_first(cli: Cli, project: Path) -> None:
    seed(project, task_node("urgent", "Urgent", priority=100), task_node("idle", "Idle", priority=5))

    rows = cli.json("ready")

    assert _ids(rows) == ["urgent", "schema", "idle"]
    assert all(set(row) >= ROW_KEYS | {"ready"} for row in rows)


def test_ready_with_nothing_ready_says_so(cli: Cli) -> None:
    assert "No tasks are ready" in cli.ok("ready").stdout


# --- list --------------------------------------------------------------------------------------
def test_list_hides_system_tasks_unless_all(cli: Cli, project: Path) -> None:
    assert ".evaluate-design" not in _ids(cli.json("list"))
    assert ".evaluate-design" in _ids(cli.json("list", "--all"))
    assert ".evaluate-design" not in cli.ok("list").stdout


def test_list_is_in_file_order_with_row_keys(cli: Cli, project: Path) -> None:
    rows = cli.json("list")

    assert _ids(rows) == ["design", "schema", "models", "endpoints", "release", "docs"]
    assert all(set(row) == ROW_KEYS for row in rows)


def test_list_filters_by_status(cli: Cli, project: Path) -> None:
    assert _ids(cli.json("list", "--status", "in-progress")) == ["docs"]
    assert _ids(cli.json("list", "--status", "done")) == ["design"]


def test_list_tag_filters_repeat_as_all_of(cli: Cli, project: Path) -> None:
    assert _ids(cli.json("list", "--tag", "db")) == ["schema", "models"]
    assert _ids(cli.json("list", "-t", "db", "-t", "code")) == ["models"]


def test_list_human_table_shows_ids_titles_and_statuses(cli: Cli, project: Path) -> None:
    out = cli.ok("list").stdout

    for text in ("schema", "Write the schema", "in-progress", "alice", "design, models"):
        assert text in out


# --- show --------------------------------------------------------------------------------------
def test_show_json_prints_the_whole_task_including_unknown_fields(cli: Cli, repo: Path) -> None:
    node = task_node("t", "Mystery", mystery={"nested": [1, "two", None]}, estimate={"hours": 3})
    append_line(repo, node)

    assert cli.json("show", "t") == node


def test_show_human_names_fields_it_does_not_render(cli: Cli, repo: Path) -> None:
    seed(repo, task_node("t", "Mystery", mystery=1, after=["ghost"]))

    out = cli.ok("show", "t").stdout

    assert "t: Mystery" in out
    assert "other fields: mystery" in out
    assert "not ready: ghost missing" in out


def test_show_of_an_unknown_task_is_an_error(cli: Cli) -> None:
    result = cli.fails(1, "show", "ghost")

    assert "no task 'ghost'" in result.stderr


# --- blocked / why-blocked ---------------------------------------------------------------------
def test_blocked_json_lists_each_held_task_with_its_direct_reasons(cli: Cli, project: Path) -> None:
    rows = {row["id"]: row for row in cli.json("blocked")}

    assert sorted(rows) == ["endpoints", "models", "release"]
    assert rows["models"]["reasons"] == [{"kind": "blocker", "blocker": "schema", "detail": "open"}]
    release_blockers = {(r["blocker"], r["detail"]) for r in rows["release"]["reasons"]}
    assert release_blockers == {("endpoints", "open"), ("ghost", "missing")}


def test_blocked_includes_paused_and_time_gated_tasks(cli: Cli, repo: Path) -> None:
    seed(
        repo,
        task_node("p", paused=True),
        task_node("later", not_before="2099-01-01T00:00:00Z"),
    )

    rows = {row["id"]: [r["kind"] for r in row["reasons"]] for row in cli.json("blocked")}

    assert rows == {"p": ["paused"], "later": ["time"]}


def test_why_blocked_json_follows_the_chain_to_a_missing_dependency(cli: Cli, repo: Path) -> None:
    seed(
        repo,
        task_node("top", after=["middle"]),
        task_node("middle", after=["bottom"]),
        task_node("bottom", after=["ghost"]),
    )

    tree = cli.json("why-blocked", "top")

    chain = []
    node = tree
    while True:
        chain.append((node["id"], node["status"]))
        if not node["blocked_by"]:
            break
        (node,) = node["blocked_by"]
    assert chain == [("top", "open"), ("middle", "open"), ("bottom", "open"), ("ghost", "missing")]
    assert "no task with this id exists" in node["reason"]


def test_why_blocked_human_output_shows_the_root_cause(cli: Cli, project: Path) -> None:
    out = cli.ok("why-blocked", "release").stdout

    assert out.splitlines()[0].startswith("release [open]")
    assert "ghost [missing]" in out
    assert "schema [open] ready" in out


def test_why_blocked_of_an_unknown_task_is_an_error(cli: Cli) -> None:
    cli.fails(1, "why-blocked", "ghost")


# --- structure ---------------------------------------------------------------------------------
def test_cycles_json_reports_unconfigured_and_configured_loops(cli: Cli, repo: Path) -> None:
    seed(
        repo,
        task_node("a", after=["b"]),
        task_node("b", after=["a"]),
        task_node("x", after=["y"], cycle_config={"max_iterations": 3}),
        task_node("y", after=["x"]),
        task_node("free"),
    )

    cycles = cli.json("cycles")

    summary = sorted((sorted(c["members"]), c["configured"]) for c in cycles)
    assert summary == [(["a", "b"], False), (["x", "y"], True)]
    configured = next(c for c in cycles if c["configured"])
    assert configured["header"] == "x"
    assert configured["back_edges"] == [["y", "x"]]


def test_cycles_with_none_is_an_empty_list(cli: Cli, project: Path) -> None:
    assert cli.json("cycles") == []
    assert "No cycles." in cli.ok("cycles").stdout


def test_bottlenecks_ranks_by_transitive_dependents(cli: Cli, project: Path) -> None:
    rows = cli.json("bottlenecks")

    counts = {r["id"]: (r["direct_dependents"], r["transitive_dependents"]) for r in rows}
    assert _ids(rows) == ["schema", "models", "endpoints"]
    assert counts == {"schema": (1, 3), "models": (1, 2), "endpoints": (1, 1)}


def test_bottlenecks_limit(cli: Cli, project: Path) -> None:
    assert _ids(cli.json("bottlenecks", "-n", "1")) == ["schema"]


def test_critical_path_json_is_the_longest_unfinished_chain_by_hours(cli: Cli, repo: Path) -> None:
    seed(
        repo,
        task_node("short", estimate={"hours": 1}),
        task_node("long", estimate={"hours": 5}),
        task_node("end", after=["short", "long"], estimate={"hours": 2}),
        task_node("finished", status="done", estimate={"hours": 100}),
    )

    assert cli.json("critical-path") == {"path": ["long", "end"], "hours": 7.0}


def test_aging_json_lists_unfinished_tasks_oldest_first_with_buckets(cli: Cli, repo: Path) -> None:
    seed(
        repo,
        task_node("young", created_at="2999-01-01T00:00:00Z"),
        task_node("old", created_at="2001-01-01T00:00:00Z"),
        task_node("gone", status="done", created_at="2000-01-01T00:00:00Z"),
    )

    rows = cli.json("aging")

    assert _ids(rows) == ["old", "young"]
    assert rows[0]["bucket"] == "> 30 days"
    assert rows[0]["age_days"] > 365 * 20


# --- viz ---------------------------------------------------------------------------------------
def test_viz_tree_indents_each_task_under_what_it_runs_after(cli: Cli, project: Path) -> None:
    lines = cli.ok("viz", "--format", "tree").stdout.splitlines()

    assert "○ schema  Write the schema" in lines
    assert "  ○ models  Implement models" in lines
    assert "    ○ endpoints  Implement endpoints" in lines
    assert "      ○ release  Cut the release" in lines
    assert not any("design" in line for line in lines)  # done tasks only with --all


def test_viz_all_includes_done_and_system_tasks(cli: Cli, project: Path) -> None:
    out = cli.ok("viz", "--all").stdout

    assert "✓ design  Design the API" in out
    assert ".evaluate-design" in out


def test_viz_dot_is_a_graphviz_digraph_with_every_edge(cli: Cli, project: Path) -> None:
    out = cli.ok("viz", "--format", "dot").stdout

    assert out.startswith("digraph workgraph {")
    assert out.rstrip().endswith("}")
    for edge in ('"schema" -> "models"', '"models" -> "endpoints"', '"endpoints" -> "release"'):
        assert edge in out


def test_viz_mermaid_is_a_flowchart_with_every_edge(cli: Cli, project: Path) -> None:
    out = cli.ok("viz", "-f", "mermaid").stdout
    lines = out.splitlines()

    assert lines[0] == "flowchart LR"
    node_of = {
        line.split('["')[1].split(":")[0]: line.split("[")[0].strip() for line in lines if '["' in line
    }
    assert f"{node_of['schema']} --> {node_of['models']}" in out
    assert f"{node_of['endpoints']} --> {node_of['release']}" in out


def test_viz_rejects_an_unknown_format(cli: Cli, project: Path) -> None:
    result = cli.fails(2, "viz", "--format", "png")

    assert "png" in result.stderr


def test_queries_never_write_to_the_graph_dir(cli: Cli, project: Path) -> None:
    before = graph_bytes(project)
    listing = sorted(p.name for p in (project / ".workgraph").iterdir())

    for command in ("ready", "list", "blocked", "critical-path"):
        cli.ok(command, "--json")

    assert graph_bytes(project) == before
    assert sorted(p.name for p in (project / ".workgraph").iterdir()) == listing
