"""The words of a drift follow-up: its title, its description (what the lane found, the evidence,
the suggested fix, the declared scope) and the ready-to-paste agent prompt inside it; and the log
line an advising lane writes to the task it is about.

Pure text. Invariant: everything taken from a finding is redacted and made printable (a lane, an
external one above all, may quote a file that holds a credential), and every piece is bounded — a
title is one line of at most :data:`MAX_TITLE` characters, a description at most
:data:`MAX_DESCRIPTION` — whatever the finding holds.
"""

from __future__ import annotations

from collections.abc import Sequence

from speedrift import redact
from speedrift.lanes.model import LaneFinding
from speedrift.termtext import printable
from speedrift.textclip import clip, cut_middle, one_line

MAX_TITLE = 200
MAX_EVIDENCE = 15  # items listed; the rest are counted
MAX_ITEM = 300  # characters of one evidence item
MAX_TEXT = 1_000  # characters of a message or a fix
# what the pieces above add up to at most (evidence, message and fix appear twice: in the facts and
# in the self-contained prompt), with room to spare; a last-resort cut keeps it so
MAX_DESCRIPTION = 20_000


def _line(text: str, limit: int) -> str:
    """One line of text from a finding: redacted, printable, at most ``limit`` characters."""
    return clip(printable(one_line(redact.redact_text(text))), limit)


def _block(text: str, limit: int) -> str:
    """Text from a finding that may hold line breaks: redacted, printable, bounded."""
    return cut_middle(redact.recordable(text).strip(), limit)


def where(finding: LaneFinding) -> str:
    if not finding.file:
        return "the repository as a whole"
    path = _line(finding.file, 300)
    return f"{path}:{finding.line}" if finding.line else path


def title(finding: LaneFinding) -> str:
    return _line(f"{finding.lane}: {finding.message}", MAX_TITLE)


def evidence_lines(evidence: Sequence[str]) -> list[str]:
    items = [f"- {_line(item, MAX_ITEM)}" for item in evidence[:MAX_EVIDENCE]]
    if len(evidence) > MAX_EVIDENCE:
        items.append(f"- … and {len(evidence) - MAX_EVIDENCE} more")
    return items or ["- (the lane gave none beyond the message)"]


def scope_lines(scope: Sequence[str]) -> list[str]:
    return [f"- {_line(path, 300)}" for path in scope] or [
        "- (none declared: the finding is about the repository as a whole; keep the change minimal)"
    ]


def description(finding: LaneFinding, scope: Sequence[str], subject_exists: bool) -> str:
    """The follow-up's description: the finding, its evidence, the fix, the scope, the prompt."""
    message = _block(finding.message, MAX_TEXT)
    fix = _block(finding.fix, MAX_TEXT) or "(the lane suggested none: decide from the evidence)"
    facts = [
        f"The **{finding.lane}** drift lane found: {message}",
        "",
        f"- Kind: `{finding.kind}`",
        f"- Severity: {finding.severity}",
        f"- Where: {where(finding)}",
    ]
    if finding.subject:
        about = "" if subject_exists else " (not in this graph)"
        facts.append(f"- About task: {_line(finding.subject, 200)}{about}")
    facts += [
        f"- Fingerprint: `{finding.fingerprint}` (this task is resolved when {finding.lane} no longer"
        " finds it)",
        "",
        "## Evidence",
        *evidence_lines(finding.evidence),
        "",
        "## Suggested fix",
        fix,
        "",
        "## Declared scope",
        *scope_lines(scope),
        "",
        "## Prompt",
        "",
        prompt(finding, scope),
    ]
    return cut_middle("\n".join(facts), MAX_DESCRIPTION)


def prompt(finding: LaneFinding, scope: Sequence[str]) -> str:
    """A self-contained instruction an agent can follow without reading anything else first."""
    touch = ", ".join(_line(path, 300) for path in scope) or "the smallest set of files the fix needs"
    fix = _block(finding.fix, MAX_TEXT) or "Decide the fix from the evidence above."
    lines = [
        f"You are fixing a drift finding that speedrift's {finding.lane} lane reported in this repository.",
        "",
        f"Goal: make {finding.lane} stop reporting `{finding.kind}`: {_block(finding.message, MAX_TEXT)}",
        f"File: {where(finding)}",
        "Evidence:",
        *evidence_lines(finding.evidence),
        f"Fix: {fix}",
        "Constraints:",
        f"- Change only the declared scope: {touch}. If the fix needs more, stop and say what and why.",
        "- Keep the test suite passing: run the tests before you finish.",
        f"- Do not silence, skip or weaken the {finding.lane} check to make the finding go away.",
    ]
    if finding.subject:
        lines.append(f"Context: the finding is about task {_line(finding.subject, 200)}.")
    return "\n".join(lines)


def advice(finding: LaneFinding) -> str:
    """The log line an advising lane writes to the task a finding is about."""
    fix = f" — fix: {_line(finding.fix, 300)}" if finding.fix else ""
    return (
        f"{finding.lane} ({finding.severity}, {finding.kind}) at {where(finding)}: "
        f"{_line(finding.message, 400)}{fix} [drift {finding.fingerprint[:12]}]"
    )


def breaker_description(subject: str, lane: str, findings: Sequence[LaneFinding]) -> str:
    """``drift-breaker-<task>``: the findings that persisted over two runs of one lane."""
    listed = [f"- `{f.kind}` at {where(f)}: {_line(f.message, 300)}" for f in findings[:MAX_EVIDENCE]]
    if len(findings) > MAX_EVIDENCE:
        listed.append(f"- … and {len(findings) - MAX_EVIDENCE} more")
    task = _line(subject, 200)
    text = "\n".join(
        [
            f"The **{lane}** lane (mode breaker) found the same problems on task {task}"
            " in two runs in a row:",
            "",
            *listed,
            "",
            "## Prompt",
            "",
            f"Task {task} keeps drifting: {lane} found the problems above in two consecutive runs.",
            "Stop adding to the task's change. Read its description and its log, decide whether the"
            f" task's plan or its scope is wrong, and fix the cause so that {lane} no longer reports"
            " them. Keep the test suite passing. If the task cannot be done as described, say so in"
            " its log instead of working around the checks.",
        ]
    )
    return cut_middle(text, MAX_DESCRIPTION)
