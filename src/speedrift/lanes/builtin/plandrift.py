"""plandrift: gaps in the plan itself — the task graph's topology — before they become gaps in
the product.

Finding kinds (each about one task: ``subject`` is its id):

* ``missing_intervening_tests`` — an open or in-progress implementation task with no test,
  integration, e2e or verification task anywhere downstream of it (a task after it, or after one
  of those, …);
* ``missing_failure_loopback`` — a failed task that nothing follows up: no unfinished task is
  after it, and no unfinished task names it (a retry or a fix);
* ``dependency_integrity_gap`` — an unfinished task after an id the graph does not have, or after
  an abandoned task (it waits on work that will never be done);
* ``continuation_gap`` — a done task whose description or last log entry says the work continues
  ("part 2 of 3", "to be continued", "next step: …") while no task is after it.

Tasks tagged with any of ``ignore_tags`` (drift's own follow-ups) are neither judged nor counted
as downstream work. Pure: a function of the graph and the settings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

from speedrift.graph.model import (
    ABANDONED,
    DONE,
    FAILED,
    IN_PROGRESS,
    OPEN,
    TERMINAL,
    Task,
    after_of,
    before_of,
    is_system,
    status_of,
    str_list,
)
from speedrift.lanes.context import LaneContext
from speedrift.lanes.model import LaneFinding, LaneScope, Severity
from speedrift.lanes.spec import Lane, LaneOutput

NAME = "plandrift"


class Kind(StrEnum):
    MISSING_INTERVENING_TESTS = "missing_intervening_tests"
    MISSING_FAILURE_LOOPBACK = "missing_failure_loopback"
    DEPENDENCY_INTEGRITY_GAP = "dependency_integrity_gap"
    CONTINUATION_GAP = "continuation_gap"


DEFAULTS: dict[str, Any] = {
    "require_integration_tests": True,  # missing_intervening_tests on
    "require_failure_loopbacks": True,  # missing_failure_loopback on
    "require_continuation_edges": True,  # continuation_gap on
    "ignore_tags": ["drift", "speedrift"],  # tasks with these tags are not judged
}
_WORD = re.compile(r"[a-z0-9]+")
_TEST_WORDS = frozenset(
    {"test", "tests", "testing", "integration", "e2e", "verify", "verification", "validate", "validation"}
)
_NOT_IMPLEMENTATION = _TEST_WORDS | frozenset(
    {"qa", "review", "docs", "doc", "documentation", "drift", "audit", "research", "spike", "design"}
)
_PART = re.compile(r"(?i)\bpart\s+(\d+)\s*(?:of|/)\s*(\d+)\b")
_CONTINUES = re.compile(
    r"(?i)\b(?:to be continued|continued in (?:a |the )?(?:next|follow-up|another|later) (?:task|step|part)"
    r"|continue (?:in|with) (?:a |the )?(?:next|follow-up|another|later) (?:task|step|part)|next steps?\s*:)"
)


def _words(task: Task) -> set[str]:
    title = task.get("title")
    text = title.lower() if isinstance(title, str) else ""
    words = set(_WORD.findall(text))
    for tag in str_list(task, "tags"):
        words.update(_WORD.findall(tag.lower()))
    return words


def is_test_task(task: Task) -> bool:
    return bool(_words(task) & _TEST_WORDS)


def is_implementation(task: Task) -> bool:
    return not (_words(task) & _NOT_IMPLEMENTATION)


def _dependents(tasks: Mapping[str, Task]) -> dict[str, set[str]]:
    """id -> the ids of the tasks after it (from their ``after`` and its own ``before``)."""
    found: dict[str, set[str]] = {task_id: set() for task_id in tasks}
    for task_id, task in tasks.items():
        for earlier in after_of(task):
            found.setdefault(earlier, set()).add(task_id)
        for later in before_of(task):
            if later in tasks:
                found[task_id].add(later)
    return found


def _downstream(start: str, dependents: Mapping[str, set[str]]) -> set[str]:
    seen: set[str] = set()
    stack = list(dependents.get(start, ()))
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.add(current)
            stack.extend(dependents.get(current, ()))
    return seen


def _text(task: Task) -> str:
    """The description and the last log entry: where a task says the work goes on."""
    parts = [task.get("description")]
    log = task.get("log")
    if isinstance(log, list) and log and isinstance(log[-1], dict):
        parts.append(log[-1].get("message"))
    return "\n".join(p for p in parts if isinstance(p, str))


def continuation_said(text: str) -> str | None:
    """What in ``text`` says the work continues elsewhere ("part 1 of 3", "next step:"), or None."""
    for match in _PART.finditer(text):
        if int(match.group(1)) < int(match.group(2)):
            return match.group(0)
    found = _CONTINUES.search(text)
    return found.group(0) if found else None


def run(ctx: LaneContext) -> LaneOutput:
    settings = {**DEFAULTS, **ctx.settings}
    if ctx.graph is None:
        return LaneOutput(findings=[], summary="no task graph")
    ignore = {str(t) for t in settings["ignore_tags"]}
    everything = {i: t for i, t in ctx.graph.tasks.items() if not is_system(i)}
    # ignored tasks are not judged, but a drift follow-up still follows up what it is after
    tasks = {i: t for i, t in everything.items() if not ignore.intersection(str_list(t, "tags"))}
    dependents = _dependents(everything)
    findings: list[LaneFinding] = []
    if settings["require_integration_tests"]:
        findings += _untested(tasks, everything, dependents)
    if settings["require_failure_loopbacks"]:
        findings += _no_loopback(tasks, everything, dependents)
    findings += _integrity(tasks, ctx.graph.tasks)
    if settings["require_continuation_edges"]:
        findings += _continuations(tasks, dependents)
    findings.sort(key=lambda f: (f.kind, f.subject, f.key))
    counts = ", ".join(f"{n} {k}" for k in Kind if (n := sum(f.kind == k for f in findings)))
    return LaneOutput(findings=findings, summary=f"{len(tasks)} task(s) judged: {counts or 'clean'}")


def _finding(
    kind: Kind,
    task_id: str,
    message: str,
    severity: Severity,
    evidence: Iterable[str],
    fix: str,
    key: str = "",
) -> LaneFinding:
    return LaneFinding(
        lane=NAME,
        kind=kind,
        message=message,
        severity=severity,
        tags=("plan", kind.replace("_", "-")),
        subject=task_id,
        key=key,
        evidence=tuple(evidence),
        fix=fix,
    )


def _untested(
    tasks: Mapping[str, Task], everything: Mapping[str, Task], dependents: Mapping[str, set[str]]
) -> list[LaneFinding]:
    findings = []
    for task_id, task in sorted(tasks.items()):
        if status_of(task) not in (OPEN, IN_PROGRESS) or not is_implementation(task):
            continue
        downstream = _downstream(task_id, dependents)
        if any(is_test_task(everything[d]) for d in downstream if d in everything):
            continue
        findings.append(
            _finding(
                Kind.MISSING_INTERVENING_TESTS,
                task_id,
                f"implementation task {task_id} has no test, integration or verification task after it",
                Severity.WARNING,
                [f"{len(downstream)} task(s) downstream of {task_id}, none about tests or verification"],
                f"Add a task after {task_id} that tests its result (integration or e2e where it meets "
                "other work), so the plan verifies what it builds.",
            )
        )
    return findings


def _mentions(task: Task, task_id: str) -> bool:
    pattern = re.compile(rf"(?<![\w.-]){re.escape(task_id)}(?![\w-])")
    return any(
        isinstance(task.get(field), str) and pattern.search(task[field]) for field in ("title", "description")
    )


def _no_loopback(
    tasks: Mapping[str, Task], everything: Mapping[str, Task], dependents: Mapping[str, set[str]]
) -> list[LaneFinding]:
    unfinished = {i: t for i, t in everything.items() if status_of(t) not in TERMINAL}
    findings = []
    for task_id, task in sorted(tasks.items()):
        if status_of(task) != FAILED:
            continue
        if any(d in unfinished for d in dependents.get(task_id, ())):
            continue
        if any(_mentions(other, task_id) for other_id, other in unfinished.items() if other_id != task_id):
            continue
        findings.append(
            _finding(
                Kind.MISSING_FAILURE_LOOPBACK,
                task_id,
                f"task {task_id} failed and nothing follows it up (no unfinished task after it or naming it)",
                Severity.WARNING,
                [
                    f"{task_id} is failed",
                    f"{len(dependents.get(task_id, ()))} task(s) after it, none unfinished",
                ],
                f"Decide what happens to {task_id}: retry it, add a fix task after it that names it, or "
                "abandon it with the reason.",
            )
        )
    return findings


def _integrity(tasks: Mapping[str, Task], everything: Mapping[str, Task]) -> list[LaneFinding]:
    findings = []
    for task_id, task in sorted(tasks.items()):
        if status_of(task) in TERMINAL:
            continue
        for earlier in after_of(task):
            if earlier not in everything:
                findings.append(
                    _finding(
                        Kind.DEPENDENCY_INTEGRITY_GAP,
                        task_id,
                        f"task {task_id} is after {earlier}, which is not in the graph",
                        Severity.ERROR,
                        [f"{task_id}.after names {earlier}", f"no task {earlier} exists"],
                        f"Fix {task_id}'s dependencies: point it at the task that replaced {earlier}, or "
                        "remove the edge.",
                        key=earlier,
                    )
                )
            elif status_of(everything[earlier]) == ABANDONED:
                findings.append(
                    _finding(
                        Kind.DEPENDENCY_INTEGRITY_GAP,
                        task_id,
                        f"task {task_id} is {status_of(task)} but waits on {earlier}, which was abandoned",
                        Severity.WARNING,
                        [f"{task_id}.after names {earlier}", f"{earlier} is abandoned"],
                        f"Re-plan {task_id}: drop the edge to {earlier} if that work is not needed, or "
                        "add a task that does it instead and depend on that.",
                        key=earlier,
                    )
                )
    return findings


def _continuations(tasks: Mapping[str, Task], dependents: Mapping[str, set[str]]) -> list[LaneFinding]:
    findings = []
    for task_id, task in sorted(tasks.items()):
        if status_of(task) != DONE or dependents.get(task_id):
            continue
        said = continuation_said(_text(task))
        if said is None:
            continue
        findings.append(
            _finding(
                Kind.CONTINUATION_GAP,
                task_id,
                f"task {task_id} is done and says the work continues ({said!r}), but no task is after it",
                Severity.WARNING,
                [f"{task_id} says {said!r}", "no task has it in after"],
                f"Add the next task (the continuation {task_id} announces) with after = [{task_id!r}], or "
                "reword the task if the work is finished.",
            )
        )
    return findings


LANE = Lane(
    name=NAME,
    scope=LaneScope.GRAPH,
    summary="plan gaps: untested implementation, failures without follow-up, broken edges, loose ends",
    run=run,
    defaults=DEFAULTS,
    fence=None,
)
