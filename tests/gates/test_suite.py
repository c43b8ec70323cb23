"""The suite: order, early stop, required gates, crashes and timeouts, the verdict and its bundle."""

from __future__ import annotations

import json
from pathlib import Path

from speedrift.gates import bundle as bundles
from speedrift.gates.config import GatesConfig
from speedrift.gates.context import GateContext, result
from speedrift.gates.model import EvidenceBundle, GateResult
from speedrift.gates.suite import GateSuite, default_gates
from speedrift.gates.tools import run as run_tool
from speedrift.graph import ops
from speedrift.graph.store import GraphStore
from tests.gates.conftest import GateRepo, NewRepo, gate
from tests.gitrepo import sh_git

AWS_KEY = "AKIA" + "Q3EXAMPLE7KEY2TE"


class Crashing:
    name = "lint"

    def run(self, ctx: GateContext) -> GateResult:
        raise RuntimeError("boom")


class Sleeping:
    name = "tests"

    def run(self, ctx: GateContext) -> GateResult:
        run_tool(["sleep", "30"], cwd=ctx.worktree, env=ctx.env, timeout=ctx.remaining(), what="sleep")
        return result(self.name, "pass", "slept")


def test_gates_run_cheap_first_and_every_result_has_its_timing(new_repo: NewRepo) -> None:
    repo = new_repo()
    repo.change({"a.json": "[1]\n"})
    evidence = repo.gates()
    assert [r.gate for r in evidence.results] == [
        "syntax",
        "secrets",
        "scope",
        "contract",
        "lint",
        "types",
        "tests",
        "sast",
        "sca",
    ]
    assert all(r.duration_ms >= 0 for r in evidence.results)
    assert evidence.passed and evidence.commit == repo.head() and evidence.base == repo.base


def test_a_required_gate_that_is_skipped_blocks(new_repo: NewRepo) -> None:
    repo = new_repo()
    repo.change({"notes.txt": "x\n"})
    evidence = repo.gates({"required": ["tests"]})
    assert gate(evidence, "tests").status == "skipped" and gate(evidence, "tests").required
    assert not evidence.passed and [r.gate for r in evidence.blocking] == ["tests"]


def test_a_gate_that_crashes_fails_instead_of_passing(new_repo: NewRepo) -> None:
    repo = new_repo()
    repo.change({"notes.txt": "x\n"})
    suite = GateSuite(gates=(Crashing(),), log_to_task=False)
    outcome = suite.evaluate(repo.path, repo.path, repo.base, repo.head(), None).results[0]
    assert (outcome.status, outcome.failure_class) == ("fail", "env_bootstrap")
    assert "RuntimeError: boom" in outcome.reason


def test_a_gate_past_its_timeout_fails_with_the_reason(new_repo: NewRepo) -> None:
    repo = new_repo()
    repo.change({"notes.txt": "x\n"})
    suite = GateSuite(GatesConfig(timeouts={"tests": 0.5}), gates=(Sleeping(),), log_to_task=False)
    outcome = suite.evaluate(repo.path, repo.path, repo.base, repo.head(), None).results[0]
    assert (outcome.status, outcome.failure_class) == ("fail", "implementation_error")
    assert "sleep timed out after 0s" in outcome.reason and "[gates.timeouts] tests" in outcome.reason


def test_skipped_by_config_and_the_summary_line(new_repo: NewRepo) -> None:
    repo = new_repo()
    repo.change({"bad.json": "{\n"})
    evidence = repo.gates({"skip": ["sca"]})
    assert gate(evidence, "sca").reason == "disabled in speedrift.toml ([gates] skip)"
    text = bundles.summary(evidence)
    assert text.startswith(f"gates on {repo.head()[:12]}: 1 fail (syntax: 1 file(s) do not parse")
    assert text.endswith("— blocked by syntax")


def test_the_summary_counts_gates_that_did_not_run_after_an_early_stop() -> None:
    results = tuple(
        result(
            g.name,
            "fail" if g.name == "secrets" else "pass" if g.name == "syntax" else "skipped",
            "1 secret(s) added" if g.name == "secrets" else f"{bundles.NOT_RUN}stopped after secrets failed",
        )
        for g in default_gates()
    )
    evidence = EvidenceBundle(
        "a" * 40, "b" * 40, results, "2026-01-01T00:00:00+00:00", stopped_early="secrets"
    )
    assert bundles.summary(evidence) == (
        "gates on aaaaaaaaaaaa: 1 fail (secrets: 1 secret(s) added), 1 pass, "
        "7 not run after secrets failed — blocked by secrets"
    )


def add_task(repo: GateRepo, task_id: str) -> dict[str, object]:
    store = GraphStore(repo.path / ".workgraph")
    spec = ops.NewTask(task_id, task_id=task_id, touch=["src/**"])
    store.mutate(lambda g, now: ops.add_task(g, spec, now=now, actor="test"))
    return dict(store.load().tasks[task_id])


def test_the_pipeline_seam_returns_a_verdict_with_the_bundle_and_logs_a_summary(new_repo: NewRepo) -> None:
    repo = new_repo(graph=True)
    task = add_task(repo, "leaky")
    repo.change({"src/config.py": f'KEY = "{AWS_KEY}"\n'})
    store = GraphStore(repo.path / ".workgraph")
    verdict = GateSuite(store=store).check(repo.path, repo.path, repo.base, repo.head(), task)
    assert not verdict.passed and verdict.failure_class == "secret_leak"
    evidence = verdict.evidence
    assert evidence["passed"] is False and evidence["blocking"] == ["secrets"]
    assert evidence["commit"] == repo.head()
    secrets = next(r for r in evidence["results"] if r["gate"] == "secrets")
    assert secrets["status"] == "fail" and secrets["failure_class"] == "secret_leak"
    assert secrets["findings"][0]["kind"] == "aws-access-key"
    stored = Path(evidence["bundle_file"])
    assert stored.name == f"{repo.head()}.json" and json.loads(stored.read_text())["blocking"] == ["secrets"]
    assert AWS_KEY not in stored.read_text() and AWS_KEY not in json.dumps(evidence)
    log = store.load().tasks["leaky"]["log"]
    assert log[-1]["message"] == verdict.summary and verdict.summary.startswith("gates on ")


def test_after_a_rebase_the_comparison_base_is_the_new_target_not_the_old_fork_point(
    new_repo: NewRepo,
) -> None:
    repo = new_repo({"src/a.py": "a = 1\n"})
    fork = repo.base
    sh_git(repo.path, "checkout", "-q", "-b", "attempt")
    repo.commit({"src/mine.py": "m = 1\n"}, "attempt work")
    sh_git(repo.path, "checkout", "-q", "main")
    landed = repo.commit(
        {"other.txt": "landed meanwhile\n" * 3, "more.txt": "x\n", "third.txt": "y\n"}, "other"
    )
    sh_git(repo.path, "checkout", "-q", "attempt")
    sh_git(repo.path, "rebase", "-q", "main")
    task = {"id": "t", "speedrift": {"touch": ["src/**"]}}
    verdict = GateSuite(target_branch="main", log_to_task=False).check(
        repo.path, repo.path, fork, repo.head(), task
    )
    assert verdict.passed, verdict.summary
    assert verdict.evidence["base"] == landed and verdict.evidence["extra"]["attempt_base"] == fork
    scope = next(r for r in verdict.evidence["results"] if r["gate"] == "scope")
    assert scope["status"] == "pass"  # other.txt & co. landed from elsewhere: not this attempt's diff
