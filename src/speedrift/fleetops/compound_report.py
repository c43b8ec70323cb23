"""Compound review's report: the facts of one review, as Markdown for people and JSON for tools.

One review is written as ``.speedrift/reviews/<stem>.md`` and ``<stem>.json`` (``stem``: the
review's date in its schedule's time zone, ``-2``, ``-3``… for a second review that day), both
atomically (:func:`speedrift.fsutil.write_atomic`), holding the same facts: the range, the
commits table, the flags, the summary (or why there is none), the review tasks (made, proposed,
or made by an earlier review) and the pull request (prepared, created, or why not).

Invariant: every value from the outside world (a subject, an author, a path, an agent's note) is
redacted (:mod:`speedrift.redact`) and escaped before it reaches the Markdown: one line, no
control characters, no table-breaking ``|``, no raw HTML — the report is also a pull request's body.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson

from speedrift import fsutil, layout, redact
from speedrift.fleetops.compound_pr import PullRequest
from speedrift.fleetops.compound_scan import By, CommitFact, Scan
from speedrift.termtext import printable
from speedrift.textclip import clip
from speedrift.times import format_time

MAX_TABLE_COMMITS = 200  # rows of the Markdown commits table (the JSON has every commit)
MAX_CELL = 120


class SummaryState(StrEnum):
    WRITTEN = "written"
    SKIPPED = "skipped"  # summarize = false, role disabled, runtime unavailable or paused, nothing to review
    FAILED = "failed"  # the role's run failed, or it gave no valid output


@dataclass
class Summary:
    state: SummaryState
    why: str = ""  # when not written: the reason, in words
    text: str = ""
    risk: str | None = None
    notes: list[dict[str, Any]] = field(default_factory=list)
    role: dict[str, Any] | None = None  # the role run's record (fleet/roles/runner.py RoleResult.as_dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "why": self.why,
            "text": self.text,
            "risk": self.risk,
            "notes": self.notes,
            "role": self.role,
        }


class TaskState(StrEnum):
    CREATED = "created"
    PROPOSED = "proposed"  # the hub may not write to this repo now (or it has no graph)
    EXISTING = "existing"  # an earlier review made it already
    FAILED = "failed"  # the graph refused it


@dataclass
class ReviewTask:
    key: str  # commit:reason — what deduplicates it across reviews
    task_id: str
    title: str
    description: str
    commit: str
    reason: str
    state: TaskState = TaskState.PROPOSED
    why: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "id": self.task_id,
            "title": self.title,
            "commit": self.commit,
            "reason": self.reason,
            "state": self.state.value,
            "why": self.why,
        }


@dataclass
class Review:
    repo: str  # its name (the ecosystem's, else the directory's)
    path: Path
    stem: str
    generated_at: datetime
    scan: Scan
    summary: Summary
    tasks: list[ReviewTask]
    pr: PullRequest | None = None

    @property
    def markdown_path(self) -> Path:
        return layout.review_report_path(self.path, self.stem, "md")

    @property
    def json_path(self) -> Path:
        return layout.review_report_path(self.path, self.stem, "json")

    def as_dict(self) -> dict[str, Any]:
        commits = self.scan.commits
        facts: dict[str, Any] = redact.redact_value(
            {
                "kind": "compound_review",
                "repo": self.repo,
                "path": str(self.path),
                "stem": self.stem,
                "generated_at": format_time(self.generated_at),
                "report": str(self.markdown_path),
                "counts": {
                    "commits": len(commits),
                    "by_agents": sum(c.by is By.AGENT for c in commits),
                    "by_humans": sum(c.by is By.HUMAN for c in commits),
                    "gated": sum(c.gated for c in commits),
                    "flags": len(self.scan.flags),
                },
                **self.scan.as_dict(),
                "summary": self.summary.as_dict(),
                "tasks": [t.as_dict() for t in self.tasks],
                "pr": self.pr.as_dict() if self.pr is not None else None,
            }
        )
        return facts


def cell(text: object, limit: int = MAX_CELL) -> str:
    """One Markdown table cell (or inline text) from outside text: redacted, one line, escaped."""
    shown = printable(redact.redact_text(str(text)))
    shown = shown.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
    shown = shown.replace("`", "'")
    return clip(shown, limit)


def heading(review: Review) -> str:
    return f"Compound review of {review.repo} — {review.stem}"


def markdown(review: Review, *, with_pr: bool = True) -> str:
    """The report for people (and, without its pull-request section, the pull request's body)."""
    scan = review.scan
    commits = scan.commits
    agents = sum(c.by is By.AGENT for c in commits)
    gated = sum(c.gated for c in commits)
    lines = [
        f"# {cell(heading(review), 300)}",
        "",
        f"Target `{cell(scan.target)}` at `{scan.tip[:12]}`; {cell(scan.window, 300)}.",
        f"Generated {format_time(review.generated_at)} by speedrift.",
        "",
        f"**{len(commits)} commit(s)**: {agents} by agents, {len(commits) - agents} by humans; "
        f"{gated} landed through speedrift's gates, {len(commits) - gated} without. "
        f"**{len(scan.flags)} flag(s).**"
        + (" More commits than were read: only the newest are listed." if scan.truncated else ""),
        "",
        "## Summary",
        "",
        *_summary(review.summary),
        "",
        "## Flags",
        "",
        *_flags(review),
        "",
        "## Commits",
        "",
        *_commits(commits),
        "",
        "## Review tasks",
        "",
        *_tasks(review.tasks),
    ]
    if with_pr and review.pr is not None:
        lines += ["", "## Pull request", "", *review.pr.markdown()]
    return "\n".join(lines).rstrip() + "\n"


def _summary(summary: Summary) -> list[str]:
    if summary.state is not SummaryState.WRITTEN:
        return [f"_No summary: {cell(summary.why, 1000)}_"]
    out = [printable(redact.redact_text(summary.text), newlines=True).replace("<", "&lt;"), ""]
    out.append(f"Risk: **{cell(summary.risk or 'unknown')}**")
    if summary.notes:
        out += ["", "| Commit | File | Severity | Needs | Note |", "|---|---|---|---|---|"]
        for note in summary.notes:
            out.append(
                f"| `{cell(note.get('commit', ''), 12)}` | {cell(note.get('file') or '')} | "
                f"{cell(note.get('severity', ''))} | {cell(note.get('needs', ''))} | "
                f"{cell(note.get('note', ''), 600)} |"
            )
    return out


def _flags(review: Review) -> list[str]:
    if not review.scan.flags:
        return ["Nothing flagged."]
    out = ["| Commit | Reason | By | Files | Detail |", "|---|---|---|---|---|"]
    for flag in review.scan.flags:
        files = ", ".join(f"`{cell(p, 200)}`" for p in flag.files) or "—"
        out.append(
            f"| `{flag.commit[:7]}` | {flag.reason.value} | {flag.by.value} | {files} | "
            f"{cell(flag.detail, 400)} |"
        )
    return out


def _commits(commits: list[CommitFact]) -> list[str]:
    if not commits:
        return ["No new commits."]
    out = [
        "| Commit | Committed | Author | By | Gated | +/- | Files | Subject |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for commit in commits[:MAX_TABLE_COMMITS]:
        when = format_time(commit.committed_at) if commit.committed_at else "?"
        gated = f"yes ({cell(commit.attempt or '')})" if commit.gated else "no"
        out.append(
            f"| `{commit.short}` | {when} | {cell(commit.author, 60)} | {commit.by.value} | {gated} | "
            f"+{commit.added}/-{commit.deleted} | {len(commit.files)} | {cell(commit.subject)} |"
        )
    if len(commits) > MAX_TABLE_COMMITS:
        out.append(f"| … | | | | | | | {len(commits) - MAX_TABLE_COMMITS} more in the JSON report |")
    return out


def _tasks(tasks: list[ReviewTask]) -> list[str]:
    if not tasks:
        return ["None needed."]
    out = []
    for task in tasks:
        why = f" — {cell(task.why, 300)}" if task.why else ""
        out.append(f"- {task.state.value}: `{cell(task.task_id)}` {cell(task.title, 300)}{why}")
    return out


def write(review: Review) -> None:
    """Both files, each atomically (the JSON first: a tool polling for the Markdown finds both)."""
    layout.reviews_dir(review.path).mkdir(parents=True, exist_ok=True)
    data = orjson.dumps(review.as_dict(), option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
    fsutil.write_atomic(review.json_path, data + b"\n")
    fsutil.write_atomic(review.markdown_path, markdown(review).encode())
