"""Session resume: an attempt continues its agent's earlier CLI session instead of starting over.

When: the runtime keeps sessions (claude, codex, opencode; ``[runtimes.<name>] resume``, default
true), the attempt develops on this machine, and either
- it is a review's revision round (``request_changes``): the same attempt's previous round's
  session, in the same worktree — the conversation and the files agree; or
- it is the first round of a retry whose previous attempt of the same task ran on the same
  runtime, recorded a session id, and failed with a class that was not the agent's doing
  (:data:`RESUMABLE`: transient_infra, usage_limit — rate limits are classed with them); not for
  a CLI that resumes only in the session's own directory (:data:`SAME_DIRECTORY_ONLY`: opencode).

The worktree: each attempt still gets a fresh worktree at the target's current tip (the previous
attempt's branch is kept for a human, never built on: it may hold a half-made change the gates
never saw). Only the conversation continues, and the context appended to it says so
(fleet/prompt.py ``resume_prompt``): the files it changed before are not there; what it learnt is.
A revision round keeps its worktree, and is told nothing of the kind.

Where the sessions live: a sandboxed agent's HOME is private and removed after each run, so the
task gets a session store (``.speedrift/sessions/<task>/``) bound over the CLI's session directory
(agents/sandbox.py ``SESSION_DIRS``), kept across the task's attempts and removed when a fresh
session starts (:func:`scrub`) or the task is done. Unsandboxed, the CLI keeps them in the user's
own home. Claude finds a session only in the working directory's project folder, which differs
per attempt: the session file is copied into the new worktree's folder first (of the store, or of
claude's own directory when unsandboxed).

Fallback: a resumed run that did nothing at all — no turn, no token, no provider fault (the CLI
refused the session id: gone, pruned, another machine) — is run again as a fresh session with the
full prompt, and the event log and the evidence say so (``resume.fallback``).

Evidence: ``session_id`` of the run, and ``resume: {from_attempt, session_id, tokens_saved}`` —
``tokens_saved`` is the input the previous session had consumed, which a fresh start would have
sent again to get back to where it was.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from speedrift import layout, records, redact
from speedrift.agents.protocol import EventKind, RunOutcome, RunRequest
from speedrift.agents.sandbox import SESSION_DIRS, Policy
from speedrift.failure_class import FailureClass, parse_failure_class
from speedrift.fleet import prompt
from speedrift.fleet.attempt import Attempt
from speedrift.fleet.remote.executor import Developed, Development, Executor
from speedrift.fleet.remote.spec import ExecutorKind

RESUMABLE = frozenset({FailureClass.TRANSIENT_INFRA, FailureClass.USAGE_LIMIT})
# CLIs that resume a session only in the directory it was started in: opencode 1.18.33 run from
# another worktree of the same repository makes its model call and then hangs, printing nothing
# (tests/agents/test_real_resume.py). They resume only a revision round, in the same worktree.
SAME_DIRECTORY_ONLY = frozenset({"opencode"})
SESSION_KEY = "session"  # in attempt.json: {"id", "runtime", "input_tokens"} of the last run


@dataclass(frozen=True)
class Resume:
    """The session an attempt's run continues."""

    session_id: str
    from_attempt: int
    tokens_saved: int
    why: str  # transient_infra | usage_limit | request_changes
    fresh_worktree: bool  # the conversation's files are not in this worktree

    def evidence(self) -> dict[str, Any]:
        return {
            "from_attempt": self.from_attempt,
            "session_id": self.session_id,
            "tokens_saved": self.tokens_saved,
            "why": self.why,
        }


def store_dir(repo: Path, task_id: str) -> Path:
    """The task's session store (kept across its attempts)."""
    return layout.state_dir(repo) / "sessions" / layout.safe_name(task_id)


def scrub(repo: Path, task_id: str) -> None:
    """Remove the task's session store (a fresh session starts, or the task is done)."""
    shutil.rmtree(store_dir(repo, task_id), ignore_errors=True)


def enabled(request: RunRequest, runtime: str, executor: Executor) -> bool:
    return (
        runtime in SESSION_DIRS
        and request.options.get("resume", True) is not False
        and executor.kind is ExecutorKind.LOCAL
    )


def plan(repo: Path, attempt: Attempt, *, revision: bool) -> Resume | None:
    """The session this run continues, if any (see the module docstring for when)."""
    if revision:
        return _from_record(attempt.run_dir, attempt.runtime, attempt.number, "request_changes", False)
    if attempt.runtime in SAME_DIRECTORY_ONLY:
        return None  # a retry's worktree is another directory
    for folder in reversed(layout.attempt_dirs(repo, attempt.task_id)):
        number = int(folder.name)
        if number >= attempt.number:
            continue
        record = records.read_attempt(folder)
        cls = parse_failure_class(record.failure if record else None)
        if cls not in RESUMABLE:
            return None
        return _from_record(folder, attempt.runtime, number, str(cls), True)
    return None


def _from_record(folder: Path, runtime: str, number: int, why: str, fresh: bool) -> Resume | None:
    record = records.read_attempt(folder)
    session = record.raw.get(SESSION_KEY) if record else None
    if not isinstance(session, dict) or session.get("runtime") != runtime:
        return None
    session_id = session.get("id")
    if not isinstance(session_id, str) or not session_id:
        return None
    tokens = session.get("input_tokens")
    return Resume(session_id, number, tokens if isinstance(tokens, int) else 0, why, fresh)


def prepare(
    repo: Path, attempt: Attempt, request: RunRequest, executor: Executor, *, revision: str | None
) -> tuple[RunRequest, Resume | None]:
    """The run's request: persisting its session when resume is on, and continuing ``plan``'s
    session (the prompt then only the new context, redacted) when there is one."""
    if not enabled(request, attempt.runtime, executor):
        return request, None
    found = plan(repo, attempt, revision=revision is not None)
    if found is None:
        if revision is None:
            scrub(repo, attempt.task_id)  # a fresh session: the task's older ones are not needed
        return dataclasses.replace(request, persist_session=True), None
    said = prompt.resume_prompt(
        why=found.why, from_attempt=found.from_attempt, fresh_worktree=found.fresh_worktree, revision=revision
    )
    text = redact.redact_text(said)
    layout.prompt_path(attempt.run_dir).with_name("prompt-resume.md").write_text(text)
    resumed = dataclasses.replace(request, prompt=text, resume_session=found.session_id, persist_session=True)
    return resumed, found


def bind_store(
    repo: Path, attempt: Attempt, policy: Policy | None, request: RunRequest, env: Mapping[str, str]
) -> Policy | None:
    """The sandbox with the task's session store bound in (a persisted session must outlive the
    private home). A resumed claude session is copied into the new worktree's project folder: of
    the store when sandboxed, else of claude's own directory in the agent's environment."""
    if not request.persist_session:
        return policy
    store = store_dir(repo, attempt.task_id)
    if request.resume_session and attempt.runtime == "claude":
        projects = store / "claude" if policy is not None else _claude_projects(env)
        if projects is not None:
            carry_claude_session(projects, request.resume_session, attempt.worktree)
    return dataclasses.replace(policy, sessions=store) if policy is not None else None


def _claude_projects(env: Mapping[str, str]) -> Path | None:
    """Where an unsandboxed claude keeps its sessions: ``$CLAUDE_CONFIG_DIR`` or ``~/.claude``."""
    if env.get("CLAUDE_CONFIG_DIR"):
        return Path(env["CLAUDE_CONFIG_DIR"]) / "projects"
    return Path(env["HOME"]) / ".claude" / "projects" if env.get("HOME") else None


def carry_claude_session(projects: Path, session_id: str, cwd: Path) -> None:
    """Claude looks for ``<session>.jsonl`` only in the folder named after the working directory
    (its path with every character but letters and digits as ``-``; older versions replaced only
    ``/``); an earlier attempt's worktree had another path, so the file is copied to both names."""
    found = next(projects.glob(f"*/{session_id}.jsonl"), None) if projects.is_dir() else None
    if found is None:
        return  # nothing kept: the CLI refuses the resume and the run falls back to a fresh session
    where = str(cwd.resolve())
    for name in dict.fromkeys((re.sub(r"[^a-zA-Z0-9]", "-", where), where.replace("/", "-"))):
        target = projects / name / f"{session_id}.jsonl"
        if not target.exists():
            with contextlib.suppress(OSError):
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(found, target)


def resume_refused(outcome: RunOutcome) -> bool:
    """A resumed run the CLI would not start: it did nothing at all, and not for the provider."""
    usage = outcome.usage
    return (
        not outcome.success
        and outcome.fault is None
        and usage.turns == 0
        and usage.total_tokens == 0
        and usage.cache_read_tokens == 0
    )


def develop(executor: Executor, work: Development, found: Resume | None, full_prompt: str) -> Developed:
    """Run the development; a resume the CLI refused is run again as a fresh session (said in the
    event log and the evidence). The run's session is recorded in attempt.json for a later one."""
    developed = executor.develop(work)
    run_dir = work.attempt.run_dir
    if found is not None and resume_refused(developed.outcome):
        said = (
            f"could not resume session {found.session_id} of attempt {found.from_attempt} "
            f"({developed.outcome.reason or 'the CLI refused it'}); starting a fresh session"
        )
        with records.open_event_log(run_dir) as log:
            records.append_event(
                log,
                records.Event(EventKind.ERROR.value, said, data={"source": "speedrift", "resume": "failed"}),
            )
        fresh = dataclasses.replace(work.request, prompt=full_prompt, resume_session=None)
        developed = executor.develop(dataclasses.replace(work, request=fresh))
        info: dict[str, Any] = found.evidence() | {"tokens_saved": 0, "fallback": said}
    else:
        info = found.evidence() if found is not None else {}
    outcome = developed.outcome
    if outcome.session_id and work.request.persist_session:
        session = {"id": outcome.session_id, "runtime": work.attempt.runtime}
        records.update_attempt(run_dir, {SESSION_KEY: session | {"input_tokens": _input_tokens(outcome)}})
    developed.outcome = dataclasses.replace(outcome, resume=info or None)
    return developed


def _input_tokens(outcome: RunOutcome) -> int:
    """What the session's context had taken in: fresh input and cache reads and writes."""
    usage = outcome.usage
    return usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens
