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


def _short(reason: str, limit: int = 70) -> str:
    text = " ".join(reason.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def summary(bundle: EvidenceBundle) -> str:
    """One line: "gates on <sha>: 7 pass, 1 warn (lint: 2 new findings), 1 skipped (sca: offline)"."""
    not_run = [r for r in bundle.results if r.status == "skipped" and r.reason.startswith(NOT_RUN)]
    shown = [r for r in bundle.results if r not in not_run]
    counts = Counter(r.status for r in shown)
    parts: list[str] = []
    for status in _STATUS_ORDER:
        if not counts[status]:
            continue
        if status == "pass":
            parts.append(f"{counts[status]} pass")
            continue
        limit = 40 if status == "skipped" else 90
        details = ", ".join(
            f"{r.gate}: {_short(r.reason, limit)}" for r in shown if r.status == status and r.reason
        )
        parts.append(f"{counts[status]} {status}" + (f" ({details})" if details else ""))
    if not_run and bundle.stopped_early:
        parts.append(f"{len(not_run)} not run after {bundle.stopped_early} failed")
    verdict = "" if bundle.passed else f" — blocked by {', '.join(r.gate for r in bundle.blocking)}"
    text = f"gates on {bundle.commit[:12]}: " + ", ".join(parts)
    room = SUMMARY_LIMIT - len(verdict)
    return (text if len(text) <= room else text[: room - 1] + "…") + verdict


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
