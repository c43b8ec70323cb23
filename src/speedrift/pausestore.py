"""Runtime pauses: the machine-wide, durable record of the agent runtimes nobody may dispatch to.

A usage limit, repeated rate limits, refused credentials or a failed executor preflight make a
runtime useless for every repo on the machine, not only for the attempt that ran into it. Every
supervisor (``speedrift run``, each repo's service, the hub's dispatch) reads this one store
before it claims a task, so the pause is seen by all of them, survives restarts, and ends at the
reset time the provider named — or, for what only a person can fix (an auth failure, a missing
CLI) and under ``[policy] auto_resume = false``, when a human runs ``speedrift resume-runtime``.

The store is ``runtime-pauses.json`` in the state home (:func:`speedrift.statehome.pauses_path`):
``{"version": 1, "auto_resume": bool, "auto_resume_source": str|null, "pauses": [pause…],
"strikes": [strike…], "lifted": [pause + lifted_at/lifted_by…]}``. Writers hold an exclusive
``flock`` on ``runtime-pauses.lock`` and replace the file atomically (:mod:`speedrift.fsutil`);
readers read it lock-free (a rename is atomic). At most one pause per (runtime, provider) is
kept. Every function takes ``now`` so tests drive the clock; nothing here decides *why* a runtime
pauses (that is :mod:`speedrift.fleet.pauses`), only what a pause is and who it blocks.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal, cast

from speedrift import fsutil, statehome
from speedrift.times import clock_words, iso_utc, parse_time

VERSION = 1
KEEP_LIFTED = 20  # lifted or lapsed pauses kept for `speedrift pauses --all` and the dashboard
KEEP_STRIKES = 50
MAX_TEXT = 1000  # reason and fix are for a person; a provider's novel is cut

PauseCause = Literal["usage_limit", "rate_limit", "auth_failure", "preflight"]
CAUSES: tuple[PauseCause, ...] = ("usage_limit", "rate_limit", "auth_failure", "preflight")
CAUSE_WORDS: dict[str, str] = {
    "usage_limit": "usage limit",
    "rate_limit": "rate limit",
    "auth_failure": "authentication failed",
    "preflight": "preflight failed",
}


def _text(value: object, limit: int = MAX_TEXT) -> str:
    if not isinstance(value, str):
        return ""
    # provider text is data: control characters are shown escaped, never written raw
    clean = "".join(ch if ch.isprintable() or ch == " " else f"\\x{ord(ch):02x}" for ch in value)
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


def _opt(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True, slots=True)
class RuntimePause:
    """One paused runtime (and provider, when the pause is narrower than the runtime)."""

    runtime: str  # claude | codex | opencode | shell
    cause: PauseCause
    reason: str  # what happened, in words (the provider's text, the preflight's finding)
    since: datetime
    until: datetime | None  # None: until a human lifts it (`speedrift resume-runtime NAME`)
    fix: str  # what a person does about it ("" when waiting is the fix)
    set_by: str  # who recorded it: process, repo and task
    provider: str | None = None  # e.g. opencode's "anthropic" in "anthropic/claude-sonnet-4"
    model: str | None = None  # the model the attempt asked for (information)
    needs_human: bool = False  # an escalation: only a person can lift it (see `fix`)
    reset_at: datetime | None = None  # the reset time the provider announced, when it named one
    repo: str | None = None  # where it was found
    task: str | None = None

    @property
    def label(self) -> str:
        return self.runtime if self.provider is None else f"{self.runtime} ({self.provider})"

    def ends(self, auto_resume: bool = True) -> datetime | None:
        """When it stops blocking by itself: None while only a human can lift it."""
        if self.until is None or self.needs_human or not auto_resume:
            return None
        return self.until

    def blocks(self, runtime: str, provider: str | None, now: datetime, auto_resume: bool = True) -> bool:
        """Whether a task on ``runtime`` (its provider, when known) may not be dispatched at ``now``.
        A provider-wide pause holds a task whose provider is unknown: it may well be that one."""
        if runtime != self.runtime:
            return False
        if self.provider is not None and provider is not None and provider != self.provider:
            return False
        end = self.ends(auto_resume)
        return end is None or now < end

    def sentence(self, now: datetime, auto_resume: bool = True) -> str:
        """``claude is paused until 14:05 UTC: usage limit …`` — the words every surface shows."""
        what = CAUSE_WORDS.get(self.cause, self.cause)
        detail = f"{what}: {self.reason}" if self.reason and self.reason != what else what
        end = self.ends(auto_resume)
        reset = self.until or self.reset_at
        if end is not None:
            when = f"until {clock_words(end, now)}"
        elif reset is not None and not self.needs_human:
            when = (
                f"until a human lifts it (auto_resume = false; its reset is {clock_words(reset, now)}; "
                f"`speedrift resume-runtime {self.runtime}`)"
            )
        else:
            when = f"until a human lifts it (`speedrift resume-runtime {self.runtime}`)"
        return f"{self.label} is paused {when}: {detail}"

    def effective(self, auto_resume: bool) -> RuntimePause:
        """The pause as it stands under ``auto_resume``: with it off, nothing ends by itself (the
        provider's reset stays in ``reset_at``), so a reader that knows no policy reads it right."""
        if auto_resume or self.until is None:
            return self
        return replace(self, until=None, reset_at=self.reset_at or self.until)

    def to_dict(self) -> dict[str, Any]:
        return {
            "runtime": self.runtime,
            "provider": self.provider,
            "model": self.model,
            "cause": self.cause,
            "reason": self.reason,
            "since": iso_utc(self.since),
            "until": iso_utc(self.until) if self.until else None,
            "reset_at": iso_utc(self.reset_at) if self.reset_at else None,
            "needs_human": self.needs_human,
            "fix": self.fix,
            "set_by": self.set_by,
            "repo": self.repo,
            "task": self.task,
        }

    @classmethod
    def from_dict(cls, raw: object) -> RuntimePause | None:
        """Read back :meth:`to_dict`; None for anything malformed (a hand-edited file never raises)."""
        if not isinstance(raw, dict):
            return None
        runtime, cause, since = raw.get("runtime"), raw.get("cause"), parse_time(raw.get("since"))
        if not isinstance(runtime, str) or not runtime or cause not in CAUSES or since is None:
            return None
        return cls(
            runtime=runtime,
            cause=cast(PauseCause, cause),
            reason=_text(raw.get("reason")),
            since=since,
            until=parse_time(raw.get("until")),
            fix=_text(raw.get("fix")),
            set_by=_text(raw.get("set_by"), 300),
            provider=_opt(raw.get("provider")),
            model=_opt(raw.get("model")),
            needs_human=raw.get("needs_human") is True,
            reset_at=parse_time(raw.get("reset_at")),
            repo=_opt(raw.get("repo")),
            task=_opt(raw.get("task")),
        )


@dataclass(frozen=True, slots=True)
class Strike:
    """One rate-limited attempt; enough of them close together pause the runtime."""

    runtime: str
    provider: str | None
    at: datetime
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "runtime": self.runtime,
            "provider": self.provider,
            "at": iso_utc(self.at),
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, raw: object) -> Strike | None:
        if not isinstance(raw, dict) or not isinstance(raw.get("runtime"), str):
            return None
        at = parse_time(raw.get("at"))
        if at is None:
            return None
        return cls(str(raw["runtime"]), _opt(raw.get("provider")), at, _text(raw.get("reason"), 300))


@dataclass(frozen=True, slots=True)
class LiftedPause:
    pause: RuntimePause
    lifted_at: datetime
    lifted_by: str

    def to_dict(self) -> dict[str, Any]:
        return {**self.pause.to_dict(), "lifted_at": iso_utc(self.lifted_at), "lifted_by": self.lifted_by}

    @classmethod
    def from_dict(cls, raw: object) -> LiftedPause | None:
        pause = RuntimePause.from_dict(raw)
        if pause is None or not isinstance(raw, dict):
            return None
        at = parse_time(raw.get("lifted_at"))
        return cls(pause, at or pause.since, _text(raw.get("lifted_by"), 300))


@dataclass(frozen=True, slots=True)
class PauseBook:
    """The store's content at one moment."""

    pauses: tuple[RuntimePause, ...] = ()
    auto_resume: bool = True
    auto_resume_source: str | None = None  # who published the setting (the hub of which ecosystem)
    strikes: tuple[Strike, ...] = ()
    lifted: tuple[LiftedPause, ...] = ()

    def blocking(self, runtime: str, provider: str | None, now: datetime) -> RuntimePause | None:
        """The pause that holds ``runtime`` (its provider when known) at ``now``, if any (as it
        stands under ``auto_resume``); of several, the one that lasts longest."""
        found = [
            p.effective(self.auto_resume)
            for p in self.pauses
            if p.blocks(runtime, provider, now, self.auto_resume)
        ]
        if not found:
            return None
        return max(found, key=lambda p: (p.until is None, p.until or now))

    def active(self, now: datetime) -> list[RuntimePause]:
        """Every pause blocking something at ``now``, by runtime, as it stands under the store's
        ``auto_resume`` (:meth:`RuntimePause.effective`)."""
        return sorted(
            (
                p.effective(self.auto_resume)
                for p in self.pauses
                if p.blocks(p.runtime, p.provider, now, self.auto_resume)
            ),
            key=lambda p: (p.runtime, p.provider or ""),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "auto_resume": self.auto_resume,
            "auto_resume_source": self.auto_resume_source,
            "pauses": [p.to_dict() for p in self.pauses],
            "strikes": [s.to_dict() for s in self.strikes],
            "lifted": [p.to_dict() for p in self.lifted],
        }

    @classmethod
    def from_dict(cls, raw: object) -> PauseBook:
        if not isinstance(raw, dict):
            return cls()
        return cls(
            pauses=tuple(p for r in _list(raw.get("pauses")) if (p := RuntimePause.from_dict(r)) is not None),
            auto_resume=raw.get("auto_resume") is not False,
            auto_resume_source=_opt(raw.get("auto_resume_source")),
            strikes=tuple(s for r in _list(raw.get("strikes")) if (s := Strike.from_dict(r)) is not None),
            lifted=tuple(
                gone for r in _list(raw.get("lifted")) if (gone := LiftedPause.from_dict(r)) is not None
            ),
        )


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


# --- reading and writing ------------------------------------------------------------------------
def read() -> PauseBook:
    """The store as it is now (lock-free; a missing or unreadable file is an empty store)."""
    try:
        data = statehome.pauses_path().read_bytes()
    except OSError:
        return PauseBook()
    try:
        return PauseBook.from_dict(json.loads(data))
    except (ValueError, RecursionError):
        return PauseBook()


def _write(book: PauseBook) -> None:
    data = json.dumps(book.to_dict(), indent=2, ensure_ascii=False).encode() + b"\n"
    fsutil.write_atomic(statehome.pauses_path(), data, mode=0o600, keep_mode=False)


def _mutate(change: Callable[[PauseBook], PauseBook | None]) -> PauseBook:
    """Lock, re-read, apply ``change`` (None: nothing to write), write. Returns the book in force."""
    with fsutil.flocked(statehome.pauses_lock_path()):
        book = read()
        changed = change(book)
        if changed is None or changed == book:
            return book
        _write(changed)
        return changed


def _tidy(book: PauseBook, now: datetime) -> PauseBook:
    """Pauses that have lapsed move to ``lifted`` (said so); old strikes go."""
    keep: list[RuntimePause] = []
    lapsed: list[LiftedPause] = []
    for pause in book.pauses:
        if pause.blocks(pause.runtime, pause.provider, now, book.auto_resume):
            keep.append(pause)
        else:
            end = pause.ends(book.auto_resume) or now
            lapsed.append(LiftedPause(pause, end, "its reset time passed"))
    return replace(
        book,
        pauses=tuple(keep),
        lifted=(*book.lifted, *lapsed)[-KEEP_LIFTED:],
        strikes=book.strikes[-KEEP_STRIKES:],
    )


def put(pause: RuntimePause, now: datetime) -> tuple[RuntimePause, bool]:
    """Record ``pause``. Returns (the pause in force, whether it is new): a pause already holding
    the same runtime and provider that lasts at least as long stays, so a second process that ran
    into the same limit raises no second escalation. Its texts are kept as data (control
    characters escaped, cut at :data:`MAX_TEXT`)."""
    pause = replace(pause, reason=_text(pause.reason), fix=_text(pause.fix), set_by=_text(pause.set_by, 300))
    outcome: list[tuple[RuntimePause, bool]] = []

    def change(book: PauseBook) -> PauseBook:
        book = _tidy(book, now)
        same = [p for p in book.pauses if (p.runtime, p.provider) == (pause.runtime, pause.provider)]
        for old in same:
            if _outlasts(old, pause, book.auto_resume):
                outcome.append((old, False))
                return book
        others = tuple(p for p in book.pauses if p not in same)
        outcome.append((pause, not same))
        return replace(book, pauses=(*others, pause))

    _mutate(change)
    return outcome[0]


def _outlasts(old: RuntimePause, new: RuntimePause, auto_resume: bool) -> bool:
    old_end, new_end = old.ends(auto_resume), new.ends(auto_resume)
    if old_end is None:
        return True  # only a human lifts the old one; a later limit changes nothing about that
    return new_end is not None and old_end >= new_end


def lift(runtime: str, *, by: str, now: datetime, provider: str | None = None) -> list[RuntimePause]:
    """Lift every pause of ``runtime`` (only ``provider``'s when named); returns what was lifted.
    The runtime's rate-limit strikes go with it: a human said it may run again."""
    lifted: list[RuntimePause] = []

    def change(book: PauseBook) -> PauseBook:
        keep: list[RuntimePause] = []
        for pause in book.pauses:
            if pause.runtime == runtime and (provider is None or pause.provider == provider):
                lifted.append(pause)
            else:
                keep.append(pause)
        strikes = tuple(s for s in book.strikes if s.runtime != runtime)
        gone = [LiftedPause(p, now, by) for p in lifted]
        return replace(book, pauses=tuple(keep), strikes=strikes, lifted=(*book.lifted, *gone)[-KEEP_LIFTED:])

    _mutate(change)
    return lifted


def strike(entry: Strike, window: timedelta) -> list[Strike]:
    """Record one rate-limited attempt; returns the strikes of its runtime and provider within
    ``window`` before it (itself included)."""
    found: list[Strike] = []

    def change(book: PauseBook) -> PauseBook:
        recent = tuple(s for s in book.strikes if entry.at - s.at < window)
        strikes = (*recent, entry)[-KEEP_STRIKES:]
        found.extend(s for s in strikes if (s.runtime, s.provider) == (entry.runtime, entry.provider))
        return replace(book, strikes=strikes)

    _mutate(change)
    return found


def set_auto_resume(value: bool, source: str) -> bool:
    """Publish ``[policy] auto_resume`` for every supervisor on the machine; True when it changed."""
    changed: list[bool] = []

    def change(book: PauseBook) -> PauseBook | None:
        if book.auto_resume == value:
            return None  # (a second hub publishing the same value is not a change)
        changed.append(True)
        return replace(book, auto_resume=value, auto_resume_source=source)

    with contextlib.suppress(OSError):  # a read-only state home must not stop a hub cycle
        _mutate(change)
    return bool(changed)


def blocking(runtime: str, provider: str | None, now: datetime) -> RuntimePause | None:
    """The pause holding ``runtime`` at ``now`` (one lock-free read of the store)."""
    return read().blocking(runtime, provider, now)


def active(now: datetime) -> list[RuntimePause]:
    return read().active(now)


def by_runtime(pauses: Iterable[RuntimePause]) -> dict[str, list[RuntimePause]]:
    out: dict[str, list[RuntimePause]] = {}
    for pause in pauses:
        out.setdefault(pause.runtime, []).append(pause)
    return out
