"""The evidence bundle as JSON: its dict shape, its one-line summary, and where it is stored.

Shape: ``dataclasses.asdict(EvidenceBundle)`` plus ``passed`` (bool) and ``blocking`` (the names
of the gates that block). Stored as ``<repo>/.speedrift/gates/<commit>.json`` (atomic write; the
newest ``KEEP`` bundles are kept), and inside each attempt's evidence.json by the pipeline.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from speedrift import fsutil, redact
from speedrift.gates.model import EvidenceBundle, GateStatus
from speedrift.layout import gate_bundles_dir
from speedrift.textclip import clip

KEEP = 500
SUMMARY_LIMIT = 400
NOT_RUN = "not run: "  # reason prefix of gates skipped because the suite stopped early
_STATUS_ORDER: tuple[GateStatus, ...] = ("fail", "warn", "skipped", "pass")


def bundles_dir(repo: Path) -> Path:
    return gate_bundles_dir(repo)


def to_dict(bundle: EvidenceBundle) -> dict[str, Any]:
    data = dataclasses.asdict(bundle)
    data["passed"] = bundle.passed
    data["blocking"] = [r.gate for r in bundle.blocking]
    return data


# per-reason limits by status, tried in turn until the line fits SUMMARY_LIMIT: what blocks keeps
# the most room, then warnings; skipped gates give way first
_REASON_LIMITS: tuple[dict[GateStatus, int], ...] = (
    {"fail": 200, "warn": 160, "skipped": 90},
    {"fail": 200, "warn": 120, "skipped": 60},
    {"fail": 200, "warn": 90, "skipped": 40},
)


def summary(bundle: EvidenceBundle) -> str:
    """One line: "gates on <sha>: 7 pass, 1 warn (lint: 2 new findings), 1 skipped (sca: offline)",
    ending in " — blocked by <gates>", or " — unverified" when it passes without its tests having run.

    Reasons are shortened to fit (:func:`speedrift.textclip.clip`) but their trailing hints never
    are: a line whose hints alone do not fit is longer than ``SUMMARY_LIMIT``."""
    not_run = [r for r in bundle.results if r.status == "skipped" and r.reason.startswith(NOT_RUN)]
    shown = [r for r in bundle.results if r not in not_run]
    counts = Counter(r.status for r in shown)
    if bundle.passed:
        verdict = "" if bundle.verified else " — unverified"  # why: the tests gate's own reason, above
    else:
        verdict = f" — blocked by {', '.join(r.gate for r in bundle.blocking)}"
    text = ""
    for limits in _REASON_LIMITS:
        parts: list[str] = []
        for status in _STATUS_ORDER:
            if not counts[status]:
                continue
            if status == "pass":
                parts.append(f"{counts[status]} pass")
                continue
            mine = [r for r in shown if r.status == status and r.reason]
            details = ", ".join(f"{r.gate}: {clip(r.reason, limits[status])}" for r in mine)
            parts.append(f"{counts[status]} {status}" + (f" ({details})" if details else ""))
        if not_run and bundle.stopped_early:
            parts.append(f"{len(not_run)} not run after {bundle.stopped_early} failed")
        text = f"gates on {bundle.commit[:12]}: " + ", ".join(parts)
        if len(text) + len(verdict) <= SUMMARY_LIMIT:
            break
    return text + verdict


def write(repo: Path, bundle: EvidenceBundle) -> Path:
    folder = bundles_dir(repo)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{bundle.commit}.json"
    data = orjson.dumps(redact.redact_value(to_dict(bundle)), option=orjson.OPT_INDENT_2)
    fsutil.write_atomic(path, data)
    _prune(folder)
    return path


def read(repo: Path, commit: str) -> dict[str, Any] | None:
    try:
        value = orjson.loads((bundles_dir(repo) / f"{commit}.json").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _prune(folder: Path) -> None:
    entries = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime if p.exists() else 0)
    for old in entries[:-KEEP]:
        old.unlink(missing_ok=True)
