"""Trace bundles and `speedrift replay`: a bundle replays with no difference from the bundle alone,
and every kind of tampering is reported with a non-zero exit."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from speedrift.coord.records import Actor, Author, Draft, Kind, Status
from speedrift.coord.store import CoordStore
from speedrift.errors import NotFound, Refused
from speedrift.plans import replay, trace
from speedrift.plans.closure import CommandResult, StageRecord, TaskState
from speedrift.plans.metrics import AttemptTrace
from speedrift.plans.spec import ClosureStage

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
COMMIT = "ab" * 20
AGENT = Author(Actor.AGENT, task="w2-api", attempt=1, role="developer")
SPEEDRIFT = Author(Actor.SPEEDRIFT)

SPEC: dict[str, Any] = {
    "schema": "speedrift.wave/1",
    "wave": 2,
    "title": "Rate limits",
    "mode": "dark-factory",
    "validation": ["python -m pytest -q"],
    "tasks": [
        {"id": "api", "title": "API", "role": "implementation", "owned": ["src/api.py"], "prompt": "p"},
        {"id": "cli", "title": "CLI", "role": "implementation", "owned": ["src/cli.py"], "prompt": "p"},
    ],
}
INTEGRATION: dict[str, Any] = {
    "recommendation": "ready",
    "open_claims": [],
    "conflicting_claims": [],
    "unresolved_blockers": [],
    "changed_interfaces": [],
    "cross_component_impacts": [],
    "proof_gaps": [],
    "doc_gaps": [{"summary": "README lacks --limit", "docs": ["README.md"]}],
    "deploy_risks": [],
    "detail": "the pieces fit",
}
DOCS: dict[str, Any] = {
    "status": "complete",
    "summary": "documented",
    "docs_to_change": [{"path": "README.md", "reason": "--limit", "done": True}],
    "gaps_found": [],
    "gaps_closed": [{"location": "README.md:3", "summary": "--limit documented", "closed_by": "steward"}],
    "files_written": ["README.md"],
    "proposed": [],
}
EVALUATION: dict[str, Any] = {
    "overall": "pass",
    "summary": "both hold",
    "verdicts": [
        {
            "target": "c1",
            "kind": "acceptance_criterion",
            "task": "w2-api",
            "verdict": "pass",
            "evidence": ["tests"],
        },
        {
            "target": "c2",
            "kind": "acceptance_criterion",
            "task": "w2-cli",
            "verdict": "pass",
            "evidence": ["tests"],
        },
    ],
    "gaps": [],
}


def _coordination(repo: Path) -> bytes:
    store = CoordStore.for_scope(repo, "wave-2")
    request = store.post(Draft(Kind.REQUEST, "which header?", AGENT, targets=("task:w2-cli",)), now=T0)
    store.post(
        Draft(Kind.ACK, "on it", AGENT, depends_on=(request.id,)),
        now=T0 + timedelta(seconds=30),
    )
    blocker = store.post(Draft(Kind.BLOCKER, "redis missing", AGENT), now=T0 + timedelta(minutes=1))
    store.update(blocker.id, Status.RESOLVED, author=SPEEDRIFT, now=T0 + timedelta(minutes=3))
    store.post(Draft(Kind.CLARIFICATION_REQUEST, "limit per key?", AGENT), now=T0 + timedelta(minutes=4))
    return store.path.read_bytes()


def _bundle(tmp_path: Path) -> trace.Bundle:
    return trace.Bundle(
        wave=2,
        attempt=1,
        spec=SPEC,
        commit=COMMIT,
        tasks=(TaskState("w2-api", "api", "done", True), TaskState("w2-cli", "cli", "done", True)),
        attempts=(
            AttemptTrace("w2-api", 1, "developer", "claude", outcome="failed"),
            AttemptTrace("w2-api", 2, "developer", "codex", fallback=True, outcome="done"),
            AttemptTrace("w2-cli", 1, "developer", "claude", outcome="done"),
        ),
        validation=(CommandResult("python -m pytest -q", COMMIT, 0),),
        stages=(
            StageRecord(ClosureStage.INTEGRATION, "wave-2-6", INTEGRATION),
            StageRecord(ClosureStage.DOCUMENTATION, "wave-2-7", DOCS),
            StageRecord(ClosureStage.EVALUATION, "wave-2-8", EVALUATION),
        ),
        coordination=_coordination(tmp_path / "repo"),
        artifacts={"prompts/w2-api.md": b"Implement the limiter.\n", "inboxes/w2-cli.md": b"# Inbox\n"},
    )


def _written(tmp_path: Path) -> Path:
    bundle = _bundle(tmp_path)
    outcome = replay.derive(bundle)
    return trace.write(tmp_path / "traces" / "wave-2" / "attempt-1", bundle, outcome, now=T0)


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run(
        [sys.executable, "-m", "speedrift", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_bundle_replays_with_no_difference_from_the_bundle_alone(tmp_path: Path) -> None:
    folder = _written(tmp_path)
    elsewhere = tmp_path / "elsewhere" / "bundle"
    shutil.copytree(folder, elsewhere)  # no repository around it: replay is hermetic
    report = replay.replay(elsewhere)
    assert report.clean, report.as_dict()
    assert report.derived["closure"]["phase"] == "closed"
    metrics = report.derived["metrics"]
    assert metrics["relaunches_by_runtime"] == {"codex": 1}
    assert metrics["fallback_rate"] == pytest.approx(0.3333)
    assert metrics["time_to_first_ack_s"] == 30.0
    assert metrics["time_to_blocker_resolution_s"] == 120.0
    assert (
        metrics["unresolved_requests"] == 2
    )  # the request was acked, not resolved; the clarification is open
    assert metrics["clarification_resolution_rate"] == 0.0
    done = _cli("replay", str(elsewhere), cwd=tmp_path / "elsewhere")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no difference (closure: closed)" in done.stdout


def test_a_file_changed_after_the_bundle_was_written_is_reported(tmp_path: Path) -> None:
    folder = _written(tmp_path)
    stages = json.loads((folder / trace.STAGES).read_text())
    stages[0]["output"]["doc_gaps"] = []
    (folder / trace.STAGES).write_text(json.dumps(stages))
    report = replay.replay(folder)
    assert any(problem.startswith("stages.json: changed since") for problem in report.integrity)
    done = _cli("replay", "--json", str(folder), cwd=tmp_path)
    assert done.returncode == 1
    assert json.loads(done.stdout)[0]["clean"] is False


def test_a_consistent_forgery_of_the_outcome_is_caught_by_re_deriving_it(tmp_path: Path) -> None:
    folder = _written(tmp_path)
    outcome = json.loads((folder / trace.OUTCOME).read_text())
    outcome["metrics"]["doc_drift"] = 0
    outcome["closure"]["reasons"] = ["all good"]
    _forge(folder, trace.OUTCOME, outcome)
    evaluation = json.loads((folder / trace.STAGES).read_text())
    evaluation[1]["output"]["gaps_closed"] = []  # the docs no longer close the README gap
    evaluation[1]["output"]["docs_to_change"] = []
    _forge(folder, trace.STAGES, evaluation)
    report = replay.replay(folder)
    assert report.integrity == ()
    paths = {item.path for item in report.differences}
    assert {"$.closure.phase", "$.closure.closed", "$.closure.reasons[0]"} <= paths
    done = _cli("replay", str(folder), cwd=tmp_path)
    assert done.returncode == 1 and '$.closure.phase: stored "closed"' in done.stdout


def test_a_stage_output_its_role_schema_refuses_is_not_a_stage(tmp_path: Path) -> None:
    folder = _written(tmp_path)
    stages = json.loads((folder / trace.STAGES).read_text())
    stages[0]["output"]["proof_gaps"] = [
        {"summary": "no load test", "needed": "a bench"}
    ]  # a ready with a gap
    _forge(folder, trace.STAGES, stages)
    report = replay.replay(folder)
    assert any(problem.startswith("integration wave-2-6:") for problem in report.invalid_stages)
    assert not report.clean


def test_an_unlisted_file_and_a_missing_one_are_both_named(tmp_path: Path) -> None:
    folder = _written(tmp_path)
    (folder / "artifacts" / "extra.txt").write_text("slipped in")
    (folder / "artifacts" / "prompts" / "w2-api.md").unlink()
    problems = trace.verify(folder).problems
    assert "artifacts/extra.txt: not in the manifest" in problems
    assert "artifacts/prompts/w2-api.md: listed in the manifest, missing" in problems


def test_a_bundle_is_never_overwritten_and_a_folder_without_a_manifest_is_not_one(tmp_path: Path) -> None:
    folder = _written(tmp_path)
    with pytest.raises(Refused):
        trace.write(folder, _bundle(tmp_path / "again"), {}, now=T0)
    with pytest.raises(NotFound):
        replay.replay(tmp_path)
    done = _cli("replay", str(tmp_path), cwd=tmp_path)
    assert done.returncode != 0 and "not a trace bundle" in done.stderr


def _forge(folder: Path, name: str, value: Any) -> None:
    """Rewrite a file AND its manifest entry, as a careful forger would."""
    import hashlib

    data = json.dumps(value).encode()
    (folder / name).write_bytes(data)
    manifest = json.loads((folder / trace.MANIFEST).read_text())
    manifest["artifacts"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    (folder / trace.MANIFEST).write_text(json.dumps(manifest))
