"""The standing agents an ecosystem declares: ecosystem.toml's ``[[agents]]`` and each registered
repo's ``speedrift.toml`` ``[[agents]]``, merged into one list of :class:`Served` agents.

Invariant: an agent name means one agent. The same name declared in two places (two repos, or a
repo and ecosystem.toml) is a problem naming both places, and NEITHER declaration is served until
one is renamed — the scheduler never guesses which one was meant (their durable state, their
``agent:<name>`` runs and their pauses are all keyed by the name). A repo whose speedrift.toml does
not load is a problem (its agents are not served), never a crash of the hub.

In ecosystem.toml an agent lists the repos it serves (the loader requires at least one, each
registered). In a repo's speedrift.toml an empty ``repos`` means that repo; a non-empty one must
name registered repos.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from speedrift.fleet.config import CONFIG_FILE, ConfigError, load_config
from speedrift.fleet.opsconfig import AgentDef, FleetOps

ECOSYSTEM_SOURCE = "ecosystem.toml"


@dataclass(frozen=True)
class Served:
    """One declared agent and the repos it serves (registered names, in declaration order)."""

    agent: AgentDef
    repos: tuple[str, ...]
    source: str  # where it is declared: "ecosystem.toml" or "<repo>/speedrift.toml"

    @property
    def name(self) -> str:
        return self.agent.name


def repo_source(repo: str) -> str:
    return f"{repo}/{CONFIG_FILE}"


def declared_agents(ops: FleetOps, repos: Mapping[str, Path]) -> tuple[list[Served], list[str]]:
    """Every agent the ecosystem serves, and the problems found (each a sentence naming the file,
    the agent and the fix). ``repos``: the registered repos (name → path)."""
    found: list[Served] = [Served(a, tuple(a.repos), ECOSYSTEM_SOURCE) for a in ops.agents]
    problems: list[str] = []
    for repo_name, path in sorted(repos.items()):
        try:
            config = load_config(path)
        except ConfigError as exc:
            problems.append(f"{repo_source(repo_name)}: its agents are not served: {exc.message}")
            continue
        except OSError as exc:
            problems.append(f"{repo_source(repo_name)}: cannot be read ({exc}); its agents are not served")
            continue
        for agent in config.agents:
            unknown = [r for r in agent.repos if r not in repos]
            if unknown:
                problems.append(
                    f"{repo_source(repo_name)}: agent {agent.name!r} serves {', '.join(map(repr, unknown))},"
                    f" not registered in ecosystem.toml; it is not served (registered: "
                    f"{', '.join(sorted(repos)) or 'none'}; leave repos empty to serve {repo_name!r})"
                )
                continue
            found.append(Served(agent, tuple(agent.repos) or (repo_name,), repo_source(repo_name)))
    by_name: dict[str, list[Served]] = {}
    for served in found:
        by_name.setdefault(served.name, []).append(served)
    result: list[Served] = []
    for name, entries in by_name.items():
        if len(entries) > 1:
            places = " and ".join(e.source for e in entries)
            problems.append(
                f"agent {name!r} is declared in {places}: neither is served until one is renamed "
                "(an agent's state, runs and pause are keyed by its name)"
            )
            continue
        result.append(entries[0])
    return result, problems


def find(served: list[Served], name: str) -> Served | None:
    return next((s for s in served if s.name == name), None)
