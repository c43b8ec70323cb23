"""The Reviewer between the quality gates and the merge queue: one attempt's review, round by round.

Job: once the gates passed on an attempt's tip (fleet/merging.py ``_land``), :func:`judge` runs the
Reviewer role (fleet/roles, ``reviewer.*``) in a read-only checkout of that tip, recorded under
``<attempt run dir>/roles/reviewer-<round>``. Its inputs are built here: the task (id, title,
description, acceptance criteria, deliverables), its declared scope, its spec excerpt, the gates'
summary, the attempt's own diff (clipped) and the previous round's findings. What the verdict does
depends on the effective mode — the task's own ``speedrift.review`` over ``[review] mode``:

- ``off``: nothing runs.
- ``blocking``: ``approve`` lets the landing go on; ``request_changes`` raises
  :class:`RevisionRequested` (the pipeline's development loop gives the findings to the developer
  in the same worktree, then commits, gates and reviews again) while revisions remain (``[review]
  max_rounds``; none for a shell task's command or a resumed landing: neither has a developer run
  to revise in), else, like ``reject``, fails the attempt as ``review_rejected``; an output invalid
  twice fails it as ``invalid_output`` (both by a gate-like verdict, :class:`ReviewBlocked`); a
  reviewer run that failed (auth, usage limit, stall …) fails it as that failure
  (:class:`ReviewRunFailed`), so it is retried or paused like any run — never landed unreviewed.
- ``advisory``: every verdict, invalid output or failed run is recorded and nothing blocks.

Every round goes into the attempt's record (``attempt.json`` ``review``, so a resumed landing knows
an approval and does not review again), its evidence (``review``) and one line of the task's log.

Task fields (inside the task's ``speedrift`` object, wg never sees them): ``review`` (a mode),
``spec`` (the spec excerpt: text, a list of texts, or ``{"source": …, "text": …}``) and
``acceptance_criteria`` (texts, or ``{"criterion": …, "verify_by": …}``).

Invariant: in blocking mode nothing reaches the merge queue that the Reviewer did not approve, and
a blocked attempt's work stays in its worktree. Nothing the Reviewer wrote is trusted: its output
is schema-checked by the role runner and clipped and escaped here before it is recorded.
"""

from __future__ import annotations

import dataclasses
import shutil
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from speedrift import layout, records
from speedrift.agents.protocol import CANCELLED, EventKind, FailureKind, RunOutcome
from speedrift.errors import SpeedriftError
from speedrift.failure_class import FailureClass
from speedrift.fleet import attempts
from speedrift.fleet.attempt import Attempt, worker_actor
from speedrift.fleet.config import RepoConfig
from speedrift.fleet.review_record import (
    RECORD_KEY,
    Conclusion,
    Review,
    ReviewMode,
    Round,
)
from speedrift.fleet.roles.inputs import gates_text, scope_text, spec_text, task_text
from speedrift.fleet.roles.names import RoleName
from speedrift.fleet.roles.runner import RoleCall, RoleResult, run_role
from speedrift.gates.verdict import GateBlocked, GateVerdict
from speedrift.graph import ops
from speedrift.graph.model import Task
from speedrift.graph.store import GraphStore
from speedrift.repo import git
from speedrift.textclip import clip

ROLES_DIR = "roles"  # <run dir>/roles/reviewer-<round>
GATE_NAME = "review"  # the gate-like verdict a blocking review fails with
MAX_DIFF_LINES = 2_000
MAX_DIFF_CHARS = 100_000
MAX_STAT_LINES = 200
MAX_SHOWN_FINDINGS = 50


class RevisionRequested(SpeedriftError):  # control flow, not an error: the developer revises
    """Blocking mode, ``request_changes``, revisions left: the developer revises in the same
    worktree with ``text`` (the findings), then the attempt is committed, gated and reviewed again."""

    def __init__(self, review: Review, text: str) -> None:
        super().__init__(f"the Reviewer requested changes (round {len(review.rounds)})")
        self.review = review
        self.text = text
        self.number = len(review.rounds)  # the revision's number: the round that asked for it


class ReviewBlocked(GateBlocked):
    """Blocking mode: the attempt fails by a gate-like verdict (``review_rejected`` or
    ``invalid_output``) that the failure classifier reads like any gate's."""

    def __init__(self, verdict: GateVerdict, reason: str) -> None:
        super().__init__(verdict)
        self.message = reason
        self.args = (reason,)


class ReviewRunFailed(SpeedriftError):  # carries a run's failure, recorded as that
    """Blocking mode: the reviewer's own run failed; the attempt fails as that run's failure."""

    def __init__(self, review: Review, result: RoleResult) -> None:
        super().__init__(result.reason())
        self.review = review
        self.result = result

    def failing(self, attempt: Attempt, outcome: RunOutcome) -> tuple[Attempt, RunOutcome]:
        """The attempt and outcome to record: the reviewer's runtime, model and failure (what a
        usage limit pauses, when its reset comes), the reason saying it was the review run."""
        ran = self.result.outcome
        reason = f"the review run failed, so nothing lands unreviewed: {ran.reason}"
        if ran.failure is FailureKind.CRASHED and ran.reason == CANCELLED:
            reason = CANCELLED  # `speedrift cancel`, or a service stopping: said as every run says it
        failed = dataclasses.replace(
            outcome, success=False, failure=ran.failure, reason=reason, reset_at=ran.reset_at, fault=ran.fault
        )
        return dataclasses.replace(attempt, runtime=self.result.runtime, model=self.result.model), failed


# --- the step in the landing ------------------------------------------------------------------------
class Host(Protocol):
    """What :func:`judge` uses of the pipeline it runs in."""

    repo: Path
    config: RepoConfig
    store: GraphStore


def judge(
    host: Host,
    attempt: Attempt,
    task: Task,
    tip: str,
    verdicts: list[GateVerdict],
    review: Review,
    step: Callable[[str], None],
    cancel: threading.Event | None = None,
) -> None:
    """Review ``tip`` (gated) once more, unless the mode is off or the review already cleared it.
    Returns when the landing may go on; raises :class:`RevisionRequested`, :class:`ReviewRunFailed`
    or :class:`ReviewBlocked` — its verdict appended to ``verdicts`` first, for the classifier.
    ``cancel``: the attempt's (a cancelled review never lets the attempt land, advisory or not)."""
    if review.mode is ReviewMode.OFF or review.cleared:
        return
    repo, config, store = host.repo, host.config, host.store
    if attempt.runtime == "shell":
        review.cannot_revise = "a shell task's command reads no findings"
    number = len(review.rounds) + 1
    step(f"review round {number} ({review.mode})")
    earlier = review.rounds[-1] if review.rounds else None
    call = RoleCall(
        RoleName.REVIEWER,
        reviewer_inputs(repo, attempt, task, tip, verdicts, earlier),
        attempt.run_dir / ROLES_DIR / f"reviewer-{number}",
        tip,
        task_id=attempt.task_id,
        attempt=attempt.number,
    )
    cancel = cancel or threading.Event()
    watcher = attempts.CancelWatcher(attempt.run_dir, cancel)  # `speedrift cancel` stops it too
    watcher.start()
    try:
        result = run_role(repo, config, call, cancel=cancel, decision=attempt.sandbox)
    finally:
        watcher.stop()
    this = Round.of(number, tip, result)
    review.rounds.append(this)
    blocking = review.mode is ReviewMode.BLOCKING
    revise = (
        blocking
        and this.result is Conclusion.REQUEST_CHANGES
        and not review.cannot_revise
        and number - 1 < review.max_rounds
    )
    cancelled = result.run_failed and result.outcome.reason == CANCELLED
    if not revise:
        review.final = this.result
        review.cleared = (not blocking and not cancelled) or this.result is Conclusion.APPROVE
    attempts.write_attempt(attempt.run_dir, {RECORD_KEY: review.as_dict()})
    _log(store, attempt.task_id, _sentence(review, this, revise, attempt, repo))
    if review.cleared:
        return
    if revise:
        raise RevisionRequested(review, revision_text(review, this))
    if this.result is Conclusion.RUN_FAILED:
        raise ReviewRunFailed(review, result)
    cls, reason = _blocked(review, this)
    verdicts.append(failing_verdict(cls, reason, this))
    raise ReviewBlocked(verdicts[-1], reason)


def _blocked(review: Review, this: Round) -> tuple[FailureClass, str]:
    if this.result is Conclusion.INVALID_OUTPUT:
        return FailureClass.INVALID_OUTPUT, this.problem
    said = f": {clip(this.summary, 500)}" if this.summary else ""
    if this.result is Conclusion.REJECT:
        return FailureClass.REVIEW_REJECTED, f"the Reviewer rejected the change{said}"
    if review.cannot_revise:
        return FailureClass.REVIEW_REJECTED, f"the Reviewer requested changes ({review.cannot_revise}){said}"
    return FailureClass.REVIEW_REJECTED, f"changes still requested after {this.number} review rounds{said}"


def failing_verdict(cls: FailureClass, reason: str, this: Round) -> GateVerdict:
    """The gate-like verdict a blocking review fails with: one ``review`` result naming its class
    and findings (fleet/classify.py's ``review-rejected`` and ``invalid-output`` rules read it)."""
    findings = [
        {
            "file": f.get("file"),
            "line": f.get("line"),
            "kind": f.get("severity", "finding"),
            "severity": f.get("severity"),
            "message": f.get("message"),
        }
        for f in this.findings[:MAX_SHOWN_FINDINGS]
    ]
    result = {
        "gate": GATE_NAME,
        "status": "fail",
        "failure_class": cls.value,
        "reason": reason,
        "findings": findings,
        "record_dir": this.record_dir,
    }
    evidence = {"tip": this.commit, "results": [result], "blocking": [GATE_NAME]}
    return GateVerdict(False, f"review: {reason}", evidence, failure_class=cls)


def _sentence(review: Review, this: Round, revise: bool, attempt: Attempt, repo: Path) -> str:
    """The task log's line for one round."""
    head = f"Review round {this.number} ({review.mode}): "
    if this.result is Conclusion.RUN_FAILED:
        head += f"the reviewer's run failed ({this.failure}): {clip(this.problem, 300)}"
    elif this.result is Conclusion.INVALID_OUTPUT:
        head += f"no valid output (invalid_output): {clip(this.problem, 300)}"
    else:
        counted = f" ({len(this.findings)} finding{'s' if len(this.findings) != 1 else ''})"
        head += f"{this.result}{counted if this.findings else ''} — {clip(this.summary, 300)}"
    if review.mode is ReviewMode.ADVISORY and review.cleared:
        tail = "advisory: recorded, the landing goes on"
    elif this.result is Conclusion.APPROVE:
        tail = "the landing goes on"
    elif revise:
        tail = (
            f"the developer revises in its worktree (revision {this.number} of at most {review.max_rounds})"
        )
    elif this.result is Conclusion.RUN_FAILED:
        tail = "the attempt fails as that run's failure; nothing lands unreviewed"
    else:
        cls = "invalid_output" if this.result is Conclusion.INVALID_OUTPUT else "review_rejected"
        tail = f"the attempt fails as {cls}; its work stays in {attempt.manifest.path}"
    return f"{head}; {tail}. Record: {_shown_path(this.record_dir, repo)}"


def revision_text(review: Review, this: Round) -> str:
    """What the developer is told to address in its revision."""
    lines = [
        f"The Reviewer requested changes to your work (review round {this.number}; revision "
        f"{this.number} of at most {review.max_rounds}). Your earlier changes are committed in this "
        "worktree: change what each finding asks, keep what is right, then finish as before.",
        "",
        f"Summary: {this.summary}",
        "",
        findings_text(this),
    ]
    return "\n".join(lines).strip()


def findings_text(this: Round) -> str:
    """A round's findings as lines like ``- [major] src/x.py:14 — message (suggestion: …)``."""
    lines: list[str] = []
    for f in this.findings[:MAX_SHOWN_FINDINGS]:
        line = f"- [{f.get('severity', '?')}] {_where(f)} — {f.get('message', '')}"
        if f.get("suggestion"):
            line += f" (suggestion: {f['suggestion']})"
        lines.append(line)
        if f.get("spec_quote"):
            lines.append(f'    spec: "{f["spec_quote"]}"')
    for f in this.out_of_scope[:MAX_SHOWN_FINDINGS]:
        lines.append(f"- [out of scope] {_where(f)} — {f.get('description', '')}")
    hidden = max(0, len(this.findings) - MAX_SHOWN_FINDINGS) + max(
        0, len(this.out_of_scope) - MAX_SHOWN_FINDINGS
    )
    if hidden:
        lines.append(f"- … and {hidden} more in {this.record_dir}")
    return "\n".join(lines) if lines else "(no findings)"


def _where(finding: Mapping[str, Any]) -> str:
    line = finding.get("line")
    return f"{finding.get('file', '?')}{f':{line}' if line else ''}"


# --- the Reviewer's inputs ------------------------------------------------------------------------------
def reviewer_inputs(
    repo: Path,
    attempt: Attempt,
    task: Task,
    tip: str,
    verdicts: Sequence[GateVerdict],
    earlier: Round | None = None,
) -> dict[str, str]:
    """Every input the Reviewer role declares (fleet/roles/data/reviewer.toml)."""
    earlier_text = ""
    if earlier is not None:
        earlier_text = (
            f"Round {earlier.number}: {earlier.result} — {earlier.summary}\n{findings_text(earlier)}"
        )
    return {
        "task": task_text(task),
        "scope": scope_text(task),
        "spec": spec_text(task),
        "gates": gates_text(verdicts, tip=tip),
        "diff": attempt_diff(repo, attempt, tip),
        "earlier_findings": earlier_text,
    }


def attempt_diff(repo: Path, attempt: Attempt, tip: str) -> str:
    """The attempt's own diff: from where its commits sit on the target (the merge base with the
    target's tip: its base, or the tip it was rebased onto) to ``tip`` — a file summary, then the
    diff, cut after :data:`MAX_DIFF_LINES` lines or :data:`MAX_DIFF_CHARS` characters with a note
    saying how to see the rest in the checkout."""
    target = f"refs/heads/{attempt.target_branch}"
    base = git.git(["merge-base", target, tip], repo, check=False) or attempt.base_commit
    span = f"{base}..{tip}"
    stat = git.run(["diff", "--no-color", f"--stat={MAX_STAT_LINES}", span], repo, check=False).stdout
    full = git.run(["diff", "--no-color", span], repo, check=False).stdout
    lines = full.splitlines()
    kept: list[str] = []
    size = 0
    for line in lines:
        if len(kept) >= MAX_DIFF_LINES or size + len(line) + 1 > MAX_DIFF_CHARS:
            break
        kept.append(line)
        size += len(line) + 1
    shown = [f"# {line}" for line in stat.splitlines()[: MAX_STAT_LINES + 1]] + kept
    if len(kept) < len(lines):
        shown.append(
            f"# … the diff is cut here: {len(kept)} of {len(lines)} lines shown. The whole change is "
            f"in your checkout: git diff {base[:12]} HEAD"
        )
    return "\n".join(shown)


# --- the developer's revision rounds ------------------------------------------------------------------
def start_revision(run_dir: Path, number: int) -> None:
    """Before the developer's revision ``number``: the first prompt is kept as
    ``prompt-initial.md`` (prompt.md is rewritten for every run), and the event log — appended to
    by every run — gets a line marking where the revision's events begin."""
    prompt = layout.prompt_path(run_dir)
    first = run_dir / "prompt-initial.md"
    if prompt.is_file() and not first.exists():
        shutil.copyfile(prompt, first)
    with records.open_event_log(run_dir) as log:
        said = f"revision {number}: the developer addresses review round {number}'s findings"
        data = {"source": "speedrift", "revision": number}
        records.append_event(log, records.Event(EventKind.STARTED.value, said, data=data, progress=False))


def keep_revision_prompt(run_dir: Path, number: int) -> None:
    """After the revision's run: its prompt, kept as ``prompt-revision-<number>.md``."""
    prompt = layout.prompt_path(run_dir)
    if prompt.is_file():
        shutil.copyfile(prompt, run_dir / f"prompt-revision-{number}.md")


# --- small helpers --------------------------------------------------------------------------------------
def _shown_path(path: str, repo: Path) -> str:
    """``path`` relative to the repository when it is inside it (a log line names no machine path)."""
    try:
        return str(Path(path).relative_to(repo))
    except ValueError:
        return path


def _log(store: GraphStore, task_id: str, message: str) -> None:
    actor = worker_actor()
    store.mutate(lambda g, now: ops.log_message(g, task_id, message, now=now, actor=actor), actor=actor)
