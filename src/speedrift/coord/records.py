"""Coordination records: the typed shared state agents, roles, speedrift and humans write through.

A record is one JSON line of a scope's store (coord/store.py). Its vocabulary is closed: a
:class:`Kind` and a :class:`Status` from the enums here, targets of the forms in
:data:`TARGET_FORMS`. Records are never rewritten: a status change is a new line carrying the id
of the record it updates (``updates: true``), and the record's state is the fold of its lines in
sequence order (:func:`fold`) — ordered by the store's sequence numbers, never by wall clocks.

Who may write what (enforced where records enter, :func:`check_post`): an agent posts the
:data:`AGENT_KINDS` only; ``guidance`` and ``human_escalation`` are speedrift's (the triage step);
``human_feedback`` is a human's. The author of a record is stamped by whoever writes it into the
store, never taken from the posted text.

Pure: no I/O; time comes in as a parameter.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cache
from typing import TYPE_CHECKING, Any

import orjson

from speedrift import jsonvalid
from speedrift.errors import InvalidValue
from speedrift.times import format_time, parse_time

if TYPE_CHECKING:
    from speedrift.jsonvalid import Checked

RECORD_VERSION = 1
MAX_SUMMARY = 2_000
MAX_DETAIL = 20_000
MAX_LIST = 100
MAX_DATA_BYTES = 64 * 1024
SCOPE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,79}$")
REPO_SCOPE = "repo"  # the scope of ad-hoc work in one repository


class Kind(StrEnum):
    REQUEST = "request"
    ACK = "ack"
    CLAIM = "claim"
    EVIDENCE = "evidence"
    DECISION = "decision"
    BLOCKER = "blocker"
    HANDOFF = "handoff"
    CLARIFICATION_REQUEST = "clarification_request"
    GUIDANCE = "guidance"
    HUMAN_ESCALATION = "human_escalation"
    HUMAN_FEEDBACK = "human_feedback"
    INTEGRATION_SUMMARY = "integration_summary"


class Status(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    CLOSED = "closed"
    SUPERSEDED = "superseded"
    CANCELLED = "cancelled"


OPEN_STATUSES = frozenset({Status.OPEN, Status.ACKNOWLEDGED, Status.IN_PROGRESS})

# what an agent (any role) may post; the rest are speedrift's or a human's
AGENT_KINDS = frozenset(
    {
        Kind.REQUEST,
        Kind.ACK,
        Kind.CLAIM,
        Kind.EVIDENCE,
        Kind.DECISION,
        Kind.BLOCKER,
        Kind.HANDOFF,
        Kind.CLARIFICATION_REQUEST,
        Kind.INTEGRATION_SUMMARY,
    }
)
SPEEDRIFT_KINDS = frozenset(Kind) - {Kind.HUMAN_FEEDBACK}
HUMAN_KINDS = frozenset(Kind)

# a record's default status when posted: these kinds record something that already happened
_CLOSED_ON_POST = {Kind.ACK: Status.CLOSED, Kind.EVIDENCE: Status.CLOSED, Kind.GUIDANCE: Status.RESOLVED}

TARGET_FORMS = ("task:<id>", "role:<name>", "capability:<name>", "human")
_TARGET = re.compile(r"^(task:[^\s]{1,200}|role:[a-z_]{1,40}|capability:[A-Za-z0-9_./-]{1,80}|human)$")


class Actor(StrEnum):
    AGENT = "agent"
    SPEEDRIFT = "speedrift"
    HUMAN = "human"


@dataclass(frozen=True)
class Author:
    """Who wrote a record: an agent in an attempt (task, attempt, role), speedrift, or a human."""

    actor: Actor
    name: str = ""  # the human's or process's name
    task: str | None = None
    attempt: int | None = None
    role: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"actor": self.actor.value}
        for key in ("name", "task", "attempt", "role"):
            value = getattr(self, key)
            if value not in (None, ""):
                out[key] = value
        return out

    @classmethod
    def from_dict(cls, raw: object) -> Author:
        data = raw if isinstance(raw, Mapping) else {}
        try:
            actor = Actor(str(data.get("actor")))
        except ValueError:
            actor = Actor.AGENT  # an unknown writer is trusted least
        attempt = data.get("attempt")
        return cls(
            actor,
            name=str(data.get("name") or ""),
            task=str(data["task"]) if isinstance(data.get("task"), str) else None,
            attempt=attempt if isinstance(attempt, int) and not isinstance(attempt, bool) else None,
            role=str(data["role"]) if isinstance(data.get("role"), str) else None,
        )

    def words(self) -> str:
        if self.actor is Actor.AGENT:
            who = f"{self.role or 'developer'} on {self.task or '?'}"
            return who + (f" (attempt {self.attempt})" if self.attempt else "")
        return f"{self.actor.value}{f' {self.name}' if self.name else ''}"


@dataclass(frozen=True)
class Draft:
    """A record before the store gives it a sequence number and an id."""

    kind: Kind
    summary: str
    author: Author
    status: Status | None = None  # None: the kind's default (open, or closed for what happened)
    detail: str = ""
    targets: tuple[str, ...] = ()
    artifact_refs: tuple[str, ...] = ()
    depends_on: tuple[str, ...] = ()
    closure_condition: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)
    expires_at: datetime | None = None

    def initial_status(self) -> Status:
        return self.status or _CLOSED_ON_POST.get(self.kind, Status.OPEN)


@dataclass(frozen=True)
class Record:
    """One record as it stands (the fold of its lines), or one line as written (``updates``)."""

    seq: int
    id: str
    kind: Kind
    status: Status
    author: Author
    summary: str
    at: datetime  # when this line was written
    created_at: datetime
    detail: str = ""
    targets: tuple[str, ...] = ()
    artifact_refs: tuple[str, ...] = ()
    depends_on: tuple[str, ...] = ()
    closure_condition: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)
    expires_at: datetime | None = None
    updates: bool = False  # this line updates the record ``id`` (a status change, an answer)
    history: tuple[int, ...] = ()  # folded: the sequence numbers of every line of the record
    updated_by: Author | None = None  # folded: who wrote the last update

    @property
    def open(self) -> bool:
        return self.status in OPEN_STATUSES

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def as_line(self) -> dict[str, Any]:
        """The JSON object written to the store (one line)."""
        line: dict[str, Any] = {
            "v": RECORD_VERSION,
            "seq": self.seq,
            "id": self.id,
            "kind": self.kind.value,
            "status": self.status.value,
            "author": self.author.as_dict(),
            "summary": self.summary,
            "at": format_time(self.at),
        }
        if self.updates:
            line["updates"] = True
        else:
            line["created_at"] = format_time(self.created_at)
        optional: dict[str, Any] = {
            "detail": self.detail,
            "targets": list(self.targets),
            "artifact_refs": list(self.artifact_refs),
            "depends_on": list(self.depends_on),
            "closure_condition": self.closure_condition,
            "data": dict(self.data),
            "expires_at": format_time(self.expires_at) if self.expires_at else None,
        }
        line |= {k: v for k, v in optional.items() if v not in ("", [], {}, None)}
        return line

    def as_dict(self) -> dict[str, Any]:
        """The folded record for ``--json`` and the dashboard."""
        out = self.as_line()
        out.pop("v", None)
        out.pop("updates", None)
        out["created_at"] = format_time(self.created_at)
        out["updated_at"] = format_time(self.at)
        out["open"] = self.open
        out["history"] = list(self.history)
        if self.updated_by is not None:
            out["updated_by"] = self.updated_by.as_dict()
        return out


def record_id(scope: str, seq: int) -> str:
    return f"{scope}-{seq}"


def split_id(value: str) -> tuple[str, int]:
    """``"repo-12"`` -> ("repo", 12); InvalidValue for anything else."""
    scope, _, number = value.rpartition("-")
    if not scope or not number.isdigit() or not SCOPE_PATTERN.match(scope):
        raise InvalidValue(
            f"{value!r} is not a coordination record id",
            hint="ids look like repo-12 (the scope, a dash, the sequence number); `speedrift board` "
            "lists them",
        )
    return scope, int(number)


def check_scope(scope: str) -> str:
    if not SCOPE_PATTERN.match(scope):
        raise InvalidValue(
            f"{scope!r} is not a coordination scope name",
            hint="lower-case letters, digits, '.', '_' and '-', starting with a letter or digit (e.g. repo)",
        )
    return scope


def parse_line(raw: Mapping[str, Any]) -> Record:
    """A stored line as a :class:`Record`; ValueError naming the field when it is not one."""
    seq = raw.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise ValueError("seq must be a positive integer")
    ident = raw.get("id")
    if not isinstance(ident, str) or not ident:
        raise ValueError("id must be a non-empty string")
    try:
        kind = Kind(str(raw.get("kind")))
        status = Status(str(raw.get("status")))
    except ValueError as error:
        raise ValueError(str(error)) from None
    at = parse_time(raw.get("at"))
    if at is None:
        raise ValueError("at must be a timestamp")
    updates = raw.get("updates") is True
    data = raw.get("data")
    return Record(
        seq=seq,
        id=ident,
        kind=kind,
        status=status,
        author=Author.from_dict(raw.get("author")),
        summary=str(raw.get("summary") or ""),
        at=at,
        created_at=parse_time(raw.get("created_at")) or at,
        detail=str(raw.get("detail") or ""),
        targets=_strings(raw.get("targets")),
        artifact_refs=_strings(raw.get("artifact_refs")),
        depends_on=_strings(raw.get("depends_on")),
        closure_condition=str(raw.get("closure_condition") or ""),
        data=data if isinstance(data, Mapping) else {},
        expires_at=parse_time(raw.get("expires_at")),
        updates=updates,
        history=() if updates else (seq,),
    )


def fold(lines: Iterable[Record]) -> dict[str, Record]:
    """Every record as it stands, by id, in the order records were created: each update line (in
    sequence order) replaces the status, and the summary, detail, data, targets and expiry it
    carries, keeping the creating line's kind, author and creation time. An update of an unknown
    id is ignored (it never creates a record)."""
    records: dict[str, Record] = {}
    fold_into(records, sorted(lines, key=lambda r: r.seq))
    return records


def fold_into(records: dict[str, Record], lines: Iterable[Record]) -> None:
    """:func:`fold` continued: apply ``lines`` — later in sequence than every line already folded
    into ``records``, in sequence order — to ``records`` in place."""
    for line in lines:
        if not line.updates:
            if line.id not in records:
                records[line.id] = line if line.history else replace(line, history=(line.seq,))
            continue
        current = records.get(line.id)
        if current is None:
            continue
        records[line.id] = replace(
            current,
            status=line.status,
            summary=line.summary or current.summary,
            detail=line.detail or current.detail,
            data={**current.data, **line.data},
            targets=line.targets or current.targets,
            expires_at=line.expires_at or current.expires_at,
            at=line.at,
            history=(*current.history, line.seq),
            updated_by=line.author,
        )


# --- what enters the store ------------------------------------------------------------------------
_POST_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["summary"],
    "properties": {
        "summary": {"type": "string", "minLength": 1, "maxLength": MAX_SUMMARY},
        "detail": {"type": "string", "maxLength": MAX_DETAIL},
        "status": {"enum": [s.value for s in Status]},
        "targets": {
            "type": "array",
            "maxItems": MAX_LIST,
            "items": {"type": "string", "pattern": _TARGET.pattern},
        },
        "artifact_refs": {
            "type": "array",
            "maxItems": MAX_LIST,
            "items": {"type": "string", "maxLength": 500},
        },
        "depends_on": {"type": "array", "maxItems": MAX_LIST, "items": {"type": "string", "maxLength": 120}},
        "closure_condition": {"type": "string", "maxLength": 500},
        "data": {"type": "object"},
        "ttl_hours": {"type": "number", "exclusiveMinimum": 0, "maximum": 24 * 365},
    },
}


@cache
def _post_validator() -> Checked:
    """Compiled on first use: reading records never needs it, only posting one."""
    return jsonvalid.checked_schema(_POST_SCHEMA, "coord/records.py post schema")


class InvalidRecord(InvalidValue):
    """A posted record that cannot enter the store; ``problems`` says every reason. Exit code 2:
    the input is wrong, as with a usage error."""

    exit_code = 2

    def __init__(self, kind: str, problems: Sequence[str]) -> None:
        shown = "\n".join(f"  {p}" for p in problems[:20])
        super().__init__(
            f"the {kind} record is not valid:\n{shown}",
            hint="fields: summary (required), detail, status, targets ("
            + ", ".join(TARGET_FORMS)
            + "), artifact_refs, depends_on, closure_condition, data (an object), ttl_hours",
        )
        self.problems = list(problems)


def parse_kind(value: str, allowed: frozenset[Kind]) -> Kind:
    try:
        kind = Kind(value.replace("-", "_"))
    except ValueError:
        raise InvalidValue(
            f"{value!r} is not a coordination record kind",
            hint="one of: " + ", ".join(k.value for k in Kind),
        ) from None
    if kind not in allowed:
        raise InvalidValue(
            f"a {kind.value} record cannot be posted from here",
            hint="agents post: " + ", ".join(sorted(k.value for k in allowed)),
        )
    return kind


def check_post(
    kind: Kind, payload: object, *, author: Author, now: datetime, default_ttl_hours: float | None = None
) -> Draft:
    """A posted JSON payload as a :class:`Draft` stamped with ``author``, or InvalidRecord naming
    every problem. The payload cannot choose its author, its sequence number or its id."""
    found = jsonvalid.problems(_post_validator(), payload)
    if found:
        raise InvalidRecord(kind.value, found)
    assert isinstance(payload, dict)
    data = payload.get("data") or {}
    if len(orjson.dumps(data)) > MAX_DATA_BYTES:
        raise InvalidRecord(kind.value, [f"$.data: larger than {MAX_DATA_BYTES} bytes"])
    ttl = payload.get("ttl_hours", default_ttl_hours)
    return Draft(
        kind=kind,
        summary=payload["summary"],
        author=author,
        status=Status(payload["status"]) if "status" in payload else None,
        detail=payload.get("detail", ""),
        targets=tuple(dict.fromkeys(payload.get("targets", []))),
        artifact_refs=tuple(dict.fromkeys(payload.get("artifact_refs", []))),
        depends_on=tuple(dict.fromkeys(payload.get("depends_on", []))),
        closure_condition=payload.get("closure_condition", ""),
        data=data,
        expires_at=now + timedelta(hours=float(ttl)) if ttl else None,
    )


def _strings(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(str(v) for v in value[:MAX_LIST] if isinstance(v, str))
