"""Whose failure is it — the agent's, or the target branch's already?

Job: the gates judge an attempt's own commits against the commit they sit on. When they fail, the
pipeline (fleet/pipeline.py) first asks :func:`fresh_base_may_help`: unless the failure is the
agent's by construction (a secret it wrote, files outside its scope), the attempt is rebased onto
the target's current tip and judged again — another task may have fixed, since the attempt began,
what failed at its stale base. If it still fails, :func:`pre_existing` says whether every blocking
result consists only of findings already present at the commit it was judged against (the target's
current tip): then the failure is ``pre_existing`` — not the agent's doing, so no failure class is
given, no attempt is burned, and the task waits (fleet/recovery_graph.py ``wait_mutation``).

Invariants: pure (a verdict in, an answer out). A verdict is pre-existing only when every blocking
result has findings and none of them is new; a result without findings (a command that failed as a
whole, a required gate that could not run) is never called pre-existing — whose it is cannot be
told, and the gate's own class stands.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from speedrift.errors import SpeedriftError
from speedrift.failure_class import FailureClass
from speedrift.gates.verdict import GateVerdict

# failures that are the agent's whatever the base: what it wrote, where it wrote it
AGENTS_OWN = frozenset(
    {FailureClass.SECRET_LEAK, FailureClass.SCOPE_VIOLATION, FailureClass.DECOMPOSITION_ERROR}
)
SHOWN = 5  # pre-existing findings named in the reason


class PreExisting(SpeedriftError):
    """The gates fail on the target branch itself: the attempt's own commits add no failure."""

    def __init__(self, verdict: GateVerdict, failures: list[str], onto: str) -> None:
        shown = "; ".join(failures[:SHOWN]) + (
            f"; and {len(failures) - SHOWN} more" if len(failures) > SHOWN else ""
        )
        super().__init__(f"the gate failure is already on the target branch at {onto[:12]}: {shown}")
        self.verdict = verdict
        self.failures = failures
        self.onto = onto


def fresh_base_may_help(verdict: GateVerdict) -> bool:
    """Whether judging the attempt again on the target's current tip could change the verdict."""
    return not verdict.passed and verdict.failure_class not in AGENTS_OWN


def pre_existing(verdict: GateVerdict) -> list[str]:
    """The blocking findings, when every blocking result is made only of findings already present
    at the base it was judged against (``new: false``); empty otherwise (see the module docstring)."""
    if verdict.passed:
        return []
    results = verdict.evidence.get("results")
    blocking = verdict.evidence.get("blocking")
    if not isinstance(results, list) or not isinstance(blocking, list) or not blocking:
        return []
    found: list[str] = []
    for result in results:
        if not isinstance(result, Mapping) or result.get("gate") not in blocking:
            continue
        findings = [f for f in result.get("findings") or () if isinstance(f, Mapping)]
        if result.get("status") == "skipped" or not findings or any(f.get("new", True) for f in findings):
            return []
        found += [_shown(str(result.get("gate")), finding) for finding in findings]
    return found


def _shown(gate: str, finding: Mapping[str, Any]) -> str:
    where = str(finding.get("file") or "")
    line = finding.get("line")
    place = f"{where}:{line}" if where and isinstance(line, int) else where
    what = str(finding.get("message") or finding.get("kind") or "")
    return f"{gate}: {place + ' ' if place else ''}{what}".strip()
