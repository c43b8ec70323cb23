"""Money: what an attempt cost, what was spent (by repo, agent, runtime and day), and whether a
dispatch would exceed a budget.

Everything is counted from the machine-wide attempt log (speedrift/attemptlog.py): the entries
and ``now`` come in, nothing here reads a file or a clock, so ``speedrift spend``, the dashboard
and admission (fleet/admission.py) give the same numbers.

- :func:`price`: the runtime's own reported cost wins; else tokens × the price table (``[prices]``
  of the repo before the ecosystem's published one; ``runtime:model`` before ``runtime``).
- :func:`summarize`: totals and breakdowns of a set of entries.
- :func:`check_budgets`: admission's verdict — the task's budget (all its attempts), the repo's,
  the agent's and the ecosystem's daily budgets (the UTC day). A dispatch is refused when a budget
  is already spent, or when what is spent plus the attempt's reservation (its own cap:
  ``[budgets] max_cost_usd`` / ``max_tokens``, the agent's ``run_usd`` / ``run_tokens``) would
  pass it. The refusal names the budget, the spend, the limit, when it resets and what to raise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from speedrift.agents.protocol import Usage
from speedrift.attemptlog import AttemptEntry, CostSource
from speedrift.fleet.budgetpub import PublishedBudgets, repo_key
from speedrift.fleet.config import CONFIG_FILE, BudgetConfig
from speedrift.fleet.opsconfig import AgentBudget, AgentDef, Price
from speedrift.graph.model import Task, speedrift_data
from speedrift.times import format_time

Unit = Literal["usd", "tokens"]
PriceTables = Mapping[str, Price] | Sequence[Mapping[str, Price]]
MTOK = 1_000_000


# --- what an attempt cost -----------------------------------------------------------------------------
def runtime_key(runtime: str, model: str | None) -> str:
    """``runtime:model`` (``runtime`` alone when no model was named): the price table's key and
    the runtime breakdown's."""
    return f"{runtime}:{model}" if model else runtime


def find_price(runtime: str, model: str | None, prices: PriceTables) -> Price | None:
    """The price of ``runtime``/``model``: the first table (the repo's, then the ecosystem's) that
    has ``runtime:model``, else ``runtime``."""
    tables = [prices] if isinstance(prices, Mapping) else list(prices)
    keys = [runtime_key(runtime, model), runtime] if model else [runtime]
    for table in tables:
        for key in keys:
            if key in table:
                return table[key]
    return None


def price(usage: Usage, runtime: str, model: str | None, prices: PriceTables) -> tuple[float, CostSource]:
    """What a run cost and where that came from: the runtime's reported cost (claude, opencode),
    else its tokens (cache reads and writes included) at the configured price, else nothing known."""
    if usage.cost_usd > 0:
        return float(usage.cost_usd), CostSource.REPORTED
    counted = usage.input_tokens + usage.output_tokens + usage.cache_read_tokens + usage.cache_write_tokens
    found = find_price(runtime, model, prices) if counted > 0 else None
    if found is None:
        return 0.0, CostSource.NONE
    cost = (
        usage.input_tokens * found.input_per_mtok
        + usage.output_tokens * found.output_per_mtok
        + usage.cache_read_tokens * found.cache_read_per_mtok
        + usage.cache_write_tokens * found.cache_write_per_mtok
    ) / MTOK
    return cost, CostSource.PRICED


# --- what was spent -----------------------------------------------------------------------------------
@dataclass
class Tally:
    usd: float = 0.0
    tokens: int = 0
    attempts: int = 0

    def add(self, entry: AttemptEntry) -> None:
        self.usd += entry.cost_usd
        self.tokens += entry.tokens
        self.attempts += 1

    def to_json(self) -> dict[str, Any]:
        return {"usd": round(self.usd, 6), "tokens": self.tokens, "attempts": self.attempts}


NO_AGENT = "-"  # the agent breakdown's row for attempts that were no standing agent's run


@dataclass
class SpendSummary:
    """Totals and breakdowns of the entries at or after ``since`` (all when None)."""

    since: datetime | None
    total: Tally = field(default_factory=Tally)
    by_repo: dict[str, Tally] = field(default_factory=dict)
    by_agent: dict[str, Tally] = field(default_factory=dict)
    by_runtime: dict[str, Tally] = field(default_factory=dict)
    by_day: dict[str, Tally] = field(default_factory=dict)
    unpriced: int = 0  # attempts whose cost is not known (tokens, but no price configured)

    def breakdown(self, by: str) -> dict[str, Tally]:
        return {"repo": self.by_repo, "agent": self.by_agent, "runtime": self.by_runtime, "day": self.by_day}[
            by
        ]

    def to_json(self) -> dict[str, Any]:
        def rows(table: dict[str, Tally]) -> dict[str, Any]:
            return {key: table[key].to_json() for key in sorted(table)}

        return {
            "since": format_time(self.since) if self.since is not None else None,
            "total": self.total.to_json(),
            "by_repo": rows(self.by_repo),
            "by_agent": rows(self.by_agent),
            "by_runtime": rows(self.by_runtime),
            "by_day": rows(self.by_day),
            "unpriced_attempts": self.unpriced,
        }


def summarize(
    entries: Iterable[AttemptEntry], *, since: datetime | None = None, repos: Iterable[str] | None = None
) -> SpendSummary:
    """Totals and breakdowns (by repo, agent, ``runtime:model`` and UTC day) of ``entries``, those
    before ``since`` and outside ``repos`` (absolute paths) left out."""
    wanted = {repo_key(r) for r in repos} if repos is not None else None
    summary = SpendSummary(since)
    for entry in entries:
        if since is not None and entry.at < since:
            continue
        if wanted is not None and entry.repo not in wanted:
            continue
        summary.total.add(entry)
        for table, key in (
            (summary.by_repo, entry.repo),
            (summary.by_agent, entry.agent or NO_AGENT),
            (summary.by_runtime, runtime_key(entry.runtime, entry.model)),
            (summary.by_day, entry.day),
        ):
            table.setdefault(key, Tally()).add(entry)
        if entry.cost_source is CostSource.NONE and entry.tokens > 0:
            summary.unpriced += 1
    return summary


def day_start(now: datetime) -> datetime:
    """The start of ``now``'s UTC day: when today's daily budgets began."""
    moment = now.astimezone(UTC)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def next_reset(now: datetime) -> datetime:
    """The next UTC midnight: when every daily budget starts again."""
    return day_start(now) + timedelta(days=1)


# --- budgets ------------------------------------------------------------------------------------------
class BudgetKind(StrEnum):
    TASK = "task"  # all attempts of one task
    REPO_DAILY = "repo_daily"  # one repo's attempts, per UTC day
    AGENT_DAILY = "agent_daily"  # one standing agent's runs, per UTC day
    ECOSYSTEM_DAILY = "ecosystem_daily"  # all repos of an ecosystem, per UTC day


def money(value: float, unit: Unit) -> str:
    if unit == "tokens":
        return f"{int(value):,} tokens"
    return f"${value:,.2f}" if value >= 1 or value == 0 else f"${value:.4f}"


@dataclass(frozen=True)
class Budget:
    """One budget that applies: its limit, whose it is and where it is set."""

    kind: BudgetKind
    unit: Unit
    limit: float
    scope: str  # the task id, repo path, agent name or ecosystem path
    where: str  # the file and key that set it (what to raise)

    @property
    def daily(self) -> bool:
        return self.kind is not BudgetKind.TASK

    def title(self) -> str:
        return {
            BudgetKind.TASK: f"the budget of task {self.scope!r}",
            BudgetKind.REPO_DAILY: f"the daily budget of repo {self.scope}",
            BudgetKind.AGENT_DAILY: f"the daily budget of agent {self.scope!r}",
            BudgetKind.ECOSYSTEM_DAILY: f"the daily budget of ecosystem {self.scope}",
        }[self.kind]


@dataclass(frozen=True)
class BudgetRefusal:
    """Why a dispatch was refused: which budget, what is spent, the limit, the attempt's
    reservation, when it resets (None: a task's budget never does) and the fix."""

    budget: Budget
    spent: float
    reservation: float
    resets_at: datetime | None
    fix: str

    @property
    def sentence(self) -> str:
        unit, budget = self.budget.unit, self.budget
        period = " today (UTC)" if budget.daily else " over all its attempts"
        spent = f"{money(self.spent, unit)} of {money(budget.limit, unit)} spent{period}"
        if self.spent >= budget.limit:
            said = f"{budget.title()} is used up: {spent}"
        else:
            said = (
                f"{budget.title()} would be exceeded: {spent}, and this attempt may spend up to "
                f"{money(self.reservation, unit)}"
            )
        if self.resets_at is not None:
            said += f"; it resets at {format_time(self.resets_at)}"
        return said + "; the dispatch is refused before its claim (no attempt used)"

    def to_json(self) -> dict[str, Any]:
        return {
            "budget": self.budget.kind.value,
            "unit": self.budget.unit,
            "scope": self.budget.scope,
            "spent": self.spent,
            "limit": self.budget.limit,
            "reservation": self.reservation,
            "resets_at": format_time(self.resets_at) if self.resets_at else None,
            "where": self.budget.where,
            "sentence": self.sentence,
            "fix": self.fix,
        }


def _number(value: object, *, whole: bool = False) -> float | None:
    """A positive number from a graph value (never a bool); None for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if whole and not isinstance(value, int):
        return None
    return float(value) if value > 0 else None


def _set(usd: float | None, tokens: float | None) -> list[tuple[Unit, float]]:
    """The limits that are set, each with its unit."""
    pairs: list[tuple[Unit, float | None]] = [("usd", usd), ("tokens", tokens)]
    return [(unit, float(limit)) for unit, limit in pairs if limit is not None]


@dataclass(frozen=True)
class InvalidBudget:
    """A budget written on a task that cannot be read: the dispatch is refused (fail-closed: a
    mistyped budget never means "no budget"), naming the field and the fix."""

    task_id: str
    field: str
    value: object

    @property
    def sentence(self) -> str:
        return (
            f"the {self.field} of task {self.task_id!r} is {self.value!r}, not a positive number (a"
            " whole one for tokens); the dispatch is refused before its claim (no attempt used)"
        )

    @property
    def fix(self) -> str:
        if self.field.startswith("speedrift.agent."):
            return "the run task's budgets come from its [[agents]] entry: fix them there and make a new run"
        edit = f"speedrift edit {self.task_id}"
        return f"`{edit} --budget-usd 2.5 --budget-tokens 200000` sets it; `{edit} --no-budget` drops it"

    def to_json(self) -> dict[str, Any]:
        return {"budget": "invalid", "field": self.field, "value": repr(self.value), "fix": self.fix}


BUDGET_UNITS = {"usd": False, "tokens": True}  # a task budget's keys, and whether each is whole


def budget_problem(task: Task) -> InvalidBudget | None:
    """The first unreadable value of the task's own budgets (``speedrift.budget``, and the run
    task's ``speedrift.agent.budgets``), or None when they read (or are absent)."""
    data, task_id = speedrift_data(task), str(task.get("id") or "")
    own = data.get("budget")
    if own is not None:
        if not isinstance(own, dict):
            return InvalidBudget(task_id, "speedrift.budget", own)
        for key, value in own.items():
            if key not in BUDGET_UNITS or _number(value, whole=BUDGET_UNITS[key]) is None:
                return InvalidBudget(task_id, f"speedrift.budget.{key}", value)
    carried = data.get("agent")
    raw = carried.get("budgets") if isinstance(carried, dict) else None
    if raw is not None:
        if not isinstance(raw, dict):
            return InvalidBudget(task_id, "speedrift.agent.budgets", raw)
        for key, value in raw.items():
            known = key in ("run_usd", "run_tokens", "daily_usd", "daily_tokens")
            if not known or _number(value, whole=key.endswith("tokens")) is None:
                return InvalidBudget(task_id, f"speedrift.agent.budgets.{key}", value)
    return None


def task_budget(task: Task) -> tuple[float | None, float | None]:
    """The task's own ``speedrift.budget`` (usd, tokens); a missing or mistyped value is None."""
    raw = speedrift_data(task).get("budget")
    if not isinstance(raw, dict):
        return None, None
    return _number(raw.get("usd")), _number(raw.get("tokens"), whole=True)


def agent_budget(
    task: Task,
    agent: str | None,
    repo_agents: Sequence[AgentDef] = (),
    published: PublishedBudgets | None = None,
    config_path: str = CONFIG_FILE,
) -> tuple[AgentBudget | None, str]:
    """The budgets of the agent whose run the task is, and where they are set: the run task's own
    copy (``speedrift.agent.budgets``), else the repo's ``[[agents]]``, else the ecosystem's as
    published. (None, "") for a task that is no agent's run, or an agent with none known."""
    if agent is None:
        return None, ""
    carried = speedrift_data(task).get("agent")
    raw = carried.get("budgets") if isinstance(carried, dict) else None
    if isinstance(raw, dict):
        values = {
            "run_usd": _number(raw.get("run_usd")),
            "run_tokens": _number(raw.get("run_tokens"), whole=True),
            "daily_usd": _number(raw.get("daily_usd")),
            "daily_tokens": _number(raw.get("daily_tokens"), whole=True),
        }
        kept = {k: (int(v) if k.endswith("tokens") else v) for k, v in values.items() if v is not None}
        if kept:
            where = f"the run task's speedrift.agent.budgets (set from [[agents]] {agent!r})"
            return AgentBudget.model_validate(kept), where
    for defined in repo_agents:
        if defined.name == agent:
            return defined.budgets, f"[[agents]] {agent!r} in {config_path}"
    if published is not None and agent in published.agents:
        return published.agents[agent], f"[[agents]] {agent!r} in {published.ecosystem}"
    return None, ""


def reservation(repo_budgets: BudgetConfig, agent: AgentBudget | None) -> tuple[float | None, int | None]:
    """What one attempt may spend at most (usd, tokens): the smaller of the repo's per-attempt cap
    (``[budgets] max_cost_usd`` / ``max_tokens``) and the agent's per-run cap, when set."""
    usd = [v for v in (repo_budgets.max_cost_usd, agent.run_usd if agent else None) if v is not None]
    tokens = [v for v in (repo_budgets.max_tokens, agent.run_tokens if agent else None) if v is not None]
    return (min(usd) if usd else None), (min(tokens) if tokens else None)


def budgets_for(
    *,
    repo: str,
    task_id: str | None,
    task: Task | None,
    agent: str | None,
    repo_budgets: BudgetConfig,
    published: PublishedBudgets | None,
    repo_agents: Sequence[AgentDef] = (),
) -> list[Budget]:
    """Every budget that applies to a dispatch of ``task`` in ``repo`` (no task: the daily ones),
    in the order admission checks them."""
    config = f"{repo}/{CONFIG_FILE}"
    found: list[Budget] = []
    if task_id is not None and task is not None:
        own_usd, own_tokens = task_budget(task)
        for unit, limit in _set(own_usd, own_tokens):
            found.append(
                Budget(BudgetKind.TASK, unit, limit, task_id, f"speedrift.budget.{unit} of task {task_id!r}")
            )
        own = {unit for unit, _limit in _set(own_usd, own_tokens)}
        for unit, limit in _set(repo_budgets.task_usd, repo_budgets.task_tokens):
            if unit not in own:  # the task's own budget replaces the repo's, unit by unit
                found.append(
                    Budget(BudgetKind.TASK, unit, limit, task_id, f"[budgets] task_{unit} in {config}")
                )
    for unit, limit in _set(repo_budgets.daily_usd, repo_budgets.daily_tokens):
        found.append(Budget(BudgetKind.REPO_DAILY, unit, limit, repo, f"[budgets] daily_{unit} in {config}"))
    if agent is not None:
        budget, source = agent_budget(task or {}, agent, repo_agents, published, config)
        if budget is not None:
            for unit, limit in _set(budget.daily_usd, budget.daily_tokens):
                where = f"budgets.daily_{unit} of {source}"
                found.append(Budget(BudgetKind.AGENT_DAILY, unit, limit, agent, where))
    if published is not None:
        eco = published.budgets
        for unit, limit in _set(eco.daily_usd, eco.daily_tokens):
            where = f"[budgets] daily_{unit} in {published.ecosystem}"
            found.append(Budget(BudgetKind.ECOSYSTEM_DAILY, unit, limit, published.ecosystem, where))
    return found


def _counts(
    budget: Budget, *, repo: str, task_id: str | None, published: PublishedBudgets | None, today: str
) -> Callable[[AttemptEntry], bool]:
    """Which entries a budget counts."""
    if budget.kind is BudgetKind.TASK:
        return lambda e: e.repo == repo and e.task == task_id
    if budget.kind is BudgetKind.REPO_DAILY:
        return lambda e: e.repo == repo and e.day == today
    if budget.kind is BudgetKind.AGENT_DAILY:  # its runs in every repo it serves (the ecosystem's)
        served = set(published.repos) if published is not None else {repo}
        return lambda e: e.agent == budget.scope and e.day == today and e.repo in served
    covered = set(published.repos) if published is not None else {repo}
    return lambda e: e.repo in covered and e.day == today


def spent(entries: Iterable[AttemptEntry], budget: Budget, counts: Callable[[AttemptEntry], bool]) -> float:
    chosen = [e for e in entries if counts(e)]
    return sum(e.cost_usd for e in chosen) if budget.unit == "usd" else float(sum(e.tokens for e in chosen))


def _fix(budget: Budget, reservation: float, resets: datetime | None) -> str:
    said = f"raise {budget.where}"
    if budget.kind is BudgetKind.TASK:
        own = "speedrift.budget" in budget.where
        flag = f"`speedrift edit {budget.scope} --budget-{budget.unit} N`"
        other = f"[budgets] task_{budget.unit}" if own else f"the task's own budget with {flag}"
        said += f" ({flag} does" if own else f" (or set {other}"
        said += "), then run it again"
    elif budget.kind is BudgetKind.ECOSYSTEM_DAILY:
        said += " (the hub publishes it on its next cycle)"
    if resets is not None:
        said += f", or wait for the reset at {format_time(resets)}"
    if reservation > 0:
        cap = "max_cost_usd" if budget.unit == "usd" else "max_tokens"
        said += f"; the reservation is the attempt's cap ([budgets] {cap} or the agent's run_{budget.unit})"
    return said


def check_budgets(
    entries: Sequence[AttemptEntry],
    *,
    now: datetime,
    repo: str,
    task_id: str,
    task: Task,
    agent: str | None,
    repo_budgets: BudgetConfig,
    published: PublishedBudgets | None,
    reservation_usd: float | None,
    reservation_tokens: int | None = None,
    repo_agents: Sequence[AgentDef] = (),
    applying: Sequence[Budget] | None = None,
) -> BudgetRefusal | None:
    """The first budget a dispatch of ``task_id`` would exceed (the task's, the repo's, the
    agent's, then the ecosystem's), or None. ``entries``: the attempt log (at least today's and
    this task's); ``repo``: the repo's real path (:func:`~speedrift.fleet.budgetpub.repo_key`);
    ``applying``: :func:`budgets_for` as the caller already worked it out (else worked out here)."""
    today = day_start(now).strftime("%Y-%m-%d")
    repo = repo_key(repo)
    if applying is None:
        applying = budgets_for(
            repo=repo,
            task_id=task_id,
            task=task,
            agent=agent,
            repo_budgets=repo_budgets,
            published=published,
            repo_agents=repo_agents,
        )
    for budget in applying:
        used = spent(
            entries, budget, _counts(budget, repo=repo, task_id=task_id, published=published, today=today)
        )
        reserved = float((reservation_usd if budget.unit == "usd" else reservation_tokens) or 0)
        if used >= budget.limit or used + reserved > budget.limit:
            resets = next_reset(now) if budget.daily else None
            return BudgetRefusal(budget, used, reserved, resets, _fix(budget, reserved, resets))
    return None


@dataclass(frozen=True)
class BudgetLine:
    """A daily budget today: its limit, what is spent and what remains."""

    budget: Budget
    spent: float
    resets_at: datetime

    @property
    def remaining(self) -> float:
        return max(0.0, self.budget.limit - self.spent)

    def to_json(self) -> dict[str, Any]:
        return {
            "budget": self.budget.kind.value,
            "unit": self.budget.unit,
            "scope": self.budget.scope,
            "limit": self.budget.limit,
            "spent": round(self.spent, 6),
            "remaining": round(self.remaining, 6),
            "resets_at": format_time(self.resets_at),
            "where": self.budget.where,
        }


def daily_lines(
    entries: Sequence[AttemptEntry],
    *,
    now: datetime,
    repos: Mapping[str, BudgetConfig],
    published: Sequence[PublishedBudgets],
) -> list[BudgetLine]:
    """Today's daily budgets of ``repos`` (real path -> its ``[budgets]``), of each published
    ecosystem and of its agents, with what is spent and what remains."""
    today = day_start(now).strftime("%Y-%m-%d")
    resets = next_reset(now)
    lines: list[BudgetLine] = []

    def add(budget: Budget, published_one: PublishedBudgets | None, repo: str) -> None:
        counts = _counts(budget, repo=repo, task_id=None, published=published_one, today=today)
        lines.append(BudgetLine(budget, spent(entries, budget, counts), resets))

    for repo, config in repos.items():
        for budget in budgets_for(
            repo=repo, task_id=None, task=None, agent=None, repo_budgets=config, published=None
        ):
            add(budget, None, repo)
    for eco in published:
        for budget in budgets_for(
            repo="", task_id=None, task=None, agent=None, repo_budgets=BudgetConfig(), published=eco
        ):
            add(budget, eco, "")
        for name, agent in sorted(eco.agents.items()):
            for unit, limit in _set(agent.daily_usd, agent.daily_tokens):
                where = f"budgets.daily_{unit} of [[agents]] {name!r} in {eco.ecosystem}"
                add(Budget(BudgetKind.AGENT_DAILY, unit, limit, name, where), eco, "")
    return lines
