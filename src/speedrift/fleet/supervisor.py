"""Admission for every attempt on this machine: the one place that says whether an attempt may start.

Job: before an attempt claims its task — in ``speedrift run``, in a repo's service, or in the hub's
``dispatch_ready`` — it asks :func:`admit`. Admission counts the attempts live right now, from the
entries in :func:`speedrift.statehome.live_dir` (one per live attempt, whoever started it),
against three limits: the repo's ``[service] max_agents``, the runtime's ``[limits] <runtime>``
(all repos on the machine together) and the ecosystem's ``[policy] max_agents`` (every attempt on
the machine; the hub hands it to the processes it starts in ``$SPEEDRIFT_MAX_AGENTS`` and
publishes it in the state directory for the rest). An
admitted attempt's entry is written before the lock is released; it is the attempt's
:class:`Slot`, released when the attempt ends. A refusal is an :class:`Admission` naming the
limit and why.

Invariants:

- Count, prune and register happen under one ``flock`` (:func:`statehome.admission_lock_path`),
  so two processes admitting at once never both take the last free slot, and separate processes
  (services, ``run``, the hub) agree because they count the same directory.
- An entry names the process that runs the attempt by :class:`~speedrift.procs.ProcessIdentity`
  (pid + start time). An entry whose process is gone (killed, crashed, its pid reused) is pruned
  by whoever next finds a limit reached: a dead attempt never holds a slot for long. Pruning only
  at a limit keeps the common admission a directory listing.
- Everything admission counts is in the entry's *name* (repo key, runtime, pid, start time), so
  counting 1,000 live attempts reads one directory and no file; the content (repo path, task,
  attempt, who holds it) is for people and tools that list attempts.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

from speedrift import fsutil, statehome
from speedrift.errors import UsageError
from speedrift.fleet.config import RepoConfig
from speedrift.procs import ProcessIdentity, identity_alive, identity_of
from speedrift.times import format_time, now_utc

ECOSYSTEM_LIMIT_ENV = "SPEEDRIFT_MAX_AGENTS"  # [policy] max_agents, as the hub passes it on
SLOT_ENV = "SPEEDRIFT_SLOT"  # an entry the hub admitted for the `speedrift run` it starts
SUFFIX = ".live"

LimitName = Literal["repo", "runtime", "ecosystem"]
Holder = Literal["run", "service", "hub"]

_NAME = re.compile(r"^([0-9a-f]{16})\.([a-z]+)\.([0-9]+)\.([0-9]+)\.([0-9a-f]{12})\.live$")


def repo_key(repo: Path) -> str:
    """A short, stable key for a repo's path (the entry names carry no path)."""
    return hashlib.blake2b(str(repo.resolve()).encode(), digest_size=8).hexdigest()


def ecosystem_limit() -> int | None:
    """``[policy] max_agents``: as the hub passed it to this process (``$SPEEDRIFT_MAX_AGENTS``),
    else as the hub published it for the machine (:func:`publish_ecosystem_limit`), so that a
    service or ``speedrift run`` a person starts counts it too; None: no cap."""
    raw = os.environ.get(ECOSYSTEM_LIMIT_ENV, "").strip()
    if not raw:
        return published_ecosystem_limit()
    if not raw.isdigit() or int(raw) < 1:
        raise UsageError(f"${ECOSYSTEM_LIMIT_ENV} must be a positive whole number, not {raw!r}")
    return int(raw)


def published_ecosystem_limit() -> int | None:
    try:
        data = orjson.loads(statehome.ecosystem_limit_path().read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    value = data.get("max_agents") if isinstance(data, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else None


def publish_ecosystem_limit(max_agents: int | None, source: str) -> None:
    """The hub publishes its ``[policy] max_agents`` for every supervisor on the machine (None lifts
    it). Written only when it changes; the last hub to publish wins (one hub per machine is the
    rule)."""
    path = statehome.ecosystem_limit_path()
    if published_ecosystem_limit() == max_agents and (max_agents is not None or not path.exists()):
        return
    if max_agents is None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    record = {"max_agents": max_agents, "source": source, "at": format_time(now_utc())}
    fsutil.write_atomic(path, orjson.dumps(record), mode=0o600, keep_mode=False)


@dataclass(frozen=True)
class Limits:
    """The caps an attempt is admitted under; None: no cap of that kind."""

    repo: int | None = None
    runtime: int | None = None
    ecosystem: int | None = None

    @classmethod
    def for_attempt(cls, config: RepoConfig, runtime: str, ecosystem: int | None = None) -> Limits:
        """The repo's ``[service] max_agents``, its ``[limits]`` for ``runtime``, and the ecosystem's
        cap (``ecosystem``, else ``$SPEEDRIFT_MAX_AGENTS``)."""
        return cls(
            repo=config.service.max_agents,
            runtime=config.limits.for_runtime(runtime),
            ecosystem=ecosystem if ecosystem is not None else ecosystem_limit(),
        )


@dataclass(frozen=True)
class Counts:
    """Live attempts when the decision was made (before the admitted one)."""

    repo: int
    runtime: int
    ecosystem: int


@dataclass(frozen=True)
class LiveAttempt:
    """One entry of the live directory, as its name says (no file read)."""

    name: str
    repo_key: str
    runtime: str
    identity: ProcessIdentity

    @classmethod
    def parse(cls, name: str) -> LiveAttempt | None:
        match = _NAME.match(name)
        if match is None:
            return None
        key, runtime, pid, started, _token = match.groups()
        ticks = int(started)
        return cls(name, key, runtime, ProcessIdentity(int(pid), ticks or None))

    def record(self) -> dict[str, Any]:
        """The entry's content (repo, task, attempt, holder…); empty when it is gone or unreadable."""
        try:
            data = orjson.loads((statehome.live_dir() / self.name).read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return {}
        return data if isinstance(data, dict) else {}


def _entry_name(key: str, runtime: str, identity: ProcessIdentity, token: str) -> str:
    return f"{key}.{runtime}.{identity.pid}.{identity.started or 0}.{token}{SUFFIX}"


@dataclass
class Slot:
    """An admitted attempt's entry. Release it when the attempt ends (releasing twice is harmless)."""

    repo: Path
    task_id: str
    runtime: str
    identity: ProcessIdentity
    token: str
    holder: Holder
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return _entry_name(repo_key(self.repo), self.runtime, self.identity, self.token)

    @property
    def path(self) -> Path:
        return statehome.live_dir() / self.name

    def record(self) -> dict[str, Any]:
        return {
            "repo": str(self.repo),
            "task": self.task_id,
            "runtime": self.runtime,
            "identity": self.identity.to_dict(),
            "holder": self.holder,
            "at": format_time(now_utc()),
            **self.fields,
        }

    def _write(self) -> None:
        data = orjson.dumps(self.record())
        fsutil.write_atomic(self.path, data, mode=0o600, keep_mode=False, durable=False)

    def hand_to(self, identity: ProcessIdentity, holder: Holder | None = None) -> None:
        """The attempt now runs in another process (a worker the holder started): the entry follows
        that process, so it stays counted exactly as long as that process lives."""
        with fsutil.flocked(statehome.admission_lock_path()):
            old = self.path
            self.identity = identity
            self.holder = holder or self.holder
            self._write()
            if old != self.path:
                with contextlib.suppress(FileNotFoundError):
                    old.unlink()

    def note(self, **fields: Any) -> None:
        """Add facts to the entry's content (the attempt number once claimed); never raises."""
        self.fields.update(fields)
        with contextlib.suppress(OSError):
            self._write()

    def release(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


@dataclass(frozen=True)
class Admission:
    """Admission's decision. ``slot`` is set when admitted; ``limit`` names the cap that refused."""

    admitted: bool
    reason: str
    counts: Counts
    limits: Limits
    limit: LimitName | None = None
    slot: Slot | None = None
    pruned: int = 0  # dead entries removed while deciding

    def as_dict(self) -> dict[str, Any]:
        return {
            "admitted": self.admitted,
            "reason": self.reason,
            "limit": self.limit,
            "live": {
                "repo": self.counts.repo,
                "runtime": self.counts.runtime,
                "ecosystem": self.counts.ecosystem,
            },
            "limits": {
                "repo": self.limits.repo,
                "runtime": self.limits.runtime,
                "ecosystem": self.limits.ecosystem,
            },
        }


def _names() -> list[str]:
    try:
        return os.listdir(statehome.live_dir())
    except FileNotFoundError:
        return []


def _listing(names: list[str] | None = None) -> list[LiveAttempt]:
    return [
        entry
        for name in (_names() if names is None else names)
        if (entry := LiveAttempt.parse(name)) is not None
    ]


def _count(names: list[str], key: str, runtime: str) -> Counts:
    """Counted from the names alone (no parsing into objects: this is admission's hot path)."""
    infix = f".{runtime}."
    repo = same = total = 0
    for name in names:
        if not name.endswith(SUFFIX) or name.startswith("."):
            continue  # a temp file of a write in progress, or something that is not an entry
        total += 1
        if name.startswith(key):
            repo += 1
        if name.startswith(infix, len(key)):
            same += 1
    return Counts(repo, same, total)


def _reached(counts: Counts, limits: Limits) -> list[LimitName]:
    reached: list[LimitName] = []
    if limits.repo is not None and counts.repo >= limits.repo:
        reached.append("repo")
    if limits.runtime is not None and counts.runtime >= limits.runtime:
        reached.append("runtime")
    if limits.ecosystem is not None and counts.ecosystem >= limits.ecosystem:
        reached.append("ecosystem")
    return reached


def _prune(names: list[str], relevant: Callable[[str], bool]) -> tuple[list[str], int]:
    """Remove the entries (among those ``relevant`` says to look at) whose process is gone, and any
    name in the directory that is not an entry at all; the names left. Works on the names alone:
    this runs with the admission lock held."""
    folder = statehome.live_dir()
    kept: list[str] = []
    removed = 0
    verdicts: dict[tuple[int, int], bool] = {}
    for name in names:
        if name.startswith("."):
            kept.append(name)  # a write in progress (temp file); never counted
            continue
        if _NAME.match(name) is None:
            alive = False  # not an entry: it must not count toward any limit
        elif not relevant(name):
            alive = True
        else:
            parts = name.split(".")
            ident = (int(parts[2]), int(parts[3]))
            cached = verdicts.get(ident)
            if cached is None:
                cached = verdicts[ident] = identity_alive(ProcessIdentity(ident[0], ident[1] or None))
            alive = cached
        if alive:
            kept.append(name)
            continue
        removed += 1
        with contextlib.suppress(FileNotFoundError):
            (folder / name).unlink()
    return kept, removed


def _refusal(limit: LimitName, counts: Counts, limits: Limits, repo: Path, runtime: str) -> str:
    if limit == "repo":
        return (
            f"repo limit reached: {counts.repo} attempt(s) already run in {repo} "
            f"([service] max_agents = {limits.repo})"
        )
    if limit == "runtime":
        return (
            f"runtime limit reached: {counts.runtime} {runtime} attempt(s) already run on this machine "
            f"([limits] {runtime} = {limits.runtime})"
        )
    return (
        f"ecosystem limit reached: {counts.ecosystem} attempt(s) already run on this machine "
        f"([policy] max_agents = {limits.ecosystem})"
    )


def _shown(counts: Counts, limits: Limits, runtime: str) -> str:
    def of(n: int, cap: int | None) -> str:
        return f"{n + 1} of {cap}" if cap is not None else f"{n + 1}"

    return (
        f"{of(counts.repo, limits.repo)} in the repo, {of(counts.runtime, limits.runtime)} {runtime}, "
        f"{of(counts.ecosystem, limits.ecosystem)} on this machine"
    )


def admit(
    repo: Path,
    task_id: str,
    runtime: str,
    limits: Limits,
    *,
    identity: ProcessIdentity | None = None,
    holder: Holder = "run",
) -> Admission:
    """Admit one attempt of ``task_id`` (``runtime``) in ``repo`` under ``limits``, or say which limit
    refuses it. ``identity``: the process that will run it (default: this one; a holder that hands
    it to a worker calls :meth:`Slot.hand_to` once the worker exists)."""
    key = repo_key(repo)
    who = identity or identity_of()
    with fsutil.flocked(statehome.admission_lock_path()):
        names = _names()
        counts = _count(names, key, runtime)
        reached = _reached(counts, limits)
        pruned = 0
        if reached:  # only now is it worth asking which of them still run
            infix = f".{runtime}."

            def relevant(name: str) -> bool:
                return (
                    "ecosystem" in reached
                    or ("runtime" in reached and name.startswith(infix, len(key)))
                    or ("repo" in reached and name.startswith(key))
                )

            names, pruned = _prune(names, relevant)
            counts = _count(names, key, runtime)
            reached = _reached(counts, limits)
        if reached:
            limit = reached[0]
            reason = _refusal(limit, counts, limits, repo, runtime)
            return Admission(False, reason, counts, limits, limit=limit, pruned=pruned)
        slot = Slot(repo.resolve(), task_id, runtime, who, secrets.token_hex(6), holder)
        slot._write()
    return Admission(
        True, f"admitted: {_shown(counts, limits, runtime)}", counts, limits, slot=slot, pruned=pruned
    )


def adopt(name: str, repo: Path, task_id: str, identity: ProcessIdentity | None = None) -> Slot | None:
    """Take over the entry the hub admitted for this process (``$SPEEDRIFT_SLOT`` names it; the entry
    is found by its token, since the hub may already have handed it to this process's identity).
    None when there is no such entry, or it was made for another repo or task: admission then runs
    anew."""
    match = _NAME.match(name)
    if match is None or match.group(1) != repo_key(repo):
        return None
    token = match.group(5)
    with fsutil.flocked(statehome.admission_lock_path()):
        entry = next((e for e in _listing() if e.name.split(".")[4] == token), None)
        if entry is None or entry.repo_key != match.group(1):
            return None
        if entry.record().get("task") not in (None, task_id):
            return None
        slot = Slot(repo.resolve(), task_id, entry.runtime, entry.identity, token, "run")
    slot.hand_to(identity or identity_of(), "run")
    return slot


def live_attempts(repo: Path | None = None) -> list[LiveAttempt]:
    """The entries as they are now (dead ones included until someone prunes them), of one repo or all."""
    entries = _listing()
    if repo is None:
        return entries
    key = repo_key(repo)
    return [e for e in entries if e.repo_key == key]


def prune_dead() -> int:
    """Remove every entry whose process is gone; how many were removed."""
    with fsutil.flocked(statehome.admission_lock_path()):
        return _prune(_names(), lambda _name: True)[1]
