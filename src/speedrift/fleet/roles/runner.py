"""Running one role through the worker plane and getting its typed output, or a typed failure.

:func:`run_role` renders the role's prompt (fleet/roles/model.py) with the inputs it is given and
an output section (its schema and example, and how to report), and runs it like any attempt: the
runtime and model from ``[roles.<role>]`` (default: the repo's runtime, the model of the role's
tier), budgets, the scrubbed environment, the bubblewrap sandbox, events streamed to its record.

It runs in a throwaway checkout of the commit it judges (``git worktree add --detach``), read-only
in the sandbox but for its ``.speedrift/`` where it reports; unsandboxed, any file it changed is
named in the result (``wrote``) and thrown away with the checkout, which holds no other work.

The output comes only from the structured channel: ``$SPEEDRIFT_RESULT`` (written by the agent,
or by ``speedrift signal result``). Never from the agent's log. It is checked against the role's
schema: an invalid (or missing) output gets exactly one more round, whose prompt shows every
validation error; a second invalid output is a typed failure (``invalid_output``). A run that
itself failed (an auth failure, a usage limit, a stall) is not an invalid output: the result says
the run failed and why, and the caller treats it as that.

Records: ``<record_dir>/round-<k>/`` holds each round's prompt, events, stderr and output;
``<record_dir>/role.json`` the result (output, problems, rounds, usage, posted coordination).
"""

from __future__ import annotations

import contextlib
import dataclasses
import shlex
import shutil
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from speedrift import fsutil, layout, redact, safejson
from speedrift.agents import choose as registry
from speedrift.agents import env as agent_env
from speedrift.agents import sandbox, session
from speedrift.agents.protocol import Budgets, FailureKind, RunOutcome, RunRequest, Usage
from speedrift.coord.records import REPO_SCOPE, Actor, Author
from speedrift.coord.store import CoordStore
from speedrift.errors import Refused
from speedrift.failure_class import FailureClass
from speedrift.fleet import attemptfeed, pauses, signals
from speedrift.fleet.config import RepoConfig
from speedrift.fleet.roles.model import Role, load_role
from speedrift.fleet.roles.names import RoleName, Tier
from speedrift.procs import ProcessIdentity, identity_alive, identity_of
from speedrift.repo import git, worktrees
from speedrift.textclip import clip
from speedrift.times import now_utc

MAX_ROUNDS = 2  # the first output, and one corrected one
MAX_OUTPUT_BYTES = 512 * 1024
ROLE_RECORD = "role.json"
OUTPUT_FILE = "output.json"
OWNER_SUFFIX = ".owner.json"  # beside a role checkout: the process running the role


@dataclass(frozen=True)
class RoleCall:
    """One role run: what it is given and where it is recorded."""

    role: RoleName
    inputs: Mapping[str, str]
    record_dir: Path  # e.g. <attempt run dir>/roles/reviewer-1
    commit: str  # the checkout it runs in (the commit it judges)
    task_id: str = ""  # the task it is about (environment, record author)
    attempt: int = 0
    scope: str = REPO_SCOPE  # where what it posts with `speedrift signal` goes


@dataclass
class RoleResult:
    role: RoleName
    output: dict[str, Any] | None  # the valid output; None: see problems / outcome
    problems: list[str]  # the last round's validation errors
    rounds: int
    outcome: RunOutcome  # the last round's run
    record_dir: Path
    runtime: str
    model: str | None
    usage: Usage = field(default_factory=Usage)
    wrote: tuple[str, ...] = ()  # files it changed in its read-only checkout (unsandboxed runs)
    sandboxed: bool = False
    posted: list[str] = field(default_factory=list)  # coordination records it posted
    refused: list[str] = field(default_factory=list)  # signals that could not be taken in

    @property
    def valid(self) -> bool:
        return self.output is not None

    @property
    def run_failed(self) -> bool:
        """The run itself failed (not its output): the caller handles it as that failure."""
        return self.output is None and not self.outcome.success and self.outcome.failure is not None

    @property
    def failure_class(self) -> FailureClass | None:
        """``invalid_output`` when the runs succeeded but no round gave a valid output."""
        return None if self.valid or self.run_failed else FailureClass.INVALID_OUTPUT

    def reason(self) -> str:
        if self.valid:
            return ""
        if self.run_failed:
            return f"the {self.role} run failed: {self.outcome.reason}"
        shown = "; ".join(self.problems[:5])
        return f"the {self.role} gave no valid output in {self.rounds} round(s): {clip(shown, 800)}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "role": self.role.value,
            "valid": self.valid,
            "output": self.output,
            "problems": self.problems,
            "rounds": self.rounds,
            "runtime": self.runtime,
            "model": self.model,
            "run_failed": self.run_failed,
            "failure": self.outcome.failure.value if self.outcome.failure else None,
            "failure_class": self.failure_class.value if self.failure_class else None,
            "reason": self.reason(),
            "usage": dataclasses.asdict(self.usage),
            "wrote": list(self.wrote),
            "sandboxed": self.sandboxed,
            "posted": self.posted,
            "refused_signals": self.refused,
            "record_dir": str(self.record_dir),
        }


def role_model(config: RepoConfig, role: Role, runtime: str) -> str | None:
    """The model a role runs on: ``[roles.<role>] model``, else its tier's — the strongest of the
    runtime's ``[recovery] model_tiers`` for a planning role, the runtime's configured model (or
    the CLI's default) for a support role."""
    chosen = config.role(role.name.value).model
    if chosen:
        return chosen
    if role.tier is Tier.PLANNING:
        tiers = config.recovery.model_tiers.get(runtime)  # type: ignore[call-overload]
        if tiers:
            return str(tiers[-1])
    return config.runtime_options(runtime).model


def run_role(
    repo: Path,
    config: RepoConfig,
    call: RoleCall,
    *,
    cancel: threading.Event | None = None,
    decision: sandbox.Decision | None = None,
) -> RoleResult:
    """Run ``call`` (see the module docstring). Raises SpeedriftError only for what is not the
    role's doing: its template cannot render, its checkout cannot be made, ``[sandbox] mode =
    "required"`` without a sandbox. ``decision``: the sandbox already decided (a pipeline's)."""
    options = config.role(call.role.value)
    role = load_role(repo, call.role, options.template)
    runtime = options.runtime or config.default_runtime
    registry.runtime_for(runtime)  # an unknown runtime is a configuration error, raised here
    model = role_model(config, role, runtime)
    prompt = role.render(call.inputs) + _output_section(role)
    contained = decision or sandbox.decide(config.sandbox.mode, network=config.sandbox.network)
    sandbox.require(config.sandbox.mode, contained)
    call.record_dir.mkdir(parents=True, exist_ok=True)
    paused = _paused(role, runtime, model, call.record_dir, contained)
    if paused is not None:
        return paused
    with owned_checkout(repo, call.record_dir, call.commit) as checkout:
        return _rounds(repo, config, call, role, runtime, model, prompt, checkout, contained, cancel)


@contextlib.contextmanager
def owned_checkout(repo: Path, record_dir: Path, commit: str) -> Iterator[Path]:
    """A throwaway detached checkout of ``commit`` under ``.speedrift/role-checkouts/``, named
    after ``record_dir``, recording this process as its owner before git makes it, and removed
    when the block ends — or, if this process is killed, by the next :func:`remove_abandoned_checkouts`.
    For a role's run, and for anything else speedrift runs on a committed tree (a wave's validation)."""
    remove_abandoned_checkouts(repo)
    checkout = _checkout_path(repo, record_dir)
    owner = _owner_path(checkout)
    owner.parent.mkdir(parents=True, exist_ok=True)
    fsutil.write_atomic(owner, orjson.dumps(identity_of().to_dict()))  # before git makes the checkout
    try:
        worktrees.add_checkout(repo, checkout, commit)
        yield checkout
    finally:
        _remove_checkout(repo, checkout)


def remove_abandoned_checkouts(repo: Path) -> list[Path]:
    """Remove the role checkouts whose run is gone (a process killed mid-role leaves its checkout
    behind): each records its owner (``<checkout>.owner.json``, pid and start time); one whose
    owner no longer runs holds no work — a detached checkout of a committed tree — and goes.
    Returns the checkouts removed."""
    base = layout.role_checkouts_dir(repo)
    if not base.is_dir():
        return []
    removed = []
    for owner in sorted(base.glob(f"*{OWNER_SUFFIX}")):
        identity = ProcessIdentity.from_dict(layout.read_record(owner))
        if identity is not None and identity_alive(identity):
            continue
        checkout = base / owner.name.removesuffix(OWNER_SUFFIX)
        _remove_checkout(repo, checkout)
        removed.append(checkout)
    return removed


def _remove_checkout(repo: Path, checkout: Path) -> None:
    if checkout.exists() and worktrees.remove_worktree(repo, str(checkout), force=True) != 0:
        shutil.rmtree(checkout, ignore_errors=True)  # git lost track of it: only files remain
    _owner_path(checkout).unlink(missing_ok=True)


def _owner_path(checkout: Path) -> Path:
    return checkout.with_name(checkout.name + OWNER_SUFFIX)


def _rounds(
    repo: Path,
    config: RepoConfig,
    call: RoleCall,
    role: Role,
    runtime: str,
    model: str | None,
    prompt: str,
    checkout: Path,
    contained: sandbox.Decision,
    cancel: threading.Event | None,
) -> RoleResult:
    started = time.monotonic()
    usage = Usage()
    problems: list[str] = []
    output: dict[str, Any] | None = None
    outcome = RunOutcome(success=False, reason="not run")
    wrote: set[str] = set()
    posted: list[str] = []
    refused: list[str] = []
    author = Author(
        Actor.AGENT, task=call.task_id or None, attempt=call.attempt or None, role=role.name.value
    )
    store = CoordStore.for_scope(repo, call.scope)
    rounds = 0
    for rounds in range(1, MAX_ROUNDS + 1):
        round_dir = call.record_dir / f"round-{rounds}"
        text = prompt if rounds == 1 else prompt + _correction(problems)
        text = redact.redact_text(text)
        outcome = _run_once(config, call, role, runtime, model, text, checkout, round_dir, contained, cancel)
        usage = usage.plus(outcome.usage)
        taken = signals.ingest(
            layout.signals_path(checkout), store, author, keep=round_dir / layout.SIGNALS_FILE
        )
        posted += [r.id for r in taken.posted]
        refused += taken.refused
        if not contained.used:
            wrote |= _changed(checkout)
        if not outcome.success and outcome.failure is not None:
            problems = []
            break  # the run failed: not the output's fault, and not retried here
        output, problems = _read_output(role, layout.agent_result_path(checkout), round_dir)
        if output is not None:
            break
    result = RoleResult(
        role=role.name,
        output=output,
        problems=problems,
        rounds=rounds,
        outcome=outcome,
        record_dir=call.record_dir,
        runtime=runtime,
        model=model,
        usage=usage,
        wrote=tuple(sorted(wrote)),
        sandboxed=contained.used,
        posted=posted,
        refused=refused,
    )
    _write_record(result)
    failure = result.failure_class or (
        outcome.failure.value if result.run_failed and outcome.failure else None
    )
    attemptfeed.feed_role(
        repo,
        config,
        role=role.name.value,
        task_id=call.task_id or None,
        attempt=call.attempt or None,
        runtime=runtime,
        model=model,
        outcome=outcome,
        usage=usage,
        failure=str(failure) if failure is not None else None,
        duration_s=time.monotonic() - started,
    )
    return result


def _run_once(
    config: RepoConfig,
    call: RoleCall,
    role: Role,
    runtime: str,
    model: str | None,
    text: str,
    checkout: Path,
    round_dir: Path,
    contained: sandbox.Decision,
    cancel: threading.Event | None,
) -> RunOutcome:
    round_dir.mkdir(parents=True, exist_ok=True)
    prompt_file = layout.prompt_path(round_dir)
    prompt_file.write_text(text, encoding="utf-8")
    options = config.role(role.name.value)
    budgets = config.budgets
    request = RunRequest(
        task_id=call.task_id or role.name.value,
        attempt=call.attempt,
        prompt=text,
        prompt_file=prompt_file,
        cwd=checkout,
        model=model,
        options=config.runtime_options(runtime).model_dump(),
        budgets=Budgets(
            wall_clock_s=options.wall_clock_minutes * 60,
            max_turns=options.max_turns or budgets.max_turns,
            max_tokens=budgets.max_tokens,
            max_cost_usd=budgets.max_cost_usd,
            stall_s=budgets.stall_seconds,
            kill_grace_s=budgets.kill_grace_seconds,
            provider_retry_s=budgets.provider_retry_seconds,
            startup_s=budgets.startup_seconds,
        ),
    )
    environment = agent_env.agent_env(
        {
            "SPEEDRIFT_TASK_ID": call.task_id,
            "SPEEDRIFT_ATTEMPT": str(call.attempt),
            signals.ENV_ROLE: role.name.value,
            signals.ENV_SIGNALS: str(layout.signals_path(checkout)),
            signals.ENV_SCOPE: call.scope,
            signals.ENV_COMMAND: signal_command(),
        },
        allow=config.env.allow,
        passthrough_secrets=config.env.secrets,
    )
    policy = None
    if contained.used and contained.bwrap is not None:
        policy = sandbox.Policy(
            contained.bwrap,
            worktree=checkout,
            run_dir=round_dir,
            git_common_dir=git.common_dir(checkout),
            network=contained.network,
            runtime=runtime,
            hide=config.sandbox.hidden(),
            read_only=True,
        )
    return session.run_session(
        registry.runtime_for(runtime),
        request,
        env=environment,
        run_dir=round_dir,
        cancel=cancel or threading.Event(),
        sandboxed=policy,
    )


def _paused(
    role: Role, runtime: str, model: str | None, record_dir: Path, contained: sandbox.Decision
) -> RoleResult | None:
    """A role is not started on a runtime paused machine-wide (fleet/pauses.py): the result is a
    failed run saying so, with the pause's end as its reset (a rate limit's retry waits for it)."""
    now = now_utc()
    pause = pauses.blocking_pause(runtime, model, now)
    if pause is None:
        return None
    kind = FailureKind.AUTH if pause.needs_human else FailureKind.RATE_LIMIT
    outcome = RunOutcome(
        success=False, failure=kind, reason=f"not started: {pause.sentence(now)}", reset_at=pause.until
    )
    result = RoleResult(role.name, None, [], 0, outcome, record_dir, runtime, model, sandboxed=contained.used)
    _write_record(result)
    return result


def _write_record(result: RoleResult) -> None:
    fsutil.write_atomic(
        result.record_dir / ROLE_RECORD, orjson.dumps(result.as_dict(), option=orjson.OPT_INDENT_2)
    )


def signal_command() -> str:
    """The command an agent runs to report (``<this> KIND --json '{…}'``): this very speedrift."""
    return f"{shlex.quote(sys.executable)} -m speedrift signal"


def _output_section(role: Role) -> str:
    schema = orjson.dumps(dict(role.schema), option=orjson.OPT_INDENT_2).decode()
    example = orjson.dumps(role.examples[0], option=orjson.OPT_INDENT_2).decode() if role.examples else "{}"
    return (
        "\n## Your output\n"
        "Report one JSON object matching this JSON Schema. Write it to the file named by the "
        "environment variable SPEEDRIFT_RESULT, or run the command in SPEEDRIFT_SIGNAL_COMMAND as "
        "`$SPEEDRIFT_SIGNAL_COMMAND result --json '<the object>'` (it checks the object and shows "
        "every problem). Only that object counts: nothing you print is read as your answer. You may "
        "post coordination records the same way (`$SPEEDRIFT_SIGNAL_COMMAND clarification_request "
        '--json \'{"summary": "…"}\'`). Do not edit the repository\'s files.\n\n'
        f"```json\n{schema}\n```\n\nAn example of a valid output:\n\n```json\n{example}\n```\n"
    )


def _correction(problems: list[str]) -> str:
    listed = "\n".join(f"- {p}" for p in problems) or "- (no output was written)"
    return (
        "\n## Your previous output was not valid\n"
        "It was not accepted, for these reasons. Write a corrected output; this is the last chance "
        f"before the run fails as invalid_output.\n{listed}\n"
    )


def _read_output(role: Role, path: Path, round_dir: Path) -> tuple[dict[str, Any] | None, list[str]]:
    """The output at ``path`` if it is valid (copied, redacted, into the round's record), else
    None and every problem."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_OUTPUT_BYTES + 1)
    except FileNotFoundError:
        return None, ["no output: nothing was written to $SPEEDRIFT_RESULT"]
    except OSError as error:
        return None, [f"the output cannot be read: {error.strerror or error}"]
    copy = round_dir / OUTPUT_FILE
    copy.write_bytes(raw[:MAX_OUTPUT_BYTES])
    redact.redact_file(copy)
    if len(raw) > MAX_OUTPUT_BYTES:
        return None, [f"the output is larger than {MAX_OUTPUT_BYTES} bytes"]
    try:
        value = safejson.loads(copy.read_bytes())
    except safejson.MalformedJson as bad:
        return None, [f"the output is not valid JSON: {bad.problem}"]
    problems = role.problems(value)
    if problems or not isinstance(value, dict):
        return None, problems or ["the output is not a JSON object"]
    return value, []


def _checkout_path(repo: Path, record_dir: Path) -> Path:
    """A fresh directory name under ``.speedrift/role-checkouts/`` for this run."""
    base = layout.role_checkouts_dir(repo)
    stem = layout.safe_name("-".join(record_dir.parts[-3:]))[:80]
    path = base / stem
    n = 1
    while path.exists() or _owner_path(path).exists():
        n += 1
        path = base / f"{stem}-{n}"
    if n > 100:
        raise Refused(f"too many leftover role checkouts in {base}", hint="remove the directories there")
    return path


def _changed(checkout: Path) -> set[str]:
    return set(git.status_porcelain(checkout))
