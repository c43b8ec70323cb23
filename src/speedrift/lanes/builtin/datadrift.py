"""datadrift: the data model changed while no migration or schema file did.

Two rules, one finding kind (``schema_not_updated``):

- a task with a ```` ```datadrift ```` block: when the range changes a file outside
  ``migrations``, ``schema_files`` and ``ignore`` but none inside ``migrations`` or
  ``schema_files`` (the original's rule: the task declared its change must move the schema);
- any range (no block needed): when it changes a model file (``model_globs``: Django/SQLAlchemy
  ``models.py``, ``models/*.py``, Prisma schemas) in a way that touches the schema — a field, a
  column, a table, a model class, not just a method — and no migration or schema file, in a repo
  that keeps migrations at all (some file matches ``migrations`` or ``schema_files``).

``require_schema_update_when_code_changes`` = false turns both off. A block that cannot be read:
``invalid_data_config``; a ``schema`` other than 1: ``unsupported_schema``.

Invariant: a model file's change counts only when its schema lines differ between base and tip,
so refactoring a model's methods is never a finding.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from speedrift.lanes.builtin._diffcommon import (
    at_tip,
    changed_paths,
    config,
    config_findings,
    matching,
    no_range,
    shown,
    versions,
)
from speedrift.lanes.context import LaneContext
from speedrift.lanes.model import LaneFinding, LaneScope, Severity
from speedrift.lanes.spec import Lane, LaneOutput

NAME = "datadrift"
DEFAULTS: dict[str, Any] = {
    "migrations": ["**/migrations/**", "**/alembic/versions/**", "**/*.sql", "db/schema.*"],
    "schema_files": [],
    "model_globs": ["**/models.py", "**/models/*.py", "**/*.prisma"],
    "require_schema_update_when_code_changes": True,
    "ignore": [],
}
_FIELD_CALL = (
    r"(?:[\w.]+\.)?(?:Column|mapped_column|relationship|ForeignKey|Field|Table|Index|UniqueConstraint)"
)
_SCHEMA_LINE = re.compile(
    r"^\s*(?:class\s+\w+\s*[(:]"
    r"|__tablename__|__table_args__"
    r"|(?:db_table|unique_together|index_together|indexes|constraints|ordering)\s*="
    rf"|\w+\s*(?::[^=]*)?=\s*(?:models\.\w+|{_FIELD_CALL})\s*\("
    r"|\w+\s*:\s*Mapped\[)"
)


def run(ctx: LaneContext) -> LaneOutput:
    cfg = config(ctx, LANE)
    if cfg.fenced and not cfg.usable:
        return LaneOutput(config_findings(ctx, LANE, cfg, "invalid_data_config"))
    settings = cfg.settings
    schema_globs = [*settings["migrations"], *settings["schema_files"]]
    if not schema_globs:
        if cfg.fenced:
            return LaneOutput([_no_globs(ctx)])
        return LaneOutput([], "no migration or schema globs: nothing to judge")
    why = no_range(ctx.view)
    if why is not None:
        return LaneOutput([], why)
    if not settings["require_schema_update_when_code_changes"]:
        return LaneOutput([], "require_schema_update_when_code_changes = false: nothing to judge")
    paths = changed_paths(ctx.view, settings["ignore"])
    moved = matching(paths, schema_globs)
    if moved:
        return LaneOutput([], f"{len(moved)} migration or schema file(s) changed")
    if cfg.fenced:
        code = paths
        rule = "its ```datadrift``` block asks for a schema change with every code change"
    else:
        code = _model_changes(ctx, matching(paths, settings["model_globs"]))
        rule = "the model's fields or tables changed"
        if code and not matching(sorted(at_tip(ctx.view)), schema_globs):
            return LaneOutput([], "the repo keeps no migration or schema files: nothing to judge")
    if not code:
        return LaneOutput([], "no schema-relevant change")
    who = f"task {ctx.task_id}" if ctx.task_id else "the range"
    finding = LaneFinding(
        lane=NAME,
        kind="schema_not_updated",
        message=f"{who} changed {shown(code, 3)} but no migration or schema file",
        severity=Severity.WARNING,
        subject=ctx.task_id,
        evidence=(rule, f"changed: {shown(code)}", f"migration and schema globs: {schema_globs}"),
        fix=(
            "add the migration for this model change (e.g. `manage.py makemigrations`, "
            "`alembic revision --autogenerate`, `prisma migrate dev`) or update the schema file"
        ),
    )
    return LaneOutput([finding])


def _schema_lines(data: bytes | None, path: str) -> Counter[str]:
    text = (data or b"").decode("utf-8", "replace")
    if path.endswith(".py"):
        return Counter(line.strip() for line in text.splitlines() if _SCHEMA_LINE.match(line))
    return Counter(s for line in text.splitlines() if (s := line.strip()) and not s.startswith("//"))


def _model_changes(ctx: LaneContext, models: list[str]) -> list[str]:
    by_path = {c.path: c for c in ctx.view.changes()}
    changed: list[str] = []
    for path in models:
        change = by_path[path]
        if change.binary:
            changed.append(path)
            continue
        old, new = versions(ctx.view, change)
        if _schema_lines(old, path) != _schema_lines(new, path):
            changed.append(path)
    return changed


def _no_globs(ctx: LaneContext) -> LaneFinding:
    return LaneFinding(
        lane=NAME,
        kind="invalid_data_config",
        message=f"task {ctx.task_id}: the ```datadrift``` block names no migration or schema files",
        severity=Severity.ERROR,
        subject=ctx.task_id,
        evidence=("migrations: []", "schema_files: []"),
        fix='set migrations = ["<glob>"] or schema_files = ["<glob>"] in the ```datadrift``` block',
    )


LANE = Lane(
    name=NAME,
    scope=LaneScope.DIFF,
    summary="the data model changed without a migration or schema file",
    run=run,
    defaults=DEFAULTS,
    fence=NAME,
)
