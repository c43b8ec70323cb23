"""Budget admission in every supervisor: the service does not dispatch a task whose dispatch would
exceed a budget (and says so once), the hub's dispatch holds it with the budget as the reason, and
the hub publishes its ecosystem's budgets so that every one of them sees them."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from speedrift import attemptlog
from speedrift.attemptlog import AttemptEntry, CostSource
from speedrift.control.controlfile import write_control
from speedrift.control.cycle import Hub
from speedrift.control.handlers.dispatch import HandlerContext, execute
from speedrift.fleet import budgetpub
from speedrift.fleet.service import ServiceLoop
from speedrift.graph import ops
from speedrift.graph.store import GraphStore
from speedrift.register.actions import Action, ActionKind, DispatchParams
from speedrift.register.record import RepoEntry
from speedrift.times import now_utc
from tests.cli.support import base_env
from tests.fleet.conftest import Workshop
from tests.gitrepo import make_repo


def spend_today(repo: Path, usd: float) -> None:
    attemptlog.append(
        AttemptEntry(
            at=now_utc() - timedelta(seconds=1),
            repo=budgetpub.repo_key(repo),
            task="earlier",
            attempt=1,
            status="done",
            runtime="claude",
            cost_usd=usd,
            cost_source=CostSource.REPORTED,
        )
    )


def test_the_service_does_not_dispatch_past_a_daily_budget_and_says_so_once(workshop: Workshop) -> None:
    spend_today(workshop.repo, 2.0)
    workshop.add("job", exec_command="echo job > job.txt")
    said: list[str] = []
    loop = ServiceLoop(workshop.pipeline(budgets={"daily_usd": 2.0}), log=said.append)
    assert loop.dispatch() == 0 and loop.dispatch() == 0
    refusals = [line for line in said if line.startswith("not dispatching job:")]
    assert len(refusals) == 1, said
    assert "the daily budget of repo" in refusals[0] and "is used up: $2.00 of $2.00" in refusals[0]
    assert "fix: raise [budgets] daily_usd" in refusals[0]
    assert workshop.task("job")["status"] == "open" and not loop.running
    raised = ServiceLoop(workshop.pipeline(budgets={"daily_usd": 10.0}), log=said.append)
    raised.over_budget = dict(loop.over_budget)
    assert raised.dispatch() == 1  # within the raised budget: dispatched
    raised.wait_idle(timeout=120)
    assert "job: within its budgets again" in said
    assert workshop.task("job")["status"] == "done"


def test_the_hubs_dispatch_holds_a_task_past_its_budget_and_starts_nothing(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "shop", {"README.md": "# shop\n", "speedrift.toml": "[budgets]\ntask_usd = 0.5\n"}
    )
    spec = ops.NewTask("Job", task_id="job", exec_command="true")
    GraphStore(repo / ".workgraph").mutate(lambda g, now: ops.add_task(g, spec, now=now, actor="test"))
    attemptlog.append(
        AttemptEntry(
            at=now_utc() - timedelta(days=2), repo=budgetpub.repo_key(repo), task="job", attempt=1,
            status="failed", runtime="shell", cost_usd=0.75, cost_source=CostSource.PRICED,
        )
    )  # fmt: skip
    write_control(
        repo, "autonomous", owner="t", lease_ttl=timedelta(hours=1), actor="t", reason="t", now=now_utc()
    )
    ctx = HandlerContext(
        repo=repo, entry=RepoEntry(name="shop", path=repo), env=base_env(), log_dir=tmp_path / "logs"
    )
    action = Action(
        id="shop:dispatch_ready",
        repo="shop",
        kind=ActionKind.DISPATCH_READY,
        priority=92,
        reason="ready work",
        params=DispatchParams(tasks=("job",), max=1),
    )
    outcome = execute(action, ctx)
    assert outcome.status == "skipped", outcome.detail
    assert outcome.evidence["pids"] == {}
    [held] = outcome.evidence["held"]
    assert held["task"] == "job" and held["limit"] == "budget"
    assert "the budget of task 'job' is used up: $0.7500 of $0.5000" in held["reason"]
    assert "the budget of task 'job'" in outcome.detail
    assert GraphStore(repo / ".workgraph").load().tasks["job"]["status"] == "open"


def test_a_hub_cycle_publishes_its_ecosystems_budgets_for_every_supervisor(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "shop", {"README.md": "# shop\n"})
    path = tmp_path / "ecosystem.toml"
    path.write_text(
        'schema = 1\n\n[policy]\nplan_only = true\n\n[repos.shop]\npath = "shop"\n\n'
        '[budgets]\ndaily_usd = 3.0\n\n[prices."codex:gpt-5"]\ninput_per_mtok = 1.25\noutput_per_mtok = 10\n'
    )
    Hub(path).cycle(execute_actions=False)
    found = budgetpub.published_for(repo)
    assert found is not None and found.ecosystem == str(path)
    assert found.budgets.daily_usd == 3.0 and found.prices["codex:gpt-5"].output_per_mtok == 10
    path.write_text(path.read_text().replace("daily_usd = 3.0", "daily_usd = 4.0"))
    Hub(path).cycle(execute_actions=False)
    again = budgetpub.published_for(repo)
    assert again is not None and again.budgets.daily_usd == 4.0
