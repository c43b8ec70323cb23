"""The configuration of fleet operations, shared by ``speedrift.toml`` and ``ecosystem.toml``:
standing agents (``[[agents]]``), the price table (``[prices."runtime:model"]``), model routing and
runtime fallback (``[routing]``), the ecosystem's money budgets (``[budgets]`` in ecosystem.toml;
a repo's are in its ``[budgets]``, fleet/config.py), the nightwatch (``[nightwatch]``) and compound
review (``[compound_review]``).

Invariant: every key here changes behaviour somewhere (the docstring of each model names where);
unknown keys and wrong types are errors (the models forbid extras), reported by the loader with
the file, the key path and the line. Cron expressions and time zones are checked here, at load,
so a bad schedule is a config error and never a scheduler crash.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from speedrift.errors import InvalidValue
from speedrift.fleet.roles.names import RoleName
from speedrift.graph.cron import validate, zone_of

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
RUNTIME_MODEL_RE = re.compile(r"^(claude|codex|opencode|shell)(:[^\s]+)?$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def check_cron(value: str) -> str:
    try:
        return validate(value)
    except InvalidValue as bad:
        raise ValueError(f"{bad.message}; {bad.hint}" if bad.hint else bad.message) from None


def check_tz(value: str) -> str:
    try:
        zone_of(value)
    except InvalidValue as bad:
        raise ValueError(f"{bad.message}; {bad.hint}" if bad.hint else bad.message) from None
    return value


def check_runtime_models(value: list[str]) -> list[str]:
    bad = [v for v in value if not RUNTIME_MODEL_RE.match(v)]
    if bad:
        raise ValueError(
            f'{", ".join(map(repr, bad))}: each entry is runtime[:model], e.g. "claude:sonnet", "codex:gpt-5"'
        )
    return value


class Layer(StrEnum):
    """An agent's layer: ``safety`` always on (restarted on exit, within limits), ``core`` on its
    cron schedule, ``growth`` on demand (``speedrift agents run NAME``, the dashboard)."""

    SAFETY = "safety"
    CORE = "core"
    GROWTH = "growth"


class AgentBudget(_Strict):
    """An agent's money: ``run_usd``/``run_tokens`` cap one run (its attempt's budget, enforced by
    the session), ``daily_usd``/``daily_tokens`` all its runs per UTC day (admission refuses a
    dispatch past it: fleet/spend.py)."""

    run_usd: float | None = Field(default=None, gt=0)
    run_tokens: int | None = Field(default=None, ge=1)
    daily_usd: float | None = Field(default=None, gt=0)
    daily_tokens: int | None = Field(default=None, ge=1)


class ResourceLimits(_Strict):
    """Applied to the agent's process group as rlimits (``RLIMIT_AS``, ``RLIMIT_CPU``) where the
    platform has them; an attempt records which were applied and which could not be."""

    memory_mb: int | None = Field(default=None, ge=16)
    cpu_seconds: int | None = Field(default=None, ge=1)


class RestartPolicy(_Strict):
    """A safety agent's restarts: after each exit wait ``cooldown_s``; at most ``max_restarts``
    within ``window_s``, then it is escalated (paused, a ledger record, an escalation)."""

    cooldown_s: float = Field(default=60, ge=0)
    max_restarts: int = Field(default=10, ge=0)
    window_s: float = Field(default=12 * 3600, gt=0)


class AgentDef(_Strict):
    """One standing agent (``[[agents]]``). Each run is a task in a served repo's graph, tagged
    ``agent:<name>``, dispatched through the supervisor like any task (fleetops/).

    ``repos``: the repo names it serves (ecosystem.toml; in a repo's speedrift.toml, empty means
    that repo). ``model`` is ``runtime:model`` or a routing tier (``cheap``/``standard``/``strong``);
    ``exec`` makes each run a shell task. ``prompt`` is the run's task description, ``role`` a
    shipped role whose template is the prompt. ``capabilities`` become the run's tags (routing reads
    them). ``max_concurrent``: how many of its runs may be open at once (the nightwatch lowers it)."""

    name: str
    layer: Layer
    repos: list[str] = Field(default_factory=list)
    title: str | None = None
    prompt: str | None = None
    role: RoleName | None = None
    exec: str | None = None
    model: str | None = None
    schedule: str | None = None
    tz: str = "UTC"
    capabilities: list[str] = Field(default_factory=list)
    max_concurrent: int = Field(default=1, ge=1, le=64)
    budgets: AgentBudget = Field(default_factory=AgentBudget)
    limits: ResourceLimits = Field(default_factory=ResourceLimits)
    restart: RestartPolicy = Field(default_factory=RestartPolicy)
    fallback: list[str] = Field(default_factory=list)
    enabled: bool = True

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_RE.match(value):
            raise ValueError(f"{value!r}: agent names use letters, digits, '.', '_' and '-' (≤ 64)")
        return value

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        return None if value is None else check_cron(value)

    @field_validator("tz")
    @classmethod
    def _tz(cls, value: str) -> str:
        return check_tz(value)

    @field_validator("fallback")
    @classmethod
    def _fallback(cls, value: list[str]) -> list[str]:
        return check_runtime_models(value)

    @model_validator(mode="after")
    def _consistent(self) -> AgentDef:
        if self.layer is Layer.CORE and self.schedule is None:
            raise ValueError(f'core agent {self.name!r} needs a schedule, e.g. schedule = "@daily"')
        if self.layer is not Layer.CORE and self.schedule is not None:
            raise ValueError(
                f"{self.layer} agent {self.name!r} has a schedule; only core agents run on one "
                "(safety agents are always on, growth agents run on demand)"
            )
        if not (self.prompt or self.role or self.exec):
            raise ValueError(f"agent {self.name!r} needs a prompt, a role or an exec command")
        return self


class Price(_Strict):
    """``[prices."runtime:model"]``: US dollars per million tokens, for runtimes whose usage
    events carry tokens but no cost (codex, opencode without a cost): fleet/spend.py."""

    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)
    cache_read_per_mtok: float = Field(default=0, ge=0)
    cache_write_per_mtok: float = Field(default=0, ge=0)


Tier = Literal["cheap", "standard", "strong"]
TIERS: tuple[Tier, ...] = ("cheap", "standard", "strong")


class RouteRule(_Strict):
    """``[[routing.rules]]``: a task whose tags include any of ``tags`` (or whose role is ``role``)
    goes to ``tier``. The first matching rule wins."""

    tier: Tier
    tags: list[str] = Field(default_factory=list)
    role: RoleName | None = None

    @model_validator(mode="after")
    def _matches_something(self) -> RouteRule:
        if not self.tags and self.role is None:
            raise ValueError("a routing rule needs tags or a role to match")
        return self


class RoutingConfig(_Strict):
    """``[routing]``: model routing and runtime fallback (agents/routing.py). ``tiers`` maps each
    tier to ``runtime:model``; a task with no explicit model is routed by ``rules`` (else
    ``default_tier``) when ``tiers`` is set, and climbs one tier per retry when ``escalate``.
    ``fallback``: the repo's runtime order when a runtime is paused or fails with a class that
    allows it (a task's or an agent's own order wins)."""

    tiers: dict[Tier, str] = Field(default_factory=dict)
    default_tier: Tier = "standard"
    rules: list[RouteRule] = Field(default_factory=list)
    escalate: bool = True
    fallback: list[str] = Field(default_factory=list)

    @field_validator("tiers")
    @classmethod
    def _tiers(cls, value: dict[Tier, str]) -> dict[Tier, str]:
        check_runtime_models(list(value.values()))
        return value

    @field_validator("fallback")
    @classmethod
    def _fallback(cls, value: list[str]) -> list[str]:
        return check_runtime_models(value)


class EcosystemBudgets(_Strict):
    """``[budgets]`` in ecosystem.toml: all repos of the ecosystem together, per UTC day. The hub
    publishes them for every supervisor's admission (fleet/spend.py)."""

    daily_usd: float | None = Field(default=None, gt=0)
    daily_tokens: int | None = Field(default=None, ge=1)


class NightwatchConfig(_Strict):
    """``[nightwatch]`` (fleetops/nightwatch.py): drift in agent behaviour over the last
    ``window`` finished attempts of each agent and each runtime×model, evaluated every
    ``interval_s`` inside the hub loop. ``weights`` are error, command-success and health;
    ``thresholds`` the Minor/Moderate/Severe/Critical floors. A pause is lifted by a person
    (``speedrift agents resume``) or, when ``pause_cooldown_s`` is set, after that long."""

    enabled: bool = True
    interval_s: float = Field(default=300, ge=0)
    window: int = Field(default=20, ge=1, le=1000)
    min_samples: int = Field(default=3, ge=1)
    error_weight: float = Field(default=0.4, ge=0)
    success_weight: float = Field(default=0.3, ge=0)
    health_weight: float = Field(default=0.3, ge=0)
    minor: float = Field(default=0.10, ge=0, le=1)
    moderate: float = Field(default=0.20, ge=0, le=1)
    severe: float = Field(default=0.40, ge=0, le=1)
    critical: float = Field(default=0.70, ge=0, le=1)
    slow_first_event_s: float = Field(default=120, gt=0)  # a first event later than this is unhealthy
    pause_cooldown_s: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> NightwatchConfig:
        if not (self.minor <= self.moderate <= self.severe <= self.critical):
            raise ValueError("thresholds must rise: minor ≤ moderate ≤ severe ≤ critical")
        if self.error_weight + self.success_weight + self.health_weight <= 0:
            raise ValueError("at least one weight must be above 0")
        return self


class CompoundReviewConfig(_Strict):
    """``[compound_review]`` (fleetops/compound.py). In ecosystem.toml: ``schedule``/``tz`` for
    every repo (``enabled = false`` turns it off). In a repo's speedrift.toml: ``create_prs = true``
    opts that repo in to draft pull requests through ``gh`` (dry run otherwise), ``large_diff_lines``
    what counts as a large change, ``summarize`` whether a role agent writes the summary."""

    enabled: bool = True
    schedule: str = "0 2 * * *"
    tz: str = "UTC"
    create_prs: bool = False
    large_diff_lines: int = Field(default=400, ge=1)
    summarize: bool = True

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        return check_cron(value)

    @field_validator("tz")
    @classmethod
    def _tz(cls, value: str) -> str:
        return check_tz(value)


@dataclass(frozen=True)
class FleetOps:
    """The fleet-operations tables of ecosystem.toml, as loaded (control/ecosystem/opstables.py)."""

    agents: tuple[AgentDef, ...] = ()
    budgets: EcosystemBudgets = field(default_factory=EcosystemBudgets)
    prices: dict[str, Price] = field(default_factory=dict)
    nightwatch: NightwatchConfig = field(default_factory=NightwatchConfig)
    compound_review: CompoundReviewConfig = field(default_factory=CompoundReviewConfig)

    def agent(self, name: str) -> AgentDef | None:
        return next((a for a in self.agents if a.name == name), None)
