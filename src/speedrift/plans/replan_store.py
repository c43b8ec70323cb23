"""Replan proposals waiting for a person: ``.speedrift/plans/replans/<k>/`` (plans/replan.py).

A proposal ``k`` holds, for each wave it changes, the spec as the Architect replanned it
(``wave-<n>.json``) and the spec it replaces (``wave-<n>.before.json``), both in canonical bytes,
and ``replan.json``: the replan summary (plans/replan.py ``Replan.summary``), its state
(``proposed``, then ``applied`` or ``rejected``) and the id of its coordination record. It is
runtime state, never committed: approving it writes the specs into ``plans/``.

Invariant: nothing read back is trusted — every file is checked (shape, the spec schema, the wave
number, and each spec's hash against the one recorded when it was proposed) and a mismatch is
refused naming the file; a proposal whose ``replan.json`` is missing was never completed and is
not waiting for anyone.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from speedrift import fsutil, layout, safejson
from speedrift.errors import InvalidValue, NotFound, Refused
from speedrift.plans import spec

META_FILE = "replan.json"
STATES = ("proposed", "applied", "rejected")
_HASH = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class WaveEntry:
    mode: str
    compiled: bool
    spec_hash_before: str
    spec_hash_after: str
    lists: Mapping[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Proposal:
    from_wave: int
    reason: str
    state: str
    closed: tuple[int, ...]
    unchanged: tuple[int, ...]
    record: str | None
    waves: Mapping[int, WaveEntry]


def replans_dir(repo: Path) -> Path:
    return layout.plans_state_dir(repo) / "replans"


def proposal_dir(repo: Path, k: int) -> Path:
    return replans_dir(repo) / str(k)


@contextmanager
def locked(repo: Path) -> Iterator[None]:
    """One proposal decided at a time: proposing, applying, approving and rejecting hold it."""
    with fsutil.flocked(replans_dir(repo) / ".lock"):
        yield


def new_proposal(repo: Path, waves: Sequence[tuple[int, Mapping[str, Any], Mapping[str, Any]]]) -> int:
    """A new numbered proposal holding each ``(wave, before, after)``; its number. Its
    ``replan.json`` is written last (:func:`save`)."""
    base = replans_dir(repo)
    base.mkdir(parents=True, exist_ok=True)
    k = max((int(p.name) for p in base.iterdir() if p.name.isdigit()), default=0) + 1
    while True:
        try:
            proposal_dir(repo, k).mkdir()
            break
        except FileExistsError:
            k += 1
    for n, before, after in waves:
        fsutil.write_atomic(proposal_dir(repo, k) / f"wave-{n}.before.json", spec.canonical(before))
        fsutil.write_atomic(proposal_dir(repo, k) / f"wave-{n}.json", spec.canonical(after))
    return k


def save(repo: Path, k: int, meta: Mapping[str, Any]) -> None:
    data = orjson.dumps(meta, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    fsutil.write_atomic(proposal_dir(repo, k) / META_FILE, data)


def pending(repo: Path) -> list[int]:
    """The proposals waiting for a person, oldest first."""
    base = replans_dir(repo)
    if not base.is_dir():
        return []
    found = []
    for entry in sorted((p for p in base.iterdir() if p.name.isdigit()), key=lambda p: int(p.name)):
        try:
            if load(repo, int(entry.name)).state == "proposed":
                found.append(int(entry.name))
        except (NotFound, InvalidValue):
            continue  # never completed, or damaged: `approve-replan` says which
    return found


def refuse_pending(repo: Path) -> None:
    waiting = pending(repo)
    if waiting:
        k = waiting[0]
        raise Refused(
            f"replan {k} waits for approval: a new replan would be made over it",
            hint=f"approve it (`speedrift plan approve-replan {k}`) or reject it "
            f"(`speedrift plan approve-replan {k} --reject`), then replan",
        )


def load(repo: Path, k: int) -> Proposal:
    path = proposal_dir(repo, k) / META_FILE
    try:
        raw = safejson.loads(path.read_bytes())
    except FileNotFoundError:
        raise NotFound(
            f"no replan {k} ({path.parent.relative_to(repo)})",
            hint="`speedrift board wave-N` shows the replan records and their numbers",
        ) from None
    except ValueError as error:
        raise InvalidValue(f"{path}: not valid JSON: {error}") from None
    problem = _problem(raw)
    if problem:
        raise InvalidValue(f"{path}: {problem}", hint="propose the replan again (`speedrift plan update`)")
    waves = {
        int(n): WaveEntry(
            mode=entry["mode"],
            compiled=entry["compiled"],
            spec_hash_before=entry["spec_hash_before"],
            spec_hash_after=entry["spec_hash_after"],
            lists={k: list(v) for k, v in entry.items() if isinstance(v, list)},
        )
        for n, entry in raw["waves"].items()
    }
    return Proposal(
        from_wave=raw["from_wave"],
        reason=raw.get("reason", ""),
        state=raw["state"],
        closed=tuple(raw.get("closed_waves", ())),
        unchanged=tuple(raw.get("unchanged_waves", ())),
        record=raw.get("record"),
        waves=waves,
    )


def _problem(raw: object) -> str | None:
    if not isinstance(raw, dict):
        return "not a JSON object"
    if not _integer(raw.get("from_wave")) or raw.get("state") not in STATES:
        return "from_wave or state missing or invalid"
    if not isinstance(raw.get("reason", ""), str) or not isinstance(raw.get("record", ""), str | None):
        return "reason or record is not text"
    for key in ("closed_waves", "unchanged_waves"):
        if not all(_integer(n) for n in raw.get(key, [])) or not isinstance(raw.get(key, []), list):
            return f"{key} is not a list of wave numbers"
    waves = raw.get("waves")
    if not isinstance(waves, dict):
        return "waves is not an object"
    for n, entry in waves.items():
        if not n.isdigit() or not isinstance(entry, dict):
            return f"waves.{n}: not a wave"
        if entry.get("mode") not in {m.value for m in spec.Mode} or not isinstance(
            entry.get("compiled"), bool
        ):
            return f"waves.{n}: mode or compiled invalid"
        if not all(_HASH.match(str(entry.get(key))) for key in ("spec_hash_before", "spec_hash_after")):
            return f"waves.{n}: a spec hash is invalid"
        lists = [v for v in entry.values() if isinstance(v, list)]
        if not all(isinstance(item, str) for value in lists for item in value):
            return f"waves.{n}: a task list holds something other than ids"
    return None


def _integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def proposed(repo: Path, k: int, n: int, entry: WaveEntry) -> dict[str, Any]:
    """Wave ``n``'s spec as replan ``k`` proposed it, checked against its recorded hash."""
    return _spec(proposal_dir(repo, k) / f"wave-{n}.json", n, entry.spec_hash_after, k)


def before_of(repo: Path, k: int, n: int, entry: WaveEntry) -> dict[str, Any]:
    """Wave ``n``'s spec as it was when replan ``k`` was proposed."""
    return _spec(proposal_dir(repo, k) / f"wave-{n}.before.json", n, entry.spec_hash_before, k)


def _spec(path: Path, n: int, expected: str, k: int) -> dict[str, Any]:
    value = spec.read(path)
    problems = spec.schema_problems(value)
    if problems or value.get("wave") != n or spec.spec_hash(value) != expected:
        raise Refused(
            f"{path}: not the spec replan {k} proposed (changed or damaged since); nothing was applied",
            hint=f"reject it (`speedrift plan approve-replan {k} --reject`) and replan again",
        )
    return value
