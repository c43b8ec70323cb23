"""Money, pure: what an attempt cost (reported, priced, unknown), the spend by repo, agent, runtime
and day, every budget admission checks (the task's, the repo's, the agent's and the ecosystem's
daily ones) with its refusal, and the ecosystem's budgets as the hub publishes them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from speedrift import statehome
from speedrift.agents.protocol import Usage
from speedrift.attemptlog import AttemptEntry, CostSource
from speedrift.fleet import budgetpub, spend
from speedrift.fleet.budgetpub import PublishedBudgets
from speedrift.fleet.config import BudgetConfig
from speedrift.fleet.opsconfig import AgentBudget, AgentDef, EcosystemBudgets, FleetOps, Layer, Price
from speedrift.fleet.spend import BudgetKind

NOW = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)
MIDNIGHT = datetime(2026, 11, 21, tzinfo=UTC)
REPO, OTHER = "/srv/shop", "/srv/billing"
CODEX = Price(input_per_mtok=1.25, output_per_mtok=10, cache_read_per_mtok=0.125, cache_write_per_mtok=2)


def entry(
    task: str = "t", *, repo: str = REPO, usd: float = 0.0, tokens: int = 0, at: datetime = NOW, **more: Any
) -> AttemptEntry:
    values: dict[str, Any] = {"attempt": 1, "status": "done", "runtime": "claude", "model": "sonnet"}
    values["cost_source"] = CostSource.REPORTED if usd > 0 else CostSource.NONE
    values |= more
    return AttemptEntry(at=at, repo=repo, task=task, input_tokens=tokens, cost_usd=usd, **values)


# --- price ------------------------------------------------------------------------------------------
def test_a_cost_the_runtime_reported_wins_over_any_price() -> None:
    usage = Usage(input_tokens=1000, output_tokens=100, cost_usd=0.0097)
    assert spend.price(usage, "claude", "sonnet", {"claude": CODEX}) == (0.0097, CostSource.REPORTED)


def test_tokens_without_a_reported_cost_are_priced_cache_reads_and_writes_included() -> None:
    usage = Usage(
        input_tokens=2_000_000, output_tokens=100_000, cache_read_tokens=400_000, cache_write_tokens=10_000
    )
    cost, source = spend.price(usage, "codex", "gpt-5", {"codex:gpt-5": CODEX})
    assert source is CostSource.PRICED
    assert cost == pytest.approx(2 * 1.25 + 0.1 * 10 + 0.4 * 0.125 + 0.01 * 2)


def test_the_repo_price_wins_and_runtime_model_comes_before_runtime() -> None:
    usage = Usage(input_tokens=1_000_000)
    repo = {"codex": Price(input_per_mtok=3, output_per_mtok=0)}
    eco = {
        "codex:gpt-5": Price(input_per_mtok=5, output_per_mtok=0),
        "codex": Price(input_per_mtok=7, output_per_mtok=0),
    }
    assert spend.price(usage, "codex", "gpt-5", [repo, eco]) == (3.0, CostSource.PRICED)
    assert spend.price(usage, "codex", "gpt-5", [{}, eco]) == (5.0, CostSource.PRICED)
    assert spend.price(usage, "codex", "o4", [{}, eco]) == (7.0, CostSource.PRICED)
    assert spend.price(usage, "codex", None, [{}, eco]) == (7.0, CostSource.PRICED)


def test_no_price_or_no_tokens_is_no_known_cost() -> None:
    assert spend.price(Usage(input_tokens=500), "opencode", "x/y", {"codex": CODEX}) == (0.0, CostSource.NONE)
    assert spend.price(Usage(), "codex", "gpt-5", {"codex": CODEX}) == (0.0, CostSource.NONE)


# --- summarize --------------------------------------------------------------------------------------
def test_the_summary_totals_and_breaks_down_by_repo_agent_runtime_and_day() -> None:
    yesterday = NOW - timedelta(days=1)
    entries = [
        entry("a", usd=1.0, tokens=100, agent="nightly", at=yesterday),
        entry("b", usd=0.5, tokens=50, runtime="codex", model="gpt-5"),
        entry("c", usd=0.25, tokens=30, repo=OTHER, model=None, agent="nightly"),
        entry("d", tokens=40, runtime="opencode", model=None),  # tokens with no price: unpriced
    ]
    summary = spend.summarize(entries)
    assert (summary.total.usd, summary.total.tokens, summary.total.attempts) == (1.75, 220, 4)
    assert {k: v.usd for k, v in summary.by_repo.items()} == {REPO: 1.5, OTHER: 0.25}
    assert {k: v.attempts for k, v in summary.by_agent.items()} == {"nightly": 2, spend.NO_AGENT: 2}
    assert set(summary.by_runtime) == {"claude:sonnet", "codex:gpt-5", "claude", "opencode"}
    assert {k: v.usd for k, v in summary.by_day.items()} == {"2026-11-19": 1.0, "2026-11-20": 0.75}
    assert summary.unpriced == 1
    today = spend.summarize(entries, since=spend.day_start(NOW), repos=[REPO])
    assert (today.total.usd, today.total.attempts) == (0.5, 2)
    data = today.to_json()
    assert data["total"] == {"usd": 0.5, "tokens": 90, "attempts": 2} and data["by_day"].keys() == {
        "2026-11-20"
    }


# --- budgets ----------------------------------------------------------------------------------------
def check(
    entries: list[AttemptEntry], task: dict[str, Any] | None = None, **kw: Any
) -> spend.BudgetRefusal | None:
    args: dict[str, Any] = {
        "now": NOW,
        "repo": REPO,
        "task_id": "t",
        "task": task or {"id": "t"},
        "agent": None,
        "repo_budgets": BudgetConfig(),
        "published": None,
        "reservation_usd": None,
    }
    return spend.check_budgets(entries, **(args | kw))


def published(**budgets: Any) -> PublishedBudgets:
    agents = budgets.pop("agents", {})
    return PublishedBudgets("/srv/ecosystem.toml", (REPO, OTHER), EcosystemBudgets(**budgets), {}, agents)


def test_nothing_applies_without_a_budget() -> None:
    assert check([entry(usd=1000, tokens=10**9)]) is None


def test_the_repo_daily_budget_refuses_once_spent_and_resets_at_utc_midnight() -> None:
    budgets = BudgetConfig(daily_usd=5)
    spent = [entry("a", usd=3.0), entry("b", usd=2.0), entry("old", usd=50, at=NOW - timedelta(days=1))]
    refusal = check(spent, repo_budgets=budgets)
    assert refusal is not None and refusal.budget.kind is BudgetKind.REPO_DAILY
    assert (refusal.spent, refusal.budget.limit, refusal.resets_at) == (5.0, 5.0, MIDNIGHT)
    assert "daily budget of repo /srv/shop is used up: $5.00 of $5.00 spent today (UTC)" in refusal.sentence
    assert f"raise [budgets] daily_usd in {REPO}/speedrift.toml" in refusal.fix
    assert "2026-11-21T00:00:00+00:00" in refusal.fix
    assert check(spent[:1] + spent[2:], repo_budgets=budgets) is None  # yesterday's spend does not count
    assert check(spent, repo_budgets=budgets, now=MIDNIGHT) is None  # a new day
    assert check([entry(usd=9, repo=OTHER)], repo_budgets=budgets) is None  # another repo's spend


def test_a_dispatch_whose_reservation_would_pass_the_budget_is_refused() -> None:
    budgets = BudgetConfig(daily_usd=5, max_cost_usd=2)
    spent = [entry(usd=3.5)]
    refusal = check(spent, repo_budgets=budgets, reservation_usd=2.0)
    assert refusal is not None and refusal.reservation == 2.0
    assert "would be exceeded: $3.50 of $5.00 spent today (UTC), and this attempt may spend up to $2.00" in (
        refusal.sentence
    )
    assert "[budgets] max_cost_usd" in refusal.fix
    assert check(spent, repo_budgets=budgets, reservation_usd=1.5) is None  # exactly reaching it is allowed


def test_the_repo_daily_token_budget_counts_tokens() -> None:
    refusal = check([entry(tokens=900)], repo_budgets=BudgetConfig(daily_tokens=1000), reservation_tokens=200)
    assert refusal is not None and refusal.budget.unit == "tokens"
    assert "900 tokens of 1,000 tokens spent today" in refusal.sentence


def test_a_task_budget_counts_all_its_attempts_on_any_day_and_never_resets() -> None:
    attempts = [entry("t", usd=0.6, at=NOW - timedelta(days=3)), entry("t", usd=0.5), entry("other", usd=5)]
    refusal = check(attempts, repo_budgets=BudgetConfig(task_usd=1))
    assert refusal is not None and refusal.budget.kind is BudgetKind.TASK
    assert refusal.spent == pytest.approx(1.1) and refusal.resets_at is None
    assert "the budget of task 't' is used up: $1.10 of $1.00 spent over all its attempts" in refusal.sentence
    assert f"[budgets] task_usd in {REPO}/speedrift.toml" in refusal.fix


def test_the_tasks_own_budget_replaces_the_repos_unit_by_unit_and_bad_values_are_ignored() -> None:
    attempts = [entry("t", usd=1.5, tokens=5000)]
    own = {"id": "t", "speedrift": {"budget": {"usd": 2.0}}}
    assert check(attempts, own, repo_budgets=BudgetConfig(task_usd=1)) is None  # its own $2 wins over $1
    refusal = check(attempts, own, repo_budgets=BudgetConfig(task_usd=1, task_tokens=4000))
    assert refusal is not None and refusal.budget.unit == "tokens"  # the repo's token limit still applies
    tight = {"id": "t", "speedrift": {"budget": {"usd": 1.0, "tokens": "lots"}}}
    refusal = check(attempts, tight)
    assert refusal is not None and refusal.budget.where == "speedrift.budget.usd of task 't'"
    assert check(attempts, {"id": "t", "speedrift": {"budget": {"usd": True, "tokens": -3}}}) is None


def test_an_agents_daily_budget_counts_its_runs_in_every_repo_of_its_ecosystem() -> None:
    runs = [
        entry("r1", usd=0.75, agent="nightly"),
        entry("r2", repo=OTHER, usd=0.5, agent="nightly"),
        entry(usd=9),
    ]
    carried = {
        "id": "t",
        "tags": ["agent:nightly"],
        "speedrift": {"agent": {"name": "nightly", "budgets": {"daily_usd": 1.0}}},
    }
    eco = published()
    refusal = check(runs, carried, agent="nightly", published=eco)
    assert refusal is not None and refusal.budget.kind is BudgetKind.AGENT_DAILY
    assert refusal.spent == 1.25 and refusal.budget.scope == "nightly"
    assert "the daily budget of agent 'nightly' is used up" in refusal.sentence
    # the published agent budget applies when the task carries none
    eco = published(agents={"nightly": AgentBudget(daily_usd=2.0)})
    assert check(runs, {"id": "t"}, agent="nightly", published=eco) is None
    refusal = check(runs, {"id": "t"}, agent="nightly", published=eco, reservation_usd=1.0)
    assert refusal is not None and "[[agents]] 'nightly' in /srv/ecosystem.toml" in refusal.fix
    # a repo's own [[agents]] entry
    mine = AgentDef(name="nightly", layer=Layer.GROWTH, prompt="p", budgets=AgentBudget(daily_tokens=10))
    refusal = check([entry(tokens=20, agent="nightly")], agent="nightly", repo_agents=[mine])
    assert refusal is not None and refusal.budget.unit == "tokens" and "speedrift.toml" in refusal.fix


def test_the_ecosystem_daily_budget_counts_all_its_repos_and_names_ecosystem_toml() -> None:
    spent = [entry(usd=6), entry(usd=5, repo=OTHER), entry(usd=100, repo="/elsewhere")]
    refusal = check(spent, published=published(daily_usd=10))
    assert refusal is not None and refusal.budget.kind is BudgetKind.ECOSYSTEM_DAILY
    assert refusal.spent == 11 and refusal.resets_at == MIDNIGHT
    assert (
        "raise [budgets] daily_usd in /srv/ecosystem.toml (the hub publishes it on its next cycle)"
        in refusal.fix
    )
    assert check(spent, published=published(daily_usd=12)) is None


def test_the_reservation_is_the_smaller_of_the_attempts_and_the_agents_cap() -> None:
    assert spend.reservation(BudgetConfig(), None) == (None, None)
    assert spend.reservation(BudgetConfig(max_cost_usd=2, max_tokens=1000), AgentBudget(run_usd=0.5)) == (
        0.5,
        1000,
    )


def test_daily_lines_show_what_remains_of_each_daily_budget() -> None:
    spent = [entry(usd=1.25, agent="nightly"), entry(usd=0.5, repo=OTHER)]
    eco = published(daily_usd=10, agents={"nightly": AgentBudget(daily_usd=2)})
    lines = spend.daily_lines(spent, now=NOW, repos={REPO: BudgetConfig(daily_usd=5)}, published=[eco])
    shown = {(line.budget.kind, line.budget.scope): (line.spent, line.remaining) for line in lines}
    assert shown == {
        (BudgetKind.REPO_DAILY, REPO): (1.25, 3.75),
        (BudgetKind.ECOSYSTEM_DAILY, "/srv/ecosystem.toml"): (1.75, 8.25),
        (BudgetKind.AGENT_DAILY, "nightly"): (1.25, 0.75),
    }
    assert lines[0].to_json()["resets_at"] == "2026-11-21T00:00:00+00:00"


# --- published budgets ------------------------------------------------------------------------------
def test_the_hub_publishes_budgets_prices_and_agent_budgets_for_the_repos_it_covers(tmp_path: Path) -> None:
    shop, billing = tmp_path / "shop", tmp_path / "billing"
    shop.mkdir()
    billing.mkdir()
    (tmp_path / "link").symlink_to(shop)
    ops = FleetOps(
        agents=(AgentDef(name="nightly", layer=Layer.GROWTH, prompt="p", budgets=AgentBudget(daily_usd=3)),),
        budgets=EcosystemBudgets(daily_usd=20),
        prices={"codex": CODEX},
    )
    budgetpub.publish_budgets(tmp_path / "ecosystem.toml", [shop, billing], ops)
    path = statehome.budgets_path()
    assert path.stat().st_mode & 0o777 == 0o600
    found = budgetpub.published_for(tmp_path / "link")  # the same repo by another path
    assert found is not None and found.ecosystem == str(tmp_path / "ecosystem.toml")
    assert found.budgets.daily_usd == 20 and found.prices == {"codex": CODEX}
    assert found.agents == {"nightly": AgentBudget(daily_usd=3)}
    assert budgetpub.published_for(tmp_path) is None
    before = path.stat().st_mtime_ns, path.read_bytes()
    budgetpub.publish_budgets(tmp_path / "ecosystem.toml", [billing, shop], ops)  # nothing changed
    assert (path.stat().st_mtime_ns, path.read_bytes()) == before
    budgetpub.publish_budgets(tmp_path / "ecosystem.toml", [shop], FleetOps())  # nothing to publish
    assert budgetpub.published_all() == []


def test_two_ecosystems_keep_their_own_entries_and_a_damaged_file_publishes_nothing(tmp_path: Path) -> None:
    ops = FleetOps(budgets=EcosystemBudgets(daily_tokens=1000))
    budgetpub.publish_budgets(tmp_path / "a.toml", [tmp_path / "x"], ops)
    budgetpub.publish_budgets(tmp_path / "b.toml", [tmp_path / "y"], ops)
    assert [p.ecosystem for p in budgetpub.published_all()] == [
        str(tmp_path / "a.toml"),
        str(tmp_path / "b.toml"),
    ]
    document = orjson.loads(statehome.budgets_path().read_bytes())
    document["ecosystems"][str(tmp_path / "a.toml")]["budgets"] = {"daily_usd": "lots"}
    statehome.budgets_path().write_bytes(orjson.dumps(document))
    assert [p.ecosystem for p in budgetpub.published_all()] == [str(tmp_path / "b.toml")]
    statehome.budgets_path().write_bytes(b"{torn")
    assert budgetpub.published_all() == [] and budgetpub.published_for(tmp_path / "y") is None
