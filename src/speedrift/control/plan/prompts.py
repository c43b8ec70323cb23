"""Ready-to-paste prompts for a Claude agent and a Codex agent, templated from data (never generated).

Every prompt has the same four parts — goal, context, acceptance, constraints — plus optional
gate output, phrased twice: conversationally for Claude, as a labelled brief for Codex.
:func:`action_prompts` fills it in for a planned action from the repo's snapshot and health;
:func:`entry_prompts` for an attention-queue entry from the entry itself. Both are added when a
record is presented (control/assess/judgement.py: with_prompts), never stored in the ledger. A
corrective task is different: it is work for whoever picks it up, so its handler writes the
action's brief (:func:`action_brief`, as :func:`brief_markdown`) into the task's description when
it creates the task.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from speedrift.register.actions import Action, ActionKind, LaneParams, RepairParams, VerifyParams
from speedrift.register.record import RepoHealth, RepoSnapshot

GATE_OUTPUT_LIMIT = 6000  # characters of gate output kept in a prompt

SAFETY = (
    "Do not force-push, rewrite history, delete branches you did not create, or bypass a gate "
    "(no --no-verify)."
)


def prompt_pair(
    goal: str,
    context: Sequence[str],
    acceptance: Sequence[str],
    constraints: Sequence[str],
    gate_output: str | None = None,
) -> dict[str, str]:
    """``{"claude": ..., "codex": ...}``: the same brief in two distinct phrasings."""
    goal = _one_line(goal)
    ctx = [_one_line(c) for c in context if c.strip()]
    acc = [_one_line(a) for a in acceptance if a.strip()]
    con = [_one_line(c) for c in constraints if c.strip()]
    gate = _gate_block(gate_output)
    return {"claude": _claude(goal, ctx, acc, con, gate), "codex": _codex(goal, ctx, acc, con, gate)}


def _claude(goal: str, ctx: list[str], acc: list[str], con: list[str], gate: str | None) -> str:
    parts = [goal]
    if ctx:
        parts.append("What you should know:\n" + "\n".join(f"- {c}" for c in ctx))
    if acc:
        parts.append("You are done when:\n" + "\n".join(f"- {a}" for a in acc))
    if con:
        parts.append("Stay within these limits:\n" + "\n".join(f"- {c}" for c in con))
    if gate:
        parts.append("The latest gate output, verbatim:\n" + gate)
    parts.append(
        "When you finish, tell me what you changed, how you verified it, and any follow-up work you "
        "recorded as new tasks."
    )
    return "\n\n".join(parts)


def _codex(goal: str, ctx: list[str], acc: list[str], con: list[str], gate: str | None) -> str:
    lines = [f"TASK: {goal}"]
    if ctx:
        lines += ["", "CONTEXT:", *(f"* {c}" for c in ctx)]
    if acc:
        lines += ["", "ACCEPTANCE CRITERIA:", *(f"{i}. {a}" for i, a in enumerate(acc, 1))]
    if con:
        lines += ["", "CONSTRAINTS:", *(f"* {c}" for c in con)]
    if gate:
        lines += ["", "GATE OUTPUT:", gate]
    lines += [
        "",
        "OUTPUT: a short list of changed files, the commands you ran to verify, and remaining risks.",
    ]
    return "\n".join(lines)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _gate_block(output: str | None) -> str | None:
    if output is None or not output.strip():
        return None
    text = output.strip("\n")
    if len(text) > GATE_OUTPUT_LIMIT:
        text = text[:GATE_OUTPUT_LIMIT] + f"\n… ({len(output) - GATE_OUTPUT_LIMIT} more characters cut)"
    # a fence longer than any backtick run inside, so the output cannot close it early
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{text}\n{fence}"


# ---------------------------------------------------------------- per action kind

Brief = tuple[str, list[str], list[str], list[str]]  # goal, context, acceptance, constraints


def action_prompts(
    action: Action, snapshot: RepoSnapshot | None, health: RepoHealth | None
) -> dict[str, str]:
    """The prompt pair for a planned action: what a local agent would do to resolve it by hand."""
    return prompt_pair(*action_brief(action, snapshot, health))


def action_brief(
    action: Action, snapshot: RepoSnapshot | None, health: RepoHealth | None, *, path: str | None = None
) -> Brief:
    """Goal, context, acceptance and constraints (the :data:`SAFETY` line last) for a planned action:
    the one source of its Claude and Codex prompts and of the brief a corrective task carries in its
    description (:func:`brief_markdown`). ``path``: the repo's path when there is no snapshot."""
    repo, where = action.repo, snapshot.path if snapshot else (path or action.repo)
    goal, context, acceptance, constraints = _BRIEFS[action.kind](action, snapshot)
    ctx = [f"Repository {repo} at {where}.", *context, f"Why the hub planned this: {action.reason}."]
    if health is not None:
        top = "; ".join(r.text for r in health.reasons[:3]) or "no penalties"
        ctx.append(f"Health {health.score}/100 ({health.tier}, {health.trend}): {top}.")
    return goal, ctx, list(acceptance), [*constraints, SAFETY]


def brief_markdown(brief: Brief) -> str:
    """The brief as markdown sections (Goal, Context, Acceptance criteria, Constraints), the same
    lines :func:`prompt_pair` phrases for Claude and Codex: what a corrective task's description
    carries, so any agent or person who picks the task up gets the whole brief."""
    goal, context, acceptance, constraints = brief
    ctx = [_one_line(c) for c in context if c.strip()]
    acc = [_one_line(a) for a in acceptance if a.strip()]
    con = [_one_line(c) for c in constraints if c.strip()]
    parts = ["## Goal\n\n" + _one_line(goal)]
    if ctx:
        parts.append("## Context\n\n" + "\n".join(f"- {c}" for c in ctx))
    if acc:
        parts.append("## Acceptance criteria\n\n" + "\n".join(f"{i}. {a}" for i, a in enumerate(acc, 1)))
    if con:
        parts.append("## Constraints\n\n" + "\n".join(f"- {c}" for c in con))
    return "\n\n".join(parts)


def _tasks(action: Action) -> list[str]:
    return list(action.tasks)


def _restart(action: Action, snapshot: RepoSnapshot | None) -> Brief:
    ready = snapshot.graph.ready_count if snapshot and snapshot.graph else 0
    return (
        f"Bring the speedrift service of {action.repo} back up so its {ready} ready task(s) are dispatched.",
        ["The service is not running; it was started by the hub or is declared always-on."],
        [
            "`speedrift service status --json` shows the service running with a fresh heartbeat",
            "ready tasks move to in-progress within a few minutes",
        ],
        ["Read the service log under .speedrift/service/ to find why it stopped before restarting it."],
    )


def _dispatch(action: Action, snapshot: RepoSnapshot | None) -> Brief:
    tasks = _tasks(action)
    return (
        f"Start work on the ready task(s) {', '.join(tasks)} in {action.repo}.",
        ["No service runs in this repo, so nothing picks up ready work on its own."],
        [
            "each task ran in its own worktree (`speedrift run <task>`) and is done or has a logged reason",
            "the gates passed before anything landed",
        ],
        ["One task per worktree; leave the main checkout alone."],
    )


def _gate_scan(action: Action, snapshot: RepoSnapshot | None) -> Brief:
    gates = snapshot.gates if snapshot else None
    counts = (
        f"{gates.critical} critical, {gates.high} high finding(s), {gates.secret_leaks} secret leak(s)"
        if gates
        else "findings"
    )
    return (
        f"Re-run the gates on {action.repo}'s target branch and resolve the {counts}.",
        ["The latest evidence bundle has blocking findings."],
        [
            "`speedrift gates run --json` reports no critical or high finding and no secret",
            "a leaked secret is rotated at its issuer, not only deleted from the file",
        ],
        ["Never print a secret's value; fix findings in a task worktree, not the main checkout."],
    )


def _repair_deps(action: Action, snapshot: RepoSnapshot | None) -> Brief:
    params = action.params if isinstance(action.params, RepairParams) else None
    missing = [f"{t} waits on missing {b}" for t, b in (params.missing if params else ())]
    failed = params.failed_blockers if params else 0
    context = [*missing[:10]]
    if failed:
        context.append(f"{failed} open task(s) wait on a failed blocker.")
    return (
        f"Repair the dependency chain in {action.repo}'s task graph.",
        context,
        [
            "`speedrift blocked` lists no task waiting on a missing or failed blocker",
            "each change is explained in the affected task's log (`speedrift log`)",
        ],
        [
            "Create the missing task, retry the failed one (`speedrift retry`), or drop the edge "
            "(`speedrift rm-dep`) — whichever the task's intent calls for; do not delete tasks."
        ],
    )


def _retry(action: Action, snapshot: RepoSnapshot | None) -> Brief:
    return (
        f"Carry out the recorded automatic recovery of the failed task(s) {', '.join(_tasks(action))} "
        f"in {action.repo}.",
        [
            "Each failed with a class whose recovery is an automatic retry (`speedrift show ID --json`: "
            "speedrift.recovery), and no service runs in the repo to carry it out."
        ],
        [
            "each task is open again once its backoff has passed (`speedrift show ID`: not_before), or "
            "withheld with the reason while the repo's automatic retries are halted",
        ],
        [
            "Reopen with `speedrift retry ID`; never edit graph.jsonl, and never retry a task a human "
            "must answer."
        ],
    )


def _verify(action: Action, snapshot: RepoSnapshot | None) -> Brief:
    params = action.params if isinstance(action.params, VerifyParams) else None
    dead = list(params.dead) if params else []
    aging = list(params.aging) if params else []
    context = []
    if dead:
        context.append(f"Claimed by a process that is gone: {', '.join(dead)}.")
    if aging:
        context.append(f"In progress for 3+ days: {', '.join(aging)}.")
    return (
        f"Check the in-progress task(s) {', '.join(_tasks(action))} in {action.repo}; get each moving again.",
        context,
        [
            "each task is either progressing under a live agent, reopened (`speedrift unclaim`), or "
            "marked failed with a reason",
        ],
        ["Keep any work already in the task's worktree; do not discard it."],
    )


def _sync(action: Action, snapshot: RepoSnapshot | None) -> Brief:
    git = snapshot.git if snapshot else None
    behind = git.behind if git else None
    upstream = git.upstream if git and git.upstream else "its upstream"
    return (
        f"Bring {action.repo} up to date with {upstream} ({behind or 0} commit(s) behind).",
        ["The hub only fetches; integrating the commits is a decision for the repo's owner."],
        ["the local branch contains the upstream commits and the gates pass on the result"],
        ["Merge or rebase only a branch you own, with a clean checkout; never force-push."],
    )


def _packet(action: Action, snapshot: RepoSnapshot | None) -> Brief:
    git = snapshot.git if snapshot else None
    ahead = git.ahead if git else None
    return (
        f"Prepare {action.repo}'s {ahead or 0} local commit(s) as a contribution to its upstream.",
        ["The hub writes a dry-run packet under .speedrift/upstream/; it never opens a pull request."],
        ["a reviewed packet: summary, commit list, changed files, how it was tested"],
        ["Do not push or open a pull request without the owner's go-ahead."],
    )


def _corrective(action: Action, snapshot: RepoSnapshot | None) -> Brief:
    tasks = _tasks(action)
    focus = f" (task(s) {', '.join(tasks)})" if tasks else ""
    return (
        f"Resolve the stall in {action.repo}{focus} that the hub cannot fix by itself.",
        [f"Corrective task {action.subject} records this in the repo's graph."] if action.subject else [],
        [
            "the cause is understood and written in the task log",
            "the stalled work is done, re-planned into smaller tasks, or abandoned with a reason",
            f"{action.subject} is marked done" if action.subject else "the corrective task is marked done",
        ],
        ["Change the plan with speedrift commands (add, edit, retry, abandon), not by editing graph.jsonl."],
    )


def _lanes(action: Action, snapshot: RepoSnapshot | None) -> Brief:
    params = action.params if isinstance(action.params, LaneParams) else None
    lanes = ", ".join(params.lanes) if params and params.lanes else "every lane the drift policy runs"
    head = params.head[:12] if params else "the target branch's tip"
    since = f" since {params.base[:12]}" if params and params.base else ""
    return (
        f"Run the drift lanes ({lanes}) on {action.repo}'s target branch at {head}{since}.",
        [f"Trigger: {params.trigger if params else 'due'}."],
        [
            "`speedrift drift check --create-followups --json` reports every lane judged (no lane error)",
            "each actionable finding has a follow-up task (or the guard's recorded reason why not)",
        ],
        ["Follow-ups go only through the lane guard (`--create-followups`); never write tasks by hand."],
    )


_BRIEFS: dict[ActionKind, Callable[[Action, RepoSnapshot | None], Brief]] = {
    ActionKind.RESTART_SERVICE: _restart,
    ActionKind.DISPATCH_READY: _dispatch,
    ActionKind.RUN_GATE_SCAN: _gate_scan,
    ActionKind.REPAIR_DEPENDENCIES: _repair_deps,
    ActionKind.VERIFY_IN_PROGRESS: _verify,
    ActionKind.SYNC_UPSTREAM: _sync,
    ActionKind.PREPARE_UPSTREAM_PACKET: _packet,
    ActionKind.EMIT_CORRECTIVE_TASK: _corrective,
    ActionKind.RETRY_FAILED: _retry,
    ActionKind.RUN_LANES: _lanes,
}
