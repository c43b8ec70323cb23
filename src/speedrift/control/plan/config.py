"""``[policy]`` of ecosystem.toml: the envelope every planned action must fit through.

Every key has a default (the public envelope of the original hub, see docs/scoring-and-policy.md),
so an ecosystem.toml without ``[policy]`` is valid and executes nothing (``plan_only = true``).
Unknown keys and bad values are errors naming the key path and the fix; the registry adds the
file and line when it reports them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from speedrift.errors import SpeedriftError
from speedrift.register.actions import ACTION_KINDS

# dispatch is paced by claims (a claimed task is not ready again), so it needs only a short cooldown
DEFAULT_COOLDOWNS: dict[str, float] = {"restart_service": 180.0, "dispatch_ready": 30.0, "default": 600.0}


class PolicyError(SpeedriftError):
    """A ``[policy]`` table that does not validate; ``problems`` are (key path, message) pairs."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        shown = "\n".join(f"  {source}: {key}: {message}" for key, message in problems)
        super().__init__(
            f"{source} has an invalid [policy] table:\n{shown}",
            hint="fix or remove those keys; docs/scoring-and-policy.md lists every key and its default",
        )
        self.problems = problems


class PolicyConfig(BaseModel):
    """Budgets, cooldowns and switches; frozen so a cycle cannot change its own envelope."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    plan_only: bool = True
    max_repos_per_cycle: int = Field(default=5, ge=0)
    max_actions_per_cycle: int = Field(default=12, ge=0)
    max_actions_per_repo: int = Field(default=1, ge=0)
    max_actions_per_hour: int = Field(default=60, ge=0)
    max_actions_per_repo_per_hour: int = Field(default=6, ge=0)
    cooldown_seconds: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_COOLDOWNS))
    max_service_starts_per_cycle: int = Field(default=4, ge=0)
    # agents running at once on this machine, every repo and every supervisor together (admission,
    # fleet/supervisor.py); None: no ecosystem-wide cap (each repo's [service] max_agents still holds)
    max_agents: int | None = Field(default=None, ge=1)
    max_corrective_per_repo: int = Field(default=2, ge=0)
    max_corrective_total: int = Field(default=50, ge=0)
    hard_stop_on_failed_verification: bool = True
    dirty_checkout_blocks: bool = True
    auto_resume: bool = True

    @field_validator("cooldown_seconds", mode="after")
    @classmethod
    def _known_kinds_over_defaults(cls, value: dict[str, float]) -> dict[str, float]:
        # a user who sets only restart_service keeps the 600 s default for every other kind
        unknown = sorted(set(value) - set(ACTION_KINDS) - {"default"})
        if unknown:
            raise ValueError(
                f"unknown action kind(s) {', '.join(unknown)}; "
                f"use 'default' or one of {', '.join(ACTION_KINDS)}"
            )
        negative = sorted(k for k, v in value.items() if v < 0)
        if negative:
            raise ValueError(f"cooldown for {', '.join(negative)} must be >= 0 seconds")
        return {**DEFAULT_COOLDOWNS, **value}

    def cooldown_for(self, kind: str) -> float:
        return self.cooldown_seconds.get(kind, self.cooldown_seconds["default"])


def parse_policy(table: Mapping[str, Any] | None, *, source: str = "ecosystem.toml") -> PolicyConfig:
    """Validate a parsed ``[policy]`` table (``None`` or missing = every default)."""
    try:
        return PolicyConfig.model_validate(dict(table or {}))
    except ValidationError as error:
        problems = [(".".join(["policy", *(str(p) for p in e["loc"])]), _message(e)) for e in error.errors()]
        raise PolicyError(source, problems) from None


def _message(error: Any) -> str:
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        return "unknown key (misspelt? see the list of [policy] keys)"
    text = str(error.get("msg", "invalid value"))
    if "input" in error and kind != "value_error":
        text += f" (got {error['input']!r})"
    return text


POLICY_KEY_DOCS: dict[str, str] = {
    "plan_only": "master switch: while true the hub plans, shows and records everything and executes nothing",
    "max_repos_per_cycle": "distinct repos that may have an action executed in one cycle",
    "max_actions_per_cycle": "actions executed per cycle, all repos together",
    "max_actions_per_repo": "actions executed per repo per cycle",
    "max_actions_per_hour": "actions executed in the last hour, all repos together (history + this cycle)",
    "max_actions_per_repo_per_hour": "actions executed in the last hour in one repo",
    "cooldown_seconds": "seconds after a kind of action ran in a repo before it may run there again",
    "max_service_starts_per_cycle": "restart_service actions per cycle",
    "max_agents": (
        "agents running at once across the ecosystem (every repo, service, `speedrift run` and hub worker "
        "on this machine), enforced at admission; unset: no cap beyond each repo's [service] max_agents"
    ),
    "max_corrective_per_repo": "open corrective tasks the hub keeps in one repo",
    "max_corrective_total": "open corrective tasks the hub keeps across the ecosystem",
    "hard_stop_on_failed_verification": "the first failed action (dispatch excepted) stops the cycle",
    "dirty_checkout_blocks": "actions that need a clean checkout are cut while it has uncommitted changes",
    "auto_resume": (
        "a runtime paused by a usage or rate limit resumes at its reset time; false: it stays paused "
        "until `speedrift resume-runtime NAME` (machine-wide: the hub publishes it to every supervisor)"
    ),
}


def policy_table_markdown() -> str:
    """The ``[policy]`` keys with their defaults, as the doc shows them (a test keeps them equal)."""
    defaults = PolicyConfig()
    rows = ["| key | default | meaning |", "|---|---|---|"]
    for key, meaning in POLICY_KEY_DOCS.items():
        value = getattr(defaults, key)
        if value is None:
            shown = "unset"
        elif isinstance(value, bool):
            shown = str(value).lower()
        elif isinstance(value, dict):
            shown = "{ " + ", ".join(f"{k} = {v:g}" for k, v in value.items()) + " }"
        else:
            shown = str(value)
        rows.append(f"| `{key}` | `{shown}` | {meaning} |")
    return "\n".join(rows)
