"""Money as a user meets it: `speedrift run` refused before its claim by a budget the dispatch would
exceed (each kind: the task's, the repo's daily one, the agent's, the ecosystem's), a run within
its budgets recorded once in the attempt log, and `speedrift spend` adding the log up."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from speedrift import attemptlog
from speedrift.attemptlog import AttemptEntry, CostSource
from speedrift.fleet import budgetpub
from speedrift.fleet.opsconfig import AgentBudget, AgentDef, EcosystemBudgets, FleetOps, Layer
from speedrift.graph import ops
from speedrift.graph.store import GraphStore
from speedrift.times import now_utc
from tests.cli.support import Cli, git, graph_tasks


@pytest.fixture
def committed(repo: Path) -> Path:
    (repo / "README.md").write_text("# r\n")
    (repo / ".gitignore").write_text(".speedrift/\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    return repo


def configure(repo: Path, text: str) -> None:
    (repo / "speedrift.toml").write_text(text)
    git(repo, "add", "speedrift.toml")
    git(repo, "commit", "-q", "-m", "config")


def spent(
    repo: Path | str, task: str = "earlier", *, usd: float = 0.0, tokens: int = 0, **more: Any
) -> AttemptEntry:
    """An attempt that finished a moment ago, written to the attempt log every supervisor reads."""
    values: dict[str, Any] = {"attempt": 1, "status": "done", "runtime": "claude", "model": "sonnet"} | more
    written = AttemptEntry(
        at=now_utc() - timedelta(seconds=1),
        repo=budgetpub.repo_key(repo),
        task=task,
        input_tokens=tokens,
        cost_usd=usd,
        cost_source=CostSource.REPORTED if usd else CostSource.NONE,
        **values,
    )
    attemptlog.append(written)
    return written


def set_speedrift(repo: Path, task_id: str, data: dict[str, Any]) -> None:
    store = GraphStore(repo / ".workgraph")
    store.mutate(lambda g, now: ops.set_fields(g, task_id, speedrift=data, now=now, actor="test"))


def assert_untouched(repo: Path, task_id: str) -> None:
    """Never claimed: still open, no attempt number, no run record."""
    task = graph_tasks(repo)[task_id]
    assert task["status"] == "open" and "attempt" not in task.get("speedrift", {})
    assert not (repo / ".speedrift" / "runs").exists()


def test_run_refuses_a_dispatch_that_would_exceed_the_repos_daily_budget_before_its_claim(
    cli: Cli, committed: Path
) -> None:
    configure(committed, "[budgets]\ndaily_usd = 1.0\nmax_cost_usd = 0.5\n")
    spent(committed, usd=0.6)
    spent(committed.parent / "elsewhere", usd=50)  # another repo's spend is not this repo's
    cli.ok("add", "Write hello", "--id", "hello", "--exec", "echo hi > hello.txt")
    result = cli.fails(1, "run", "hello")
    assert "the daily budget of repo" in result.stderr and "would be exceeded" in result.stderr
    assert "$0.6000 of $1.00 spent today (UTC), and this attempt may spend up to $0.5000" in result.stderr
    assert "it resets at" in result.stderr and "refused before its claim" in result.stderr
    assert (
        f"fix: raise [budgets] daily_usd in {budgetpub.repo_key(committed)}/speedrift.toml" in result.stderr
    )
    assert_untouched(committed, "hello")
    assert len(attemptlog.read()) == 2  # no attempt ran, none was recorded
    assert not (committed / "hello.txt").exists()


@pytest.mark.parametrize(
    "kind",
    ["task_config", "task_own", "repo_tokens", "agent_carried", "agent_published", "ecosystem"],
)
def test_every_budget_kind_refuses_at_admission_with_what_to_raise(
    cli: Cli, committed: Path, kind: str
) -> None:
    config, tags, expected = "", [], ""
    if kind == "task_config":
        config = "[budgets]\ntask_usd = 1.0\n"
        spent(committed, "job", usd=0.7, attempt=1)
        spent(committed, "job", usd=0.4, attempt=2)
        expected = "the budget of task 'job' is used up: $1.10 of $1.00 spent over all its attempts"
        fix = "raise [budgets] task_usd in"
    elif kind == "task_own":
        tags = ["--budget-usd", "0.25"]  # the task's own budget, set as a person sets it
        spent(committed, "job", usd=0.3)
        expected = "the budget of task 'job' is used up: $0.3000 of $0.2500"
        fix = "raise speedrift.budget.usd of task 'job' (`speedrift edit job --budget-usd N` does)"
    elif kind == "repo_tokens":
        config = "[budgets]\ndaily_tokens = 5000\nmax_tokens = 2000\n"
        spent(committed, tokens=4000)
        expected = (
            "4,000 tokens of 5,000 tokens spent today (UTC), and this attempt may spend up to 2,000 tokens"
        )
        fix = "raise [budgets] daily_tokens in"
    elif kind == "agent_carried":
        tags = ["--tag", "agent:nightly"]
        spent(committed.parent / "other-repo", usd=0.9, agent="nightly")  # no ecosystem: not counted
        spent(committed, usd=1.2, agent="nightly")
        expected = "the daily budget of agent 'nightly' is used up: $1.20 of $1.00"
        fix = "raise budgets.daily_usd of the run task's speedrift.agent.budgets"
    elif kind == "agent_published":
        tags = ["--tag", "agent:nightly"]
        eco = committed.parent / "ecosystem.toml"
        agents = (AgentDef(name="nightly", layer=Layer.GROWTH, prompt="p", budgets=AgentBudget(daily_usd=2)),)
        budgetpub.publish_budgets(eco, [committed, committed.parent / "b"], FleetOps(agents=agents))
        spent(committed.parent / "b", usd=2.5, agent="nightly")
        expected = "the daily budget of agent 'nightly' is used up: $2.50 of $2.00"
        fix = f"raise budgets.daily_usd of [[agents]] 'nightly' in {eco}"
    else:
        eco = committed.parent / "ecosystem.toml"
        budgetpub.publish_budgets(
            eco, [committed, committed.parent / "b"], FleetOps(budgets=EcosystemBudgets(daily_usd=3))
        )
        spent(committed, usd=1)
        spent(committed.parent / "b", usd=2)
        expected = f"the daily budget of ecosystem {eco} is used up: $3.00 of $3.00 spent today (UTC)"
        fix = f"raise [budgets] daily_usd in {eco} (the hub publishes it on its next cycle)"
    if config:
        configure(committed, config)
    cli.ok("add", "Job", "--id", "job", "--exec", "echo job > job.txt", *tags)
    if kind == "task_own":
        assert graph_tasks(committed)["job"]["speedrift"]["budget"] == {"usd": 0.25}
    if kind == "agent_carried":
        set_speedrift(committed, "job", {"agent": {"name": "nightly", "budgets": {"daily_usd": 1.0}}})
    result = cli.fails(1, "run", "job")
    assert expected in result.stderr, result
    assert f"fix: {fix}" in result.stderr, result
    assert_untouched(committed, "job")
    assert not (committed / "job.txt").exists()


@pytest.mark.parametrize(
    ("written", "field"),
    [
        ({"budget": {"usd": "lots"}}, "speedrift.budget.usd"),
        ({"budget": {"tokens": 2.5}}, "speedrift.budget.tokens"),
        ({"budget": {"dollars": 3}}, "speedrift.budget.dollars"),
        ({"budget": 5}, "speedrift.budget"),
        ({"agent": {"name": "nightly", "budgets": {"daily_usd": -1}}}, "speedrift.agent.budgets.daily_usd"),
    ],
)
def test_a_budget_written_on_a_task_that_cannot_be_read_refuses_the_dispatch_and_names_it(
    cli: Cli, committed: Path, written: dict[str, Any], field: str
) -> None:
    cli.ok("add", "Job", "--id", "job", "--exec", "echo job > job.txt")
    set_speedrift(committed, "job", written)  # by hand, or by a tool that got it wrong
    result = cli.fails(1, "run", "job")
    assert f"the {field} of task 'job' is" in result.stderr and "not a positive number" in result.stderr
    assert "fix:" in result.stderr
    assert_untouched(committed, "job")


def test_edit_sets_and_drops_a_tasks_own_budget(cli: Cli, committed: Path) -> None:
    cli.ok("add", "Job", "--id", "job", "--exec", "true")
    cli.ok("edit", "job", "--budget-usd", "2.5", "--budget-tokens", "200000")
    assert graph_tasks(committed)["job"]["speedrift"]["budget"] == {"usd": 2.5, "tokens": 200000}
    cli.fails(2, "edit", "job", "--budget-usd", "0")
    cli.ok("edit", "job", "--no-budget")
    assert "budget" not in graph_tasks(committed)["job"].get("speedrift", {})


def test_a_run_within_its_budgets_lands_and_is_recorded_once(cli: Cli, committed: Path) -> None:
    configure(committed, "[budgets]\ndaily_usd = 5.0\ntask_usd = 1.0\n")
    spent(committed, usd=1.0)
    cli.ok("add", "Write hello", "--id", "hello", "--exec", "echo hi > hello.txt", "--tag", "agent:helper")
    assert "hello attempt 1: done" in cli.ok("run", "hello").stdout
    entries = [e for e in attemptlog.read() if e.task == "hello"]
    assert len(entries) == 1
    [done] = entries
    assert (done.repo, done.attempt, done.status, done.runtime, done.agent) == (
        budgetpub.repo_key(committed),
        1,
        "done",
        "shell",
        "helper",
    )
    assert done.cost_source is CostSource.NONE and done.cost_usd == 0 and done.duration_s > 0
    assert done.gates_failed == 0


def test_spend_json_adds_up_the_attempt_log(cli: Cli, committed: Path) -> None:
    configure(committed, "[budgets]\ndaily_usd = 2.0\ndaily_tokens = 100000\n")
    here = [
        spent(committed, "a", usd=0.5, tokens=1000, agent="nightly"),
        spent(committed, "b", usd=0.25, tokens=500, runtime="codex", model="gpt-5"),
    ]
    there = spent(committed.parent / "other", "c", usd=4.0, tokens=20)
    old = AttemptEntry(
        at=now_utc() - timedelta(days=30), repo=budgetpub.repo_key(committed), task="old", attempt=1,
        status="failed", runtime="claude", cost_usd=9.0, cost_source=CostSource.REPORTED,
    )  # fmt: skip
    attemptlog.append(old)
    everything = cli.json("spend")
    assert everything["total"]["usd"] == pytest.approx(4.75) and everything["total"]["attempts"] == 3
    assert everything["by_repo"][there.repo]["usd"] == 4.0
    assert everything["by_runtime"]["codex:gpt-5"] == {"usd": 0.25, "tokens": 500, "attempts": 1}
    assert everything["by_agent"]["nightly"]["tokens"] == 1000
    mine = cli.json("spend", "--repo", str(committed), "--days", "60")
    assert mine["total"] == {"usd": pytest.approx(9.75), "tokens": 1500, "attempts": 3}
    assert mine["repo"] == budgetpub.repo_key(committed)
    budgets = {(b["budget"], b["unit"]): b for b in mine["budgets"]}
    assert budgets[("repo_daily", "usd")]["spent"] == pytest.approx(0.75)
    assert budgets[("repo_daily", "usd")]["remaining"] == pytest.approx(1.25)
    assert budgets[("repo_daily", "tokens")]["remaining"] == 100000 - 1500
    assert sum(e.cost_usd for e in here) == pytest.approx(budgets[("repo_daily", "usd")]["spent"])


def test_spend_prints_tables_by_the_breakdown_asked_and_the_budgets(cli: Cli, committed: Path) -> None:
    configure(committed, "[budgets]\ndaily_usd = 2.0\n")
    spent(committed, "a", usd=0.5, agent="nightly")
    spent(committed, "b", tokens=300, runtime="codex", model="gpt-5")  # tokens, no price
    out = cli.ok("spend", "--by", "agent").stdout
    assert "Spend since" in out and "$0.5000" in out and "2 attempt(s)" in out
    assert "by agent" in out and "nightly" in out and "by repo" not in out
    assert "1 attempt(s) used tokens with no known cost" in out
    assert "budgets today" in out and "repo_daily" in out and "$1.50" in out  # what remains
    assert cli.fails(2, "spend", "--since", "last tuesday").stderr.count("not a day or a time") == 1
    assert cli.fails(2, "spend", "--days", "0").returncode == 2
