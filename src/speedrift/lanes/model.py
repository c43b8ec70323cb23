"""What a lane returns: findings with a severity, a stable fingerprint, evidence and a fix.

The JSON shape is the lane SDK's (``{"lane", "findings": [{"message", "severity", "file",
"line", "tags"}], "exit_code", "summary"}``) plus speedrift's additions on each finding
(``kind``, ``fingerprint``, ``evidence``, ``fix``, ``subject``) and on the result (``error``,
``duration_ms``). An external lane that prints only the SDK's fields is read the same way.

Invariant: a fingerprint depends on what the finding is about (lane, kind, subject, file and a
lane-chosen ``key``), never on its line number or wording, so the same problem found again after
the file moved by a few lines — or after the message was reworded — is the same finding: the
guard dedups on it and a finding that is gone on the next run is *resolved*.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


ACTIONABLE = frozenset({Severity.WARNING, Severity.ERROR, Severity.CRITICAL})
SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.ERROR: 2, Severity.CRITICAL: 3}


class LaneExit(IntEnum):
    """The SDK's exit codes: findings are advisory (3 is not a failure)."""

    OK = 0
    USAGE = 2
    FINDINGS = 3


class LaneScope(StrEnum):
    """What a lane reads. ``diff``: a base..tip range (and optionally a task's fence); ``tree``: the
    whole tree of the target branch's tip; ``graph``: the task graph; ``task``: one task's record
    (its log, its follow-ups), no diff needed."""

    DIFF = "diff"
    TREE = "tree"
    GRAPH = "graph"
    TASK = "task"


def fingerprint_of(lane: str, kind: str, subject: str, file: str, key: str) -> str:
    text = "\x1f".join((lane, kind, subject, file, key))
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:24]


@dataclass(frozen=True, slots=True)
class LaneFinding:
    lane: str
    kind: str  # the finding kind, e.g. "scope_drift", "lock_not_updated"
    message: str
    severity: Severity = Severity.WARNING
    file: str = ""
    line: int = 0
    tags: tuple[str, ...] = ()
    subject: str = ""  # the task it is about ("" for a repo-level finding)
    key: str = ""  # what makes two findings of one kind in one file different (never a line number)
    evidence: tuple[str, ...] = ()  # what was seen, one fact per item (never a secret value)
    fix: str = ""  # the suggested fix, in words an agent can act on
    # the files its fix may change (a follow-up's declared scope); empty: ``file`` alone
    scope: tuple[str, ...] = ()

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(self.lane, self.kind, self.subject, self.file, self.key)

    @property
    def actionable(self) -> bool:
        return self.severity in ACTIONABLE

    def to_json(self) -> dict[str, Any]:
        return {
            "message": self.message,
            "severity": str(self.severity),
            "file": self.file,
            "line": self.line,
            "tags": list(self.tags),
            "kind": self.kind,
            "fingerprint": self.fingerprint,
            "subject": self.subject,
            "key": self.key,
            "evidence": list(self.evidence),
            "fix": self.fix,
            "scope": list(self.fix_scope),
        }

    @property
    def fix_scope(self) -> tuple[str, ...]:
        """What a follow-up for it may change: the lane's ``scope``, else its file."""
        return self.scope or ((self.file,) if self.file else ())


@dataclass(frozen=True, slots=True)
class LaneResult:
    """One lane's run. ``error`` set: the lane could not judge (it crashed, timed out, printed
    something that is not the SDK's JSON, or was misconfigured) — never a pass."""

    lane: str
    findings: tuple[LaneFinding, ...] = ()
    summary: str = ""
    error: str | None = None
    duration_ms: int = 0
    cached: bool = False  # the result was reused: nothing it reads changed since it was computed
    artifacts: tuple[str, ...] = ()  # files the lane wrote (repo-relative), e.g. uxdrift screenshots
    score: int | None = None  # a lane's own 0–100 score where it defines one (secdrift, qadrift)
    skipped: str | None = None  # why the lane did not run (e.g. a diff lane without a range)

    @property
    def exit_code(self) -> LaneExit:
        if self.error is not None:
            return LaneExit.USAGE
        return LaneExit.FINDINGS if self.findings else LaneExit.OK

    @property
    def actionable(self) -> tuple[LaneFinding, ...]:
        return tuple(f for f in self.findings if f.actionable)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "lane": self.lane,
            "findings": [f.to_json() for f in self.findings],
            "exit_code": int(self.exit_code),
            "summary": self.summary or summary_of(self.findings, self.error, self.skipped),
            "error": self.error,
            "duration_ms": self.duration_ms,
            "cached": self.cached,
        }
        if self.artifacts:
            data["artifacts"] = list(self.artifacts)
        if self.score is not None:
            data["score"] = self.score
        if self.skipped is not None:
            data["skipped"] = self.skipped
        return data


def summary_of(findings: Sequence[LaneFinding], error: str | None = None, skipped: str | None = None) -> str:
    if error is not None:
        return f"lane error: {error}"
    if skipped is not None:
        return f"not run: {skipped}"
    if not findings:
        return "clean"
    counts: dict[str, int] = {}
    for finding in findings:
        counts[str(finding.severity)] = counts.get(str(finding.severity), 0) + 1
    order = sorted(counts, key=lambda s: -SEVERITY_RANK[Severity(s)])
    return ", ".join(f"{counts[s]} {s}" for s in order)


def finding_from_json(lane: str, raw: Any, index: int) -> LaneFinding:
    """One finding of the SDK's JSON (an external lane's output, or a stored result). Raises
    ValueError naming the finding's index and the field that is wrong."""
    where = f"findings[{index}]"
    if not isinstance(raw, dict):
        raise ValueError(f"{where} is {type(raw).__name__}, not an object")
    message = raw.get("message")
    if not isinstance(message, str) or not message.strip():
        raise ValueError(f"{where}.message must be a non-empty string")
    try:
        severity = Severity(raw.get("severity", "info"))
    except ValueError:
        raise ValueError(
            f"{where}.severity is {raw.get('severity')!r}; use one of info, warning, error, critical"
        ) from None
    file = raw.get("file", "")
    line = raw.get("line", 0)
    tags = raw.get("tags", [])
    if not isinstance(file, str):
        raise ValueError(f"{where}.file must be a string")
    if not isinstance(line, int) or isinstance(line, bool) or line < 0:
        raise ValueError(f"{where}.line must be a whole number >= 0")
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ValueError(f"{where}.tags must be a list of strings")
    texts = {name: raw.get(name, "") for name in ("kind", "subject", "key", "fix")}
    for name, value in texts.items():
        if not isinstance(value, str):
            raise ValueError(f"{where}.{name} must be a string")
    evidence = raw.get("evidence", [])
    if not isinstance(evidence, list) or not all(isinstance(e, str) for e in evidence):
        raise ValueError(f"{where}.evidence must be a list of strings")
    scope = raw.get("scope", [])
    if not isinstance(scope, list) or not all(isinstance(e, str) and e for e in scope):
        raise ValueError(f"{where}.scope must be a list of repo-relative paths")
    kind = texts["kind"] or (tags[0] if tags else "finding")
    # an external lane without a key is keyed by its message: rewording it makes a new finding
    key = texts["key"] or ("" if texts["kind"] else message.strip())
    return LaneFinding(
        lane=lane,
        kind=kind,
        message=message.strip(),
        severity=severity,
        file=file,
        line=line,
        tags=tuple(tags),
        subject=texts["subject"],
        key=key,
        evidence=tuple(evidence),
        fix=texts["fix"],
        scope=tuple(scope),
    )


@dataclass(frozen=True, slots=True)
class CheckReport:
    """Every lane's result from one ``drift check``, in policy order."""

    repo: str
    head: str  # the commit the tree lanes judged
    base: str | None  # the diff range's start (None: no diff lanes ran against a range)
    task: str | None
    results: tuple[LaneResult, ...] = field(default_factory=tuple)
    checked_at: str = ""

    @property
    def findings(self) -> tuple[LaneFinding, ...]:
        return tuple(f for r in self.results for f in r.findings)

    @property
    def errors(self) -> tuple[LaneResult, ...]:
        return tuple(r for r in self.results if r.error is not None)

    @property
    def exit_code(self) -> LaneExit:
        if self.errors:
            return LaneExit.USAGE
        return LaneExit.FINDINGS if self.findings else LaneExit.OK

    def to_json(self) -> dict[str, Any]:
        return {
            "repo": self.repo,
            "head": self.head,
            "base": self.base,
            "task": self.task,
            "checked_at": self.checked_at,
            "exit_code": int(self.exit_code),
            "lanes": [r.to_json() for r in self.results],
        }


def result_from_json(raw: dict[str, Any]) -> LaneResult:
    """A stored :meth:`LaneResult.to_json` read back (the runner's cache, the hub's observer).
    Raises ValueError when it is not one."""
    lane = raw.get("lane")
    if not isinstance(lane, str) or not lane:
        raise ValueError("a lane result needs a lane name")
    findings = raw.get("findings", [])
    if not isinstance(findings, list):
        raise ValueError("findings must be a list")
    error = raw.get("error")
    score = raw.get("score")
    artifacts = raw.get("artifacts", [])
    return LaneResult(
        lane=lane,
        findings=tuple(finding_from_json(lane, item, index) for index, item in enumerate(findings)),
        summary=str(raw.get("summary", "")),
        error=error if isinstance(error, str) else None,
        duration_ms=int(raw.get("duration_ms", 0) or 0),
        artifacts=tuple(a for a in artifacts if isinstance(a, str)) if isinstance(artifacts, list) else (),
        score=score if isinstance(score, int) and not isinstance(score, bool) else None,
        skipped=raw["skipped"] if isinstance(raw.get("skipped"), str) else None,
    )
