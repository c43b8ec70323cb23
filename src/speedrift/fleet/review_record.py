"""A review as it is recorded: its mode, its rounds and what they came to.

The Reviewer step (fleet/review.py) appends a :class:`Round` per run of the Reviewer role to the
attempt's :class:`Review`, which is written to the attempt's record (``attempt.json`` ``review``)
after every round and into its evidence; :meth:`Review.load` reads it back, so a revision under way
keeps its earlier rounds and a resumed landing knows an approval. The effective mode is the task's
own ``speedrift.review`` over ``[review] mode`` (:func:`effective_mode`).

Invariant: nothing the Reviewer wrote is recorded raw — every text is redacted, escaped and
clipped (:func:`said`); a record this version cannot read is ignored, never trusted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from speedrift import records, redact
from speedrift.fleet.config import RepoConfig
from speedrift.fleet.roles.names import ReviewMode
from speedrift.fleet.roles.runner import RoleResult
from speedrift.graph.model import Task, speedrift_data
from speedrift.textclip import clip

TASK_REVIEW_KEY = "review"  # speedrift.review: the task's own mode
RECORD_KEY = "review"  # attempt.json and evidence.json
MAX_SAID = 1_000  # one finding's message or suggestion as shown

__all__ = ["RECORD_KEY", "TASK_REVIEW_KEY", "Conclusion", "Review", "ReviewMode", "Round", "Verdict"]


_MODES = frozenset(m.value for m in ReviewMode)


class Verdict(StrEnum):
    """What the Reviewer says (its schema's ``verdict``)."""

    APPROVE = "approve"
    REQUEST_CHANGES = "request_changes"
    REJECT = "reject"


class Conclusion(StrEnum):
    """What one review round came to: the verdict, or why there is none."""

    APPROVE = "approve"
    REQUEST_CHANGES = "request_changes"
    REJECT = "reject"
    INVALID_OUTPUT = "invalid_output"  # no valid output after the corrected round
    RUN_FAILED = "run_failed"  # the reviewer's own run failed (auth, usage limit, stall …)


@dataclass(frozen=True)
class EffectiveMode:
    mode: ReviewMode
    source: str  # "task" (its speedrift.review) or "repo" ([review] mode)
    note: str = ""  # a task value that is not a mode, ignored


def effective_mode(config: RepoConfig, task: Task) -> EffectiveMode:
    """The task's own ``speedrift.review`` when it is a mode, else ``[review] mode``."""
    repo_mode = ReviewMode(config.review.mode)
    own = speedrift_data(task).get(TASK_REVIEW_KEY)
    if own is None:
        return EffectiveMode(repo_mode, "repo")
    if isinstance(own, str) and own in _MODES:
        return EffectiveMode(ReviewMode(own), "task")
    shown = clip(redact.recordable(repr(own)), 100)
    note = f"the task's speedrift.review {shown} is not one of {', '.join(ReviewMode)}: [review] mode applies"
    return EffectiveMode(repo_mode, "repo", note)


# --- one round, one review ------------------------------------------------------------------------
@dataclass
class Round:
    number: int
    commit: str  # the tip it reviewed
    result: Conclusion
    verdict: Verdict | None
    summary: str
    findings: list[dict[str, Any]]
    out_of_scope: list[dict[str, Any]]
    record_dir: str
    problem: str = ""  # why there is no verdict (invalid output, failed run)
    failure: str | None = None  # the reviewer run's failure kind

    @classmethod
    def of(cls, number: int, commit: str, result: RoleResult) -> Round:
        output = result.output or {}
        verdict = Verdict(output["verdict"]) if result.valid else None
        if verdict is not None:
            conclusion = Conclusion(verdict.value)
        elif result.run_failed:
            conclusion = Conclusion.RUN_FAILED
        else:
            conclusion = Conclusion.INVALID_OUTPUT
        return cls(
            number=number,
            commit=commit,
            result=conclusion,
            verdict=verdict,
            summary=said(str(output.get("summary", "")), 4000),
            findings=[_finding(f) for f in dicts(output.get("findings"))],
            out_of_scope=[_finding(f) for f in dicts(output.get("out_of_scope"))],
            record_dir=str(result.record_dir),
            problem="" if result.valid else said(result.reason(), 2000),
            failure=result.outcome.failure.value if result.run_failed and result.outcome.failure else None,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "round": self.number,
            "commit": self.commit,
            "result": self.result.value,
            "verdict": self.verdict.value if self.verdict else None,
            "summary": self.summary,
            "findings": self.findings,
            "out_of_scope": self.out_of_scope,
            "record_dir": self.record_dir,
            **({"problem": self.problem} if self.problem else {}),
            **({"failure": self.failure} if self.failure else {}),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Round | None:
        """A round as :meth:`as_dict` recorded it; None for anything else."""
        try:
            result = Conclusion(str(raw.get("result")))
            verdict = Verdict(str(raw["verdict"])) if raw.get("verdict") is not None else None
            number = int(raw.get("round", 0))
        except (ValueError, TypeError):
            return None
        return cls(
            number=number,
            commit=str(raw.get("commit", "")),
            result=result,
            verdict=verdict,
            summary=str(raw.get("summary", "")),
            findings=dicts(raw.get("findings")),
            out_of_scope=dicts(raw.get("out_of_scope")),
            record_dir=str(raw.get("record_dir", "")),
            problem=str(raw.get("problem", "")),
            failure=str(raw["failure"]) if raw.get("failure") else None,
        )


@dataclass
class Review:
    """One attempt's review across its rounds (the developer's revisions in between)."""

    mode: ReviewMode
    source: str
    max_rounds: int  # revisions the developer may make ([review] max_rounds)
    rounds: list[Round] = field(default_factory=list)
    final: Conclusion | None = None  # None: not concluded (not run yet, or a revision under way)
    cleared: bool = False  # the review lets the attempt land (approved, or advisory)
    cannot_revise: str = ""  # why no revision is possible (a resumed landing, a shell command)
    note: str = ""

    @classmethod
    def begin(cls, config: RepoConfig, task: Task) -> Review:
        chosen = effective_mode(config, task)
        return cls(chosen.mode, chosen.source, config.review.max_rounds, note=chosen.note)

    @classmethod
    def load(cls, config: RepoConfig, task: Task, run_dir: Path) -> Review:
        """The attempt's review as its record (``attempt.json`` ``review``) has it: the earlier
        rounds of a revision under way; on a resumed landing (the record says ``resumed``) the
        review it had — cleared, and never run again, when it approved (or, advisory, concluded) —
        and no revision possible (there is no developer run to revise in)."""
        review = cls.begin(config, task)
        record = records.read_attempt(run_dir)
        raw = record.raw if record is not None else {}
        if raw.get("resumed"):
            review.cannot_revise = "a resumed landing has no developer run to revise in"
        recorded = raw.get(RECORD_KEY)
        if not isinstance(recorded, dict):
            return review
        rounds = [Round.from_dict(r) for r in dicts(recorded.get("rounds"))]
        review.rounds = [r for r in rounds if r is not None]
        final = recorded.get("final")
        approved = final == Conclusion.APPROVE or (final is not None and review.mode is ReviewMode.ADVISORY)
        if recorded.get("cleared") is True and approved:
            review.final = Conclusion(str(final))
            review.cleared = True
        return review

    @property
    def ran(self) -> bool:
        return bool(self.rounds)

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode.value,
            "mode_from": self.source,
            "max_rounds": self.max_rounds,
            "rounds": [r.as_dict() for r in self.rounds],
            "final": self.final.value if self.final else None,
            "cleared": self.cleared,
            **({"note": self.note} if self.note else {}),
        }

    def evidence(self) -> dict[str, Any]:
        """The evidence's ``review`` entry ({} when no round ran)."""
        return {RECORD_KEY: self.as_dict()} if self.ran else {}


def dicts(value: object) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def said(text: str, limit: int) -> str:
    """Text from the Reviewer as recorded: no credential, control characters escaped, clipped."""
    return clip(redact.recordable(text), limit)


def _finding(raw: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, str):
            out[str(key)] = said(value, 500 if key == "file" else MAX_SAID)
        elif isinstance(value, int) and not isinstance(value, bool):
            out[str(key)] = value
    return out
