"""The fleet-operations tables of ``ecosystem.toml``: ``[[agents]]``, ``[budgets]``, ``[prices]``,
``[nightwatch]`` and ``[compound_review]`` (their models: fleet/opsconfig.py).

Checked like the rest of the file: every problem is reported through the loader's collector with
its key path (so with its line), unknown keys and wrong types included; an agent that serves a repo
the file does not register is a problem too. A table left out takes its defaults.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from speedrift.fleet.opsconfig import (
    AgentDef,
    CompoundReviewConfig,
    EcosystemBudgets,
    FleetOps,
    NightwatchConfig,
    Price,
    check_runtime_models,
)

OPS_KEYS = ("agents", "budgets", "prices", "nightwatch", "compound_review")
DOC = "docs/fleet-operations.md"

Add = Callable[[tuple[str, ...], str, str], None]  # (key path, problem, fix)
M = TypeVar("M", bound=BaseModel)


def validated(model: type[M], table: Any, where: tuple[str, ...], add: Add) -> M | None:
    """``table`` as ``model`` (TOML has real types: strict), or None with each problem added."""
    if not isinstance(table, dict):
        add(where, "must be a table", f"write it as a [{'.'.join(where)}] section")
        return None
    try:  # strict, from JSON: "yes" is no bool, and an enum's value is its word (TOML has no dates here)
        return model.model_validate_json(orjson.dumps(table), strict=True)
    except ValidationError as error:
        for item in error.errors():
            loc = tuple(str(part) for part in item["loc"])
            if item["type"] == "extra_forbidden":
                problem, fix = "unknown key", f"remove it ({DOC} lists the keys)"
            else:
                problem = str(item["msg"]).removeprefix("Value error, ")
                if "input" in item and item["type"] != "value_error" and not isinstance(item["input"], dict):
                    problem += f" (got {item['input']!r})"
                fix = f"see {DOC} for this key's type and default"
            add((*where, *loc), problem, fix)
        return None


def parse_ops(data: dict[str, Any], repo_names: Collection[str], add: Add) -> FleetOps:
    agents: list[AgentDef] = []
    raw_agents = data.get("agents", [])
    if not isinstance(raw_agents, list):
        add(("agents",), "must be an array of tables", "write each agent as an [[agents]] section")
        raw_agents = []
    seen: set[str] = set()
    for index, table in enumerate(raw_agents):
        agent = validated(AgentDef, table, ("agents", str(index)), add)
        if agent is None:
            continue
        if agent.name in seen:
            add(("agents", str(index), "name"), f"agent {agent.name!r} is declared twice", "rename one")
            continue
        seen.add(agent.name)
        unknown = [r for r in agent.repos if r not in repo_names]
        if unknown:
            add(
                ("agents", str(index), "repos"),
                f"{', '.join(map(repr, unknown))} not registered",
                f"use registered repo names ({', '.join(sorted(repo_names)) or 'none yet'})",
            )
            continue
        if not agent.repos:
            add(
                ("agents", str(index), "repos"),
                "names no repo",
                'list the repos it serves, e.g. repos = ["app"]',
            )
            continue
        agents.append(agent)
    prices: dict[str, Price] = {}
    raw_prices = data.get("prices", {})
    if isinstance(raw_prices, dict):
        try:
            check_runtime_models(list(raw_prices))
        except ValueError as bad:
            add(("prices",), str(bad), 'name each table [prices."runtime:model"]')
        else:
            for key, table in raw_prices.items():
                price = validated(Price, table, ("prices", key), add)
                if price is not None:
                    prices[key] = price
    else:
        add(("prices",), "must be a table", 'write [prices."codex:gpt-5"] sections')
    return FleetOps(
        agents=tuple(agents),
        budgets=validated(EcosystemBudgets, data.get("budgets", {}), ("budgets",), add) or EcosystemBudgets(),
        prices=prices,
        nightwatch=validated(NightwatchConfig, data.get("nightwatch", {}), ("nightwatch",), add)
        or NightwatchConfig(),
        compound_review=validated(
            CompoundReviewConfig, data.get("compound_review", {}), ("compound_review",), add
        )
        or CompoundReviewConfig(),
    )
