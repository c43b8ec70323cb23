"""What an agent reports while it runs, through ``speedrift signal``, and taking it in afterwards.

Inside an attempt (or a role's run) the agent has two structured channels, never its log:

- ``speedrift signal result --json '{…}'``: its typed output. Checked against its role's schema
  (``$SPEEDRIFT_ROLE``; the developer's report otherwise) on receipt — an invalid one exits 2 and
  prints every problem, so the agent can fix it — and written atomically to ``$SPEEDRIFT_RESULT``,
  the same file an agent may write itself.
- ``speedrift signal KIND --json '{…}'`` for a coordination kind an agent may post
  (coord/records.py ``AGENT_KINDS``): checked on receipt the same way, then appended to the
  attempt's outbox, ``$SPEEDRIFT_SIGNALS`` (inside its worktree: its sandbox lets it write nothing
  else, and it never holds the store's lock).

After the run the supervisor takes the outbox in (:func:`ingest`): every line is checked again (the
agent could have written the file by hand), stamped with the attempt as its author — the text can
choose neither author nor kind beyond ``AGENT_KINDS`` — and posted to the scope's store. A bad line
is refused with its line number and reason, and the rest still go in: nothing an agent wrote is
lost silently, and nothing it wrote is trusted as anyone else's.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from speedrift import fsutil, safejson
from speedrift.agents import result as agent_result
from speedrift.coord.records import (
    AGENT_KINDS,
    Actor,
    Author,
    InvalidRecord,
    Kind,
    Record,
    check_post,
    parse_kind,
)
from speedrift.coord.store import CoordStore
from speedrift.errors import InvalidValue, UsageError
from speedrift.fleet.roles.model import parse_role_name, shipped
from speedrift.textclip import clip
from speedrift.times import now_utc

MAX_OUTBOX_BYTES = 2 * 1024 * 1024
MAX_PAYLOAD_BYTES = 256 * 1024
RESULT = "result"
DEFAULT_HANDOFF_TTL_HOURS = 7 * 24.0

# the environment an attempt's agent gets (fleet/pipeline.py, fleet/roles/runner.py)
ENV_SIGNALS = "SPEEDRIFT_SIGNALS"
ENV_ROLE = "SPEEDRIFT_ROLE"
ENV_SCOPE = "SPEEDRIFT_COORD_SCOPE"
ENV_COMMAND = "SPEEDRIFT_SIGNAL_COMMAND"


@dataclass
class Ingested:
    posted: list[Record] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # "signals.jsonl:3: why"

    def as_dict(self) -> dict[str, Any]:
        return {"posted": [r.id for r in self.posted], "refused": list(self.refused)}


def parse_payload(text: str) -> object:
    """The ``--json`` text as a value; UsageError saying what is wrong with it."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_PAYLOAD_BYTES:
        raise UsageError(f"--json is larger than {MAX_PAYLOAD_BYTES} bytes")
    try:
        return safejson.loads(text)
    except safejson.MalformedJson as bad:
        raise UsageError(f"--json is not valid JSON: {bad.problem}", hint="pass one JSON object") from None


def signal(kind_text: str, payload: object, env: Mapping[str, str], *, now: datetime | None = None) -> str:
    """Carry out one ``speedrift signal`` inside an attempt; returns what to print. InvalidValue
    (exit 2) names every problem; nothing is written then."""
    moment = now or now_utc()
    if kind_text == RESULT:
        return _result(payload, env)
    kind = parse_kind(kind_text, AGENT_KINDS)
    outbox = env.get(ENV_SIGNALS)
    if not outbox:
        raise UsageError(
            f"${ENV_SIGNALS} is not set: `speedrift signal` works inside an attempt speedrift started",
            hint="outside an attempt, use `speedrift board` to read and `speedrift answer` to reply",
        )
    author = Author(Actor.AGENT, task=env.get("SPEEDRIFT_TASK_ID"))
    check_post(kind, payload, author=author, now=moment)  # on receipt: the agent sees every problem
    line = orjson.dumps({"kind": kind.value, "payload": payload}) + b"\n"
    path = Path(outbox)
    if path.exists() and path.stat().st_size + len(line) > MAX_OUTBOX_BYTES:
        raise InvalidValue(
            f"the signal outbox is full ({MAX_OUTBOX_BYTES} bytes): post fewer, shorter records"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    fsutil.append_synced(path, line)
    return f"{kind.value} recorded; speedrift posts it when this run ends"


def _result(payload: object, env: Mapping[str, str]) -> str:
    target = env.get("SPEEDRIFT_RESULT")
    if not target:
        raise UsageError("$SPEEDRIFT_RESULT is not set: `speedrift signal result` works inside an attempt")
    role = env.get(ENV_ROLE)
    if role:
        problems = shipped(parse_role_name(role)).problems(payload)
        if problems:
            raise InvalidRecord(f"{role} output", problems)
    else:
        report, problem = agent_result.parse_report(orjson.dumps(payload))
        if report is None:
            raise InvalidValue(f"the result is not valid: {problem}")
    fsutil.write_atomic(Path(target), orjson.dumps(payload, option=orjson.OPT_INDENT_2))
    return "result recorded"


def ingest(
    outbox: Path,
    store: CoordStore,
    author: Author,
    *,
    now: datetime | None = None,
    keep: Path | None = None,
) -> Ingested:
    """Post every record of ``outbox`` to ``store`` as ``author`` (see the module docstring), then
    move the outbox to ``keep`` (the run record), or remove it: a line is taken in once."""
    done = Ingested()
    try:
        with outbox.open("rb") as handle:
            raw = handle.read(MAX_OUTBOX_BYTES + 1)
    except FileNotFoundError:
        return done
    except OSError as error:
        done.refused.append(f"{outbox}: cannot be read: {error.strerror or error}")
        return done
    if len(raw) > MAX_OUTBOX_BYTES:
        done.refused.append(f"{outbox}: past {MAX_OUTBOX_BYTES} bytes; only what comes before is read")
        raw = raw[:MAX_OUTBOX_BYTES]
    moment = now or now_utc()
    for lineno, chunk in enumerate(raw.split(b"\n"), 1):
        if not chunk.strip():
            continue
        where = f"{outbox.name}:{lineno}"
        try:
            value = safejson.loads(chunk)
            if not isinstance(value, dict):
                raise InvalidValue("not a JSON object")
            kind = parse_kind(str(value.get("kind")), AGENT_KINDS)
            ttl = DEFAULT_HANDOFF_TTL_HOURS if kind is Kind.HANDOFF else None
            draft = check_post(kind, value.get("payload"), author=author, now=moment, default_ttl_hours=ttl)
        except (InvalidValue, safejson.MalformedJson) as bad:
            done.refused.append(f"{where}: {clip(str(bad), 500)}")
            continue
        done.posted.append(store.post(draft, now=moment))
    if keep is not None:
        keep.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(outbox, keep)
    else:
        outbox.unlink(missing_ok=True)
    return done
