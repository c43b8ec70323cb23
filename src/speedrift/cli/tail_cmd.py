"""``speedrift tail TASK [-f] [--attempt N] [--json]``: an attempt's events as a person reads them.

Each event is one line — its time (UTC, to the millisecond), a label and what happened — rendered by
:mod:`speedrift.eventview`, the same rendering the dashboard's run detail shows: ``edit  Edit
src/app.py (+3 −1)``, ``tool  Bash: pytest -q``, ``result  → 3 passed``. Without ``-f`` it prints
what the log holds and stops; with ``-f`` it follows while the attempt runs, reading the log from
the byte position it reached (no line twice, none skipped), and ends with the attempt's final state
(``done``, ``failed: <class>: <reason>``, ``merge-pending``, ``waiting``). An attempt whose record
still says running but whose process is gone ends too ("its process is gone").

When the followed attempt was the latest (no ``--attempt``) and a newer attempt of the same task has
started by the time it ends (a retry), ``-f`` goes on with that one; it does not wait for a retry
that has not started (the retry's backoff may be long: run ``tail -f`` again).

``--json`` prints JSON Lines: each event as written (``ts``, ``kind``, ``text``, ``data``) with
``attempt`` and ``view`` (the rendering), then, once the attempt has ended, ``{"attempt", "end"}``.

The follow loop is shared: :class:`Follower` reads one attempt's log on from its position,
:func:`follow_all` follows several at once (``speedrift attach --all``, each line tagged), and
:func:`follow_task` follows one task across its retries (``tail -f`` and ``speedrift attach``). Following
only reads the run directory: it never signals or waits on the agent, so stopping it changes nothing.
Invariant: everything printed went through eventview (printable, bounded) or is JSON.
"""

from __future__ import annotations

import sys
import time
from argparse import Namespace
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

from speedrift import eventview, layout, records
from speedrift.cli.base import store
from speedrift.cli.output import say
from speedrift.errors import NotFound
from speedrift.termtext import printable
from speedrift.web import runs

POLL_S = 0.3  # how often a followed log is looked at


class Follower:
    """One attempt's ``events.jsonl``, read on from the byte position reached (no line twice, none
    skipped). ``prefix`` starts each text line, ``tag`` is merged into each JSON line (``--all``)."""

    def __init__(self, folder: Path, *, prefix: str = "", tag: Mapping[str, Any] | None = None) -> None:
        self.folder = folder
        self.attempt = int(folder.name)
        self.prefix = prefix
        self.tag = dict(tag or {})
        self.position = 0
        self.end: dict[str, Any] | None = None

    def poll(self) -> Iterator[dict[str, Any]]:
        """The events written since the last poll; :attr:`end` is set once the attempt has ended."""
        while True:
            batch = runs.event_batch(self.folder, self.position)
            self.position = batch["position"]
            yield from batch["events"]
            if batch["end"] is not None:
                self.end = batch["end"]
                return
            if not (batch["more"] and batch["events"]):
                return


def tail(args: Namespace) -> None:
    repo = store(args).directory.parent
    folder = _attempt_dir(repo, args.task_id, args.attempt)
    follow_task(
        repo,
        args.task_id,
        folder,
        follow=bool(args.follow),
        as_json=bool(args.as_json),
        chain=args.attempt is None,
    )


def follow_task(
    repo: Path, task_id: str, folder: Path, *, follow: bool, as_json: bool, chain: bool
) -> dict[str, Any] | None:
    """Print the attempt's events (following it with ``follow``) and its end; with ``chain``, go on
    with a newer attempt of the task that has started by then. The last end seen, None if running."""
    while True:
        follower = Follower(folder)
        follow_all([follower], follow=follow, as_json=as_json)
        end = follower.end
        if end is None:
            if not as_json:
                say("— still running (`-f` follows it)")
            return None
        if not chain:
            return end
        newer = _newer_attempt(repo, task_id, folder)
        if newer is None:
            return end
        if not as_json:
            say(f"— attempt {newer.name} of {printable(task_id)} has started; following it")
        folder = newer


def follow_all(followers: list[Follower], *, follow: bool, as_json: bool) -> None:
    """Print each follower's events, and its end once it has ended; with ``follow``, until all have."""
    live = list(followers)
    while live:
        for follower in list(live):
            for shown in follower.poll():
                _print_event(follower, shown, as_json)
            if follower.end is not None:
                _print_end(follower, follower.end, as_json)
                live.remove(follower)
        if not follow or not live:
            return
        sys.stdout.flush()
        time.sleep(POLL_S)


def _attempt_dir(repo: Path, task_id: str, attempt: int | None) -> Path:
    if attempt is not None:
        folder: Path | None = layout.attempt_dir(repo, task_id, attempt)
    else:
        numbered = layout.attempt_dirs(repo, task_id)
        folder = numbered[-1] if numbered else None
    if folder is None or not folder.is_dir():
        what = f"attempt {attempt} of {task_id!r}" if attempt is not None else f"an attempt of {task_id!r}"
        raise NotFound(f"{what} has not run here", hint="`speedrift run TASK` starts one")
    return folder


def _newer_attempt(repo: Path, task_id: str, folder: Path) -> Path | None:
    later = [p for p in layout.attempt_dirs(repo, task_id) if int(p.name) > int(folder.name)]
    return later[0] if later else None


def _print_event(follower: Follower, shown: dict[str, Any], as_json: bool) -> None:
    view = shown.pop("view")
    if as_json:
        json_line({**follower.tag, "attempt": follower.attempt, **shown, "view": view})
        return
    line = eventview.EventLine(
        view["ts"], view["kind"], eventview.Style(view["style"]), view["line"], view.get("detail", "")
    )
    sys.stdout.write(follower.prefix + eventview.terminal_line(line) + "\n")
    sys.stdout.flush()


def end_words(end: Mapping[str, Any]) -> str:
    """An attempt's end as one phrase: ``done``, ``failed: <class>: <reason>`` (printable)."""
    state = end.get("state") or "unknown"
    if state == records.AttemptState.RUNNING.value:
        state = "running, but its process is gone"
    why = ": ".join(str(part) for part in (end.get("failure"), end.get("reason")) if part)
    return printable(str(state)) + (f": {printable(why)}" if why else "")


def _print_end(follower: Follower, end: dict[str, Any], as_json: bool) -> None:
    if as_json:
        json_line({**follower.tag, "attempt": follower.attempt, "end": end})
        return
    say(f"{follower.prefix}— attempt {follower.attempt} {end_words(end)}")


def json_line(value: dict[str, Any]) -> None:
    sys.stdout.buffer.write(orjson.dumps(value) + b"\n")  # JSON Lines: one compact object a line
    sys.stdout.flush()
