"""specdrift: code changed while the spec that describes it did not.

A task's ```` ```specdrift ```` block (or the policy's ``[specdrift]`` table, for every range)
names the spec files (``spec`` globs), what to leave out (``ignore`` globs) and whether a code
change requires a spec change (``require_spec_update_when_code_changes``, true). When the range
changes a file outside ``spec`` and ``ignore`` but no file matching ``spec``: ``spec_not_updated``.
A block that cannot be read: ``invalid_spec_config``; a ``schema`` other than 1:
``unsupported_schema``.

Invariant: with no ``spec`` globs anywhere the lane judges nothing (a task's block without them is
``invalid_spec_config``): specdrift never guesses which files are specs.
"""

from __future__ import annotations

from typing import Any

from speedrift.lanes.builtin._diffcommon import (
    changed_paths,
    config,
    config_findings,
    matching,
    no_range,
    shown,
)
from speedrift.lanes.context import LaneContext
from speedrift.lanes.model import LaneFinding, LaneScope, Severity
from speedrift.lanes.spec import Lane, LaneOutput

NAME = "specdrift"
DEFAULTS: dict[str, Any] = {
    "spec": [],  # globs of the spec files, e.g. ["docs/spec/**", "SPEC.md"]
    "require_spec_update_when_code_changes": True,
    "ignore": [],  # globs of changed files that are neither code nor spec (changelogs, lock files…)
}


def run(ctx: LaneContext) -> LaneOutput:
    cfg = config(ctx, LANE)
    if cfg.fenced and not cfg.usable:
        return LaneOutput(config_findings(ctx, LANE, cfg, "invalid_spec_config"))
    spec: list[str] = cfg.settings["spec"]
    if not spec:
        if cfg.fenced:
            return LaneOutput([_no_spec(ctx)])
        return LaneOutput([], "no spec globs (task block or [specdrift] policy): nothing to judge")
    why = no_range(ctx.view)
    if why is not None:
        return LaneOutput([], why)
    if not cfg.settings["require_spec_update_when_code_changes"]:
        return LaneOutput([], "require_spec_update_when_code_changes = false: nothing to judge")
    paths = changed_paths(ctx.view, cfg.settings["ignore"])
    specs = matching(paths, spec)
    code = [p for p in paths if p not in specs]
    if not code or specs:
        return LaneOutput([], f"{len(code)} code file(s) and {len(specs)} spec file(s) changed")
    who = f"task {ctx.task_id}" if ctx.task_id else "the range"
    finding = LaneFinding(
        lane=NAME,
        kind="spec_not_updated",
        message=f"{who} changed {len(code)} code file(s) but none of the spec files ({', '.join(spec)})",
        severity=Severity.WARNING,
        subject=ctx.task_id,
        evidence=(f"code changed: {shown(code)}", f"spec globs: {spec}"),
        fix=(
            "update the spec to describe the changed behaviour (files matching "
            f"{', '.join(spec)}), or add files that are not code to ignore"
        ),
    )
    return LaneOutput([finding])


def _no_spec(ctx: LaneContext) -> LaneFinding:
    return LaneFinding(
        lane=NAME,
        kind="invalid_spec_config",
        message=f"task {ctx.task_id}: the ```specdrift``` block names no spec files",
        severity=Severity.ERROR,
        subject=ctx.task_id,
        evidence=("spec: []",),
        fix='add spec = ["<glob of the spec files>"] to the ```specdrift``` block',
    )


LANE = Lane(
    name=NAME,
    scope=LaneScope.DIFF,
    summary="code changed without the declared spec files",
    run=run,
    defaults=DEFAULTS,
    fence=NAME,
)
