"""Ready-to-paste prompts for an attention-queue entry (control/assess/queues.py), from the entry alone.

A condition entry (its ``rule`` is a score reason code) gets its own brief — goal, context,
acceptance, and the gate output behind it — made into the same Claude/Codex pair an action's
prompts are (prompts.py ``prompt_pair``); any other entry gets a brief made of its words.
Templated from data, never generated.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from speedrift.control.plan.prompts import prompt_pair

ENTRY_CONSTRAINTS = (
    "Work only in this repository; record progress with `speedrift log`, follow-ups with `speedrift add`.",
    "Do not force-push, rewrite history, delete branches you did not create, or bypass a gate.",
)

EntryBrief = tuple[str, str, str, str | None]  # goal, context, acceptance, gate output


def entry_prompts(
    rule: str,
    repo: str,
    path: str,
    *,
    task: str | None,
    what: str,
    why: str,
    detail: Mapping[str, Any],
    from_action: bool = False,
) -> dict[str, str]:
    """The prompt pair for an attention-queue entry (control/assess/queues.py), from the entry alone.

    A condition entry (``rule`` is a score reason code, or ``prepare_upstream_packet`` for commits
    ahead) gets its own brief; an entry that is an action whose prompts were not added
    (``from_action``: a record read back from the ledger) gets a brief made of its words."""
    where = f"Repository {repo} at {path}."
    brief = None if from_action else _ENTRY_BRIEFS.get(rule)
    if brief is None:
        goal, context, acceptance, gate = what, f"Repository {repo}. {why}", "Resolved.", None
    else:
        goal, context, acceptance, gate = brief(repo, where, task or "", why, detail)
    return prompt_pair(goal, [context], [acceptance], list(ENTRY_CONSTRAINTS), gate)


def _unobservable(repo: str, where: str, task: str, why: str, detail: Mapping[str, Any]) -> EntryBrief:
    return (
        f"Make {repo} observable again by the speedrift hub.",
        f"{where} The hub reported: {why}",
        "`speedrift hub once` observes the repo without errors.",
        None,
    )


def _aging(repo: str, where: str, task: str, why: str, detail: Mapping[str, Any]) -> EntryBrief:
    title = detail.get("title", "")
    return (
        f"Finish or release task {task} ({title}) in {repo}.",
        f"{where} The task is {why}. Inspect `speedrift show {task}` and its run records.",
        f"{task} is done with evidence, or unclaimed with a log entry saying why.",
        None,
    )


def _stale_open(repo: str, where: str, task: str, why: str, detail: Mapping[str, Any]) -> EntryBrief:
    return (
        f"Triage the {detail.get('count')} open tasks in {repo} that are older than "
        f"{detail.get('days')} days.",
        f"{where} Run `speedrift aging` to list them.",
        "Each old task is done, abandoned with a reason, or re-prioritised with a log note.",
        None,
    )


def _missing_dependency(repo: str, where: str, task: str, why: str, detail: Mapping[str, Any]) -> EntryBrief:
    return (
        f"Repair the dependency of {task} on the missing task {detail.get('blocker')} in {repo}.",
        f"{where} `speedrift why-blocked {task}` shows the chain.",
        f"{task} waits only on tasks that exist (`speedrift rm-dep` / `speedrift add`).",
        None,
    )


def _failed_blockers(repo: str, where: str, task: str, why: str, detail: Mapping[str, Any]) -> EntryBrief:
    return (
        f"Unblock the {detail.get('count')} tasks in {repo} that wait on a failed task.",
        f"{where} `speedrift blocked` lists them with what holds each.",
        "Each failed blocker is retried (`speedrift retry`) or abandoned with a reason.",
        None,
    )


def _failed_loopback(repo: str, where: str, task: str, why: str, detail: Mapping[str, Any]) -> EntryBrief:
    return (
        f"Find why task {task} in {repo} keeps failing and fix the cause.",
        f"{where} Its attempts are under .speedrift/runs/; `speedrift tail {task}` shows one.",
        f"A new attempt of {task} passes its gates, or the task is rewritten with the lesson.",
        None,
    )


def _findings(repo: str, where: str, task: str, why: str, detail: Mapping[str, Any]) -> EntryBrief:
    found = detail.get("found")
    return (
        f"Resolve the security and quality findings in {repo}.",
        f"{where} The latest evidence bundles report {found}.",
        "The gates pass on the target branch with no critical or high findings and no secrets.",
        f"gates: last_status={detail.get('gate_status', 'none')}, {found}",
    )


def _ahead(repo: str, where: str, task: str, why: str, detail: Mapping[str, Any]) -> EntryBrief:
    ahead = detail.get("ahead")
    return (
        f"Prepare the {ahead} local commits of {repo} for an upstream contribution.",
        f"{where} Branch {detail.get('branch')} is {ahead} ahead of {detail.get('upstream')}.",
        "A reviewed contribution packet (summary, changed files, tests); nothing is pushed.",
        None,
    )


def _needs_human(repo: str, where: str, task: str, why: str, detail: Mapping[str, Any]) -> EntryBrief:
    first = detail.get("first")
    then = f"{first}, then answer" if first else "Answer"
    return (
        f"Answer what task {task} ({detail.get('title', '')}) in {repo} asks a human.",
        f"{where} "
        + (
            "Its agent asked, and triage could not answer: "
            if detail.get("record")
            else "The task is tagged needs-human and asks: "
        )
        + f"{why} "
        f"`speedrift show {task}` has its log and failure history.",
        f"{then} with `{detail.get('answer')}`; "
        + (
            "the question is resolved and the task gets the answer."
            if detail.get("record")
            else "the task is open again without the needs-human tag."
        ),
        None,
    )


def _awaiting_approval(repo: str, where: str, task: str, why: str, detail: Mapping[str, Any]) -> EntryBrief:
    """An approval is a person's decision: the prompt asks for a review to decide with, never for
    the approval itself (an agent approving its own wave's checkpoint would defeat it)."""
    wave = detail.get("wave")
    named = f"task {task} ({detail.get('title', '')})" + (f" of wave {wave}" if wave is not None else "")
    if detail.get("checkpoint") == "merge":
        goal = (
            f"Review attempt {detail.get('attempt')} of {named} in {repo} before a person approves its merge."
        )
        look = (
            f"`speedrift show {task}` has its log, gate evidence and review; its work waits in its worktree."
        )
    else:
        goal = f"Review whether {named} in {repo} may start (a deploy step)."
        look = f"`speedrift show {task}` has the task: check its environment, validation and rollback note."
    return (
        goal,
        f"{where} The task waits at an oversight approval checkpoint: {why}. {look}",
        "A recommendation to approve or not, with its reasons. Do not approve it yourself: the person "
        f"who decides runs `{detail.get('answer')}` (or uses the dashboard's Approve button).",
        None,
    )


def _runtime_paused(repo: str, where: str, task: str, why: str, detail: Mapping[str, Any]) -> EntryBrief:
    runtime, fix = detail.get("runtime"), detail.get("first")
    return (
        f"Fix what paused the {runtime} agent runtime, then lift the pause.",
        f"{why} Every supervisor on this machine holds {runtime} work until the pause is lifted."
        + (f" The fix: {fix}." if fix else ""),
        f"The runtime's preflight passes and `{detail.get('answer')}` lifted the pause.",
        None,
    )


def _behind(repo: str, where: str, task: str, why: str, detail: Mapping[str, Any]) -> EntryBrief:
    return (
        f"Bring {repo} up to date with {detail.get('upstream')}.",
        f"{where} {detail.get('behind')} upstream commits are not merged.",
        "The branch contains the upstream commits, tests pass; history is not rewritten.",
        None,
    )


def _lane_finding(repo: str, where: str, task: str, why: str, detail: Mapping[str, Any]) -> EntryBrief:
    lane, kind, file = detail.get("lane", ""), detail.get("kind", ""), detail.get("file", "")
    at = (
        f" at {file}:{detail.get('line')}" if file and detail.get("line") else (f" in {file}" if file else "")
    )
    fix = detail.get("fix") or "fix the cause the lane names"
    return (
        f"Resolve the {lane} finding `{kind}` in {repo}{at}: {detail.get('message', '')}",
        f"{where} Suggested fix: {fix}. Its follow-up task is {detail.get('followup')}"
        f" (`speedrift show {detail.get('followup')}` has the evidence).",
        f"`speedrift drift check --lane {lane} --json` no longer reports fingerprint "
        f"{detail.get('fingerprint')}, and {detail.get('followup')} is done.",
        f"{lane}: {detail.get('severity')} {kind}{at}",
    )


def _lane_broken(repo: str, where: str, task: str, why: str, detail: Mapping[str, Any]) -> EntryBrief:
    lane = detail.get("lane", "")
    return (
        f"Make the drift lane {lane} judge {repo} again.",
        f"{where} It could not: {detail.get('error')}. An external lane must print the lane JSON "
        "(docs/lanes.md) within its timeout and output cap.",
        f"`speedrift drift check --lane {lane} --json` reports no lane error.",
        f"{lane}: {detail.get('error')}",
    )


def _lane_policy(repo: str, where: str, task: str, why: str, detail: Mapping[str, Any]) -> EntryBrief:
    return (
        f"Fix the drift policy of {repo}.",
        f"{where} {detail.get('error')}",
        "`speedrift lanes list` reads the policy without an error.",
        None,
    )


_ENTRY_BRIEFS: dict[str, Callable[[str, str, str, str, Mapping[str, Any]], EntryBrief]] = {
    "missing_repo": _unobservable,
    "snapshot_errors": _unobservable,
    "aging_in_progress": _aging,
    "dead_claims": _aging,
    "stale_open": _stale_open,
    "missing_dependencies": _missing_dependency,
    "failed_blockers": _failed_blockers,
    "repeated_failures": _failed_loopback,
    "secret_leaks": _findings,
    "gate_critical": _findings,
    "gate_high": _findings,
    "gate_failed": _findings,
    "prepare_upstream_packet": _ahead,
    "behind_upstream": _behind,
    "needs_human": _needs_human,
    "awaiting_approval": _awaiting_approval,
    "runtime_paused": _runtime_paused,
    "lane_critical": _lane_finding,
    "lane_error": _lane_finding,
    "lane_warning": _lane_finding,
    "lane_broken": _lane_broken,
    "lane_policy_invalid": _lane_policy,
}
