"""The hub across a register outage (a *gap*): it keeps observing, executes nothing, and catches the
register up the first cycle it answers again.

While the register cannot be reached the hub still observes, scores and plans, and writes each
cycle to its ledger (the ledger is local); it executes nothing (no lease can be confirmed, see
control/hublease.py) and consumes nothing (approvals, interrupted-action recovery). The first cycle
in which the register answers, :meth:`RegisterGap.close` — before anything else that cycle —
records the outcomes whose ``action_finished`` was lost, runs the deferred recovery of interrupted
actions, copies every ledger cycle written since the gap began into the register, records the gap
(``Register.record_gap``), appends a ``register_gap`` ledger entry and prints one line.

Invariant: nothing is lost and nothing is counted twice. ``record_cycle`` replaces by cycle id, so
a cycle the register did get before the gap is copied over itself; a lost ``action_finished`` is
replayed exactly once; a failure half-way leaves the gap open and the next cycle repeats only what
is idempotent. The gap's start is kept in ``<hub>/register-gap.json`` so a hub restarted during an
outage still backfills from the gap's real beginning.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from speedrift import fsutil, hubdir
from speedrift.register.ledger import Ledger
from speedrift.register.record import Outcome
from speedrift.register.store import Register
from speedrift.serialize import dumps
from speedrift.times import iso_utc, parse_time

GAP_KIND = "register_gap"  # the ledger entry written when a gap closes
LEDGER_WINDOW = 64  # ledger records read first when looking for the gap's cycles (grows x4)


def one_line(text: str) -> str:
    return " ".join(text.split())


@dataclass(frozen=True)
class ClosedGap:
    hub: str
    began_at: datetime
    ended_at: datetime
    cycles_backfilled: int
    detail: str

    def ledger_entry(self) -> dict[str, Any]:
        return {
            "kind": GAP_KIND,
            "generated_at": self.ended_at,
            "began_at": self.began_at,
            "ended_at": self.ended_at,
            "cycles_backfilled": self.cycles_backfilled,
            "hub": self.hub,
            "detail": f"the register was unreachable ({self.detail}); "
            f"{self.cycles_backfilled} cycle(s) copied from the ledger into it",
        }


def cycles_since(ledger: Ledger, began_at: datetime, window: int = LEDGER_WINDOW) -> list[dict[str, Any]]:
    """The ledger's cycle records generated at or after ``began_at``, oldest first (reads only the
    newest records, more each round, until it has read past the gap's start)."""
    while True:
        records = ledger.read(last=window)
        oldest = parse_time(records[0].get("generated_at")) if records else None
        if len(records) < window or (oldest is not None and oldest < began_at):
            break
        window *= 4
    found: list[dict[str, Any]] = []
    for record in records:
        if not record.get("cycle_id") or record.get("kind"):
            continue
        generated = parse_time(record.get("generated_at"))
        if generated is not None and generated >= began_at:
            found.append(record)
    return found


class RegisterGap:
    """Whether the register is unreachable for this hub, since when, and what to replay when it is back."""

    def __init__(self, hub: Path, hub_id: str, ledger: Ledger) -> None:
        self.path = hubdir.register_gap_path(hub)
        self.hub_id = hub_id
        self.ledger = ledger
        self.began_at: datetime | None = None
        self.detail = ""
        self._unfinished: list[Outcome] = []  # outcomes whose action_finished did not reach the register
        self._load()

    @property
    def open(self) -> bool:
        return self.began_at is not None

    def _load(self) -> None:
        """A gap a previous process of this hub left open (it stopped during the outage)."""
        try:
            data = orjson.loads(self.path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return
        began = parse_time(data.get("began_at")) if isinstance(data, dict) else None
        if began is not None:
            self.began_at = began
            self.detail = str(data.get("detail") or "")

    def lost(self, now: datetime, error: Exception) -> None:
        """The register did not answer in the cycle that started at ``now``; opens the gap if not open."""
        if self.began_at is not None:
            return
        self.began_at = now
        self.detail = one_line(getattr(error, "message", None) or str(error))
        with contextlib.suppress(OSError):  # a full disk: the gap is still kept in memory
            record = {"began_at": now, "detail": self.detail, "hub": self.hub_id}
            fsutil.write_atomic(self.path, dumps(record), mode=0o600)
        print(
            f"speedrift hub: the register cannot be reached ({self.detail}); observing only, "
            "executing nothing until it answers",
            file=sys.stderr,
            flush=True,
        )

    def unfinished(self, outcome: Outcome) -> None:
        """An action ran but its end could not be recorded: recorded when the register is back."""
        self._unfinished.append(outcome)

    def close(self, register: Register, now: datetime, recover: Callable[[], None]) -> ClosedGap | None:
        """Catch the register up (see the module doc). Raises ``RegisterUnavailable`` when the register
        still does not answer; the gap then stays open and the next cycle tries again."""
        began = self.began_at
        if began is None:
            return None
        while self._unfinished:
            register.action_finished(self._unfinished[0])
            self._unfinished.pop(0)  # only once it is written: replayed exactly once
        recover()
        cycles = cycles_since(self.ledger, began)
        for record in cycles:
            register.record_cycle(record)
        register.record_gap(self.hub_id, began, now, len(cycles), self.detail)
        closed = ClosedGap(self.hub_id, began, now, len(cycles), self.detail)
        self.began_at, self.detail = None, ""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self.ledger.append(closed.ledger_entry())
        print(
            f"speedrift hub: the register answers again; the gap since {iso_utc(began)} is recorded and "
            f"{len(cycles)} cycle(s) were copied into it from the ledger",
            file=sys.stderr,
            flush=True,
        )
        return closed
