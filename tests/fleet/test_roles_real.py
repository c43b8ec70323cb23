"""A role run by each real CLI (Claude Code, Codex, OpenCode) against the local mock provider,
inside the agent sandbox, in its read-only checkout: the model's tool call writes the typed output
into the checkout's `.speedrift/` (the one writable place there), and speedrift takes it from
there — the argv and environment the role runner builds are the ones every attempt uses."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from speedrift.fleet.config import RepoConfig
from speedrift.fleet.roles.names import RoleName
from speedrift.fleet.roles.runner import RoleCall, run_role
from tests.agents.mock_provider import Script, Step
from tests.agents.realcli import CODEX_MODEL, Cli
from tests.fleet.conftest import Workshop
from tests.gitrepo import sh_git

pytestmark = pytest.mark.agent_cli

APPROVE = {"verdict": "approve", "summary": "Prints v2 as the task asks.", "findings": []}
MODELS = {"claude": None, "codex": CODEX_MODEL, "opencode": "mock/mock-model"}
SECRETS = {"claude": ["ANTHROPIC_API_KEY"], "codex": ["MOCK_API_KEY"], "opencode": []}


@pytest.mark.parametrize("name", ["claude", "codex", "opencode"])
def test_each_real_cli_runs_the_reviewer_in_its_read_only_checkout_and_reports_through_the_file(
    name: str,
    workshop: Workshop,
    cli_for: Callable[[str, Script], Cli],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    report = Step("write", ".speedrift/result.json", content=json.dumps(APPROVE))
    cli = cli_for(name, Script(steps=[report], final_text="Reviewed."))
    env = cli.env()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    config = RepoConfig.model_validate(
        {
            "default_runtime": name,
            "runtimes": {name: {"model": MODELS[name]}},
            "env": {"allow": sorted(set(env) - set(SECRETS[name])), "secrets": SECRETS[name]},
            "budgets": {"stall_seconds": 60},
            "roles": {"reviewer": {"wall_clock_minutes": 2}},
        }
    )
    head = sh_git(workshop.repo, "rev-parse", "HEAD")
    inputs = {"task": "t1: make app.py print v2", "diff": "-print('v1')\n+print('v2')"}
    record = tmp_path / "record" / "reviewer-1"
    done = run_role(workshop.repo, config, RoleCall(RoleName.REVIEWER, inputs, record, head, "t1", 1))
    assert done.valid, (done.reason(), done.outcome.reason)
    assert done.output == APPROVE and done.rounds == 1 and done.sandboxed
    first = json.dumps(cli.provider.agent_calls()[0].body)
    assert "You are the Reviewer" in first and "t1: make app.py print v2" in first
    assert (workshop.repo / "app.py").read_text() == "print('v1')\n"  # the repo is untouched
    assert "role-checkouts" not in sh_git(workshop.repo, "worktree", "list")
