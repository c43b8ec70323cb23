"""What the drift lanes say about a repo: the policy's lanes and schedule, and each lane's newest
result from ``.speedrift/lanes/latest.json`` (written by ``speedrift drift check``).

Read-only, and cheap: one small JSON file, the policy file, and the target branch's tip read from
its ref file. A policy that cannot be read is reported (``policy_error``, naming file:line, key
and fix), never raised: the repo is still observed. Only actionable findings (warning, error,
critical) count; each carries the id of the follow-up task the lane guard makes for it.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from speedrift.control.observe.git import GitDirs, head_ref
from speedrift.errors import SpeedriftError
from speedrift.fleet.config import CONFIG_FILE, ConfigError, load_config
from speedrift.lanes import policy as lane_policy
from speedrift.lanes.builtin import BUILTIN
from speedrift.lanes.guard import followup_id
from speedrift.lanes.model import SEVERITY_RANK, LaneFinding, Severity, finding_from_json
from speedrift.lanes.runner import read_report
from speedrift.register.record import LaneBrief, LaneRun, LaneStats
from speedrift.repo import git
from speedrift.times import parse_time

MAX_BRIEFS = 20


def lanes_state(repo: Path, dirs: GitDirs) -> LaneStats:
    try:
        policy = lane_policy.load(repo, BUILTIN)
    except SpeedriftError as exc:
        return LaneStats(policy_error=str(exc))
    target = _target(repo, dirs)
    # from the ref files only ("" when only git could tell: no run is planned on a guess)
    tip = (git.ref_from_files(dirs.common_dir, f"refs/heads/{target}") or None) if target else None
    report = read_report(repo) or {}
    stored = report.get("lanes")
    results = {
        lane["lane"]: lane
        for lane in (stored if isinstance(stored, list) else [])
        if isinstance(lane, dict) and isinstance(lane.get("lane"), str)
    }
    runs: list[LaneRun] = []
    findings: list[LaneFinding] = []
    for name in policy.order:
        result = results.get(name)
        cron = policy.lane(name).cron
        if result is None:
            runs.append(LaneRun(name, None, cron))
            continue
        error = result.get("error")
        score = result.get("score")
        head = result.get("head")
        runs.append(
            LaneRun(
                name,
                parse_time(result.get("checked_at")),
                cron,
                error if isinstance(error, str) else None,
                score if isinstance(score, int) and not isinstance(score, bool) else None,
                head if isinstance(head, str) else None,
            )
        )
        findings += _findings(name, result)
    actionable = sorted(
        (f for f in findings if f.actionable),
        key=lambda f: (-SEVERITY_RANK[f.severity], f.lane, f.fingerprint),
    )
    counts = {severity: sum(1 for f in actionable if f.severity is severity) for severity in Severity}
    return LaneStats(
        enabled=policy.order,
        triggers=tuple(t.value for t in policy.triggers),
        target=target,
        target_tip=tip,
        head=report.get("head") if isinstance(report.get("head"), str) else None,
        checked_at=parse_time(report.get("checked_at")),
        runs=tuple(runs),
        critical=counts[Severity.CRITICAL],
        error=counts[Severity.ERROR],
        warning=counts[Severity.WARNING],
        findings=tuple(_brief(f) for f in actionable[:MAX_BRIEFS]),
    )


def _target(repo: Path, dirs: GitDirs) -> str | None:
    """The branch the lanes judge, read from files only (no git process: the observer runs git
    only when the repo changed): the configured target, else origin's HEAD, else the checked-out
    branch — as the hub's handlers resolve it (control/authority.py ``target_branch``)."""
    configured = None
    if os.path.exists(os.path.join(repo, CONFIG_FILE)):  # most repos have none: no default model built
        with contextlib.suppress(ConfigError):  # the worker refuses a broken config; lanes judge git's
            configured = load_config(repo).target_branch
    if configured:
        return configured
    try:
        origin = (dirs.common_dir / "refs" / "remotes" / "origin" / "HEAD").read_text("utf-8").strip()
    except OSError:
        origin = ""
    if origin.startswith("ref: refs/remotes/origin/"):
        return origin.removeprefix("ref: refs/remotes/origin/")
    ref = head_ref(dirs)
    return ref.removeprefix("refs/heads/") if ref and ref.startswith("refs/heads/") else None


def _findings(name: str, result: dict[str, Any]) -> list[LaneFinding]:
    raw = result.get("findings")
    found: list[LaneFinding] = []
    for index, item in enumerate(raw if isinstance(raw, list) else []):
        try:
            found.append(finding_from_json(name, item, index))
        except ValueError:
            continue  # a damaged stored finding is not shown; the next check rewrites the file
    return found


def _brief(finding: LaneFinding) -> LaneBrief:
    return LaneBrief(
        lane=finding.lane,
        kind=finding.kind,
        severity=str(finding.severity),
        message=finding.message,
        file=finding.file,
        line=finding.line,
        fingerprint=finding.fingerprint,
        fix=finding.fix,
        followup=followup_id(finding),
    )
