"""``<repo>/speedrift.toml``: the optional, committed per-repo configuration.

Every key has a default, so a repo without the file works. Unknown keys and bad values are
errors that name the file, the key path and (from the TOML parser) the line.
"""

from __future__ import annotations

import shlex
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from speedrift import safetoml
from speedrift.agents.sandbox import HIDDEN
from speedrift.errors import SpeedriftError
from speedrift.failure_class import FailureClass
from speedrift.fleet.opsconfig import (
    AgentDef,
    CompoundReviewConfig,
    Price,
    RoutingConfig,
    check_runtime_models,
)
from speedrift.fleet.roles.names import ReviewMode, RoleName
from speedrift.gates.config import GatesConfig
from speedrift.times import parse_duration

CONFIG_FILE = "speedrift.toml"


class ConfigError(SpeedriftError):
    pass


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuntimeOptions(_Strict):
    model: str | None = None
    permission_mode: str = "acceptEdits"  # claude: unattended edits inside the worktree
    allowed_tools: list[str] = Field(default_factory=list)  # claude --allowedTools
    sandbox: str = "workspace-write"  # codex --sandbox
    agent: str | None = None  # opencode --agent
    command: list[str] | None = None  # shell: a configured argv reading the prompt on stdin
    # claude, codex, opencode: a retry after a transient fault or a usage limit, and a review's
    # revision round, continue the agent's previous session (fleet/resume.py); false: always fresh
    resume: bool = True


class BudgetConfig(_Strict):
    wall_clock_minutes: float = Field(default=30, gt=0)
    max_turns: int | None = Field(default=None, ge=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_cost_usd: float | None = Field(default=None, gt=0)
    stall_seconds: float = Field(default=300, gt=0)
    kill_grace_seconds: float = Field(default=10, ge=0)
    # a run that is only retrying against a failing provider ends after this, with the fault's class
    provider_retry_seconds: float = Field(default=90, gt=0)
    # before an agent's first event the stall clock waits this long (a CLI's start-up)
    startup_seconds: float = Field(default=60, ge=0)
    # money (fleet/spend.py, checked at admission): all attempts of one task together, and this
    # repo's attempts per UTC day; the attempt's own cap is max_tokens/max_cost_usd above
    task_usd: float | None = Field(default=None, gt=0)
    task_tokens: int | None = Field(default=None, ge=1)
    daily_usd: float | None = Field(default=None, gt=0)
    daily_tokens: int | None = Field(default=None, ge=1)


class WorktreeConfig(_Strict):
    # Python virtualenvs get a per-worktree overlay (see repo/envshare.py); other paths are
    # symlinked and watched: an attempt that modifies one fails with the change reported.
    share: list[str] = Field(default_factory=lambda: [".venv", "node_modules"])
    port_block: int = Field(default=10, ge=1, le=1000)
    port_base: int = Field(default=20000, ge=1024, le=60000)
    # `speedrift worktrees gc` scrubs a worktree quarantined because the secrets gate blocked its
    # commit this long after the quarantine (45s, 30m, 2h, 1d, 1w): its files go, its record stays
    quarantine_retention: str = "14d"

    @field_validator("quarantine_retention")
    @classmethod
    def _retention(cls, value: str) -> str:
        try:
            parse_duration(value)
        except SpeedriftError as error:
            raise ValueError(f"{error.message}; {error.hint}" if error.hint else error.message) from None
        return value

    @property
    def retention(self) -> timedelta:
        """``quarantine_retention`` as a duration (validated when the file was read)."""
        return parse_duration(self.quarantine_retention)


class ServiceConfig(_Strict):
    max_agents: int = Field(default=2, ge=1, le=64)
    poll_seconds: float = Field(default=5, gt=0)
    max_attempts: int = Field(default=3, ge=1)
    backoff_seconds: float = Field(default=30, ge=0)
    dispatch_when_wg_service_live: bool = False


class LimitsConfig(_Strict):
    """``[limits]``: how many attempts of each runtime may run at once on this machine, all repos
    together (fleet/supervisor.py counts them at admission). Unset: no per-runtime cap."""

    claude: int | None = Field(default=None, ge=1, le=1000)
    codex: int | None = Field(default=None, ge=1, le=1000)
    opencode: int | None = Field(default=None, ge=1, le=1000)
    shell: int | None = Field(default=None, ge=1, le=1000)

    def for_runtime(self, name: str) -> int | None:
        value = getattr(self, name, None) if name in type(self).model_fields else None
        return value if isinstance(value, int) else None


RecoveryKind = Literal[
    "retry",
    "retry_with_diagnosis",
    "escalate_model",
    "split_task",
    "replan",
    "escalate_human",
    "pause_runtime",
]


ModelRuntime = Literal["claude", "codex", "opencode"]


def _default_tiers() -> dict[ModelRuntime, list[str]]:
    return {"claude": ["haiku", "sonnet", "opus"]}  # SPEED's ladder


class ClassPolicyOverride(_Strict):
    """``[recovery.classes.<class>]``: replaces fields of one class's default policy."""

    retryable: bool | None = None
    recovery: RecoveryKind | None = None
    max_attempts: int | None = Field(default=None, ge=1)
    backoff_seconds: float | None = Field(default=None, ge=0)
    backoff_cap_seconds: float | None = Field(default=None, ge=0)


class RecoveryConfig(_Strict):
    """``[recovery]``: failure recovery (see docs/failure-classes.md)."""

    # halt automatic retries when more than this share of the recent window's attempts failed
    halt_threshold: float = Field(default=0.3, ge=0, le=1)
    halt_window: int = Field(default=20, ge=1)
    halt_min_attempts: int = Field(default=5, ge=1)
    # escalate_model walks these, weakest first, per runtime
    model_tiers: dict[ModelRuntime, list[str]] = Field(default_factory=_default_tiers)
    classes: dict[FailureClass, ClassPolicyOverride] = Field(default_factory=dict)

    @field_validator("classes", mode="before")
    @classmethod
    def _known_classes(cls, value: object) -> object:
        """An unknown class is named with the known ones (before pydantic's own key check)."""
        if isinstance(value, dict):
            known = [str(c) for c in FailureClass]
            unknown = sorted(str(key) for key in value if key not in known)
            if unknown:
                raise ValueError(f"unknown failure class {', '.join(unknown)}; known: {', '.join(known)}")
        return value


class AgentEnvConfig(_Strict):
    allow: list[str] = Field(default_factory=list)  # extra environment variable names to pass
    secrets: list[str] = Field(default_factory=list)  # credentials deliberately passed through


class GitConfig(_Strict):
    """``[git]``: how much of the repository's own git setup speedrift's git runs. ``hooks``:
    ``"none"`` (the default) — no hook of the repo runs in any git command speedrift starts;
    ``"repo"`` — speedrift's own commit and landing (commit, rebase, fast-forward) run the repo's
    hooks as quality gates, only those that were there before the attempt began (one an agent
    added or changed is reported, not run: repo/gitboundary.py). The hub never runs hooks."""

    hooks: Literal["none", "repo"] = "none"


class SandboxConfig(_Strict):
    """``[sandbox]``: the bubblewrap sandbox each agent runs in (agents/sandbox.py). ``mode``:
    ``"auto"`` (the default) — sandboxed where bwrap works, otherwise unsandboxed and said so (in
    ``speedrift doctor``, the attempt's evidence and the dashboard); ``"required"`` — an attempt
    is refused before its claim where bwrap does not work; ``"off"`` — never. ``network = false``
    cuts the agent off the network (its CLI then cannot reach a remote provider either).
    ``hide`` adds paths hidden from the agent to the credentials hidden by default
    (``agents.sandbox.HIDDEN``); ``reveal`` leaves some of those defaults visible."""

    mode: Literal["auto", "required", "off"] = "auto"
    network: bool = True
    # hidden from the agent besides agents/sandbox.py's HIDDEN credentials (``~`` is its HOME)
    hide: list[str] = Field(default_factory=list)
    # defaults of HIDDEN left visible (an agent that must push over ssh: "~/.ssh")
    reveal: list[str] = Field(default_factory=list)

    @field_validator("hide")
    @classmethod
    def _absolute(cls, value: list[str]) -> list[str]:
        bad = [p for p in value if not (p.startswith("~") or p.startswith("/"))]
        if bad:
            raise ValueError(f"hide takes absolute paths or paths under ~, not {', '.join(map(repr, bad))}")
        return value

    @field_validator("reveal")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = [p for p in value if p not in HIDDEN]
        if unknown:
            raise ValueError(
                f"reveal names defaults only ({', '.join(HIDDEN)}); not {', '.join(map(repr, unknown))}"
            )
        return value

    def hidden(self) -> tuple[str, ...]:
        """What an agent's sandbox hides: the defaults not revealed, then ``hide``."""
        return (*(p for p in HIDDEN if p not in self.reveal), *self.hide)


class RoleConfig(_Strict):
    """``[roles.<role>]``: one role of the resilience fleet (fleet/roles, docs/roles.md).
    ``template``: a committed prompt template replacing the shipped one (relative to the repo;
    ``.speedrift/roles/<role>.md`` also does); ``runtime``/``model``: what it runs on (default:
    the repo's runtime, and the model of the role's tier); ``enabled``: whether speedrift starts
    it by itself where it has a trigger (the Debugger after a retryable failure, the triage step
    for a clarification) — the Reviewer is switched by ``[review]``, the others run when asked."""

    template: str | None = None
    runtime: Literal["claude", "codex", "opencode", "shell", "demo"] | None = None
    model: str | None = None
    enabled: bool | None = None  # None: the role's default (debugger off, triage on)
    wall_clock_minutes: float = Field(default=15, gt=0)
    max_turns: int | None = Field(default=None, ge=1)


class ReviewConfig(_Strict):
    """``[review]``: the Reviewer role between the gates and the merge queue. ``mode``: ``"off"``
    (the default), ``"advisory"`` (reviewed, recorded, never blocks) or ``"blocking"`` (approve
    lands; request_changes sends the findings back to the developer for at most ``max_rounds``
    revisions; reject fails the attempt as review_rejected). A task overrides the mode with its
    own ``speedrift.review`` field (``speedrift add --review MODE``)."""

    mode: ReviewMode = ReviewMode.OFF
    max_rounds: int = Field(default=2, ge=0, le=10)


HOOK_EVENTS = ("session-start", "task-claimed", "task-completing", "task-done", "task-failed", "agent-error")
HOOK_SETTINGS = ("timeout_s", "output_tail")


class HooksConfig(_Strict):
    """``[hooks]``: the repo's own executables run at fixed points of an attempt (fleet/repohooks.py).
    Each event key takes a list of commands, each an argv list or a string split like a shell
    would (``shlex``); a relative program path is the repo's main checkout's, never the attempt's
    worktree (an agent cannot rewrite the check that judges it). ``timeout_s``: each run's limit;
    ``output_tail``: characters of its output kept in the evidence."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    session_start: list[list[str]] = Field(default_factory=list, alias="session-start")
    task_claimed: list[list[str]] = Field(default_factory=list, alias="task-claimed")
    task_completing: list[list[str]] = Field(default_factory=list, alias="task-completing")
    task_done: list[list[str]] = Field(default_factory=list, alias="task-done")
    task_failed: list[list[str]] = Field(default_factory=list, alias="task-failed")
    agent_error: list[list[str]] = Field(default_factory=list, alias="agent-error")
    timeout_s: float = Field(default=60, gt=0, le=3600)
    output_tail: int = Field(default=4000, ge=100, le=100_000)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, value: object) -> object:
        if isinstance(value, dict):
            unknown = sorted(str(k) for k in value if k not in (*HOOK_EVENTS, *HOOK_SETTINGS))
            if unknown:
                raise ValueError(
                    f"unknown key(s) {', '.join(unknown)}; events: {', '.join(HOOK_EVENTS)}; "
                    f"settings: {', '.join(HOOK_SETTINGS)}"
                )
        return value

    @field_validator(
        "session_start",
        "task_claimed",
        "task_completing",
        "task_done",
        "task_failed",
        "agent_error",
        mode="before",
    )
    @classmethod
    def _commands(cls, value: object) -> list[list[str]]:
        if not isinstance(value, list):
            raise ValueError('a list of commands, e.g. ["./scripts/check-changelog"]')
        commands: list[list[str]] = []
        for index, item in enumerate(value):
            if isinstance(item, str):
                try:
                    argv = shlex.split(item)
                except ValueError as bad:
                    raise ValueError(f"command {index + 1} ({item!r}) cannot be split: {bad}") from None
            elif isinstance(item, list) and all(isinstance(word, str) for word in item):
                argv = list(item)
            else:
                raise ValueError(f"command {index + 1} is neither a string nor a list of strings")
            if not argv or not argv[0]:
                raise ValueError(f"command {index + 1} is empty")
            commands.append(argv)
        return commands

    def commands(self, event: str) -> list[list[str]]:
        """The commands declared for ``event`` (one of :data:`HOOK_EVENTS`)."""
        if event not in HOOK_EVENTS:
            raise ValueError(f"not a hook event: {event}")
        found: list[list[str]] = getattr(self, event.replace("-", "_"))
        return found


class UpstreamConfig(_Strict):
    """``[upstream]``: upstream proposals (fleetops/upstream.py). ``propose = true`` is this repo's
    opt-in to ``speedrift upstream propose ID`` pushing the proposal branch to the fork (``fork_remote``,
    default origin) and opening a draft; ``forge`` names the forge when the remote URL's host does
    not (``"auto"``: from the URL)."""

    propose: bool = False
    forge: Literal["auto", "github", "gitlab"] = "auto"
    fork_remote: str = Field(default="origin", pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$")


class RepoConfig(_Strict):
    target_branch: str | None = None  # default: the repo's current default branch
    default_runtime: Literal["claude", "codex", "opencode", "shell", "demo"] = "claude"
    runtimes: dict[Literal["claude", "codex", "opencode", "shell", "demo"], RuntimeOptions] = Field(
        default_factory=dict
    )
    budgets: BudgetConfig = Field(default_factory=BudgetConfig)
    worktrees: WorktreeConfig = Field(default_factory=WorktreeConfig)
    service: ServiceConfig = Field(default_factory=ServiceConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)  # per-runtime caps, machine-wide
    recovery: RecoveryConfig = Field(default_factory=RecoveryConfig)
    env: AgentEnvConfig = Field(default_factory=AgentEnvConfig)
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)  # [sandbox] mode, network
    git: GitConfig = Field(default_factory=GitConfig)  # [git] hooks
    gates: GatesConfig = Field(default_factory=GatesConfig)  # see gates/config.py
    review: ReviewConfig = Field(default_factory=ReviewConfig)  # [review] mode, max_rounds
    upstream: UpstreamConfig = Field(default_factory=UpstreamConfig)  # [upstream] propose, forge
    hooks: HooksConfig = Field(default_factory=HooksConfig)  # [hooks]: fleet/repohooks.py
    roles: dict[RoleName, RoleConfig] = Field(default_factory=dict)  # [roles.<role>]
    # fleet operations (fleet/opsconfig.py): standing agents, prices, routing, compound review
    agents: list[AgentDef] = Field(default_factory=list)  # [[agents]]
    prices: dict[str, Price] = Field(default_factory=dict)  # [prices."runtime:model"]
    routing: RoutingConfig = Field(default_factory=RoutingConfig)  # [routing]
    compound_review: CompoundReviewConfig = Field(default_factory=CompoundReviewConfig)

    @field_validator("prices")
    @classmethod
    def _price_keys(cls, value: dict[str, Price]) -> dict[str, Price]:
        check_runtime_models(list(value))
        return value

    @field_validator("agents")
    @classmethod
    def _unique_agents(cls, value: list[AgentDef]) -> list[AgentDef]:
        names = [agent.name for agent in value]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"agent name(s) declared twice: {', '.join(twice)}")
        return value

    def role(self, name: str) -> RoleConfig:
        for key, options in self.roles.items():
            if key == name:
                return options
        return RoleConfig()

    def runtime_options(self, name: str) -> RuntimeOptions:
        for key, options in self.runtimes.items():
            if key == name:
                return options
        return RuntimeOptions()


def load_config(repo: Path) -> RepoConfig:
    path = repo / CONFIG_FILE
    if not path.exists():
        return RepoConfig()
    try:  # any content is a table or a ConfigError naming the file and line (speedrift/safetoml.py)
        raw = safetoml.loads(safetoml.decode(path.read_bytes()))
    except safetoml.MalformedToml as bad:
        raise ConfigError(f"{path}{bad.where()}: {bad.problem}", hint="fix the TOML at that line") from None
    except OSError as error:
        raise ConfigError(
            f"cannot read {path}: {error.strerror or error}", hint="make it a readable file, or remove it"
        ) from None
    try:
        return RepoConfig.model_validate(raw)
    except ValidationError as error:
        problems = "\n".join(
            f"  {path}: {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        raise ConfigError(f"{path} is not a valid speedrift config:\n{problems}") from None
