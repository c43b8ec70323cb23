"""What every gate gets (:class:`GateContext`) and the protocol a gate implements (:class:`Gate`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from speedrift.failure_class import FailureClass
from speedrift.gates import tools
from speedrift.gates.changes import ChangedFile
from speedrift.gates.config import GatesConfig
from speedrift.gates.diffaware import Cache
from speedrift.gates.model import Finding, GateResult, GateStatus
from speedrift.graph.model import Task


@dataclass
class GateContext:
    repo: Path  # the main checkout (caches, the graph, speedrift.toml live there)
    worktree: Path  # the tree being checked (files on disk are the tip)
    base: str  # commit the findings are compared against
    tip: str  # commit being checked
    task: Task | None
    changes: Sequence[ChangedFile]
    config: GatesConfig
    env: Mapping[str, str]  # environment for gate tools
    finder: tools.ToolFinder
    cache: Cache
    deadline: float  # time.monotonic() by which this gate must be done
    working_tree: bool = False  # the tip includes uncommitted changes (a manual run)
    other_tasks: Callable[[], Mapping[str, Task]] = lambda: {}
    notes: dict[str, object] = field(default_factory=dict)  # shared between gates of one run

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def run(self, argv: Sequence[str], *, what: str, cwd: Path | None = None, **env: str) -> tools.ToolRun:
        """Run a tool in the worktree (or ``cwd``) within what is left of the gate's time."""
        return tools.run(
            argv,
            cwd=cwd or self.worktree,
            env={**self.env, **env},
            timeout=self.remaining(),
            what=what,
        )

    def max_bytes(self) -> int:
        return int(self.config.max_file_mb * 1024 * 1024)

    def existing(self, suffixes: tuple[str, ...] = ()) -> list[ChangedFile]:
        """Changed files present at the tip as regular, non-binary files (optionally by suffix)."""
        return [
            c
            for c in self.changes
            if c.exists and c.regular and not c.binary and (not suffixes or c.path.endswith(suffixes))
        ]

    def read(self, change: ChangedFile) -> bytes | None:
        path = self.worktree / change.path
        try:
            if path.is_symlink() or path.stat().st_size > self.max_bytes():
                return None
            return path.read_bytes()
        except OSError:
            return None


class Gate(Protocol):
    name: str

    def run(self, ctx: GateContext) -> GateResult: ...


def result(
    gate: str,
    status: GateStatus,
    reason: str,
    findings: Sequence[Finding] = (),
    *,
    failure_class: FailureClass | None = None,
    command: Sequence[str] = (),
) -> GateResult:
    return GateResult(
        gate=gate,
        status=status,
        reason=reason,
        findings=tuple(findings),
        failure_class=failure_class,
        command=tuple(command),
    )
