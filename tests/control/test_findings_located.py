"""Findings say where they are: an attempt the secret gate blocked landed nothing, so it never lowers
the target branch's score or tier (it is listed under the attempt); what the hub's scan of the
target branch finds is located at the commit it scanned, and a later passing scan clears it. Real
repos, a real `speedrift run`, real gates, real hub cycles."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from speedrift.control.controlfile import write_control
from speedrift.control.cycle import Hub
from speedrift.control.handlers.dispatch import HandlerContext, execute
from speedrift.graph import ops
from speedrift.graph.store import GraphStore
from speedrift.register.actions import Action, ActionKind
from speedrift.register.record import CycleRecord, RepoEntry, RepoReport
from speedrift.times import now_utc
from tests.cli.support import Cli, base_env
from tests.gitrepo import commit_file, make_repo, sh_git

KEY = "AKIAZ7VQ3XK2PLM4RB6D"
TOML = '[gates]\nskip = ["sast", "sca", "lint", "types", "tests"]\n'
ECOSYSTEM = 'schema = 1\n\n[repos.shop]\npath = "shop"\n'


def shop(tmp_path: Path) -> tuple[Path, Path]:
    repo = make_repo(
        tmp_path / "shop", {"README.md": "# shop\n", "speedrift.toml": TOML, ".gitignore": ".speedrift/\n"}
    )
    path = tmp_path / "ecosystem.toml"
    path.write_text(ECOSYSTEM)
    return repo, path


def report(record: CycleRecord) -> RepoReport:
    [found] = [r for r in record.repos if r.name == "shop"]
    return found


def codes(found: RepoReport) -> set[str]:
    return {r.code for r in found.reasons}


def scan(repo: Path, tmp_path: Path) -> dict[str, Any]:
    """The hub's scan of the target branch (run_gate_scan, supervise mode lets the hub run it)."""
    write_control(
        repo, "supervise", owner="t", lease_ttl=timedelta(hours=1), actor="t", reason="t", now=now_utc()
    )
    ctx = HandlerContext(
        repo=repo,
        entry=RepoEntry(name="shop", path=repo),
        env=base_env(),
        log_dir=tmp_path / "hub-logs",
        cycle_id="c-test",
        timeout_s=120,
    )
    action = Action(
        id="shop:run_gate_scan", repo="shop", kind=ActionKind.RUN_GATE_SCAN, priority=98, reason="t"
    )
    outcome = execute(action, replace(ctx, scan_timeout_s=120))
    assert outcome.status == "succeeded", outcome.detail
    return outcome.evidence


def test_an_attempt_the_secret_gate_blocked_never_lowers_the_target_branchs_score(tmp_path: Path) -> None:
    repo, path = shop(tmp_path)
    hub = Hub(path)
    baseline = report(hub.cycle())
    spec = ops.NewTask("leaky", task_id="leaky", exec_command=f"printf 'AWS_KEY = \"{KEY}\"\\n' > config.py")
    GraphStore(repo / ".workgraph").mutate(lambda g, now: ops.add_task(g, spec, now=now, actor="test"))
    Cli(repo).fails(1, "run", "leaky")
    assert not (repo / "config.py").exists()  # nothing landed

    after = report(hub.cycle())
    gates = after.snapshot.gates
    assert (gates.secret_leaks, gates.critical, gates.high) == (0, 0, 0)
    assert not codes(after) & {"secret_leaks", "gate_critical", "gate_high", "gate_failed"}
    [blocked] = gates.blocked_attempts
    assert (blocked.task, blocked.attempt, blocked.where, blocked.landed) == (
        "leaky",
        1,
        "blocked_attempt",
        False,
    )
    assert blocked.secret_leaks >= 1 and "secrets" in blocked.blocking
    # the penalty the failed task itself costs is the task's, not a finding's: the tier holds at
    # least as well as a repo with a failed task and no findings would
    assert all(not r.code.startswith("gate_") and r.code != "secret_leaks" for r in after.reasons)
    assert baseline.score >= after.score  # a failed task may cost; a finding does not
    risks = [e for q in hub.cycle().queues for e in q.entries if q.key == "risk" and e.repo == "shop"]
    assert not any(e.rule in ("secret_leaks", "gate_critical", "gate_failed") for e in risks)


def test_a_scan_of_the_target_branch_locates_its_findings_and_a_later_passing_scan_clears_them(
    tmp_path: Path,
) -> None:
    repo, path = shop(tmp_path)
    hub = Hub(path)
    leaked = commit_file(repo, "config.py", f'AWS_KEY = "{KEY}"\n', "add config")
    found = scan(repo, tmp_path)
    assert found["passed"] is False and found["where"] == {
        "where": "target_branch",
        "branch": "main",
        "commit": leaked,
    }
    dirty_record = hub.cycle()
    dirty = report(dirty_record)
    risks = [e for q in dirty_record.queues for e in q.entries if q.key == "risk" and e.repo == "shop"]
    [risk] = [e for e in risks if e.id == "risk:shop"]
    assert f"findings on the target branch at {leaked[:12]} (from the scan)" in risk.why
    assert (risk.detail["where"], risk.detail["commit"]) == ("target_branch", leaked)
    assert dirty.snapshot.gates.secret_leaks >= 1 and dirty.snapshot.gates.commit == leaked
    assert "secret_leaks" in codes(dirty)
    [reason] = [r for r in dirty.reasons if r.code == "secret_leaks"]
    assert f"on the target branch at {leaked[:12]}" in reason.text

    sh_git(repo, "rm", "-q", "config.py")
    sh_git(repo, "commit", "-q", "-m", "remove the key")
    clean_tip = sh_git(repo, "rev-parse", "HEAD")
    assert scan(repo, tmp_path)["passed"] is True
    clean = report(hub.cycle())
    assert clean.snapshot.gates.secret_leaks == 0 and clean.snapshot.gates.commit == clean_tip
    assert not codes(clean) & {"secret_leaks", "gate_critical", "gate_high", "gate_failed"}
    assert clean.score > dirty.score
