"""``speedrift replay BUNDLE…`` and ``speedrift plan metrics [WAVE]``.

``replay`` needs no repository: it reads each bundle directory alone (plans/replay.py) and exits
1 when any bundle's integrity fails, a stage is not a valid typed record, or the re-derived
decision or metrics differ from what the bundle stored; 0 when every bundle replays clean.
``plan metrics`` reads each wave's latest bundle in the repo at hand.
"""

from __future__ import annotations

import json
from argparse import Namespace
from pathlib import Path
from typing import Any

from speedrift import layout
from speedrift.cli.output import emit_json, say, table
from speedrift.cli.worker_cmds import repo_context
from speedrift.plans import metrics, trace
from speedrift.plans import replay as replaying
from speedrift.plans.spec import wave_numbers
from speedrift.textclip import clip


def replay(args: Namespace) -> int:
    reports = [replaying.replay(Path(name)) for name in args.bundles]
    if args.as_json:
        emit_json([report.as_dict() for report in reports])
    else:
        for report in reports:
            _print(report)
    return 0 if all(report.clean for report in reports) else 1


def _print(report: replaying.Report) -> None:
    head = f"{report.bundle}: wave {report.wave}, attempt {report.attempt}"
    if report.clean:
        phase = report.derived.get("closure", {}).get("phase", "?")
        say(f"{head}: no difference (closure: {phase})")
        return
    say(f"{head}: DIFFERENT")
    for problem in report.integrity:
        say(f"  integrity: {problem}")
    for problem in report.invalid_stages:
        say(f"  invalid: {problem}")
    for item in report.differences:
        stored = clip(json.dumps(item.stored, sort_keys=True), 200)
        derived = clip(json.dumps(item.derived, sort_keys=True), 200)
        say(f"  {item.path}: stored {stored}, re-derived {derived}")


def plan_metrics(args: Namespace) -> int:
    repo, _store, _config = repo_context(args)
    waves = [args.wave] if args.wave is not None else sorted(set(wave_numbers(repo)) | _traced(repo))
    per_wave: list[dict[str, Any]] = []
    for wave in waves:
        attempts = trace.attempts_of(repo, wave)
        if not attempts:
            continue
        folder = trace.bundle_dir(repo, wave, attempts[-1])
        _bundle, stored = trace.read(folder)
        measured = stored.get("metrics")
        if isinstance(measured, dict):
            per_wave.append({"wave": wave, "attempt": attempts[-1], "bundle": str(folder), **measured})
    total = metrics.cumulative(per_wave)
    if args.as_json:
        emit_json({"waves": per_wave, "cumulative": total})
        return 0
    if not per_wave:
        say("no wave has a trace bundle yet (a wave attempt writes one under .speedrift/traces/)")
        return 0
    names = [*metrics.SUMMED, *metrics.AVERAGED, *metrics.COUNTED]
    rows = [[name, *(_cell(item.get(name)) for item in per_wave), _cell(total.get(name))] for name in names]
    table("Quality metrics", ["metric", *(f"wave {item['wave']}" for item in per_wave), "all"], rows)
    return 0


def _traced(repo: Path) -> set[int]:
    folder = layout.traces_dir(repo)
    if not folder.is_dir():
        return set()
    names = (entry.name.removeprefix("wave-") for entry in folder.iterdir() if entry.name.startswith("wave-"))
    return {int(name) for name in names if name.isdigit()}


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, dict):
        return ", ".join(f"{key} {count}" for key, count in value.items()) or "0"
    return str(value)
