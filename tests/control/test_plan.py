"""Candidate actions: which kinds each repo state plans, with priority, deterministic id, params, prompts."""

from __future__ import annotations

import re

import pytest

from speedrift.control.assess.score import score_repo
from speedrift.control.plan.candidates import corrective_id, plan_actions, slug
from speedrift.register.actions import Action
from speedrift.register.record import AttemptStats, GateStats, RepoEntry, RepoSnapshot
from speedrift.serialize import to_plain
from tests.control.core_builders import NOW, entry, git, graph, running, snap, stopped

ID_SHAPE = re.compile(r"^[a-z0-9._-]+:[a-z_]+(:[a-z0-9-]+)?$")


def plan(*snaps: RepoSnapshot, entries: list[RepoEntry] | None = None) -> list[Action]:
    healths = {s.name: score_repo(s, None, NOW) for s in snaps}
    return plan_actions({s.name: s for s in snaps}, healths, entries or [entry(s.name) for s in snaps], NOW)


def kinds(actions: list[Action]) -> list[tuple[str, int]]:
    return [(a.kind, a.priority) for a in actions]


def only(actions: list[Action], kind: str) -> Action:
    (found,) = [a for a in actions if a.kind == kind]
    return found


# ---------------------------------------------------------------- work: restart or dispatch


def test_ready_work_without_a_service_plans_a_dispatch_of_the_first_ready_tasks() -> None:
    actions = plan(snap("app", graph_state=graph(ready=7)))
    dispatch = only(actions, "dispatch_ready")
    assert (dispatch.id, dispatch.priority) == ("app:dispatch_ready", 92)
    assert to_plain(dispatch.params) == {"tasks": ["r1", "r2", "r3", "r4", "r5"], "max": 2}
    assert "7 ready task(s) wait and no service runs" in dispatch.reason


def test_dispatch_priority_drops_to_89_while_other_work_is_in_progress() -> None:
    assert (
        only(plan(snap("app", graph_state=graph(ready=2, in_progress=[0.1]))), "dispatch_ready").priority
        == 89
    )


def test_a_service_the_hub_started_that_is_down_plans_a_restart_instead_of_a_dispatch() -> None:
    actions = plan(snap("app", graph_state=graph(ready=3), service=stopped(by_hub=True)))
    assert kinds(actions) == [("restart_service", 96)]
    assert actions[0].id == "app:restart_service"
    assert "the hub started it" in actions[0].reason


def test_an_always_on_repo_with_its_service_down_plans_a_restart() -> None:
    actions = plan(
        snap("app", graph_state=graph(ready=1)), entries=[entry("app", daemon_posture="always-on")]
    )
    assert kinds(actions) == [("restart_service", 96)]
    assert "always-on" in actions[0].reason


def test_a_running_service_needs_neither_restart_nor_dispatch() -> None:
    assert plan(snap("app", graph_state=graph(ready=3), service=running(agents=0))) == []


def test_daemon_posture_never_gets_no_restart_or_dispatch_but_keeps_other_actions() -> None:
    s = snap("app", graph_state=graph(ready=3), service=stopped(by_hub=True), git_state=git(behind=2))
    actions = plan(s, entries=[entry("app", daemon_posture="never")])
    assert kinds(actions) == [("sync_upstream", 74)]


def test_a_retired_repo_gets_no_actions_at_all() -> None:
    s = snap(
        "old", graph_state=graph(ready=3, stale_open=4), gates=GateStats(critical=2), git_state=git(behind=9)
    )
    assert plan(s, entries=[entry("old", lifecycle="retired")]) == []


def test_a_missing_repo_gets_no_actions() -> None:
    assert plan(snap("gone", exists=False)) == []


def test_observe_mode_repos_still_get_candidates_for_the_policy_to_cut() -> None:
    assert kinds(plan(snap("app", graph_state=graph(ready=1), mode="observe"))) == [("dispatch_ready", 92)]


# ---------------------------------------------------------------- gates, dependencies, in-progress, git


@pytest.mark.parametrize(
    ("gates", "priority"),
    [
        (GateStats(critical=1), 98),
        (GateStats(secret_leaks=1), 98),
        (GateStats(high=2, medium=3), 84),
        (GateStats(medium=5, low=9, last_status="warn"), None),
    ],
)
def test_gate_scans_are_planned_for_critical_high_and_secret_findings(
    gates: GateStats, priority: int | None
) -> None:
    actions = plan(snap("app", gates=gates))
    assert kinds(actions) == ([] if priority is None else [("run_gate_scan", priority)])


def test_missing_dependencies_plan_a_delegated_repair_with_a_deterministic_corrective_id() -> None:
    s = snap(
        "app", graph_state=graph(missing=[("deploy", "db-migrate"), ("build", "codegen")], failed_blockers=1)
    )
    repair = only(plan(s), "repair_dependencies")
    assert repair.priority == 88
    assert repair.subject == "speedrift-fix-dependencies-build-codegen"
    assert repair.id == "app:repair_dependencies:speedrift-fix-dependencies-build-codegen"
    assert to_plain(repair.params)["missing"] == [["build", "codegen"], ["deploy", "db-migrate"]]
    assert to_plain(repair.params)["failed_blockers"] == 1
    assert to_plain(repair.params)["corrective_kind"] == "dependencies"


def test_failed_blockers_alone_plan_a_repair_too() -> None:
    repair = only(plan(snap("app", graph_state=graph(failed_blockers=2))), "repair_dependencies")
    assert repair.subject == "speedrift-fix-dependencies-failed-blockers"


def test_dead_claims_and_aging_work_plan_a_verification_of_those_tasks() -> None:
    s = snap("app", graph_state=graph(in_progress=[0.1, 5.0, 0.2], dead=["w1"]))
    verify = only(plan(s), "verify_in_progress")
    assert (verify.id, verify.priority) == ("app:verify_in_progress", 62)
    assert to_plain(verify.params) == {"tasks": ["w1", "w2"], "dead": ["w1"], "aging": ["w2"]}


def test_behind_plans_a_fetch_and_ahead_plans_a_dry_run_packet() -> None:
    actions = plan(snap("app", git_state=git(ahead=2, behind=5)))
    assert kinds(actions) == [("sync_upstream", 74), ("prepare_upstream_packet", 58)]
    assert "fetch only" in actions[0].reason and "dry-run" in actions[1].reason


def test_without_an_upstream_there_is_nothing_to_sync() -> None:
    assert plan(snap("app", git_state=git())) == []


# ---------------------------------------------------------------- corrective tasks


def test_each_repeatedly_failing_task_gets_its_own_corrective_task_up_to_three() -> None:
    s = snap("app", graph_state=graph(), attempts=AttemptStats(repeated_failures=("d", "b", "a", "c")))
    correctives = [a for a in plan(s) if a.kind == "emit_corrective_task"]
    assert [a.subject for a in correctives] == [
        "speedrift-fix-failing-a",
        "speedrift-fix-failing-b",
        "speedrift-fix-failing-c",
    ]
    assert {a.priority for a in correctives} == {80}
    assert to_plain(correctives[0].params)["tasks"] == ["a"]


def test_each_kinds_params_serialize_with_the_keys_the_ledger_has_always_carried() -> None:
    s = snap(
        "app",
        graph_state=graph(ready=2, missing=[("b", "x")], in_progress=[5.0], dead=["w1"], stale_open=3),
        attempts=AttemptStats(repeated_failures=("a",)),
        gates=GateStats(critical=1),
        git_state=git(ahead=1, behind=1),
    )
    shapes = {(str(a.kind), tuple(to_plain(a.params))) for a in plan(s)}
    assert shapes == {
        ("dispatch_ready", ("tasks", "max")),
        ("repair_dependencies", ("missing", "failed_blockers", "corrective_kind", "title")),
        ("verify_in_progress", ("tasks", "dead", "aging")),
        ("emit_corrective_task", ("tasks", "corrective_kind", "title")),  # a failing task's
        ("emit_corrective_task", ("corrective_kind", "title")),  # stale open work's
        ("run_gate_scan", ()),
        ("sync_upstream", ()),
        ("prepare_upstream_packet", ()),
    }


def test_aging_open_work_gets_one_triage_corrective_task() -> None:
    corrective = only(plan(snap("app", graph_state=graph(stale_open=6))), "emit_corrective_task")
    assert (corrective.subject, corrective.priority) == ("speedrift-fix-stale-open-work", 56)
    assert corrective.id == "app:emit_corrective_task:speedrift-fix-stale-open-work"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Fix-Login", "fix-login"),
        ("api/v2 handler!!", "api-v2-handler"),
        ("--a--", "a"),
    ],
)
def test_slugs_are_task_id_safe(text: str, expected: str) -> None:
    assert slug(text) == expected


def test_long_or_empty_slugs_keep_distinct_inputs_distinct() -> None:
    a, b = slug("x" * 80 + "1"), slug("x" * 80 + "2")
    assert a != b and len(a) <= 48 and len(b) <= 48
    assert slug("???") != slug("!!!")
    assert re.fullmatch(r"[0-9a-f]{7}", slug("???"))
    assert corrective_id("failing", "Build Docs") == "speedrift-fix-failing-build-docs"


# ---------------------------------------------------------------- the whole plan


def busy_ecosystem() -> list[RepoSnapshot]:
    return [
        snap("web", graph_state=graph(ready=3), gates=GateStats(high=1), git_state=git(behind=1)),
        snap(
            "api",
            graph_state=graph(ready=1, missing=[("b", "x")], stale_open=2),
            service=stopped(by_hub=True),
        ),
        snap("docs", graph_state=graph(in_progress=[9]), attempts=AttemptStats(repeated_failures=("z",))),
    ]


def test_the_plan_is_ordered_by_priority_then_id() -> None:
    actions = plan(*busy_ecosystem())
    keys = [(-a.priority, a.id) for a in actions]
    assert keys == sorted(keys)
    assert [a.id for a in actions[:3]] == [
        "api:restart_service",
        "web:dispatch_ready",
        "api:repair_dependencies:speedrift-fix-dependencies-b-x",
    ]


def test_ids_are_deterministic_and_unique() -> None:
    first = plan(*busy_ecosystem())
    again = plan(*reversed(busy_ecosystem()))
    assert [a.id for a in first] == [a.id for a in again]
    assert len({a.id for a in first}) == len(first)
    for a in first:
        assert ID_SHAPE.match(a.id), a.id
        assert a.id == (f"{a.repo}:{a.kind}" if a.subject is None else f"{a.repo}:{a.kind}:{a.subject}")


def test_every_action_carries_two_distinct_prompts_about_its_repo() -> None:
    for a in plan(*busy_ecosystem()):
        assert set(a.prompts) == {"claude", "codex"}
        assert a.prompts["claude"] != a.prompts["codex"]
        assert f"/srv/repos/{a.repo}" in a.prompts["claude"] and f"/srv/repos/{a.repo}" in a.prompts["codex"]
        assert a.reason in a.prompts["claude"]
