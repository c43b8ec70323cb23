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
Invariant: everything printed went through eventview (printable, bounded) or is JSON.
"""

from __future__ import annotations

import sys
import time
from argparse import Namespace
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


def tail(args: Namespace) -> None:
    repo = store(args).directory.parent
    folder = _attempt_dir(repo, args.task_id, args.attempt)
    as_json = bool(args.as_json)
    while True:
        end = _show(folder, follow=bool(args.follow), as_json=as_json)
        if end is None or args.attempt is not None:
            return
        newer = _newer_attempt(repo, args.task_id, folder)
        if newer is None:
            return
        if not as_json:
            say(f"— attempt {newer.name} of {printable(args.task_id)} has started; following it")
        folder = newer


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


def _show(folder: Path, *, follow: bool, as_json: bool) -> dict[str, Any] | None:
    """Print the attempt's events (following it with ``follow``); its end, once it has ended."""
    attempt = int(folder.name)
    position = 0
    while True:
        batch = runs.event_batch(folder, position)
        position = batch["position"]
        for shown in batch["events"]:
            _print_event(attempt, shown, as_json)
        end: dict[str, Any] | None = batch["end"]
        if end is not None:
            _print_end(attempt, end, as_json)
            return end
        if batch["more"] and batch["events"]:
            continue
        if not follow:
            if not as_json:
                say("— still running (`-f` follows it)")
            return None
        sys.stdout.flush()
        time.sleep(POLL_S)


def _print_event(attempt: int, shown: dict[str, Any], as_json: bool) -> None:
    view = shown.pop("view")
    if as_json:
        _json_line({"attempt": attempt, **shown, "view": view})
        return
    line = eventview.EventLine(
        view["ts"], view["kind"], eventview.Style(view["style"]), view["line"], view.get("detail", "")
    )
    sys.stdout.write(eventview.terminal_line(line) + "\n")
    sys.stdout.flush()


def _print_end(attempt: int, end: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _json_line({"attempt": attempt, "end": end})
        return
    state = end.get("state") or "unknown"
    if state == records.AttemptState.RUNNING.value:
        state = "running, but its process is gone"
    why = ": ".join(str(part) for part in (end.get("failure"), end.get("reason")) if part)
    say(f"— attempt {attempt} {printable(state)}" + (f": {printable(why)}" if why else ""))


def _json_line(value: dict[str, Any]) -> None:
    sys.stdout.buffer.write(orjson.dumps(value) + b"\n")  # JSON Lines: one compact object a line
    sys.stdout.flush()
