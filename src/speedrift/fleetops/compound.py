"""Compound review of one repository: scan what reached its target branch, summarize, report, ask.

:func:`review` — run by the hub on the ``[compound_review]`` schedule (fleetops/compound_step.py)
or by a person (``speedrift review compound``):

1. the range: the commits after the last reviewed commit of the target branch, durable in
   ``.speedrift/reviews/last-review.json``; on a first review (or when that commit is no longer
   on the target — history rewritten), the commits of the last 24 hours, at most 50
   (fleetops/compound_scan.py); ``since`` (``--since REV``) overrides it;
2. the scan: every commit's facts and the flags (compound_scan.py);
3. the summary, by the Compound reviewer role (fleet/roles, ``compound_reviewer``) run through
   the role runner in a throwaway read-only checkout of the tip, with the scan as its input; its
   output is schema-checked. ``[compound_review] summarize = false``, ``[roles.compound_reviewer]
   enabled = false``, a runtime that is not installed, not logged in or paused, a failed run or an
   invalid output: the report is written without the summary and says why;
4. the review tasks: one per flag that asks for one and per summary note of medium or high
   severity that needs a human or an agent (tags ``review``, ``compound-review``), id
   ``review-<sha7>-<reason>``, made through the one graph writer (GraphStore.mutate +
   graph/ops.py) only when the caller may write to the repo (``may_write``: the hub's authority;
   a person's CLI run may). A commit and reason never makes a second task: the record remembers
   every task made, and the graph is asked too (the id, and the task's ``speedrift.compound_review``);
5. the pull request (fleetops/compound_pr.py): a dry run unless the repo opted in;
6. the report (compound_report.py), then the record of the last reviewed commit.

The whole review holds ``.speedrift/reviews/.review.lock``: two reviews of one repo never
interleave. The record is written last, so a review a crash cut off is done again in full
(its tasks are not made twice: step 4's graph check).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from speedrift import fsutil, layout
from speedrift.agents import env as agent_env
from speedrift.agents import preflight
from speedrift.errors import NotFound, Refused, SpeedriftError
from speedrift.fleet.config import RepoConfig, load_config
from speedrift.fleet.opsconfig import CompoundReviewConfig
from speedrift.fleet.roles.names import RoleName
from speedrift.fleet.roles.runner import RoleCall, run_role
from speedrift.fleetops import compound_pr
from speedrift.fleetops.compound_report import (
    Review,
    ReviewTask,
    Summary,
    SummaryState,
    TaskState,
    markdown,
    write,
)
from speedrift.fleetops.compound_scan import TASK_WORDS, By, CommitFact, Flag, Scan, scan
from speedrift.graph import cron, ops
from speedrift.graph.codec import Graph
from speedrift.graph.model import speedrift_data
from speedrift.graph.store import GraphStore
from speedrift.repo import git
from speedrift.textclip import clip
from speedrift.times import format_time, parse_time

ROLE = RoleName.COMPOUND_REVIEWER
TAGS = ("review", "compound-review")
TASK_KEY = "compound_review"  # the task's speedrift object: {"key", "commit", "reason", "report"}
STATE_VERSION = 1
KEEP_TASK_KEYS = 2000  # task keys remembered in the record (the newest)
NOTE_SEVERITIES = frozenset({"medium", "high"})
NOTE_NEEDS = frozenset({"human", "agent"})
MAX_INPUT_COMMITS = 300  # commits shown to the role (the report has all of them)
ACTOR = "compound-review"


@dataclass(frozen=True)
class Options:
    """How one review runs. ``base``: the ecosystem's ``[compound_review]`` (the repo's own
    speedrift.toml keys override it); ``may_write``: whether tasks may be made and a pull request
    opened, and why; ``since``: a revision to review after instead of the last reviewed commit;
    ``remote``: the remote to push a pull request's branch to (default: the target's upstream)."""

    may_write: tuple[bool, str]
    base: CompoundReviewConfig | None = None
    name: str | None = None
    since: str | None = None
    remote: str | None = None
    actor: str = ACTOR
    cancel: threading.Event | None = None


def effective(base: CompoundReviewConfig, own: CompoundReviewConfig) -> CompoundReviewConfig:
    """``base`` with every key the repo's speedrift.toml sets itself taken from ``own`` — and
    ``create_prs`` only ever from ``own``: pull requests are opted in per repo, never fleet-wide."""
    update = {key: getattr(own, key) for key in own.model_fields_set}
    return base.model_copy(update={**update, "create_prs": own.create_prs})


def settings_of(repo: Path, base: CompoundReviewConfig | None) -> tuple[RepoConfig, CompoundReviewConfig]:
    """The repo's config and its effective ``[compound_review]``. Raises ConfigError for a bad file."""
    config = load_config(repo)
    return config, effective(base or CompoundReviewConfig(), config.compound_review)


def review(repo: Path, *, now: datetime, options: Options) -> Review:
    """Review ``repo`` now (see the module docstring). Raises SpeedriftError (GitError, ConfigError,
    NotFound for an unknown ``since``) when the review cannot be made; never for its summary, its
    tasks or its pull request, whose failures are reported in it."""
    config, settings = settings_of(repo, options.base)
    target = config.target_branch or git.default_branch(repo)
    if target is None:
        raise NotFound(f"{repo} has no target branch with a commit", hint="commit, or set target_branch")
    name = options.name or repo.name
    git.exclude_locally(repo, layout.EXCLUDE_PATTERN)  # speedrift's state stays out of `git status`
    layout.reviews_dir(repo).mkdir(parents=True, exist_ok=True)
    with fsutil.flocked(layout.review_lock_path(repo)):
        record = read_record(repo)
        base, said = _base(repo, record, target, options.since)
        found = scan(
            repo, target, now=now, base=base, large_diff_lines=settings.large_diff_lines, base_said=said
        )
        stem = _stem(repo, now, settings.tz)
        summary = summarize(repo, config, settings, found, stem, name, options.cancel, options.may_write)
        tasks = plan_tasks(found, summary, stem, name)
        made = record.get("tasks")
        known = {k: v for k, v in (made.items() if isinstance(made, dict) else ()) if isinstance(v, str)}
        _make_tasks(repo, tasks, known, options, now)
        done = Review(name, repo, stem, now, found, summary, tasks)
        done.pr = _pull_request(repo, done, settings, options)
        write(done)
        _write_record(repo, target, found.tip, stem, now, known)
    return done


# --- the range ---------------------------------------------------------------------------------------
def read_record(repo: Path) -> dict[str, Any]:
    """The last review's record ({} when there is none, or it is not ours)."""
    raw = layout.read_record(layout.review_state_path(repo)) or {}
    return raw if raw.get("version") == STATE_VERSION else {}


def _base(repo: Path, record: Mapping[str, Any], target: str, since: str | None) -> tuple[str | None, str]:
    if since is not None:
        commit = git.rev_parse(repo, since)
        if commit is None:
            raise NotFound(f"--since {since!r} names no commit in {repo}", hint="give a sha, tag or branch")
        return commit, f"the commits after {since} ({commit[:7]}), as asked"
    last = record.get("last_commit")
    if not isinstance(last, str) or not last or record.get("target") != target:
        return None, ""
    tip = git.rev_parse(repo, target)
    ancestor = git.run(["merge-base", "--is-ancestor", last, tip or target], repo, check=False)
    if ancestor.returncode != 0:
        return None, (
            f"the last reviewed commit {last[:7]} is no longer on {target} (history rewritten?): reviewed "
            "as a first review, the commits of the last 24 hours, at most 50"
        )
    when = parse_time(record.get("reviewed_at"))
    at = f", reviewed {format_time(when)}" if when else ""
    return last, f"the commits after {last[:7]}, the last reviewed{at}"


def _stem(repo: Path, now: datetime, tz: str) -> str:
    """The review's date in its schedule's zone; ``-2``, ``-3``… when that day has a report."""
    day = now.astimezone(cron.zone_of(tz)).date().isoformat()
    stem, n = day, 1
    while (
        layout.review_report_path(repo, stem, "md").exists()
        or layout.review_report_path(repo, stem, "json").exists()
    ):
        n += 1
        stem = f"{day}-{n}"
    return stem


def _write_record(repo: Path, target: str, tip: str, stem: str, now: datetime, tasks: dict[str, str]) -> None:
    kept = dict(list(tasks.items())[-KEEP_TASK_KEYS:])
    record = {
        "version": STATE_VERSION,
        "target": target,
        "last_commit": tip,
        "reviewed_at": format_time(now),
        "report": stem,
        "tasks": kept,
    }
    fsutil.write_atomic(layout.review_state_path(repo), orjson.dumps(record, option=orjson.OPT_INDENT_2))


# --- the summary -------------------------------------------------------------------------------------
def summarize(
    repo: Path,
    config: RepoConfig,
    settings: CompoundReviewConfig,
    found: Scan,
    stem: str,
    name: str,
    cancel: threading.Event | None = None,
    may_write: tuple[bool, str] = (True, "asked by a person"),
) -> Summary:
    """The Compound reviewer's summary of ``found``, or why there is none (never raises). The role
    agent runs only where ``may_write`` allows: the hub spends nothing on a repo not opted in."""
    if not may_write[0]:
        return Summary(SummaryState.SKIPPED, f"no agent runs for this repo: {may_write[1]}")
    if not settings.summarize:
        return Summary(SummaryState.SKIPPED, "[compound_review] summarize = false")
    options = config.role(ROLE.value)
    if options.enabled is False:
        return Summary(SummaryState.SKIPPED, f"[roles.{ROLE.value}] enabled = false")
    if not found.commits:
        return Summary(SummaryState.SKIPPED, "no new commits: nothing to summarize")
    runtime = options.runtime or config.default_runtime
    try:
        environment = agent_env.agent_env({}, allow=config.env.allow, passthrough_secrets=config.env.secrets)
        check = preflight.cached_check(
            runtime, env=environment, options=config.runtime_options(runtime).model_dump(), cwd=repo
        )
    except SpeedriftError as error:
        return Summary(SummaryState.SKIPPED, f"the {runtime} runtime cannot be checked: {error}")
    if not check.ready:
        fix = f" ({check.fix})" if check.fix else ""
        return Summary(SummaryState.SKIPPED, f"the {runtime} runtime is not available: {check.problem}{fix}")
    call = RoleCall(ROLE, role_inputs(found, name), layout.review_role_dir(repo, stem), found.tip)
    try:
        result = run_role(repo, config, call, cancel=cancel)
    except SpeedriftError as error:
        return Summary(SummaryState.FAILED, f"the Compound reviewer could not be run: {error}")
    record = result.as_dict()
    if result.output is not None:
        notes = [n for n in result.output.get("notes", []) if isinstance(n, dict)]
        text, risk = str(result.output.get("summary", "")), str(result.output.get("risk", ""))
        return Summary(SummaryState.WRITTEN, text=text, risk=risk, notes=notes, role=record)
    if result.run_failed and result.rounds == 0:  # not started: its runtime is paused
        return Summary(SummaryState.SKIPPED, result.reason(), role=record)
    return Summary(SummaryState.FAILED, result.reason(), role=record)


def role_inputs(found: Scan, name: str) -> dict[str, str]:
    repository = f"{name}\ntarget branch: {found.target} at {found.tip}\nrange: {found.window}" + (
        "\n(more commits than were read: only the newest are listed)" if found.truncated else ""
    )
    commits = "\n".join(_commit_line(c) for c in found.commits[:MAX_INPUT_COMMITS])
    if len(found.commits) > MAX_INPUT_COMMITS:
        commits += f"\n… and {len(found.commits) - MAX_INPUT_COMMITS} older commits (see the report)"
    flags = "\n".join(
        f"- {f.commit[:7]} {f.reason.value} ({f.by.value}): {', '.join(f.files) or '-'} — {f.detail}"
        for f in found.flags
    )
    return {"repository": repository, "commits": commits, "flags": flags}


def _commit_line(commit: CommitFact) -> str:
    gated = f"through speedrift's gates ({commit.attempt})" if commit.gated else "without speedrift's gates"
    when = format_time(commit.committed_at) if commit.committed_at else "?"
    files = ", ".join(f.path for f in commit.files[:10]) + (" …" if len(commit.files) > 10 else "")
    return (
        f"- {commit.short} {when} {clip(commit.author, 60)} <{clip(commit.email, 80)}>, "
        f"by {commit.by.value}, {gated}, +{commit.added}/-{commit.deleted}: "
        f"{clip(commit.subject, 200)} [{files}]"
    )


# --- the review tasks ----------------------------------------------------------------------------------
def plan_tasks(found: Scan, summary: Summary, stem: str, name: str) -> list[ReviewTask]:
    """The tasks the review asks for (not yet made): its flags', then its summary's notes'."""
    commits = {c.sha: c for c in found.commits}
    planned: dict[str, ReviewTask] = {}
    for flag in found.flags:
        if flag.needs_review and flag.key not in planned:
            planned[flag.key] = _flag_task(flag, commits[flag.commit], stem, name)
    for note in summary.notes:
        task = _note_task(note, found.commits, stem, name)
        if task is not None and task.key not in planned:
            planned[task.key] = task
    return list(planned.values())


def task_id(commit: str, reason: str) -> str:
    return f"review-{commit[:7]}-{reason.replace('_', '-')}"


def _flag_task(flag: Flag, commit: CommitFact, stem: str, name: str) -> ReviewTask:
    what = flag.files[0] if flag.files else clip(commit.subject, 80)
    more = f" (+{len(flag.files) - 1} more)" if len(flag.files) > 1 else ""
    title = f"{TASK_WORDS[flag.reason]} in {commit.short}: {what}{more}"
    description = _description(commit, stem, name, f"flagged {flag.reason.value}: {flag.detail}", flag.files)
    return ReviewTask(
        flag.key, task_id(commit.sha, flag.reason.value), title, description, commit.sha, flag.reason.value
    )


def _note_task(note: Mapping[str, Any], commits: list[CommitFact], stem: str, name: str) -> ReviewTask | None:
    if note.get("severity") not in NOTE_SEVERITIES or note.get("needs") not in NOTE_NEEDS:
        return None
    short, text = str(note.get("commit", "")), str(note.get("note", ""))
    commit = next((c for c in commits if short and c.sha.startswith(short)), None)
    if commit is None or not text:
        return None  # a note on a commit this review does not hold: shown, never a task
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    reason = f"note-{digest}"
    file = note.get("file")
    files = (str(file),) if file else ()
    title = f"Review {commit.short}: {clip(text, 100)}"
    said = f"the Compound reviewer's note ({note.get('severity')}, needs {note.get('needs')}): {text}"
    description = _description(commit, stem, name, said, files)
    return ReviewTask(
        f"{commit.sha}:{reason}", task_id(commit.sha, reason), title, description, commit.sha, reason
    )


def _description(commit: CommitFact, stem: str, name: str, said: str, files: tuple[str, ...]) -> str:
    gated = (
        f"landed through speedrift's gates ({commit.attempt})"
        if commit.gated
        else "landed without speedrift's gates"
    )
    lines = [
        f"Compound review {stem} of {name} asks for a look at commit {commit.sha}.",
        f"Why: {said}",
        f"Commit: {clip(commit.subject, 200)} — {clip(commit.author, 80)}, by {commit.by.value}, {gated}, "
        f"+{commit.added}/-{commit.deleted} lines.",
    ]
    if files:
        lines.append("Files: " + ", ".join(files))
    lines += [
        f"Report: .speedrift/reviews/{stem}.md",
        f"Read the change (`git show {commit.sha[:12]}`), then fix what is wrong or say why it is fine "
        "in this task's log, and mark it done.",
    ]
    return "\n".join(lines)


def _existing(graph: Graph | None, task: ReviewTask) -> str | None:
    if graph is None:
        return None
    if task.task_id in graph.tasks:
        return task.task_id
    for other in graph.tasks.values():
        marked = speedrift_data(other).get(TASK_KEY)
        if isinstance(marked, dict) and marked.get("key") == task.key:
            return str(other.get("id"))
    return None


def _make_tasks(
    repo: Path, tasks: list[ReviewTask], known: dict[str, str], options: Options, now: datetime
) -> None:
    """Make each task not made before (``known``: key → id, updated), where writing is allowed."""
    store = GraphStore.of_repo(repo)
    try:
        graph = store.load() if store is not None else None
    except SpeedriftError:
        graph = None
    allowed, why = options.may_write
    for task in tasks:
        earlier = known.get(task.key) or _existing(graph, task)
        if earlier is not None:
            task.task_id, task.state, task.why = earlier, TaskState.EXISTING, "made by an earlier review"
            known[task.key] = earlier
            continue
        if store is None or graph is None:
            task.state, task.why = (
                TaskState.PROPOSED,
                "the repo has no readable task graph (`speedrift init`)",
            )
            continue
        if not allowed:
            task.state, task.why = TaskState.PROPOSED, f"not made: {why}"
            continue
        try:
            store.mutate(_adder(task, options.actor), actor=options.actor, now=now)
        except Refused as refused:
            task.state, task.why = TaskState.EXISTING, str(refused)  # made meanwhile (the id is taken)
            known[task.key] = task.task_id
            continue
        except SpeedriftError as error:
            task.state, task.why = TaskState.FAILED, str(error)
            continue
        task.state = TaskState.CREATED
        known[task.key] = task.task_id


def _adder(task: ReviewTask, actor: str) -> Any:
    spec = ops.NewTask(task.title, task_id=task.task_id, description=task.description, tags=list(TAGS))
    marker = {"key": task.key, "commit": task.commit, "reason": task.reason}

    def build(graph: Graph, now: datetime) -> ops.Mutation:
        mutation = ops.add_task(graph, spec, now=now, actor=actor)
        ops.set_fields(
            graph, task.task_id, speedrift={TASK_KEY: marker}, now=now, actor=actor, within=mutation
        )
        return mutation

    return build


# --- the pull request ----------------------------------------------------------------------------------
def pr_title(review: Review) -> str:
    commits, flags = len(review.scan.commits), len(review.scan.flags)
    return f"Compound review {review.stem} of {review.repo}: {commits} commits, {flags} flags"


def _pull_request(
    repo: Path, review: Review, settings: CompoundReviewConfig, options: Options
) -> compound_pr.PullRequest:
    allowed, why = options.may_write
    if not review.scan.commits:
        why_dry = "no new commits: there is nothing to propose"
    elif not settings.create_prs and options.base is not None and options.base.create_prs:
        why_dry = (
            "create_prs = true in ecosystem.toml does not open pull requests: each repo opts in with "
            "[compound_review] create_prs = true in its own speedrift.toml (dry run)"
        )
    elif not settings.create_prs:
        why_dry = "[compound_review] create_prs is not set in this repo's speedrift.toml (dry run)"
    elif not allowed:
        why_dry = f"create_prs = true, but speedrift may not write to this repo now: {why}"
    else:
        why_dry = ""
    pr = compound_pr.prepare(repo, review.stem, review.scan.target, pr_title(review), why_dry)
    if why_dry:
        return pr
    return compound_pr.create(repo, pr, markdown(review, with_pr=False), review.scan.tip, options.remote)


def ledger_record(review: Review, slot: datetime | None) -> dict[str, Any]:
    """The hub ledger's record of a review (``kind = "compound_review"``)."""
    return {
        "kind": "compound_review",
        "generated_at": review.generated_at,
        "repo": review.repo,
        "slot": slot,
        "commits": len(review.scan.commits),
        "by_agents": sum(c.by is By.AGENT for c in review.scan.commits),
        "flags": len(review.scan.flags),
        "summary": review.summary.state.value,
        "report": str(review.markdown_path),
        "tasks": {state.value: [t.task_id for t in review.tasks if t.state is state] for state in TaskState},
        "pr": {
            "state": review.pr.state.value,
            "branch": review.pr.branch,
            "url": review.pr.url,
            "said": review.pr.said,
        }
        if review.pr is not None
        else None,
    }
