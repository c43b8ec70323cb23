"""The ecosystem's money settings as its hub publishes them for every supervisor on the machine.

A repo's own ``[budgets]`` and ``[prices]`` are in its speedrift.toml, which every supervisor
reads; the ecosystem's (``[budgets]``, ``[prices]`` and each standing agent's budgets in
ecosystem.toml) only the hub reads. So each hub cycle publishes them to
:func:`speedrift.statehome.budgets_path` (``budgets.json``), keyed by the ecosystem's path with the
absolute paths of the repos it covers, and ``speedrift run``, the service and the hub's workers
find theirs with :func:`published_for` at admission (fleet/spend.py) and when an attempt's cost
is priced (fleet/attemptfeed.py).

Invariant: the file is written only when what one ecosystem publishes changes (atomically, mode
0600, under a lock shared by every hub on the machine); an ecosystem with nothing to publish has
no entry. A reader never raises on a missing, torn or foreign file: it sees nothing published.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from speedrift import fsutil, statehome
from speedrift.fleet.opsconfig import AgentBudget, EcosystemBudgets, FleetOps, Price
from speedrift.times import format_time, now_utc, parse_time


def repo_key(path: str | os.PathLike[str]) -> str:
    """The one spelling of a repo in the attempt log and the published budgets: its real path."""
    return os.path.realpath(os.fspath(path))


@dataclass(frozen=True)
class PublishedBudgets:
    """One ecosystem's published money settings (see the module docstring)."""

    ecosystem: str  # its ecosystem.toml, absolute
    repos: tuple[str, ...]  # the repos it covers (:func:`repo_key`)
    budgets: EcosystemBudgets = field(default_factory=EcosystemBudgets)
    prices: dict[str, Price] = field(default_factory=dict)
    agents: dict[str, AgentBudget] = field(default_factory=dict)  # each standing agent's budgets
    at: datetime | None = None  # when the hub published it

    def covers(self, repo: str | os.PathLike[str]) -> bool:
        return repo_key(repo) in self.repos

    def to_json(self) -> dict[str, Any]:
        return {
            "repos": list(self.repos),
            "budgets": self.budgets.model_dump(exclude_none=True),
            "prices": {key: price.model_dump() for key, price in sorted(self.prices.items())},
            "agents": {
                name: budget.model_dump(exclude_none=True) for name, budget in sorted(self.agents.items())
            },
            "at": format_time(self.at) if self.at is not None else None,
        }


def _lock() -> Path:
    return statehome.budgets_path().with_suffix(".lock")


def _read_raw() -> dict[str, Any]:
    try:
        data = orjson.loads(statehome.budgets_path().read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    ecosystems = data.get("ecosystems") if isinstance(data, dict) else None
    return ecosystems if isinstance(ecosystems, dict) else {}


def _parse(ecosystem: str, raw: object) -> PublishedBudgets | None:
    """One ecosystem's entry, or None when it is not one (a foreign or damaged entry is skipped)."""
    if not isinstance(raw, dict):
        return None
    repos = raw.get("repos")
    if not isinstance(repos, list) or not all(isinstance(r, str) for r in repos):
        return None
    try:
        budgets = EcosystemBudgets.model_validate(raw.get("budgets") or {})
        prices = {str(k): Price.model_validate(v) for k, v in _mapping(raw.get("prices")).items()}
        agents = {str(k): AgentBudget.model_validate(v) for k, v in _mapping(raw.get("agents")).items()}
    except ValidationError:
        return None
    return PublishedBudgets(ecosystem, tuple(repos), budgets, prices, agents, parse_time(raw.get("at")))


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def published_all() -> list[PublishedBudgets]:
    """Every ecosystem's published settings, in the order of their paths."""
    raw = _read_raw()
    found = (_parse(name, raw[name]) for name in sorted(raw))
    return [entry for entry in found if entry is not None]


def published_for(repo: str | os.PathLike[str]) -> PublishedBudgets | None:
    """The published settings of the ecosystem that covers ``repo`` (the first by path when two
    do), or None: no hub published any for it."""
    key = repo_key(repo)
    return next((entry for entry in published_all() if key in entry.repos), None)


def published_ecosystem(ecosystem_path: str | os.PathLike[str]) -> PublishedBudgets | None:
    """What the hub of ``ecosystem_path`` published, or None."""
    wanted = os.path.abspath(os.fspath(ecosystem_path))
    return next((entry for entry in published_all() if entry.ecosystem == wanted), None)


def _entry(repo_paths: Iterable[str | os.PathLike[str]], ops: FleetOps) -> PublishedBudgets | None:
    agents = {
        agent.name: agent.budgets
        for agent in ops.agents
        if any(value is not None for value in agent.budgets.model_dump().values())
    }
    budgets = ops.budgets
    if budgets.daily_usd is None and budgets.daily_tokens is None and not ops.prices and not agents:
        return None
    repos = tuple(sorted({repo_key(path) for path in repo_paths}))
    return PublishedBudgets("", repos, budgets, dict(ops.prices), agents)


def publish_budgets(
    ecosystem_path: str | os.PathLike[str], repo_paths: Iterable[str | os.PathLike[str]], ops: FleetOps
) -> None:
    """Publish the ecosystem's ``[budgets]``, ``[prices]`` and its agents' budgets for the repos it
    covers (the hub, once per cycle). Nothing is written when nothing changed; an ecosystem with
    none of them set has its entry removed."""
    name = os.path.abspath(os.fspath(ecosystem_path))
    entry = _entry(repo_paths, ops)
    wanted = _comparable(entry.to_json()) if entry is not None else None
    current = _read_raw().get(name)
    if _comparable(current) == wanted:
        return
    with fsutil.flocked(_lock()):
        ecosystems = _read_raw()  # again, under the lock: another hub may have written meanwhile
        if _comparable(ecosystems.get(name)) == wanted:
            return
        if entry is None:
            ecosystems.pop(name, None)
        else:
            ecosystems[name] = entry.to_json() | {"at": format_time(now_utc())}
        document = orjson.dumps({"ecosystems": ecosystems}, option=orjson.OPT_SORT_KEYS)
        fsutil.write_atomic(statehome.budgets_path(), document, mode=0o600, keep_mode=False)


def _comparable(raw: object) -> object:
    """An entry without its publication time: what decides whether it changed."""
    if not isinstance(raw, dict):
        return None
    return {key: value for key, value in raw.items() if key != "at"}
