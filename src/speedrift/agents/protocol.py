"""The contract between the task pipeline and an agent runtime (claude, codex, opencode, shell).

A runtime is one small module with one argv builder and one event parser. The session
(`agents.session`) spawns what the runtime builds, feeds it the prompt, turns every stdout line
into :class:`AgentEvent`s through the runtime's parser, enforces budgets, and finally asks the
runtime to judge the run into a :class:`RunOutcome`. Exit codes alone never decide an outcome.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


class EventKind(StrEnum):
    STARTED = "started"
    MESSAGE = "message"
    TOOL_USE = "tool_use"
    TOOL_RESULT = "tool_result"
    USAGE = "usage"
    ERROR = "error"
    FINISHED = "finished"


@dataclass(frozen=True)
class AgentEvent:
    kind: EventKind
    text: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    progress: bool = True  # counts as progress for stall detection (reconnect noise does not)
    recorded: bool = True  # False: past the runtime's output cap, counted but not written to the log


@dataclass
class Usage:
    """Token usage normalised across runtimes.

    `input_tokens` excludes cached prompt tokens (Anthropic's convention); cache reads and writes
    are counted apart, so `total_tokens` is what a run newly consumed.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0
    turns: int = 0

    def plus(self, other: Usage) -> Usage:
        """Two runs' usage together (an attempt's revision rounds, a role's corrected round)."""
        return Usage(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(Usage)})

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


CANCELLED = "cancelled"  # the reason of a run its cancel event stopped (`speedrift cancel`, a stop)


class FailureKind(StrEnum):
    AUTH = "auth_failure"  # not retryable
    USAGE_LIMIT = "usage_limit"  # pause the runtime until reset_at
    RATE_LIMIT = "rate_limit"  # throttled (HTTP 429): hold the runtime until reset_at, then retry
    TRANSIENT = "transient"  # network / 5xx / a broken stream / no endpoint: retry with backoff
    MAX_TURNS = "max_turns"
    INCOMPLETE = "incomplete"  # stopped unfinished (e.g. exit 0 after auto-rejected permissions)
    STALL = "stall"  # no progress for the stall window
    BUDGET = "budget"  # wall clock, tokens or cost budget hit; speedrift killed it
    CRASHED = "crashed"  # died without a final event / killed by a signal
    NOT_INSTALLED = "not_installed"
    CONFIG = "config_error"  # the runtime's options in speedrift.toml are invalid; not retryable
    AGENT_ERROR = "agent_error"  # the agent reported an error we do not classify further
    BLOCKED = "blocked"  # the agent reported {status: blocked} in its result file


class ProviderFault(StrEnum):
    """What went wrong on the model provider's side, as one vocabulary for every runtime.

    A runtime recognises each from every signal its CLI gives (event fields, HTTP statuses, error
    types, retry and reconnect notices, the texts it prints, the headers it passes on); the session
    and the fleet act on it: a fault is never the agent's doing, so it never becomes an
    implementation error, a capacity verdict or a re-plan.
    """

    USAGE_LIMIT = "usage_limit"  # the plan's quota: reset_at is hours away
    RATE_LIMIT = "rate_limit"  # throttled (429, retry-after): reset_at is seconds to minutes away
    AUTH = "auth"  # the credentials were refused
    TRANSIENT = "transient"  # 5xx, overloaded, a connection dropped mid-request
    MALFORMED_STREAM = "malformed_stream"  # a 200 whose body was not the protocol
    UNREACHABLE = "unreachable"  # no endpoint: connection refused, DNS, "waiting for network"


# The runtime verdict each fault means.
FAULT_KINDS: dict[ProviderFault, FailureKind] = {
    ProviderFault.USAGE_LIMIT: FailureKind.USAGE_LIMIT,
    ProviderFault.RATE_LIMIT: FailureKind.RATE_LIMIT,
    ProviderFault.AUTH: FailureKind.AUTH,
    ProviderFault.TRANSIENT: FailureKind.TRANSIENT,
    ProviderFault.MALFORMED_STREAM: FailureKind.TRANSIENT,
    ProviderFault.UNREACHABLE: FailureKind.TRANSIENT,
}


@dataclass(frozen=True)
class Retrying:
    """A CLI announced (or showed by its silence after a refusal) that it is retrying against the
    provider: why, and when the provider said it would take requests again (None: not said)."""

    fault: ProviderFault
    reason: str
    reset_at: datetime | None = None
    status: int | None = None


@dataclass
class Budgets:
    wall_clock_s: float = 30 * 60
    max_turns: int | None = None
    max_tokens: int | None = None
    max_cost_usd: float | None = None
    stall_s: float = 5 * 60
    kill_grace_s: float = 10.0
    # While the CLI is only retrying against a failing provider (retry/reconnect notices, or the
    # silence after a 429 it honours), this window replaces the stall window: the run is ended with
    # the fault's own verdict, not as a stall.
    provider_retry_s: float = 90.0
    # Before the agent's first event the stall clock does not run: a CLI may take this long to
    # start (opencode: 5-30 s) without being judged silent.
    startup_s: float = 60.0


@dataclass
class RunRequest:
    """Everything a runtime needs to build its command line."""

    task_id: str
    attempt: int
    prompt: str
    prompt_file: Path  # the full prompt is written here before the run (never put in argv)
    cwd: Path  # the attempt's worktree
    model: str | None = None  # without the runtime prefix ("sonnet", not "claude:sonnet")
    exec_command: str | None = None  # shell runtime: the task's `exec`
    options: dict[str, Any] = field(default_factory=dict)  # runtime config from speedrift.toml
    budgets: Budgets = field(default_factory=Budgets)
    # Where the agent may write its report (exported as SPEEDRIFT_RESULT). None: the session uses
    # `result.default_result_file(cwd)`, inside the worktree, because every CLI's sandbox or
    # permission rules refuse writes outside it.
    result_file: Path | None = None
    # Set by the session when the run is inside speedrift's own sandbox (agents/sandbox.py): a CLI
    # whose own sandbox cannot nest in it runs without that one (codex).
    sandboxed: bool = False
    # Session resume (fleet/resume.py): continue this CLI session (its id, as the runtime's parser
    # read it from an earlier run) instead of starting a new one; ``prompt`` is then only the new
    # context. ``persist_session``: let the CLI keep its session on disk so a later run can resume
    # it (claude without --no-session-persistence, codex without --ephemeral).
    resume_session: str | None = None
    persist_session: bool = False


@dataclass
class ParseState:
    """What a parser accumulates across lines; the runtime reads it back in `judge`."""

    usage: Usage = field(default_factory=Usage)
    final_seen: bool = False
    final_text: str = ""
    error: FailureKind | None = None
    error_text: str = ""
    reset_at: datetime | None = None
    fault: ProviderFault | None = None  # the provider fault behind `error`, when it was one
    # Set by a parser when the CLI is retrying against the provider; the session clears it on the
    # next progress event and ends a run that retries past `Budgets.provider_retry_s`.
    retrying: Retrying | None = None
    # Tool calls the CLI refused (a permission auto-rejected, a write outside the worktree denied):
    # "tool: target — why", for the evidence. The agent did not get to do these.
    refused: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    # Set by a parser that has seen enough to judge a run that would otherwise drag on (claude
    # retrying a 401 ten times, codex retrying one five times): the session stops the agent then.
    abort: bool = False
    # Reference time and zone for reset times the CLIs print as local wall-clock text. The session
    # pins the child's TZ and records it here; `now` None means "the current time".
    now: datetime | None = None
    tz: str = "UTC"
    session_id: str | None = None  # the CLI's session id, once an event named it


@dataclass
class RunOutcome:
    success: bool
    failure: FailureKind | None = None
    reason: str = ""
    usage: Usage = field(default_factory=Usage)
    exit_code: int | None = None
    reset_at: datetime | None = None  # usage or rate limit: when the runtime may be used again
    fault: ProviderFault | None = None  # the provider's side failed (usage/rate limit, 5xx, …)
    refused: tuple[str, ...] = ()  # tool calls the CLI refused (ParseState.refused)
    final_text: str = ""
    duration_s: float = 0.0
    result_file: Path | None = None  # where the agent was told to write its report
    session_id: str | None = (
        None  # the CLI's session (claude session_id, codex thread_id, opencode sessionID)
    )
    resume: dict[str, Any] | None = None  # how the run resumed an earlier session (fleet/resume.py)


class Runtime(Protocol):
    name: str
    executable: str  # what must be on PATH
    install_hint: str  # shown when it is not

    def build_argv(self, request: RunRequest) -> list[str]: ...

    def stdin_payload(self, request: RunRequest) -> bytes | None: ...

    def parse_line(self, line: str, state: ParseState) -> list[AgentEvent]: ...

    def judge(self, state: ParseState, exit_code: int | None) -> RunOutcome: ...


@runtime_checkable
class StderrEvents(Protocol):
    """A runtime whose stderr lines are events too (the shell: its output is all there is to see).

    The session hands it each stderr line as it arrives, as it does stdout lines to `parse_line`;
    other runtimes' stderr is only kept, capped, in `stderr.log`."""

    def parse_stderr_line(self, line: str, state: ParseState) -> list[AgentEvent]: ...


@runtime_checkable
class ChildEnv(Protocol):
    """A runtime whose CLI needs variables of its own for the signals its parser reads (codex's
    ``RUST_LOG``, which puts HTTP statuses and reset headers on its stderr). The session adds them
    to the agent's environment; a variable the user set explicitly wins."""

    def child_env(self) -> dict[str, str]: ...
