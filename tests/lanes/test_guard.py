"""The guard: the one path from findings to tasks — deterministic ids, dedup, caps, the hourly budget,
the policy modes, resolution of findings that are gone, and the journal of every outcome."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from speedrift.graph import ops
from speedrift.graph.codec import Graph
from speedrift.graph.model import declared_scope, speedrift_data, status_of
from speedrift.graph.store import GraphStore
from speedrift.lanes import guard
from speedrift.lanes.guard import GuardOutcome, GuardStatus, apply, followup_id
from speedrift.lanes.journal import journal, journal_path
from speedrift.lanes.model import CheckReport, LaneFinding, LaneResult, LaneScope, Severity
from speedrift.lanes.policy import DriftPolicy, Guard, LaneMode, LanePolicy
from tests.conftest import NOW
from tests.gitrepo import make_repo

HEAD = "c0ffee" + "0" * 34
DEPS = "depsdrift"
SEC = "secdrift"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = make_repo(tmp_path / "repo")
    add_task(path, "t1", "Add the parser")
    add_task(path, "t2", "Add the printer")
    return path


def store(repo: Path) -> GraphStore:
    found = GraphStore.of_repo(repo)
    assert found is not None
    return found


def add_task(repo: Path, task_id: str, title: str) -> None:
    spec = ops.NewTask(title, task_id=task_id)
    store(repo).mutate(lambda graph, now: ops.add_task(graph, spec, now=now, actor="test"), now=NOW)


def tasks(repo: Path) -> dict[str, dict[str, Any]]:
    return store(repo).load().tasks


def drift_tasks(repo: Path) -> dict[str, dict[str, Any]]:
    return {i: t for i, t in tasks(repo).items() if "drift" in t.get("tags", [])}


def log_messages(repo: Path, task_id: str) -> list[str]:
    return [entry["message"] for entry in tasks(repo)[task_id].get("log", [])]


def finding(
    n: int = 1,
    *,
    lane: str = DEPS,
    kind: str = "lock_not_updated",
    subject: str = "",
    severity: Severity = Severity.WARNING,
    file: str | None = None,
    message: str | None = None,
    evidence: Sequence[str] = ("pyproject.toml changed its dependencies", "uv.lock did not change"),
) -> LaneFinding:
    path = f"pkg{n}/pyproject.toml" if file is None else file
    return LaneFinding(
        lane=lane,
        kind=kind,
        message=message or f"{path} changed without its lock",
        severity=severity,
        file=path,
        line=4,
        subject=subject,
        key=path,
        evidence=tuple(evidence),
        fix=f"run `uv lock` in {path.rsplit('/', 1)[0] or '.'} and commit uv.lock",
    )


def report(*results: LaneResult, task: str | None = None) -> CheckReport:
    return CheckReport(repo="repo", head=HEAD, base=None, task=task, results=results)


def result(
    lane: str, *findings: LaneFinding, error: str | None = None, skipped: str | None = None
) -> LaneResult:
    return LaneResult(lane, findings=findings, error=error, skipped=skipped)


def policy(
    mode: LaneMode = LaneMode.REDIRECT,
    *,
    lanes: Sequence[str] = (DEPS, SEC),
    modes: Mapping[str, LaneMode] | None = None,
    active: int = 3,
    hourly: int = 10,
    ceiling: int = 50,
    min_severity: Severity = Severity.WARNING,
) -> DriftPolicy:
    lane_policies = {name: LanePolicy(name, (modes or {}).get(name, mode), {}) for name in lanes}
    return DriftPolicy(
        None,
        mode=mode,
        order=tuple(lanes),
        guard=Guard(
            max_active_per_lane=active,
            max_creates_per_hour=hourly,
            global_ceiling=ceiling,
            min_severity=min_severity,
        ),
        lanes=lane_policies,
    )


def statuses(outcomes: Sequence[GuardOutcome]) -> list[str]:
    return [str(o.status) for o in outcomes]


# --- ids ----------------------------------------------------------------------------------------------
def test_a_followup_id_is_the_lane_and_the_fingerprint_and_a_valid_task_id() -> None:
    f = finding()
    assert followup_id(f) == f"drift-depsdrift-{f.fingerprint[:12]}"
    assert followup_id(finding(message="reworded")) == followup_id(f)  # wording is not identity
    odd = finding(lane="my lane/../x")
    assert followup_id(odd) == f"drift-my-lane-x-{odd.fingerprint[:12]}"
    assert len(guard.breaker_id("t" * 200)) <= 128


# --- redirect: creation, idempotence, content --------------------------------------------------------
def test_two_runs_with_the_same_findings_make_one_task(repo: Path) -> None:
    checked = report(result(DEPS, finding(1)))
    first = apply(repo, checked, policy(), now=NOW)
    second = apply(repo, checked, policy(), now=NOW + timedelta(minutes=5))
    task_id = followup_id(finding(1))
    assert [(o.status, o.task_id) for o in first] == [(GuardStatus.CREATED, task_id)]
    assert [(o.status, o.task_id) for o in second] == [(GuardStatus.EXISTING, task_id)]
    assert second[0].detail == f"{task_id} exists (open)"
    assert list(drift_tasks(repo)) == [task_id]


def test_a_created_followup_carries_title_tags_scope_drift_data_and_runs_after_its_task(repo: Path) -> None:
    f = finding(1, subject="t1")
    (outcome,) = apply(repo, report(result(DEPS, f), task="t1"), policy(), now=NOW)
    task = tasks(repo)[outcome.task_id]
    assert outcome.status is GuardStatus.CREATED and outcome.detail == f"created {outcome.task_id} after t1"
    assert task["title"] == "depsdrift: pkg1/pyproject.toml changed without its lock"
    assert task["tags"] == ["drift", "depsdrift", "lock_not_updated"]
    assert task["after"] == ["t1"]
    assert declared_scope(task) == ["pkg1/pyproject.toml"]
    assert speedrift_data(task)["drift"] == {
        "lane": DEPS,
        "kind": "lock_not_updated",
        "fingerprint": f.fingerprint,
        "subject": "t1",
        "file": "pkg1/pyproject.toml",
    }


def test_the_description_holds_the_finding_its_evidence_the_fix_the_scope_and_a_prompt(repo: Path) -> None:
    f = finding(1, subject="t1")
    (outcome,) = apply(repo, report(result(DEPS, f)), policy(), now=NOW)
    description = tasks(repo)[outcome.task_id]["description"]
    facts, prompt = description.split("## Prompt")
    assert "- Where: pkg1/pyproject.toml:4" in facts and "- Severity: warning" in facts
    assert "## Evidence\n- pyproject.toml changed its dependencies\n- uv.lock did not change" in facts
    assert "## Suggested fix\nrun `uv lock` in pkg1 and commit uv.lock" in facts
    assert "## Declared scope\n- pkg1/pyproject.toml" in facts
    assert "Goal: make depsdrift stop reporting `lock_not_updated`" in prompt
    assert "- uv.lock did not change" in prompt and "Fix: run `uv lock` in pkg1" in prompt
    assert "Change only the declared scope: pkg1/pyproject.toml" in prompt
    assert "Keep the test suite passing" in prompt


def test_a_long_multiline_finding_makes_a_bounded_one_line_title_and_a_bounded_description(
    repo: Path,
) -> None:
    f = finding(
        1, message="line one\nline two " + "x" * 5000, evidence=[f"fact {i} " + "y" * 2000 for i in range(60)]
    )
    (outcome,) = apply(repo, report(result(DEPS, f)), policy(), now=NOW)
    task = tasks(repo)[outcome.task_id]
    assert len(task["title"]) <= 200 and "\n" not in task["title"]
    assert task["title"].startswith("depsdrift: line one line two")
    assert len(task["description"]) <= 20_000
    assert "- … and 45 more" in task["description"] and "## Prompt" in task["description"]


def test_a_finding_whose_task_is_not_in_the_graph_makes_a_followup_without_an_edge(repo: Path) -> None:
    (outcome,) = apply(repo, report(result(DEPS, finding(1, subject="gone"))), policy(), now=NOW)
    task = tasks(repo)[outcome.task_id]
    assert outcome.status is GuardStatus.CREATED and "after" not in task
    assert "- About task: gone (not in this graph)" in task["description"]


def test_a_followup_in_any_status_or_a_task_with_the_same_fingerprint_is_existing(repo: Path) -> None:
    f1, f2 = finding(1), finding(2)
    apply(repo, report(result(DEPS, f1)), policy(), now=NOW)
    first = followup_id(f1)
    store(repo).mutate(lambda g, now: ops.done(g, first, now=now, actor="test", force=True), now=NOW)
    spec = ops.NewTask("fix the lock by hand", task_id="by-hand")

    def by_hand(graph: Graph, now: Any) -> ops.Mutation:
        made = ops.add_task(graph, spec, now=now, actor="test")
        return ops.set_fields(
            graph,
            "by-hand",
            speedrift={"drift": {"fingerprint": f2.fingerprint}},
            now=now,
            actor="t",
            within=made,
        )

    store(repo).mutate(by_hand, now=NOW)
    outcomes = apply(repo, report(result(DEPS, f1, f2)), policy(), now=NOW)
    assert statuses(outcomes) == ["existing", "existing"]
    assert outcomes[0].detail == f"{first} exists (done)"
    assert outcomes[1].detail == "by-hand (open) holds the same finding"
    assert followup_id(f2) not in tasks(repo)


def test_info_findings_are_only_observed(repo: Path) -> None:
    outcomes = apply(repo, report(result(DEPS, finding(1, severity=Severity.INFO))), policy(), now=NOW)
    assert statuses(outcomes) == ["observed"] and outcomes[0].detail == "info: not actionable, recorded only"
    assert drift_tasks(repo) == {}


def test_without_create_nothing_is_created_and_what_would_be_is_observed(repo: Path) -> None:
    outcomes = apply(repo, report(result(DEPS, finding(1))), policy(), now=NOW, create=False)
    assert statuses(outcomes) == ["observed"]
    assert outcomes[0].detail == f"follow-ups are off: would create {followup_id(finding(1))}"
    assert drift_tasks(repo) == {}


# --- caps and budget ---------------------------------------------------------------------------------
def test_the_per_lane_cap_refuses_more_active_followups_and_a_closed_one_frees_a_place(repo: Path) -> None:
    checked = report(result(DEPS, finding(1), finding(2), finding(3)))
    outcomes = apply(repo, checked, policy(active=2), now=NOW)
    assert statuses(outcomes) == ["created", "created", "capped"]
    assert outcomes[2].detail == "depsdrift has 2 active follow-ups (max_active_per_lane = 2)"
    other = apply(repo, report(result(SEC, finding(9, lane=SEC))), policy(active=2), now=NOW)
    assert statuses(other) == ["created"]  # the cap is per lane
    first = outcomes[0].task_id
    store(repo).mutate(lambda g, now: ops.abandon(g, first, reason="no", now=now, actor="t"), now=NOW)
    again = apply(repo, checked, policy(active=2), now=NOW)
    assert statuses(again) == ["existing", "existing", "created"]


def test_the_global_ceiling_counts_every_lanes_active_drift_tasks(repo: Path) -> None:
    spec = ops.NewTask("a drift task made by hand", task_id="manual", tags=["drift"])
    store(repo).mutate(lambda g, now: ops.add_task(g, spec, now=now, actor="t"), now=NOW)
    checked = report(result(DEPS, finding(1)), result(SEC, finding(2, lane=SEC), finding(3, lane=SEC)))
    outcomes = apply(repo, checked, policy(ceiling=3), now=NOW)
    assert statuses(outcomes) == ["created", "created", "ceiling"]
    assert outcomes[2].detail == "the repo has 3 active drift follow-ups (global_ceiling = 3)"


def test_the_hourly_budget_refuses_until_an_hour_has_passed(repo: Path) -> None:
    checked = report(result(DEPS, finding(1), finding(2), finding(3)))
    assert statuses(apply(repo, checked, policy(hourly=2), now=NOW)) == ["created", "created", "budget"]
    later = apply(repo, checked, policy(hourly=2), now=NOW + timedelta(minutes=59))
    assert statuses(later) == ["existing", "existing", "budget"]
    assert later[2].detail == "depsdrift created 2 follow-ups in the last hour (max_creates_per_hour = 2)"
    freed = apply(repo, checked, policy(hourly=2), now=NOW + timedelta(minutes=61))
    assert statuses(freed) == ["existing", "existing", "created"]


def test_concurrent_checks_create_one_task(repo: Path) -> None:
    checked = report(result(DEPS, finding(1)))
    found: list[tuple[GuardOutcome, ...]] = []
    threads = [
        threading.Thread(target=lambda: found.append(apply(repo, checked, policy(), now=NOW)))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(o.status for run in found for o in run) == ["created", "existing", "existing", "existing"]
    assert len(drift_tasks(repo)) == 1


# --- modes --------------------------------------------------------------------------------------------
def test_observe_records_and_changes_nothing(repo: Path) -> None:
    before = tasks(repo)
    outcomes = apply(repo, report(result(DEPS, finding(1, subject="t1"))), policy(LaneMode.OBSERVE), now=NOW)
    assert statuses(outcomes) == ["observed"] and outcomes[0].detail == "mode observe: recorded only"
    assert tasks(repo) == before


def test_advise_logs_to_the_task_once_per_finding(repo: Path) -> None:
    checked = report(result(DEPS, finding(1, subject="t1"), finding(2)), task="t1")
    first = apply(repo, checked, policy(LaneMode.ADVISE), now=NOW)
    assert [(o.status, o.task_id) for o in first] == [(GuardStatus.LOGGED, "t1"), (GuardStatus.OBSERVED, "")]
    assert first[1].detail == "about the repository, not a task: nothing to log to"
    (logged,) = log_messages(repo, "t1")
    assert logged.startswith("depsdrift (warning, lock_not_updated) at pkg1/pyproject.toml:4:")
    assert "fix: run `uv lock`" in logged
    second = apply(repo, checked, policy(LaneMode.ADVISE), now=NOW + timedelta(minutes=1))
    assert [(o.status, o.detail) for o in second] == [
        (GuardStatus.EXISTING, "already logged to t1"),
        (GuardStatus.OBSERVED, "about the repository, not a task: nothing to log to"),
    ]
    assert len(log_messages(repo, "t1")) == 1 and drift_tasks(repo) == {}


def test_advise_without_write_log_logs_nothing(repo: Path) -> None:
    checked = report(result(DEPS, finding(1, subject="t1")))
    outcomes = apply(repo, checked, policy(LaneMode.ADVISE), now=NOW, write_log=False)
    assert statuses(outcomes) == ["observed"] and outcomes[0].detail == "logging is off: recorded only"
    assert log_messages(repo, "t1") == []


def test_advise_on_a_task_not_in_the_graph_is_observed(repo: Path) -> None:
    outcomes = apply(repo, report(result(DEPS, finding(1, subject="nope"))), policy(LaneMode.ADVISE), now=NOW)
    assert statuses(outcomes) == ["observed"] and outcomes[0].detail.startswith(
        "task nope is not in the graph"
    )


def test_heal_lets_only_therapydrift_create_followups(repo: Path) -> None:
    lanes = (DEPS, "therapydrift")
    therapy = finding(5, lane="therapydrift", kind="repeated_drift_signals", subject="t1")
    checked = report(result(DEPS, finding(1, subject="t1")), result("therapydrift", therapy))
    outcomes = apply(repo, checked, policy(LaneMode.HEAL, lanes=lanes), now=NOW)
    assert [(o.lane, o.status) for o in outcomes] == [
        (DEPS, GuardStatus.LOGGED),
        ("therapydrift", GuardStatus.CREATED),
    ]
    assert list(drift_tasks(repo)) == [followup_id(therapy)]


def test_a_lane_mode_overrides_the_policy_mode(repo: Path) -> None:
    checked = report(result(DEPS, finding(1)), result(SEC, finding(2, lane=SEC)))
    outcomes = apply(repo, checked, policy(modes={SEC: LaneMode.OBSERVE}), now=NOW)
    assert statuses(outcomes) == ["created", "observed"]


def test_breaker_advises_then_opens_one_breaker_task_when_findings_persist(repo: Path) -> None:
    checked = report(result(DEPS, finding(1, subject="t1"), finding(2, subject="t1")), task="t1")
    breaker = policy(LaneMode.BREAKER)
    first = apply(repo, checked, breaker, now=NOW)
    assert statuses(first) == ["logged", "logged"] and drift_tasks(repo) == {}
    other_task = report(result(DEPS, finding(1, subject="t2")), task="t2")
    assert statuses(apply(repo, other_task, breaker, now=NOW)) == ["logged"]  # another task's run
    second = apply(repo, checked, breaker, now=NOW + timedelta(minutes=10))
    assert statuses(second) == ["existing", "existing", "created"]
    assert second[2].task_id == "drift-breaker-t1" and second[2].kind == "breaker"
    task = tasks(repo)["drift-breaker-t1"]
    assert task["after"] == ["t1"] and task["tags"] == ["drift", DEPS, "breaker"]
    assert "pkg1/pyproject.toml" in task["description"] and "pkg2/pyproject.toml" in task["description"]
    third = apply(repo, checked, breaker, now=NOW + timedelta(minutes=20))
    assert statuses(third)[-1] == "existing" and len(drift_tasks(repo)) == 1


def test_breaker_ignores_findings_its_previous_run_did_not_have(repo: Path) -> None:
    breaker = policy(LaneMode.BREAKER)
    apply(repo, report(result(DEPS, finding(1, subject="t1")), task="t1"), breaker, now=NOW)
    outcomes = apply(repo, report(result(DEPS, finding(2, subject="t1")), task="t1"), breaker, now=NOW)
    assert statuses(outcomes) == ["logged"] and "drift-breaker-t1" not in tasks(repo)


# --- resolution ---------------------------------------------------------------------------------------
def test_a_gone_finding_abandons_its_open_followup_and_annotates_one_in_progress_once(repo: Path) -> None:
    scopes = {SEC: LaneScope.TREE}
    f1, f2 = finding(1, lane=SEC, kind="secret"), finding(2, lane=SEC, kind="secret")
    apply(repo, report(result(SEC, f1, f2)), policy(), now=NOW, scopes=scopes)
    open_id, taken_id = followup_id(f1), followup_id(f2)
    store(repo).mutate(lambda g, now: ops.claim(g, taken_id, now=now, actor="dev"), now=NOW)
    gone = apply(repo, report(result(SEC)), policy(), now=NOW + timedelta(hours=1), scopes=scopes)
    assert [(o.task_id, o.status) for o in gone] == [
        (open_id, GuardStatus.RESOLVED),
        (taken_id, GuardStatus.ANNOTATED),
    ]
    assert gone[0].detail == f"resolved: {SEC} no longer finds it at {HEAD[:12]}"
    assert status_of(tasks(repo)[open_id]) == "abandoned"
    assert (
        log_messages(repo, open_id)[-1]
        == f"Task abandoned: resolved: {SEC} no longer finds it at {HEAD[:12]}"
    )
    assert status_of(tasks(repo)[taken_id]) == "in-progress"
    assert log_messages(repo, taken_id)[-1].startswith(f"{SEC} no longer finds this at {HEAD[:12]}")
    again = apply(repo, report(result(SEC)), policy(), now=NOW + timedelta(hours=2), scopes=scopes)
    assert again == () and len(log_messages(repo, taken_id)) == 2  # claimed, annotated: once


def test_a_finding_still_found_keeps_its_followup(repo: Path) -> None:
    scopes = {SEC: LaneScope.TREE}
    f1 = finding(1, lane=SEC)
    apply(repo, report(result(SEC, f1, finding(2, lane=SEC))), policy(), now=NOW, scopes=scopes)
    outcomes = apply(repo, report(result(SEC, f1)), policy(), now=NOW, scopes=scopes)
    assert statuses(outcomes) == ["existing", "resolved"]
    assert status_of(tasks(repo)[followup_id(f1)]) == "open"


def test_a_diff_lane_resolves_only_the_followups_of_the_task_it_checked(repo: Path) -> None:
    on_t1, on_t2 = finding(1, subject="t1"), finding(2, subject="t2")
    apply(repo, report(result(DEPS, on_t1), task="t1"), policy(), now=NOW)
    apply(repo, report(result(DEPS, on_t2), task="t2"), policy(), now=NOW)
    assert apply(repo, report(result(DEPS)), policy(), now=NOW) == ()  # no task: no judgement
    outcomes = apply(repo, report(result(DEPS), task="t1"), policy(), now=NOW, scopes={DEPS: LaneScope.DIFF})
    assert [(o.task_id, o.status) for o in outcomes] == [(followup_id(on_t1), GuardStatus.RESOLVED)]
    assert status_of(tasks(repo)[followup_id(on_t2)]) == "open"


def test_a_lane_that_errored_or_was_skipped_resolves_nothing(repo: Path) -> None:
    scopes = {SEC: LaneScope.TREE}
    apply(repo, report(result(SEC, finding(1, lane=SEC))), policy(), now=NOW, scopes=scopes)
    assert apply(repo, report(result(SEC, error="timed out")), policy(), now=NOW, scopes=scopes) == ()
    assert apply(repo, report(result(SEC, skipped="no range")), policy(), now=NOW, scopes=scopes) == ()
    assert apply(repo, report(result(SEC)), policy(), now=NOW, scopes=scopes, resolve=False) == ()
    assert status_of(tasks(repo)[followup_id(finding(1, lane=SEC))]) == "open"


# --- the journal and failures -------------------------------------------------------------------------
def test_the_journal_records_every_outcome_refusals_included_and_each_lane_run(repo: Path) -> None:
    checked = report(result(DEPS, finding(1), finding(2)), result(SEC, error="crashed"), task="t1")
    outcomes = apply(repo, checked, policy(active=1), now=NOW)
    records = journal(repo)
    kept = [r for r in records if r["record"] == "outcome"]
    assert [r["status"] for r in kept] == ["created", "capped"]
    assert kept == [{"record": "outcome", **o.to_json(), "head": HEAD} for o in outcomes]
    runs = [r for r in records if r["record"] == "run"]
    assert runs == [
        {
            "record": "run",
            "lane": DEPS,
            "task": "t1",
            "head": HEAD,
            "at": "2026-11-20T12:00:00Z",
            "fingerprints": sorted([finding(1).fingerprint, finding(2).fingerprint]),
        }
    ]
    apply(repo, checked, policy(active=1), now=NOW + timedelta(hours=2))
    assert len(journal(repo)) == 6
    assert [
        r["status"] for r in journal(repo, since=NOW + timedelta(hours=1)) if r["record"] == "outcome"
    ] == [
        "existing",
        "capped",
    ]


def test_a_torn_last_line_is_skipped_and_never_swallows_the_next_record(repo: Path) -> None:
    apply(repo, report(result(DEPS, finding(1))), policy(), now=NOW)
    path = journal_path(repo)
    with path.open("ab") as torn:
        torn.write(b'{"record": "outcome", "lane": "dep')
    assert len(journal(repo)) == 2
    apply(repo, report(result(DEPS, finding(1))), policy(), now=NOW)
    assert [r.get("status") for r in journal(repo)] == ["created", None, "existing", None]


def test_without_a_task_graph_every_change_is_an_error(tmp_path: Path) -> None:
    bare = make_repo(tmp_path / "bare", graph=False)
    outcomes = apply(
        bare, report(result(DEPS, finding(1), finding(2, severity=Severity.INFO))), policy(), now=NOW
    )
    assert statuses(outcomes) == ["error", "observed"]
    assert outcomes[0].detail == f"created: no task graph in {bare} (run `speedrift init`)"
    assert [r["status"] for r in journal(bare) if r["record"] == "outcome"] == ["error", "observed"]


def test_a_graph_that_cannot_be_written_turns_every_change_into_an_error(repo: Path) -> None:
    graph_file = store(repo).graph_path
    graph_file.write_bytes(graph_file.read_bytes() + b"{not json\n")
    outcomes = apply(repo, report(result(DEPS, finding(1))), policy(), now=NOW)
    assert statuses(outcomes) == ["error"] and "malformed line" in outcomes[0].detail
    assert drift_tasks(repo) == {}


def test_a_journal_past_its_size_is_archived_and_the_guard_still_decides_as_before(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from speedrift.lanes import journal as journal_module

    monkeypatch.setattr(journal_module, "MAX_BYTES", 2000)
    apply(repo, report(result(DEPS, finding(1))), policy(), now=NOW)
    for n in range(30):  # info findings: one observed line each, every run
        apply(repo, report(result(DEPS, finding(100 + n, severity=Severity.INFO))), policy(), now=NOW)
    assert journal_path(repo).stat().st_size < 4000
    archived = journal_module.archives(repo)
    assert archived, "the journal was never rotated"
    # the creation within the budget window was carried over: the hourly budget still counts it
    assert [r["status"] for r in journal(repo) if r.get("status") == "created"] == ["created"]
    again = apply(repo, report(result(DEPS, finding(2))), policy(hourly=1), now=NOW)
    assert statuses(again) == ["budget"]


def test_a_task_whose_contract_declines_auto_followups_gets_advice_instead_of_a_task(repo: Path) -> None:
    contract = '```wg-contract\nschema = 1\nmode = "core"\ntouch = ["src/**"]\nauto_followups = false\n```\n'
    spec = ops.NewTask("careful", task_id="careful", description=contract)
    store(repo).mutate(lambda g, now: ops.add_task(g, spec, now=now, actor="t"))
    drift = finding(1, lane="coredrift", kind="scope_drift", subject="careful")
    outcomes = apply(
        repo, report(result("coredrift", drift), task="careful"), policy(lanes=("coredrift",)), now=NOW
    )
    assert statuses(outcomes) == ["logged"]
    assert drift_tasks(repo) == {}


def test_by_default_only_error_and_critical_findings_get_a_task_and_a_warning_is_advice(repo: Path) -> None:
    assert Guard().min_severity == Severity.ERROR  # what a repo without a policy gets
    warned = finding(1, subject="t1")
    broken = finding(2, subject="t1", severity=Severity.ERROR)
    outcomes = apply(repo, report(result(DEPS, warned, broken)), policy(min_severity=Severity.ERROR), now=NOW)
    assert statuses(outcomes) == ["logged", "created"]
    assert list(drift_tasks(repo)) == [followup_id(broken)]
