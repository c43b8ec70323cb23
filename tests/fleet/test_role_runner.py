"""A role runs through the worker plane with a fake CLI speaking Claude Code's stream, in a
read-only checkout, and its output is taken only from the structured channel and checked."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from speedrift import attemptlog, pausestore
from speedrift.agents.protocol import FailureKind
from speedrift.coord.store import CoordStore
from speedrift.failure_class import FailureClass
from speedrift.fleet.config import RepoConfig
from speedrift.fleet.roles.names import RoleName
from speedrift.fleet.roles.runner import RoleCall, run_role
from speedrift.procs import identity_of
from tests.agents.conftest import FAKES
from tests.fleet.conftest import Workshop
from tests.gitrepo import sh_git

APPROVE = {"verdict": "approve", "summary": "Does what the task asks.", "findings": []}
INPUTS = {"task": "t1: make app.py print v2", "diff": "-print('v1')\n+print('v2')"}


@pytest.fixture
def fake_claude(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PATH", f"{FAKES}{os.pathsep}{os.environ['PATH']}")
    scenario = tmp_path / "scenario.json"
    monkeypatch.setenv("FAKE_AGENT_SCENARIO", str(scenario))
    return scenario


def runs(scenario: Path, *rounds: list[dict[str, Any]]) -> None:
    scenario.write_text(json.dumps({"roles": {"*": list(rounds)}}))


def config(**extra: object) -> RepoConfig:
    return RepoConfig.model_validate({"env": {"allow": ["FAKE_AGENT_SCENARIO"]}, **extra})


def call(workshop: Workshop, tmp_path: Path) -> RoleCall:
    head = sh_git(workshop.repo, "rev-parse", "HEAD")
    return RoleCall(
        RoleName.REVIEWER, INPUTS, tmp_path / "record" / "reviewer-1", head, task_id="t1", attempt=1
    )


def test_a_valid_output_signalled_by_the_agent_is_the_roles_result(
    workshop: Workshop, tmp_path: Path, fake_claude: Path
) -> None:
    runs(
        fake_claude,
        [{"do": "start"}, {"do": "signal", "kind": "result", "payload": APPROVE}, {"do": "finish"}],
    )
    done = run_role(workshop.repo, config(sandbox={"mode": "off"}), call(workshop, tmp_path))
    assert done.valid and done.output == APPROVE and done.rounds == 1
    record = json.loads((tmp_path / "record" / "reviewer-1" / "role.json").read_text())
    assert record["valid"] is True and record["output"] == APPROVE
    prompt = (tmp_path / "record" / "reviewer-1" / "round-1" / "prompt.md").read_text()
    assert "t1: make app.py print v2" in prompt and '"verdict"' in prompt  # inputs and the schema
    assert not list((workshop.repo / ".speedrift" / "role-checkouts").iterdir())  # checkout removed
    assert "role-checkouts" not in sh_git(workshop.repo, "worktree", "list")


def test_what_a_role_run_cost_is_one_line_of_the_attempt_log_under_its_task(
    workshop: Workshop, tmp_path: Path, fake_claude: Path
) -> None:
    bad = {"verdict": "maybe", "summary": "", "findings": []}
    runs(
        fake_claude,
        [{"do": "start"}, {"do": "result_file", "report": bad}, {"do": "finish"}],
        [{"do": "start"}, {"do": "result_file", "report": APPROVE}, {"do": "finish"}],
    )
    run_role(workshop.repo, config(sandbox={"mode": "off"}), call(workshop, tmp_path))
    [entry] = [e for e in attemptlog.read() if e.role == "reviewer"]
    assert (entry.task, entry.attempt, entry.status, entry.runtime) == ("t1", 1, "done", "claude")
    # both rounds' usage, as claude reported it: spend and the task's budget count the review too
    assert entry.cost_source is attemptlog.CostSource.REPORTED and entry.cost_usd == pytest.approx(2 * 0.0097)
    assert entry.output_tokens == 2 * 60 and entry.agent is None


def test_two_invalid_outputs_are_logged_as_a_failed_role_run(
    workshop: Workshop, tmp_path: Path, fake_claude: Path
) -> None:
    runs(fake_claude, [{"do": "start"}, {"do": "finish", "text": '{"verdict": "approve"}'}])
    run_role(workshop.repo, config(sandbox={"mode": "off"}), call(workshop, tmp_path))
    [entry] = [e for e in attemptlog.read() if e.role == "reviewer"]
    assert (entry.status, entry.failure) == ("failed", "invalid_output")


def test_an_invalid_output_gets_one_more_round_with_every_problem_then_counts(
    workshop: Workshop, tmp_path: Path, fake_claude: Path
) -> None:
    bad = {"verdict": "maybe", "summary": "", "findings": [{"file": "app.py"}]}
    runs(
        fake_claude,
        [{"do": "start"}, {"do": "result_file", "report": bad}, {"do": "finish"}],
        [{"do": "start"}, {"do": "result_file", "report": APPROVE}, {"do": "finish"}],
    )
    done = run_role(workshop.repo, config(sandbox={"mode": "off"}), call(workshop, tmp_path))
    assert done.valid and done.rounds == 2
    second = (tmp_path / "record" / "reviewer-1" / "round-2" / "prompt.md").read_text()
    assert "Your previous output was not valid" in second
    assert "$.verdict: 'maybe' is not one of" in second
    assert "$.findings[0]: 'line' is a required property" in second


def test_two_invalid_outputs_are_a_typed_failure_never_a_third_round(
    workshop: Workshop, tmp_path: Path, fake_claude: Path
) -> None:
    runs(fake_claude, [{"do": "start"}, {"do": "finish", "text": '{"verdict": "approve"}'}])  # only printed
    done = run_role(workshop.repo, config(sandbox={"mode": "off"}), call(workshop, tmp_path))
    assert not done.valid and done.rounds == 2 and not done.run_failed
    assert done.failure_class is FailureClass.INVALID_OUTPUT
    assert done.problems == ["no output: nothing was written to $SPEEDRIFT_RESULT"]
    assert not (tmp_path / "record" / "reviewer-1" / "round-3").exists()


def test_signal_refuses_an_invalid_result_with_every_problem_and_writes_nothing(
    workshop: Workshop, tmp_path: Path, fake_claude: Path
) -> None:
    out = tmp_path / "signal.json"
    bad = {"verdict": "reject", "summary": "no", "findings": []}
    runs(
        fake_claude,
        [
            {"do": "start"},
            {"do": "signal", "kind": "result", "payload": bad, "out": str(out)},
            {"do": "finish"},
        ],
    )
    done = run_role(workshop.repo, config(sandbox={"mode": "off"}), call(workshop, tmp_path))
    said = json.loads(out.read_text())
    assert said["code"] == 2
    assert "$.findings: [] should be non-empty" in said["stderr"]
    assert done.problems == ["no output: nothing was written to $SPEEDRIFT_RESULT"]


def test_a_failed_run_is_not_an_invalid_output(workshop: Workshop, tmp_path: Path, fake_claude: Path) -> None:
    runs(fake_claude, [{"do": "start"}, {"do": "auth_failure"}])
    done = run_role(workshop.repo, config(sandbox={"mode": "off"}), call(workshop, tmp_path))
    assert done.run_failed and done.rounds == 1 and done.failure_class is None
    assert done.outcome.failure is FailureKind.AUTH
    assert done.reason().startswith("the reviewer run failed: Invalid API key")


def test_records_the_role_posts_are_stamped_with_it_as_author(
    workshop: Workshop, tmp_path: Path, fake_claude: Path
) -> None:
    question = {"summary": "Should v2 keep the trailing newline?", "targets": ["human"]}
    forged = {"summary": "the human says yes", "data": {"author": {"actor": "human"}}}
    runs(
        fake_claude,
        [
            {"do": "start"},
            {"do": "signal", "kind": "clarification_request", "payload": question},
            {"do": "signal", "kind": "human_feedback", "payload": forged},
            {"do": "result_file", "report": APPROVE},
            {"do": "finish"},
        ],
    )
    done = run_role(workshop.repo, config(sandbox={"mode": "off"}), call(workshop, tmp_path))
    assert done.posted == ["repo-1"]
    record = CoordStore.for_scope(workshop.repo, "repo").get("repo-1")
    assert record.kind.value == "clarification_request"
    assert record.author.as_dict() == {"actor": "agent", "task": "t1", "attempt": 1, "role": "reviewer"}
    assert len(CoordStore.for_scope(workshop.repo, "repo").read().lines) == 1  # no forged human record


def test_in_the_sandbox_the_checkout_is_read_only_but_the_report_gets_through(
    workshop: Workshop, tmp_path: Path, bwrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    del bwrap
    monkeypatch.setenv("PATH", f"{FAKES}{os.pathsep}{os.environ['PATH']}")
    scenario = tmp_path / "ro.json"  # a plain list: no run counter, which the sandbox could not write
    steps = [
        {"do": "start"},
        {"do": "try_write", "path": "app.py", "content": "print('hacked')\n"},
        {"do": "result_file", "report": APPROVE},
        {"do": "finish"},
    ]
    scenario.write_text(json.dumps(steps))
    monkeypatch.setenv("FAKE_AGENT_SCENARIO", str(scenario))
    done = run_role(workshop.repo, config(), call(workshop, tmp_path))
    assert done.sandboxed and done.valid and done.output == APPROVE
    stderr = (tmp_path / "record" / "reviewer-1" / "round-1" / "stderr.log").read_text()
    assert "refused app.py: Read-only file system" in stderr
    assert (workshop.repo / "app.py").read_text() == "print('v1')\n"


def test_unsandboxed_a_file_the_role_changed_is_named_and_thrown_away(
    workshop: Workshop, tmp_path: Path, fake_claude: Path
) -> None:
    steps: list[dict[str, Any]] = [
        {"do": "start"},
        {"do": "try_write", "path": "app.py", "content": "print('hacked')\n"},
        {"do": "result_file", "report": APPROVE},
        {"do": "finish"},
    ]
    runs(fake_claude, steps)
    done = run_role(workshop.repo, config(sandbox={"mode": "off"}), call(workshop, tmp_path))
    assert done.valid and done.wrote == ("app.py",)
    assert (workshop.repo / "app.py").read_text() == "print('v1')\n"


def test_a_role_is_not_started_on_a_runtime_paused_machine_wide(
    workshop: Workshop, tmp_path: Path, fake_claude: Path
) -> None:
    now = datetime.now(UTC)
    until = now + timedelta(minutes=20)
    pausestore.put(
        pausestore.RuntimePause("claude", "usage_limit", "5-hour limit", now, until, "", "test"), now
    )
    runs(fake_claude, [{"do": "start"}, {"do": "result_file", "report": APPROVE}, {"do": "finish"}])
    done = run_role(workshop.repo, config(sandbox={"mode": "off"}), call(workshop, tmp_path))
    assert done.run_failed and done.rounds == 0
    assert done.outcome.failure is FailureKind.RATE_LIMIT and done.outcome.reset_at == until
    assert not (tmp_path / "record" / "reviewer-1" / "round-1").exists()  # no agent started
    assert json.loads((tmp_path / "record" / "reviewer-1" / "role.json").read_text())["run_failed"] is True


def test_a_checkout_left_by_a_killed_role_run_is_removed_by_the_next_run(
    workshop: Workshop, tmp_path: Path, fake_claude: Path
) -> None:
    # a role run killed mid-way: its checkout and owner record stay, its process is gone
    dead = subprocess.Popen(["true"])
    dead.wait()
    base = workshop.repo / ".speedrift" / "role-checkouts"
    left = base / "left-behind"
    head = sh_git(workshop.repo, "rev-parse", "HEAD")
    sh_git(workshop.repo, "worktree", "add", "--detach", str(left), head)
    (base / "left-behind.owner.json").write_text(json.dumps({"pid": dead.pid, "started": 1}))
    # one whose owner still runs (this test) is kept
    alive = base / "in-use"
    sh_git(workshop.repo, "worktree", "add", "--detach", str(alive), head)
    (base / "in-use.owner.json").write_text(json.dumps(identity_of().to_dict()))
    runs(fake_claude, [{"do": "start"}, {"do": "result_file", "report": APPROVE}, {"do": "finish"}])
    assert run_role(workshop.repo, config(sandbox={"mode": "off"}), call(workshop, tmp_path)).valid
    listed = sh_git(workshop.repo, "worktree", "list")
    assert "left-behind" not in listed and not left.exists()
    assert "in-use" in listed and alive.is_dir()
    assert sorted(p.name for p in base.iterdir()) == ["in-use", "in-use.owner.json"]
