"""The figures a chaos run reports, their table and their JSON.

Job: one place that holds every count the phases produce and renders them — as a Markdown table
(what the README shows, pasted as printed) and as JSON (``--json``).

Invariant: every violation kind is listed, zero or not, so a table never hides a kind by leaving
it out; :meth:`Figures.failed` is true exactly when a violation, a lost update, a fuzz failure, a
planted secret found in speedrift's files or a run error (a part that could not measure) was counted.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

# every broken invariant the run can observe, each counted on its own
VIOLATIONS = (
    "torn file",  # a graph line, JSON record or ledger line that does not parse; a torn read
    "lost ledger record",  # a cycle printed, seen in the ledger or in the register, then missing
    "double landing",  # one task's work twice on the target (output lines, task trailers)
    "stuck claim",  # a task still claimed once every supervisor settled and stopped
    "deleted unmerged work",  # an attempt's commit gone from every ref, its change nowhere else
    "done without landing",  # a task marked done whose work is not on the target
    "git lock left",  # a git lock file or step marker after the run, or git fsck failing
    "unclean write failure",  # a failed write that was not a clear error, or changed the file anyway
    "forbidden operation let through",  # the hub's git contract ran what it must refuse
)
KILL_KINDS = ("hub", "service", "worker", "agent", "whole tree", "at a landing step")


@dataclass
class Figures:
    seed: int
    budget_s: float
    elapsed_s: float = 0.0
    kills: Counter[str] = field(default_factory=Counter)
    steps_hit: list[str] = field(default_factory=list)
    hub_lives: int = 0
    tasks_landed: int = 0
    violations: Counter[str] = field(default_factory=Counter)
    details: list[str] = field(default_factory=list)  # one line per violation found
    updates: int = 0  # graph updates the concurrent writers made
    lost_updates: int = 0
    writers: dict[str, int] = field(default_factory=dict)  # writer kind -> updates
    disk_refused: int = 0  # writes refused cleanly on a full or read-only filesystem
    disk_resumed: int = 0  # writes that worked again once space returned / it was writable
    disk_mechanism: str = ""
    fuzz_tried: int = 0
    fuzz_failed: int = 0
    fuzz_tests: int = 0
    hub_git_tried: int = 0  # forbidden git commands put to the hub's contract (control/authority.py)
    hub_git_refused: int = 0
    agent_pushes: int = 0  # force-pushes the chaos agents tried
    agent_pushes_landed: int = 0  # of those, how many reached the remote
    secrets_found: int = 0
    files_swept: int = 0
    phases: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # a part of the run that could not measure

    def violation(self, kind: str, detail: str) -> None:
        assert kind in VIOLATIONS, kind
        self.violations[kind] += 1
        if len(self.details) < 200:
            self.details.append(f"{kind}: {detail}")

    @property
    def kills_survived(self) -> int:
        return sum(self.kills.values())

    @property
    def forbidden_refused(self) -> int:
        return self.hub_git_refused + self.agent_pushes - self.agent_pushes_landed

    @property
    def violation_total(self) -> int:
        return sum(self.violations[kind] for kind in VIOLATIONS)

    def failed(self) -> bool:
        return bool(
            self.violation_total or self.lost_updates or self.fuzz_failed or self.secrets_found or self.errors
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": not self.failed(),
            "seed": self.seed,
            "budget_seconds": round(self.budget_s, 1),
            "elapsed_seconds": round(self.elapsed_s, 1),
            "kills_survived": self.kills_survived,
            "kills": {kind: self.kills[kind] for kind in KILL_KINDS},
            "landing_steps_killed_at": self.steps_hit,
            "hub_lives": self.hub_lives,
            "tasks_landed": self.tasks_landed,
            "invariant_violations": self.violation_total,
            "violations": {kind: self.violations[kind] for kind in VIOLATIONS},
            "violation_details": self.details,
            "graph_updates": self.updates,
            "writers": self.writers,
            "lost_updates": self.lost_updates,
            "disk_writes_refused_cleanly": self.disk_refused,
            "disk_writes_resumed": self.disk_resumed,
            "disk_mechanism": self.disk_mechanism,
            "fuzz_inputs_tried": self.fuzz_tried,
            "fuzz_failures": self.fuzz_failed,
            "fuzz_tests": self.fuzz_tests,
            "forbidden_operations_refused": self.forbidden_refused,
            "hub_git_contract_tried": self.hub_git_tried,
            "hub_git_contract_refused": self.hub_git_refused,
            "agent_force_pushes": self.agent_pushes,
            "agent_force_pushes_that_reached_the_remote": self.agent_pushes_landed,
            "secrets_found": self.secrets_found,
            "files_swept": self.files_swept,
            "phase_seconds": {name: round(seconds, 1) for name, seconds in self.phases.items()},
            "notes": self.notes,
            "run_errors": self.errors,
        }

    def rows(self) -> list[tuple[str, str, str]]:
        kills = ", ".join(f"{kind} {self.kills[kind]}" for kind in KILL_KINDS if self.kills[kind])
        steps = ", ".join(self.steps_hit) or "none"
        violations = ", ".join(f"{kind} {self.violations[kind]}" for kind in VIOLATIONS)
        writers = ", ".join(f"{name} {count}" for name, count in sorted(self.writers.items()))
        pushes = (
            f"hub git contract: {self.hub_git_refused} of {self.hub_git_tried}; agents' `git push --force`: "
            f"{self.agent_pushes - self.agent_pushes_landed} of {self.agent_pushes}"
        )
        return [
            ("kills survived", str(self.kills_survived), f"{kills or 'none'}; landing steps: {steps}"),
            (
                "invariant violations",
                str(self.violation_total),
                violations,
            ),
            (
                "fuzz inputs tried",
                str(self.fuzz_tried),
                f"{self.fuzz_tests} fuzz tests, {self.fuzz_failed} failed",
            ),
            (
                "lost updates",
                str(self.lost_updates),
                f"of {self.updates} concurrent graph updates ({writers})",
            ),
            ("forbidden operations refused", str(self.forbidden_refused), pushes),
            (
                "disk full / read-only writes refused cleanly",
                str(self.disk_refused),
                f"{self.disk_resumed} writes resumed afterwards ({self.disk_mechanism or 'not run'})",
            ),
            (
                "secrets found in speedrift's own files",
                str(self.secrets_found),
                f"{self.files_swept} files swept",
            ),
        ] + ([("run errors", str(len(self.errors)), "; ".join(self.errors)[:300])] if self.errors else [])

    def markdown(self) -> str:
        lines = ["| figure | value | detail |", "|---|---|---|"]
        lines += [f"| {name} | {value} | {detail.replace('|', '/')} |" for name, value, detail in self.rows()]
        return "\n".join(lines)
