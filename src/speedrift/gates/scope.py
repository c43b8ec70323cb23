"""The scope gate: the files an attempt changed against what its task declared.

Declared scope = the task's ``speedrift.touch`` globs (``add/edit --touch``), the ``touch`` globs
of a ```` ```wg-contract ```` block in its description, and its ``deliverables``.

* A changed file this task did not declare but another open or in-progress task did is that
  task's: ``scope_violation``, a hard failure (a warning when every such file is a test file,
  as in SPEED). This is checked even when this task declares nothing.
* Otherwise, undeclared files: 1–2 warn, 3 or more fail as ``decomposition_error``.
* ``strict`` mode: any undeclared file fails (``scope_violation``); ``disabled``: no check.
  The ``SCOPE_STRICT`` environment variable (strict | disabled | default) overrides
  ``[gates] scope`` in speedrift.toml.
* A task with no declared scope (and no violation) is skipped: "no scope declared".
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from speedrift.failure_class import FailureClass
from speedrift.gates.context import GateContext, result
from speedrift.gates.globs import matches_any
from speedrift.gates.model import Finding, GateResult
from speedrift.graph.model import IN_PROGRESS, OPEN, Task, declared_scope, status_of
from speedrift.graph.store import GRAPH_DIR_NAMES

SCOPE_ENV = "SCOPE_STRICT"
GRAPH_PREFIXES = tuple(f"{name}/" for name in GRAPH_DIR_NAMES)
OWNING_STATUSES = frozenset({OPEN, IN_PROGRESS})
_TEST_FILE = re.compile(
    r"(?:^|/)(?:tests?|__tests__|spec)/|(?:^|/)test_[^/]*\.py$|_test\.(?:py|go)$|\.(?:test|spec)\.[jt]sx?$"
)


def is_test_file(path: str) -> bool:
    return _TEST_FILE.search(path) is not None


def mode(ctx: GateContext) -> str:
    value = ctx.env.get(SCOPE_ENV, "").strip().lower()
    if value in ("strict", "disabled", "default"):
        return value
    return ctx.config.scope


def other_scopes(tasks: Mapping[str, Task], own_id: str | None) -> dict[str, list[str]]:
    scopes: dict[str, list[str]] = {}
    for task_id, task in tasks.items():
        if task_id == own_id or status_of(task) not in OWNING_STATUSES:
            continue
        globs = declared_scope(task)
        if globs:
            scopes[task_id] = globs
    return scopes


class ScopeGate:
    name = "scope"

    def run(self, ctx: GateContext) -> GateResult:
        how = mode(ctx)
        if how == "disabled":
            return result(self.name, "skipped", "scope enforcement disabled (SCOPE_STRICT or [gates] scope)")
        if ctx.task is None:
            return result(self.name, "skipped", "no task given: scope is declared by a task")
        declared = declared_scope(ctx.task)
        others = other_scopes(ctx.other_tasks(), ctx.task.get("id"))
        violations: list[Finding] = []
        undeclared: list[Finding] = []
        shared: list[Finding] = []
        for change in ctx.changes:
            if change.path.startswith(GRAPH_PREFIXES):
                continue  # the task graph is the tasks' own record, not anyone's code
            paths = [change.path] + ([change.old_path] if change.old_path and change.status == "R" else [])
            for path in paths:
                shown = change.display if path == change.path else path
                mine = matches_any(path, declared)
                owners = [tid for tid, globs in others.items() if matches_any(path, globs)]
                if owners and not mine:
                    violations.append(
                        Finding(
                            shown,
                            None,
                            "owned-by-other-task",
                            f"{shown} is in the declared scope of {', '.join(owners[:3])}",
                            severity="high",
                            rule="scope",
                        )
                    )
                elif owners:
                    shared.append(
                        Finding(
                            shown,
                            None,
                            "shared-scope",
                            f"{shown} is declared by this task and by {', '.join(owners[:3])}",
                            severity="info",
                            rule="scope",
                        )
                    )
                elif not mine:
                    undeclared.append(
                        Finding(
                            shown,
                            None,
                            "undeclared-file",
                            f"{shown} is outside the task's declared scope",
                            severity="medium",
                            rule="scope",
                        )
                    )
        findings = violations + undeclared + shared
        if violations:
            names = ", ".join(f.file for f in violations[:5])
            if all(is_test_file(f.file) for f in violations):
                return result(
                    self.name, "warn", f"test files in other tasks' scope changed: {names}", findings
                )
            return result(
                self.name,
                "fail",
                f"{len(violations)} file(s) belong to other open tasks: {names}",
                findings,
                failure_class=FailureClass.SCOPE_VIOLATION,
            )
        if not declared:
            return result(self.name, "skipped", "no scope declared")
        if not undeclared:
            return result(
                self.name,
                "pass",
                f"all {len(ctx.changes)} changed file(s) within the declared scope",
                findings,
            )
        names = ", ".join(f.file for f in undeclared[:5]) + (" …" if len(undeclared) > 5 else "")
        if how == "strict":
            return result(
                self.name,
                "fail",
                f"{len(undeclared)} undeclared file(s) (strict scope): {names}",
                findings,
                failure_class=FailureClass.SCOPE_VIOLATION,
            )
        if len(undeclared) >= 3:
            return result(
                self.name,
                "fail",
                f"{len(undeclared)} undeclared files: {names}",
                findings,
                failure_class=FailureClass.DECOMPOSITION_ERROR,
            )
        return result(self.name, "warn", f"{len(undeclared)} undeclared file(s): {names}", findings)
