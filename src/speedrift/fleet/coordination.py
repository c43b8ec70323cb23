"""The coordination store in an attempt's life: its inbox before the run, what it posted after,
and the handoff it leaves (or the records it closes) once it concludes.

- **Before the run** (:func:`agent_env`, :func:`compile_for`): the agent gets ``$SPEEDRIFT_SIGNALS``
  (its outbox, inside its worktree), ``$SPEEDRIFT_COORD_SCOPE`` (the task's scope: ``speedrift.scope``
  on the task, default ``repo``) and ``$SPEEDRIFT_SIGNAL_COMMAND``; its inbox is compiled from the
  scope's records (coord/inbox.py: its task, the developer role, ``speedrift.capabilities``, its
  declared scope), saved as ``<run dir>/inbox.md``; the caller records its ids in ``attempt.json``
  (``inbox``) with the attempt's running state.
- **After the run** (:func:`take_in`): the outbox is ingested (fleet/signals.py) — every line
  checked again and stamped with the attempt as author — and kept in the run record
  (``signals.jsonl``; ``signals-2.jsonl``… for later runs after a review); the ids posted and the
  lines refused go to ``attempt.json`` (``coordination``), refused lines also to the task's log.
- **At the conclusion** (:func:`conclude`): an attempt that did not finish (failed, waiting)
  leaves a ``handoff`` to the task's next attempt — progress, the decisions it posted, the files
  it touched, its open questions, why it stopped; 7 days to live — unless its agent posted its own.
  A done attempt closes the task's handoffs and its own open claims.

Nothing here may turn an attempt's result into a crash: a store that cannot be written is said in
``attempt.json`` (``coordination.problems``) and the attempt concludes as it would have.
Everything an agent wrote is clipped and redacted before it is written anywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from speedrift import layout, records, redact
from speedrift.agents import result as agent_result
from speedrift.agents.protocol import EventKind
from speedrift.coord.inbox import Inbox, Reader, compile_inbox
from speedrift.coord.records import REPO_SCOPE, Actor, Author, Draft, Kind, Record, Status, check_scope
from speedrift.coord.store import CoordStore
from speedrift.errors import InvalidValue, NotFound, Refused, SpeedriftError
from speedrift.fleet import attempts, signals
from speedrift.fleet.attempt import Attempt, AttemptResult, worker_actor
from speedrift.fleet.roles.runner import signal_command
from speedrift.gates import changes
from speedrift.gates.globs import matches
from speedrift.gitcmd import GitError
from speedrift.graph import ops
from speedrift.graph.model import DONE, FAILED, WAITING, Task, declared_scope, speedrift_data
from speedrift.graph.store import GraphStore
from speedrift.textclip import clip
from speedrift.times import now_utc

DEVELOPER = "developer"  # the role of an attempt's agent (the fleet's roles are fleet/roles)
INBOX_FILE = "inbox.md"
SCOPE_KEY = "scope"  # task["speedrift"]["scope"]: the coordination scope the task works in
CAPABILITIES_KEY = "capabilities"  # task["speedrift"]["capabilities"]: what requests it answers
HANDOFF_TTL = timedelta(hours=signals.DEFAULT_HANDOFF_TTL_HOURS)
MAX_LOGGED_REFUSALS = 5
MAX_FILES = 100
PROGRESS_CHARS = 2_000
QUESTION_CHARS = 400


def scope_of(task: Task) -> str:
    """The task's coordination scope (``speedrift.scope``, default ``repo``); InvalidValue naming
    the task when it is not a scope name."""
    value = speedrift_data(task).get(SCOPE_KEY)
    if value is None or value == "":
        return REPO_SCOPE
    if not isinstance(value, str):
        raise InvalidValue(
            f"task {task.get('id')}: speedrift.scope must be a string, not {type(value).__name__}",
            hint="set it to a scope name such as repo, or remove it",
        )
    try:
        return check_scope(value)
    except InvalidValue as bad:
        raise InvalidValue(f"task {task.get('id')}: speedrift.scope: {bad.message}", hint=bad.hint) from None


def capabilities_of(task: Task) -> tuple[str, ...]:
    value = speedrift_data(task).get(CAPABILITIES_KEY)
    if not isinstance(value, list):
        return ()
    return tuple(dict.fromkeys(v for v in value if isinstance(v, str) and v))


def store_for(repo: Path, task: Task) -> CoordStore:
    return CoordStore.for_scope(repo, scope_of(task))


def agent_env(attempt: Attempt, task: Task) -> dict[str, str]:
    """What the attempt's agent needs to post records (fleet/signals.py)."""
    return {
        signals.ENV_SIGNALS: str(layout.signals_path(attempt.worktree)),
        signals.ENV_SCOPE: scope_of(task),
        signals.ENV_COMMAND: signal_command(),
    }


def reader_for(task: Task) -> Reader:
    return Reader(
        task=str(task["id"]),
        role=DEVELOPER,
        capabilities=capabilities_of(task),
        files=tuple(dict.fromkeys(declared_scope(task))),
    )


# --- before the run ------------------------------------------------------------------------------
def compile_for(
    repo: Path, attempt: Attempt, task: Task, *, now: datetime | None = None
) -> tuple[Inbox, dict[str, Any]]:
    """The attempt's inbox, redacted and saved as ``<run dir>/inbox.md``, and what
    ``attempt.json`` records of it (``inbox``: scope, ids included and omitted). A store that
    cannot be read gives an empty inbox, and the record says why."""
    scope = scope_of(task)
    try:
        snapshot = CoordStore.for_scope(repo, scope).read()
    except OSError as error:
        return Inbox("", (), ()), {"scope": scope, "problem": f"unreadable: {error.strerror or error}"}
    built = compile_inbox(
        snapshot.records.values(), reader_for(task), scope=scope, now=now or now_utc(), matches=matches
    )
    text = redact.redact_text(built.text)
    (attempt.run_dir / INBOX_FILE).write_text(text, encoding="utf-8")
    recorded: dict[str, Any] = {"scope": scope, **built.as_dict()}
    if snapshot.bad:
        recorded["unreadable_lines"] = [b.lineno for b in snapshot.bad[:50]]
    return Inbox(text, built.included, built.omitted, built.omitted_open), recorded


# --- after the run -------------------------------------------------------------------------------
def take_in(
    repo: Path, graph: GraphStore, attempt: Attempt, task: Task, *, now: datetime | None = None
) -> signals.Ingested:
    """Ingest what the attempt's agent posted (see the module docstring)."""
    author = Author(Actor.AGENT, task=attempt.task_id, attempt=attempt.number, role=DEVELOPER)
    outbox = layout.signals_path(attempt.worktree)
    keep = _keep_path(attempt.run_dir)
    try:
        taken = signals.ingest(outbox, store_for(repo, task), author, now=now, keep=keep)
    except (OSError, SpeedriftError) as error:
        taken = signals.Ingested(refused=[f"{outbox.name}: could not be taken in: {_why(error)}"])
    refused = [redact.recordable(clip(line, 500)) for line in taken.refused]
    before = _coordination(attempt.run_dir)
    _record(
        attempt,
        {
            "posted": [*before.get("posted", []), *(r.id for r in taken.posted)],
            "refused": [*before.get("refused", []), *refused][-100:],
        },
    )
    if refused:
        shown = "; ".join(clip(line, 300) for line in refused[:MAX_LOGGED_REFUSALS])
        more = (
            f" (and {len(refused) - MAX_LOGGED_REFUSALS} more)" if len(refused) > MAX_LOGGED_REFUSALS else ""
        )
        message = (
            f"Attempt {attempt.number}: {len(refused)} coordination record(s) the agent posted were "
            f"refused: {shown}{more}"
        )
        _log(graph, attempt.task_id, message)
    return signals.Ingested(taken.posted, refused)


def _keep_path(run_dir: Path) -> Path:
    """``signals.jsonl`` for the attempt's first outbox, then ``signals-2.jsonl``, ``signals-3.jsonl``…"""
    first = run_dir / layout.SIGNALS_FILE
    if not first.exists():
        return first
    k = 2
    while (run_dir / f"{first.stem}-{k}{first.suffix}").exists():
        k += 1
    return run_dir / f"{first.stem}-{k}{first.suffix}"


# --- at the conclusion ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Handoff:
    """What a handoff from one attempt to the next says (``data`` of the record)."""

    progress: str
    decisions: tuple[str, ...]  # "repo-7: use the v2 endpoint"
    files_touched: tuple[str, ...]
    open_questions: tuple[str, ...]
    reason: str
    status: str

    def detail(self) -> str:
        out = [f"Progress: {self.progress or '(the agent reported none)'}"]
        if self.decisions:
            out += ["Decisions it posted:", *(f"- {d}" for d in self.decisions)]
        if self.files_touched:
            out.append("Files touched (kept in its worktree): " + ", ".join(self.files_touched))
        if self.open_questions:
            out += ["Open questions:", *(f"- {q}" for q in self.open_questions)]
        out.append(f"Why it stopped ({self.status}): {self.reason}")
        return "\n".join(out)


def conclude(
    repo: Path,
    graph: GraphStore,
    attempt: Attempt,
    task: Task,
    result: AttemptResult,
    *,
    now: datetime | None = None,
) -> None:
    """Leave a handoff after an unfinished attempt, or close the task's handoffs and claims after
    a done one (see the module docstring). Never raises for the store's sake."""
    moment = now or now_utc()
    try:
        store = store_for(repo, task)
        if result.status == DONE:
            closed = close_after_done(store, attempt.task_id, attempt.number, moment)
            if closed:
                _record(attempt, {"closed": closed})
        elif result.status in (FAILED, WAITING):
            written = leave_handoff(store, attempt, result, moment)
            if written is not None:
                _record(attempt, {"handoff": written.id})
    except (OSError, SpeedriftError) as error:
        _problem(attempt, f"the attempt's coordination records could not be written: {_why(error)}")


def settle_done(repo: Path, task: Task, result: AttemptResult, *, now: datetime | None = None) -> None:
    """A landing resumed later came to done: close the task's handoffs and claims, as
    :func:`conclude` does after a done attempt. Never raises for the store's sake."""
    try:
        close_after_done(store_for(repo, task), str(task["id"]), result.attempt, now or now_utc())
    except (OSError, SpeedriftError):
        return


def leave_handoff(store: CoordStore, attempt: Attempt, result: AttemptResult, now: datetime) -> Record | None:
    """The handoff from this attempt to the next, unless its agent posted one itself (None then)."""
    mine = [r for r in store.read().records.values() if _of_attempt(r, attempt)]
    if any(r.kind is Kind.HANDOFF for r in mine):
        return None
    said = handoff_of(attempt, result, mine)
    reason = _clean(result.reason or result.status, 300)
    draft = Draft(
        kind=Kind.HANDOFF,
        summary=f"Attempt {attempt.number} of {attempt.task_id} {result.status}: {reason}",
        author=Author(Actor.SPEEDRIFT, task=attempt.task_id, attempt=attempt.number),
        detail=said.detail(),
        targets=(f"task:{attempt.task_id}",),
        artifact_refs=said.files_touched,
        data={
            "from": {"task": attempt.task_id, "attempt": attempt.number},
            "to": {"task": attempt.task_id, "attempt": attempt.number + 1},
            "progress": said.progress,
            "decisions": list(said.decisions),
            "files_touched": list(said.files_touched),
            "open_questions": list(said.open_questions),
            "reason": said.reason,
            "status": said.status,
        },
        expires_at=now + HANDOFF_TTL,
    )
    return store.post(draft, now=now)


def handoff_of(attempt: Attempt, result: AttemptResult, posted: list[Record]) -> Handoff:
    """What the attempt leaves the next one: from its report (or its last words), its records and
    its worktree. Everything clipped and redacted."""
    report, _problem_text = agent_result.read_report(layout.result_path(attempt.run_dir))
    progress = report.summary if report is not None and report.summary else last_words(attempt.run_dir)
    questions = [*(report.concerns if report is not None else ())]
    questions += [f"{r.id}: {r.summary}" for r in posted if r.kind is Kind.CLARIFICATION_REQUEST and r.open]
    decisions = [f"{r.id}: {r.summary}" for r in posted if r.kind is Kind.DECISION]
    return Handoff(
        progress=_clean(progress, PROGRESS_CHARS, flatten=False),
        decisions=tuple(_clean(d, QUESTION_CHARS) for d in decisions[:20]),
        files_touched=files_touched(attempt),
        open_questions=tuple(_clean(q, QUESTION_CHARS) for q in questions[:20]),
        reason=_clean(result.reason or result.status, 1_000),
        status=result.status,
    )


def last_words(run_dir: Path) -> str:
    """The agent's last message in the attempt's event log, or ""."""
    events, _truncated = records.tail_events(run_dir, 64_000)
    said = [e.text for e in events if e.kind is EventKind.MESSAGE and e.text]
    return said[-1] if said else ""


def files_touched(attempt: Attempt) -> tuple[str, ...]:
    """The files the attempt changed in its worktree against its base (committed or not)."""
    if not attempt.worktree.is_dir():
        return ()
    try:
        changed = changes.collect(attempt.worktree, attempt.base_commit, None)
    except (GitError, OSError):
        return ()
    return tuple(redact.recordable(c.display) for c in changed[:MAX_FILES])


def close_after_done(store: CoordStore, task_id: str, number: int, now: datetime) -> list[str]:
    """Close the task's open handoffs and its own open claims (attempt ``number`` landed it);
    returns the ids closed."""
    target = f"task:{task_id}"
    author = Author(Actor.SPEEDRIFT, task=task_id, attempt=number)
    closed: list[str] = []
    for record in store.read().records.values():
        if not record.open:
            continue
        ours = record.author.task == task_id and record.author.actor is not Actor.HUMAN
        handoff = record.kind is Kind.HANDOFF and (target in record.targets or (ours and not record.targets))
        claim = record.kind is Kind.CLAIM and ours
        if not (handoff or claim):
            continue
        try:
            store.update(
                record.id,
                Status.CLOSED,
                author=author,
                # no summary: an update's would replace what the record says (records.py fold)
                data={"closed_because": f"{task_id} is done (attempt {number})"},
                now=now,
                only_if_open=True,
            )
        except (Refused, NotFound):
            continue  # someone closed it first
        closed.append(record.id)
    return closed


# --- helpers -------------------------------------------------------------------------------------
def _of_attempt(record: Record, attempt: Attempt) -> bool:
    author = record.author
    return (
        author.actor is Actor.AGENT
        and author.task == attempt.task_id
        and author.attempt == attempt.number
        and (author.role or DEVELOPER) == DEVELOPER
    )


def _clean(text: str, limit: int, *, flatten: bool = True) -> str:
    """Someone's text as recorded: no credential, control characters escaped, clipped."""
    return clip(redact.recordable(text), limit, flatten=flatten)


def _why(error: BaseException) -> str:
    if isinstance(error, SpeedriftError):
        return error.message
    if isinstance(error, OSError):
        return str(error.strerror or error)
    return str(error)


def _coordination(run_dir: Path) -> dict[str, Any]:
    record = records.read_attempt(run_dir)
    value = record.raw.get("coordination") if record is not None else None
    return dict(value) if isinstance(value, Mapping) else {}


def _record(attempt: Attempt, fields: Mapping[str, Any]) -> None:
    attempts.write_attempt(attempt.run_dir, {"coordination": _coordination(attempt.run_dir) | dict(fields)})


def _problem(attempt: Attempt, text: str) -> None:
    problems = list(_coordination(attempt.run_dir).get("problems", []))
    _record(attempt, {"problems": [*problems, clip(text, 500)][-20:]})


def _log(graph: GraphStore, task_id: str, message: str) -> None:
    actor = worker_actor()
    try:
        graph.mutate(lambda g, at: ops.log_message(g, task_id, message, now=at, actor=actor), actor=actor)
    except (OSError, SpeedriftError):
        return  # the refusals are in attempt.json either way
