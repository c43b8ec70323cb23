"""Pausing a standing agent (fleetops/pausing.py): durable in the agents' state, its waiting runs
paused in the graphs (and only those it paused resumed), the caller's write permission honoured."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from speedrift.control.observe.coordination import open_escalations
from speedrift.fleetops.pausing import PAUSE_MARK, escalate, pause_agent, resume_agent
from speedrift.fleetops.state import StateStore
from speedrift.graph import ops
from speedrift.graph.model import speedrift_data
from speedrift.graph.store import GraphStore
from tests.gitrepo import make_repo

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def store(repo: Path) -> GraphStore:
    found = GraphStore.of_repo(repo)
    assert found is not None
    return found


def add(repo: Path, task_id: str, *tags: str, claimed: bool = False, paused: bool = False) -> None:
    spec = ops.NewTask(task_id, task_id=task_id, tags=list(tags), exec_command="true", paused=paused)
    store(repo).mutate(lambda g, now: ops.add_task(g, spec, now=now, actor="t"), now=NOW)
    if claimed:
        store(repo).mutate(lambda g, now: ops.claim(g, task_id, now=now, actor="w"), now=NOW)


def paused(repo: Path) -> dict[str, bool]:
    return {tid: t.get("paused") is True for tid, t in store(repo).load().tasks.items()}


def setup(tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    app = make_repo(tmp_path / "app")
    add(app, "run-waiting", "agent:guard")
    add(app, "run-claimed", "agent:guard", claimed=True)
    add(app, "run-held-by-hand", "agent:guard", paused=True)
    add(app, "other-agent", "agent:nightly")
    add(app, "plain-task")
    hub = tmp_path / "hub"
    hub.mkdir()
    return hub, {"app": app}


def test_a_pause_is_durable_and_pauses_only_the_agents_waiting_runs(tmp_path: Path) -> None:
    hub, repos = setup(tmp_path)

    entry = pause_agent(hub, repos, "guard", by="operator:ada", reason="noisy", now=NOW)

    assert entry["kind"] == "agent_pause" and entry["agent"] == "guard" and entry["by"] == "operator:ada"
    assert entry["reason"] == "noisy" and entry["until"] is None and entry["generated_at"] == NOW
    assert entry["tasks"] == ["app:run-waiting"] and entry["changed"] is True
    assert paused(repos["app"]) == {
        "run-waiting": True,
        "run-claimed": False,
        "run-held-by-hand": True,
        "other-agent": False,
        "plain-task": False,
    }
    assert speedrift_data(store(repos["app"]).load().tasks["run-waiting"])[PAUSE_MARK] == "operator:ada"
    restarted = StateStore(hub).read().agents["guard"]  # a new store: what a restarted hub reads
    assert restarted.paused(NOW + timedelta(days=30))
    assert restarted.pause is not None and restarted.pause.reason == "noisy"


def test_resume_unpauses_only_what_the_pause_paused_and_resets_the_restarts(tmp_path: Path) -> None:
    hub, repos = setup(tmp_path)
    StateStore(hub).update(lambda s: setattr(s.agent("guard"), "restarts", [NOW]))
    pause_agent(hub, repos, "guard", by="restart-cap", reason="exited 10 times", now=NOW)

    entry = resume_agent(hub, repos, "guard", by="operator:ada", now=NOW + timedelta(hours=1))

    assert entry["kind"] == "agent_resume" and entry["changed"] is True
    assert entry["tasks"] == ["app:run-waiting"]
    assert "paused by restart-cap: exited 10 times" in entry["message"]
    assert paused(repos["app"])["run-waiting"] is False
    assert paused(repos["app"])["run-held-by-hand"] is True  # a person's own pause stays
    assert PAUSE_MARK not in speedrift_data(store(repos["app"]).load().tasks["run-waiting"])
    agent = StateStore(hub).read().agents["guard"]
    assert agent.pause is None and agent.restarts == []


def test_resuming_an_agent_that_is_not_paused_says_so_and_changes_nothing(tmp_path: Path) -> None:
    hub, repos = setup(tmp_path)
    before = store(repos["app"]).graph_path.read_bytes()

    entry = resume_agent(hub, repos, "guard", by="operator:ada", now=NOW)

    assert entry["changed"] is False and entry["tasks"] == []
    assert entry["message"] == "agent 'guard' is not paused; nothing to resume"
    assert store(repos["app"]).graph_path.read_bytes() == before


def test_a_repo_the_caller_may_not_write_is_named_and_left_alone(tmp_path: Path) -> None:
    hub, repos = setup(tmp_path)
    before = store(repos["app"]).graph_path.read_bytes()

    entry = pause_agent(
        hub, repos, "guard", by="nightwatch", reason="critical", now=NOW, write_graph=lambda repo: False
    )

    assert entry["not_written"] == ["app"] and entry["tasks"] == []
    assert store(repos["app"]).graph_path.read_bytes() == before
    assert StateStore(hub).read().agents["guard"].paused(NOW)  # the pause itself holds


def test_an_automatic_pause_never_replaces_one_in_force_but_a_person_does(tmp_path: Path) -> None:
    hub, repos = setup(tmp_path)
    pause_agent(hub, repos, "guard", by="restart-cap", reason="cap", now=NOW)

    auto = pause_agent(
        hub, repos, "guard", by="nightwatch", reason="drift", now=NOW, until=NOW + timedelta(hours=1)
    )
    person = pause_agent(hub, repos, "guard", by="operator:ada", reason="mine now", now=NOW)

    assert auto["changed"] is False and auto["kept"]["by"] == "restart-cap"
    assert person["changed"] is True
    pause = StateStore(hub).read().agents["guard"].pause
    assert pause is not None and (pause.by, pause.reason, pause.until) == ("operator:ada", "mine now", None)


def test_resume_resolves_the_agents_open_restart_cap_escalations(tmp_path: Path) -> None:
    hub, repos = setup(tmp_path)
    mine = escalate(repos["app"], "guard", "Safety agent guard is paused", "details", now=NOW)
    other = escalate(repos["app"], "sentinel", "Safety agent sentinel is paused", "details", now=NOW)
    pause_agent(hub, repos, "guard", by="restart-cap", reason="cap", now=NOW)
    assert {r.id for r in open_escalations(repos["app"])} == {mine, other}

    entry = resume_agent(hub, repos, "guard", by="operator:ada", now=NOW)

    assert entry["escalations_resolved"] == [f"app:{mine}"]
    assert [r.id for r in open_escalations(repos["app"])] == [other]
