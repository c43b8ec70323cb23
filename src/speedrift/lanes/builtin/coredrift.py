"""coredrift: does a task's change keep to its ```` ```wg-contract ```` ````?

The contract (TOML in the task description) declares ``schema`` (1), ``mode`` (core | harden |
perf | explore; core when absent), ``objective``, ``non_goals``, ``touch`` (the globs the task may
change), ``acceptance``, ``auto_followups`` and the budgets ``max_files``, ``max_loc`` and
``pit_stop_after`` (which, with ``hardening_keywords`` and ``dependency_files``, are also the
lane's settings: the policy's ``[coredrift]`` table sets them for every task, a contract for its
own task). Findings on the task's base..tip range: ``missing_contract``, ``invalid_contract``,
``scope_drift`` (one per file outside ``touch``), ``dependency_drift`` (one per manifest or lock
file changed though ``touch`` does not name it), ``churn_files``, ``churn_loc`` and, in core mode,
``hardening_in_core`` (one per file whose added lines bring fallbacks, retries, timeouts or broad
exception handlers). After ``pit_stop_after`` consecutive runs with actionable findings for one
task, ``pit_stop``.

Invariant: without a task nothing is judged; ``touch`` globs mean what the scope gate's mean
(:mod:`speedrift.gates.globs`); the pit-stop streak lives in ``<state_dir>/state.json``, one entry
per task holding the range it last counted, so judging the same range again never counts twice.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Any

from speedrift.gates.globs import matches, matches_any
from speedrift.lanes.builtin._diffcommon import config, config_findings, no_range, shown, update_state
from speedrift.lanes.context import LaneContext, RepoView
from speedrift.lanes.model import LaneFinding, LaneScope, Severity
from speedrift.lanes.spec import Lane, LaneOutput

NAME = "coredrift"


class Mode(StrEnum):
    CORE = "core"
    HARDEN = "harden"
    PERF = "perf"
    EXPLORE = "explore"


DEFAULTS: dict[str, Any] = {
    "max_files": 25,
    "max_loc": 800,
    "pit_stop_after": 3,  # 0: never call a pit stop
    "hardening_keywords": [
        "fallback",
        "retry",
        "backoff",
        "timeout",
        "graceful",
        "guardrail",
        "defensive",
        "best effort",
        "silently",
        "swallow",
    ],
    # a name (matched against the file name) or a path glob (when it holds a "/")
    "dependency_files": [
        "package.json",
        "package-lock.json",
        "pnpm-lock.yaml",
        "yarn.lock",
        "bun.lock",
        "bun.lockb",
        "Cargo.toml",
        "Cargo.lock",
        "go.mod",
        "go.sum",
        "requirements*.txt",
        "requirements*.in",
        "pyproject.toml",
        "uv.lock",
        "poetry.lock",
        "pdm.lock",
        "pylock.toml",
        "Pipfile",
        "Pipfile.lock",
        "Gemfile",
        "Gemfile.lock",
        "composer.json",
        "composer.lock",
    ],
}
FENCE_KEYS = {
    "mode": "str",
    "objective": "str",
    "non_goals": "list[str]",
    "touch": "list[str]",
    "acceptance": "list[str]",
    "auto_followups": "bool",
}
_BROAD_EXCEPT = re.compile(r"\bexcept\s*(?::|\(?\s*(?:Exception|BaseException)\b)")


def run(ctx: LaneContext) -> LaneOutput:
    if ctx.task is None:
        return LaneOutput([], "no task: coredrift judges a task's change against its wg-contract")
    cfg = config(ctx, LANE, FENCE_KEYS)
    mode = cfg.extra.get("mode", Mode.CORE.value)
    if mode not in set(Mode):
        modes = ", ".join(m.value for m in Mode)
        cfg = dataclasses.replace(cfg, problems=(*cfg.problems, f"mode: {mode!r} is not one of {modes}"))
    if cfg.schema != 1 and cfg.fenced:
        cfg = dataclasses.replace(cfg, problems=(*cfg.problems, f"schema: {cfg.schema!r}; only 1 is read"))
    findings: list[LaneFinding] = []
    why = no_range(ctx.view)
    if not cfg.fenced:
        findings.append(_missing(ctx))
    elif not cfg.usable:
        findings += config_findings(ctx, LANE, cfg, "invalid_contract")
    elif why is None:
        findings += _judge(ctx, cfg.settings, cfg.extra, Mode(mode))
    findings += _pit_stop(ctx, cfg.settings["pit_stop_after"], findings)
    summary = why if why is not None and not findings else ""
    return LaneOutput(findings, summary)


def _missing(ctx: LaneContext) -> LaneFinding:
    return LaneFinding(
        lane=NAME,
        kind="missing_contract",
        message=f"task {ctx.task_id} has no ```wg-contract``` block: nothing bounds its scope",
        severity=Severity.WARNING,
        subject=ctx.task_id,
        fix=(
            'add a ```wg-contract``` block to the task description: schema = 1, mode = "core",'
            " objective, touch = [globs it may change], max_files, max_loc"
        ),
    )


def _is_dependency_file(path: str, names: list[str]) -> bool:
    base = PurePosixPath(path).name
    return any(matches(path, n) if "/" in n else matches(base, n) for n in names)


def _judge(
    ctx: LaneContext, settings: dict[str, Any], contract: dict[str, Any], mode: Mode
) -> list[LaneFinding]:
    task = ctx.task_id
    paths = [c.path for c in ctx.view.changes()]
    touch: list[str] = contract.get("touch", [])
    objective = contract.get("objective", "")
    goal = (f"objective: {objective}",) if objective else ()
    findings: list[LaneFinding] = []
    deps = [
        p for p in paths if _is_dependency_file(p, settings["dependency_files"]) and not matches_any(p, touch)
    ]
    for path in deps:
        findings.append(
            LaneFinding(
                lane=NAME,
                kind="dependency_drift",
                message=f"task {task} changed the dependency file {path}, which its contract does not touch",
                file=path,
                subject=task,
                key=path,
                evidence=(f"{path} is a manifest or lock file", f"touch: {touch}"),
                fix=f"revert {path} unless the dependency change is intended; then add it to touch",
            )
        )
    if touch:
        for path in [p for p in paths if p not in deps and not matches_any(p, touch)]:
            findings.append(
                LaneFinding(
                    lane=NAME,
                    kind="scope_drift",
                    message=f"task {task} changed {path}, outside its contract's touch globs",
                    file=path,
                    subject=task,
                    key=path,
                    evidence=(f"touch: {touch}", *goal),
                    fix=f"revert the change to {path}, or widen touch if the task really needs it",
                )
            )
    limit_files, limit_loc = settings["max_files"], settings["max_loc"]
    if len(paths) > limit_files:
        findings.append(
            LaneFinding(
                lane=NAME,
                kind="churn_files",
                message=f"task {task} changed {len(paths)} files (max_files = {limit_files})",
                subject=task,
                evidence=(f"changed: {shown(paths)}",),
                fix="split the task, or raise max_files in its contract if the size is intended",
            )
        )
    loc = sum(s.added + s.deleted for s in ctx.view.numstat().values())
    if loc > limit_loc:
        findings.append(
            LaneFinding(
                lane=NAME,
                kind="churn_loc",
                message=f"task {task} changed {loc} lines (max_loc = {limit_loc})",
                subject=task,
                evidence=(f"{loc} lines added and deleted in {len(paths)} files",),
                fix="split the task, or raise max_loc in its contract if the size is intended",
            )
        )
    if mode is Mode.CORE:
        findings += _hardening(ctx, settings["hardening_keywords"], settings["dependency_files"])
    return findings


def _hardening(ctx: LaneContext, keywords: list[str], dependency_files: list[str]) -> list[LaneFinding]:
    needles = [k.lower() for k in keywords if k.strip()]
    findings: list[LaneFinding] = []
    for path, lines in sorted(ctx.view.added_lines().items()):
        if _is_dependency_file(path, dependency_files):
            continue  # a lock's package names (p-retry, backoff) are not code
        hits: list[tuple[int, str]] = []
        for number, text in lines:
            lower = text.lower()
            signals = [n for n in needles if n in lower]
            if _BROAD_EXCEPT.search(text):
                signals.append("broad exception handler")
            hits += [(number, s) for s in signals]
        if not hits:
            continue
        kinds = sorted({s for _n, s in hits})
        findings.append(
            LaneFinding(
                lane=NAME,
                kind="hardening_in_core",
                message=f"task {ctx.task_id} is in core mode but {path} adds hardening: {', '.join(kinds)}",
                file=path,
                line=hits[0][0],
                subject=ctx.task_id,
                key=path,
                evidence=tuple(f"line {n}: {s}" for n, s in hits[:8]),
                fix=(
                    f"ship the planned behaviour first: move the fallbacks, retries and broad handlers in"
                    f" {path}"
                    " to a follow-up task in harden mode"
                ),
            )
        )
    return findings


def _range_id(view: RepoView) -> str:
    if view.tip is not None:
        return f"{view.base}..{view.tip}"
    stats = sorted((p, s.added, s.deleted) for p, s in view.numstat().items())
    digest = hashlib.sha256(repr(stats).encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return f"{view.base}..worktree:{digest}"


def _pit_stop(ctx: LaneContext, after: int, findings: list[LaneFinding]) -> list[LaneFinding]:
    if ctx.state_dir is None or after <= 0:
        return []
    warned = any(f.actionable for f in findings)
    point = _range_id(ctx.view)
    task = ctx.task_id

    def count(state: dict[str, Any]) -> bool:
        tasks = state.get("tasks")
        if not isinstance(tasks, dict):
            tasks = state["tasks"] = {}
        entry = tasks.get(task)
        streak = entry.get("streak", 0) if isinstance(entry, dict) else 0
        streak = streak if isinstance(streak, int) and not isinstance(streak, bool) else 0
        if isinstance(entry, dict) and entry.get("range") == point:
            if warned or streak == 0:
                return False  # the same range judged again: it counted already
            streak = 0
        else:
            streak = streak + 1 if warned else 0
        tasks[task] = {"range": point, "streak": streak}
        return True

    state = update_state(ctx.state_dir, count)
    streak = state["tasks"][task]["streak"]
    if streak < after:
        return []
    return [
        LaneFinding(
            lane=NAME,
            kind="pit_stop",
            message=(
                f"task {task} has drifted in {streak} consecutive runs (pit_stop_after = {after}):"
                " stop and re-plan"
            ),
            severity=Severity.ERROR,
            subject=task,
            evidence=(f"{streak} consecutive runs with warnings", f"last range: {point}"),
            fix=(
                f"pause {task}: re-read its objective, revert what drifted, then narrow its contract"
                " (touch, max_files, max_loc) or split it before continuing"
            ),
        )
    ]


LANE = Lane(
    name=NAME,
    scope=LaneScope.DIFF,
    summary="a task's change against its wg-contract: scope, dependencies, churn, hardening in core mode",
    run=run,
    defaults=DEFAULTS,
    fence="wg-contract",
)
