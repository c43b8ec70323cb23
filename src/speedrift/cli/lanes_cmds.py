"""`speedrift drift check` and `speedrift lanes list`: the drift lanes by hand.

``drift check`` runs the repo's policy lanes (:func:`speedrift.lanes.runner.check`: each lane's
line goes to stderr as it finishes), saves the report, and hands it to the guard
(:func:`speedrift.lanes.guard.apply`), which logs findings to the task (``--write-log``) and
creates, dedups, caps and resolves follow-up tasks (``--create-followups``) as each lane's mode
allows. It prints every lane's line, the findings grouped by lane with their fix, and what the
guard did; ``--json`` prints ``{"report": …, "guard": […]}``. Exit codes are the lane SDK's:
0 clean, 3 findings (advisory — actionable or not), 2 a lane could not judge or a usage error
(a bad ``drift-policy.toml`` names its file, line, key and fix).

``lanes list`` shows every lane the policy runs, in its order, then the built-in lanes it does not
run (not enabled), each with its scope, kind (built-in, or external and its command), mode, fence,
cron, whether it blocks landing, and its settings with their values and defaults.

The repository is ``--repo``'s; else the graph's (``--dir``, ``$WG_DIR`` or found upward); else the
git repository around the working directory.
"""

from __future__ import annotations

import dataclasses
import sys
from argparse import Namespace
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from speedrift.cli.output import emit_json, printable, say, table
from speedrift.errors import NotFound, UsageError
from speedrift.gitcmd import GitError

if TYPE_CHECKING:
    from speedrift.lanes.guard import GuardOutcome
    from speedrift.lanes.model import CheckReport, LaneFinding, LaneResult
    from speedrift.lanes.policy import DriftPolicy
    from speedrift.lanes.spec import Lane

MAX_FINDINGS_SHOWN = 100  # --json always has them all


def lane_repo(args: Namespace) -> Path:
    """The repository the lane commands act on (see the module docstring)."""
    from speedrift.repo.git import toplevel

    explicit = getattr(args, "repo", None)
    if explicit:
        start = Path(explicit).expanduser()
        if not start.is_dir():
            raise UsageError(
                f"--repo {explicit}: no such directory", hint="pass --repo PATH of a git repository"
            )
        top = toplevel(start)
        if top is None:
            raise UsageError(
                f"--repo {explicit} is not inside a git repository",
                hint="pass --repo PATH of a git repository",
            )
        return top
    from speedrift.cli.plan_cmds import plan_repo

    repo = plan_repo(args)
    if toplevel(repo) is None:
        raise NotFound(
            f"{repo} is not inside a git repository", hint="run it in a repository, or pass --repo PATH"
        )
    return repo


# --- drift check -------------------------------------------------------------------------------


def drift_check(args: Namespace) -> int:
    from speedrift.fleet.config import load_config
    from speedrift.fleet.lanegate import containment_of
    from speedrift.lanes import guard, runner
    from speedrift.lanes.builtin import BUILTIN
    from speedrift.lanes.policy import load
    from speedrift.times import now_utc

    repo = lane_repo(args)
    if args.tip and not args.base:
        raise UsageError("--tip needs --base (the range's start)", hint="e.g. --base main --tip my-branch")
    policy = load(repo, BUILTIN)  # a PolicyError (exit 2) names the file, line, key and fix
    containment = containment_of(load_config(repo))  # external lanes run as the repo's agents do
    request = runner.CheckRequest(
        task_id=args.task,
        lanes=tuple(args.lane) if args.lane else None,
        base=args.base,
        tip=args.tip,
        head=args.head,
    )
    now = now_utc()
    try:
        report = runner.check(
            repo,
            now=now,
            request=request,
            policy=policy,
            progress=None if args.as_json else _progress,
            use_cache=not args.no_cache,
            containment=containment,
        )
    except (NotFound, GitError) as exc:  # an unknown task or revision: the command line is wrong
        raise UsageError(exc.message, hint=exc.hint) from None
    outcomes = guard.apply(
        repo,
        report,
        policy,
        now=now,
        write_log=args.write_log,
        create=args.create_followups,
        scopes=runner.scopes(repo, policy, BUILTIN),
    )
    if not args.as_json and sys.stderr.isatty():
        sys.stderr.write("\r\x1b[K")  # the status line gives way to the report
    if args.as_json:
        emit_json({"report": report.to_json(), "guard": [o.to_json() for o in outcomes]})
    else:
        _show(report, outcomes)
    return int(report.exit_code)


def lane_line(result: LaneResult) -> str:
    """``name  summary  1.23s (cached)``: one lane's result on one line."""
    from speedrift.lanes.model import summary_of

    summary = (result.summary or summary_of(result.findings, result.error, result.skipped)).split("\n")[0]
    cached = " (cached)" if result.cached else ""
    return f"{printable(result.lane):14} {printable(summary)}  {result.duration_ms / 1000:.2f}s{cached}"


def _progress(result: LaneResult) -> None:
    """Each lane as it finishes: on a terminal one status line (the report on stdout, which lists
    every lane, replaces it), in a log one line per lane."""
    if sys.stderr.isatty():
        sys.stderr.write(f"\r\x1b[Kspeedrift: lane {lane_line(result)[:150]}")
    else:
        sys.stderr.write(f"speedrift: lane {lane_line(result)}\n")
    sys.stderr.flush()


def finding_lines(finding: LaneFinding) -> list[str]:
    """``severity file:line kind: message`` and, indented below, the fix."""
    where = finding.file or "(repo)"
    if finding.file and finding.line:
        where = f"{finding.file}:{finding.line}"
    subject = f" [{finding.subject}]" if finding.subject else ""
    lines = [
        f"  {finding.severity.value:8} {printable(where)} {printable(finding.kind)}{printable(subject)}: "
        f"{printable(finding.message)}"
    ]
    if finding.fix:
        lines.append(f"      fix: {printable(finding.fix)}")
    return lines


def _show(report: CheckReport, outcomes: Sequence[GuardOutcome]) -> None:
    what = f"task {printable(report.task)}, " if report.task else ""
    scope = f"changes since {report.base[:12]}" if report.base else "no diff range"
    say(f"Drift check of {printable(report.repo)} at {report.head[:12]} ({what}{scope})")
    for result in report.results:
        say(f"  {lane_line(result)}")
        for more in (result.error or "").split("\n")[1:]:  # a lane error's fix, below its line
            say(f"      {printable(more.strip())}")
    shown = 0
    total = len(report.findings)
    for result in report.results:
        if not result.findings:
            continue
        say(f"{printable(result.lane)}:")
        for finding in result.findings:
            if shown >= MAX_FINDINGS_SHOWN:
                break
            for line in finding_lines(finding):
                say(line)
            shown += 1
    if total > shown:
        say(f"  … {total - shown} more finding(s); --json has them all")
    _show_guard(outcomes)


def _show_guard(outcomes: Sequence[GuardOutcome]) -> None:
    from speedrift.lanes.guard import GuardStatus

    if not outcomes:
        return
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.status.value] = counts.get(outcome.status.value, 0) + 1
    say("guard: " + ", ".join(f"{n} {status}" for status, n in counts.items()))
    for outcome in outcomes:
        if outcome.status is GuardStatus.OBSERVED:  # recorded only: the findings above say it all
            continue
        task = f" {printable(outcome.task_id)}" if outcome.task_id else ""
        detail = f" — {printable(outcome.detail)}" if outcome.detail else ""
        say(f"  {outcome.status.value:9}{task} ({printable(outcome.lane)} {printable(outcome.kind)}){detail}")


# --- lanes list --------------------------------------------------------------------------------


def lanes_list(args: Namespace) -> int:
    from speedrift.lanes import runner
    from speedrift.lanes.builtin import BUILTIN
    from speedrift.lanes.policy import load

    repo = lane_repo(args)
    policy = load(repo, BUILTIN)
    running = runner.lanes_of(repo, policy, BUILTIN)
    rows = [describe(name, lane, policy) for name, lane in running.items()]
    rows += [describe(name, lane, None) for name, lane in BUILTIN.items() if name not in running]
    if args.as_json:
        emit_json(
            {
                "repo": str(repo),
                "policy": str(policy.path) if policy.path is not None else None,
                "mode": policy.mode.value,
                "order": list(policy.order),
                "blocking": list(policy.blocking),
                "triggers": [t.value for t in policy.triggers],
                "guard": dataclasses.asdict(policy.guard),
                "lanes": rows,
            },
        )
        return 0
    source = str(policy.path) if policy.path is not None else "no drift-policy.toml: the defaults"
    table(
        f"Drift lanes of {repo} ({source})",
        ["lane", "scope", "kind", "mode", "fence", "cron", "blocking", "settings"],
        [
            (
                row["name"],
                row["scope"],
                ("external: " + " ".join(row["command"])) if row["external"] else "built-in",
                row["mode"] if row["enabled"] else "not enabled",
                row["fence"] or "",
                row["cron"] or "",
                "yes" if row["blocking"] else "",
                _settings_cell(row["settings"]),
            )
            for row in rows
        ],
    )
    return 0


def describe(name: str, lane: Lane, policy: DriftPolicy | None) -> dict[str, Any]:
    """One lane for ``lanes list``: ``policy`` None for a built-in lane the policy does not run."""
    lane_policy = policy.lane(name) if policy is not None else None
    values: Mapping[str, Any] = lane_policy.settings if lane_policy is not None else lane.defaults
    settings = {
        key: {"value": values.get(key, default), "default": default} for key, default in lane.defaults.items()
    }
    for key, value in values.items():  # an external lane's settings are whatever its table gives
        settings.setdefault(key, {"value": value, "default": None})
    row: dict[str, Any] = {
        "name": name,
        "enabled": lane_policy is not None,
        "summary": lane.summary,
        "scope": lane.scope.value,
        "external": lane.external,
        "command": list(lane_policy.command) if lane_policy is not None and lane_policy.command else None,
        "mode": lane_policy.mode.value if lane_policy is not None else None,
        "fence": lane.fence,
        "cron": lane_policy.cron if lane_policy is not None else None,
        "blocking": policy is not None and name in policy.blocking,
        "volatile": lane.volatile,
        "settings": settings,
    }
    if lane_policy is not None and lane_policy.command:
        row["timeout_s"] = lane_policy.timeout_s
        row["max_output_bytes"] = lane_policy.max_output_bytes
    return row


def _settings_cell(settings: Mapping[str, Mapping[str, Any]]) -> str:
    parts = []
    for key, pair in settings.items():
        value, default = pair["value"], pair["default"]
        shown = f"{key}={value!r}"
        if default is not None and value != default:
            shown += f" (default {default!r})"
        parts.append(shown)
    return "; ".join(parts)
