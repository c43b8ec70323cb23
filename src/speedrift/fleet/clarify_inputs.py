"""What the triage step is given, and checking what it gives back against it.

The triage role (fleet/roles/data/triage.*) answers a clarification only from what the repository
already says. :func:`gather` collects that material at one commit (the target branch's tip):
the repository's configuration (``policy``), the scope's earlier decision, guidance and
human_feedback records (``decisions``), its guidance files — AGENTS.md, CLAUDE.md, README,
CONTRIBUTING and the Markdown under docs/ — each clipped and all of them bounded (``guidance``),
and the task's own text (``task``, ``spec``). Everything is redacted before the role sees it.

:func:`judge` turns the role's schema-valid output into a :class:`Judged`: an answer stands only
with at least one source whose quote is found, word for word (whitespace and case aside), in the
material of its kind — or, for a guidance file, in that file at the commit. Quotes found nowhere
are dropped; an answer left with none, or given with low confidence, is not an answer: it goes to
a person with the suggestion shown. Nothing the role wrote is trusted past this point unclipped or
unredacted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from speedrift import redact
from speedrift.coord.records import Kind, Record, Status
from speedrift.coord.store import Snapshot
from speedrift.fleet.roles.inputs import file_at, guidance_text, spec_text, task_text
from speedrift.graph.model import Task
from speedrift.textclip import clip, cut_middle

MAX_POLICY_CHARS = 12_000
MAX_RECORDS = 30  # earlier decisions given, newest first
MAX_RECORD_CHARS = 1_500
MAX_ANSWER = 8_000
MAX_QUOTE = 500
CONFIG_FILE = "speedrift.toml"
EARLIER_KINDS = (Kind.DECISION, Kind.GUIDANCE, Kind.HUMAN_FEEDBACK)


class SourceKind(StrEnum):
    POLICY = "policy"
    DECISION = "decision"
    GUIDANCE_FILE = "guidance_file"
    SPEC = "spec"


class Confidence(StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


@dataclass(frozen=True)
class Judged:
    """The role's output as speedrift acts on it: ``answer`` is set only when it stands."""

    answer: str | None
    sources: list[dict[str, str]] = field(default_factory=list)
    confidence: Confidence = Confidence.LOW
    why_not: str = ""  # why it goes to a person (set whenever answer is None)
    suggestion: str | None = None  # what the role answered, when that did not stand


def gather(repo: Path, commit: str, task: Task, scope: Snapshot, question: Record) -> dict[str, str]:
    """The triage role's inputs for ``question`` (see the module docstring), redacted."""
    inputs = {
        "question": question_text(question),
        "task": task_text(task),
        "policy": cut_middle(file_at(repo, commit, CONFIG_FILE) or "", MAX_POLICY_CHARS),
        "decisions": decisions_text(scope.records.values()),
        "guidance": guidance_text(repo, commit),
        "spec": spec_text(task),
    }
    return {name: redact.redact_text(text) for name, text in inputs.items()}


def question_text(record: Record) -> str:
    lines = [f"{record.summary} ({record.id}, asked by {record.author.words()})"]
    if record.detail.strip():
        lines += ["", record.detail.strip()]
    options = record.data.get("options")
    if isinstance(options, list) and options:
        lines += ["", "Options it saw:", *[f"- {clip(str(o), 500)}" for o in options[:10]]]
    return "\n".join(lines)


def decisions_text(records: Iterable[Record]) -> str:
    """The scope's earlier decisions, guidance and human answers, newest first, bounded."""
    kept = [
        r
        for r in records
        if r.kind in EARLIER_KINDS and r.status not in (Status.CANCELLED, Status.SUPERSEDED)
    ]
    kept.sort(key=lambda r: -r.seq)
    lines: list[str] = []
    for record in kept[:MAX_RECORDS]:
        lines.append(f"- {record.id} ({record.kind.value} by {record.author.words()}): {record.summary}")
        if record.detail.strip():
            lines.append("  " + cut_middle(record.detail.strip(), MAX_RECORD_CHARS).replace("\n", "\n  "))
    return "\n".join(lines)


# --- what comes back ---------------------------------------------------------------------------------
def judge(output: Mapping[str, Any], inputs: Mapping[str, str], repo: Path, commit: str) -> Judged:
    """The role's valid ``output`` checked against its ``inputs`` (see the module docstring)."""
    confidence = Confidence(str(output.get("confidence", "low")))
    if output.get("answerable") is not True:
        why = _recordable(str(output.get("why_not") or ""), 2000) or "the triage found no answer"
        return Judged(None, [], confidence, why_not=why)
    answer = _recordable(str(output.get("answer") or ""), MAX_ANSWER)
    sources = [s for s in output.get("sources") or [] if isinstance(s, Mapping)]
    found = [_source(s) for s in sources if _quoted(s, inputs, repo, commit)]
    if not found:
        return Judged(
            None,
            [],
            confidence,
            why_not="the triage answered, but none of its quotes was found in the repository's guidance, "
            "policy, decisions or the task's spec",
            suggestion=answer,
        )
    if confidence is Confidence.LOW:
        return Judged(
            None, found, confidence, why_not="the triage answered with low confidence", suggestion=answer
        )
    return Judged(answer, found, confidence)


def _source(raw: Mapping[str, Any]) -> dict[str, str]:
    return {
        "kind": SourceKind(str(raw["kind"])).value,
        "ref": _recordable(str(raw["ref"]), 200),
        "quote": _recordable(str(raw["quote"]), MAX_QUOTE),
    }


def _quoted(source: Mapping[str, Any], inputs: Mapping[str, str], repo: Path, commit: str) -> bool:
    quote = _plain(str(source.get("quote") or ""))
    if len(quote) < 3:
        return False
    kind = SourceKind(str(source.get("kind")))
    given = {
        SourceKind.POLICY: inputs.get("policy", ""),
        SourceKind.DECISION: inputs.get("decisions", ""),
        SourceKind.GUIDANCE_FILE: inputs.get("guidance", ""),
        SourceKind.SPEC: inputs.get("spec", "") + "\n" + inputs.get("task", ""),
    }[kind]
    if quote in _plain(given):
        return True
    if kind is SourceKind.GUIDANCE_FILE:  # a file the role read in its checkout, past what it was given
        text = file_at(repo, commit, str(source.get("ref") or "").strip())
        return text is not None and quote in _plain(redact.redact_text(text))
    return False


def _plain(text: str) -> str:
    return " ".join(text.split()).casefold()


def _recordable(text: str, limit: int) -> str:
    return redact.recordable(clip(text.strip(), limit, flatten=False))
