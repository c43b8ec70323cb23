"""Trace bundles: everything one wave attempt decided from, hashed, so the decision can be
re-derived later from the bundle alone (plans/replay.py).

A bundle is a directory ``.speedrift/traces/wave-<n>/attempt-<k>/`` (an ad-hoc run's:
``.speedrift/traces/adhoc-<run id>/attempt-<k>/``) holding:

- ``spec.json`` — the wave spec, canonical bytes (its sha256 is the plan hash);
- ``tasks.json`` — the compiled tasks' states and every attempt (role, runtime, fallback);
- ``validation.json`` — the validation commands speedrift ran, on which commit, with exit codes;
- ``stages.json`` — the closure stages' role outputs, in the order they were posted;
- ``coordination.jsonl`` — the wave's coordination store, as stored;
- ``outcome.json`` — the integrated commit, the closure decision and the quality metrics;
- any other artifact the attempt kept (prompts, compiled inboxes, gate evidence, role outputs),
  under ``artifacts/``;
- ``manifest.json`` — the trace version, wave, attempt, plan hash, and the sha256 and size of
  every other file.

Invariant: a bundle is written whole or not at all (built in a sibling temporary directory,
fsynced, renamed into place), never overwritten, and its manifest lists exactly the files beside
it. Reading verifies every hash; nothing is trusted that the manifest does not vouch for.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from speedrift import layout, safejson
from speedrift.errors import InvalidValue, NotFound, Refused
from speedrift.fsutil import fsync_dir
from speedrift.plans.closure import CommandResult, StageRecord, TaskState
from speedrift.plans.metrics import AttemptTrace
from speedrift.plans.spec import ClosureStage, WaveKey, canonical, is_adhoc_key, key_name
from speedrift.times import iso_utc

TRACE_SCHEMA = "speedrift.trace/1"
MANIFEST = "manifest.json"
SPEC = "spec.json"
TASKS = "tasks.json"
VALIDATION = "validation.json"
STAGES = "stages.json"
COORDINATION = "coordination.jsonl"
OUTCOME = "outcome.json"
REQUIRED = (SPEC, TASKS, VALIDATION, STAGES, COORDINATION, OUTCOME)
ARTIFACTS_DIR = "artifacts"


@dataclass(frozen=True)
class Bundle:
    """The inputs of a wave attempt's decision, as a bundle holds them."""

    wave: WaveKey
    attempt: int
    spec: Mapping[str, Any]
    commit: str
    tasks: tuple[TaskState, ...]
    attempts: tuple[AttemptTrace, ...]
    validation: tuple[CommandResult, ...]
    stages: tuple[StageRecord, ...]
    coordination: bytes = b""  # the store's lines as stored
    artifacts: Mapping[str, bytes] = field(default_factory=dict)  # relative path under artifacts/


def bundle_dir(repo: Path, wave: WaveKey, attempt: int) -> Path:
    return layout.traces_dir(repo) / key_name(wave) / f"attempt-{attempt}"


def attempts_of(repo: Path, wave: WaveKey) -> list[int]:
    """The attempts that left a bundle for ``wave``, in order."""
    folder = layout.traces_dir(repo) / key_name(wave)
    if not folder.is_dir():
        return []
    found = [
        entry.name.removeprefix("attempt-") for entry in folder.iterdir() if entry.name.startswith("attempt-")
    ]
    return sorted(int(item) for item in found if item.isdigit())


def _json(value: Any) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def files_of(bundle: Bundle, outcome: Mapping[str, Any]) -> dict[str, bytes]:
    """Every file of the bundle but the manifest, by relative path."""
    files = {
        SPEC: canonical(bundle.spec),
        TASKS: _json(
            {
                "wave": bundle.wave,
                "attempt": bundle.attempt,
                "commit": bundle.commit,
                "tasks": [
                    {"id": task.id, "local": task.local, "status": task.status, "verified": task.verified}
                    for task in bundle.tasks
                ],
                "attempts": [item.as_dict() for item in bundle.attempts],
            }
        ),
        VALIDATION: _json(
            [
                {"command": item.command, "commit": item.commit, "exit_code": item.exit_code}
                for item in bundle.validation
            ]
        ),
        STAGES: _json(
            [
                {"stage": stage.stage.value, "record": stage.record, "output": dict(stage.output)}
                for stage in bundle.stages
            ]
        ),
        COORDINATION: bundle.coordination,
        OUTCOME: _json(dict(outcome)),
    }
    for name, data in sorted(bundle.artifacts.items()):
        files[_artifact_path(name)] = data
    return files


def _artifact_path(name: str) -> str:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise InvalidValue(f"artifact name {name!r} must be a relative path inside the bundle")
    return str(PurePosixPath(ARTIFACTS_DIR) / path)


def manifest_of(bundle: Bundle, files: Mapping[str, bytes], *, now: datetime) -> dict[str, Any]:
    return {
        "trace": TRACE_SCHEMA,
        "wave": bundle.wave,
        "attempt": bundle.attempt,
        "plan_hash": hashlib.sha256(files[SPEC]).hexdigest(),
        "created_at": iso_utc(now),
        "artifacts": {
            name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
            for name, data in sorted(files.items())
        },
    }


def write(target: Path, bundle: Bundle, outcome: Mapping[str, Any], *, now: datetime) -> Path:
    """Write the bundle to ``target`` whole or not at all; Refused if ``target`` exists."""
    if target.exists():
        raise Refused(
            f"{target}: a trace bundle is never overwritten", hint="a new attempt gets its own bundle"
        )
    files = files_of(bundle, outcome)
    files[MANIFEST] = _json(manifest_of(bundle, files, now=now))
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.parent / f".{target.name}.{os.getpid()}.tmp"
    shutil.rmtree(temp, ignore_errors=True)
    try:
        for name, data in files.items():
            path = temp / name
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        for folder in sorted(
            {(temp / name).parent for name in files}, key=lambda p: len(p.parts), reverse=True
        ):
            fsync_dir(folder)
        os.rename(temp, target)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    fsync_dir(target.parent)
    return target


# -- reading ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Integrity:
    """What the manifest does not vouch for: each problem names the file."""

    problems: tuple[str, ...]
    manifest: Mapping[str, Any]


def verify(folder: Path) -> Integrity:
    """Check every file against the manifest: missing, changed, unlisted, required but absent.
    NotFound when ``folder`` is not a bundle; InvalidValue when its manifest cannot be read."""
    manifest_file = folder / MANIFEST
    if not manifest_file.is_file():
        raise NotFound(
            f"{folder}: not a trace bundle (no {MANIFEST})", hint="bundles are under .speedrift/traces/"
        )
    manifest = _load(manifest_file)
    if not isinstance(manifest, dict) or manifest.get("trace") != TRACE_SCHEMA:
        raise InvalidValue(f"{manifest_file}: not a {TRACE_SCHEMA} manifest")
    listed = manifest.get("artifacts")
    if not isinstance(listed, dict):
        raise InvalidValue(f"{manifest_file}: 'artifacts' must be an object of file → hash")
    problems: list[str] = []
    for name in REQUIRED:
        if name not in listed:
            problems.append(f"{name}: required, but the manifest does not list it")
    for name, entry in sorted(listed.items()):
        path = folder / name
        if not _inside(folder, path):
            problems.append(f"{name}: outside the bundle")
            continue
        if not path.is_file():
            problems.append(f"{name}: listed in the manifest, missing")
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if not isinstance(entry, dict) or entry.get("sha256") != digest:
            problems.append(f"{name}: changed since the bundle was written (sha256 {digest[:12]}…)")
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if path.is_file() and name != MANIFEST and name not in listed:
            problems.append(f"{name}: not in the manifest")
    spec_file = folder / SPEC
    if (
        spec_file.is_file()
        and manifest.get("plan_hash") != hashlib.sha256(spec_file.read_bytes()).hexdigest()
    ):
        problems.append(f"{SPEC}: its hash is not the manifest's plan_hash")
    return Integrity(tuple(problems), manifest)


def _inside(folder: Path, path: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def _load(path: Path) -> Any:
    try:
        return safejson.loads(path.read_bytes())
    except ValueError as error:
        raise InvalidValue(f"{path}: not valid JSON: {error}") from None


def read(folder: Path) -> tuple[Bundle, dict[str, Any]]:
    """The bundle's inputs and its stored outcome. InvalidValue naming the file and field when a
    file does not hold what it must (integrity is :func:`verify`'s job, called first)."""
    tasks_doc = _object(folder / TASKS)
    try:
        bundle = Bundle(
            wave=_key(tasks_doc["wave"]),
            attempt=int(tasks_doc["attempt"]),
            spec=_object(folder / SPEC),
            commit=str(tasks_doc["commit"]),
            tasks=tuple(
                TaskState(str(item["id"]), str(item["local"]), str(item["status"]), bool(item["verified"]))
                for item in tasks_doc["tasks"]
            ),
            attempts=tuple(
                AttemptTrace(
                    task=str(item["task"]),
                    attempt=int(item["attempt"]),
                    role=str(item["role"]),
                    runtime=str(item["runtime"]),
                    fallback=bool(item.get("fallback", False)),
                    outcome=str(item.get("outcome", "")),
                )
                for item in tasks_doc["attempts"]
            ),
            validation=tuple(
                CommandResult(str(item["command"]), str(item["commit"]), int(item["exit_code"]))
                for item in _list(folder / VALIDATION)
            ),
            stages=tuple(
                StageRecord(ClosureStage(item["stage"]), str(item["record"]), dict(item["output"]))
                for item in _list(folder / STAGES)
            ),
            coordination=(folder / COORDINATION).read_bytes(),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise InvalidValue(f"{folder}: a bundle file does not hold what it must: {error!r}") from None
    return bundle, _object(folder / OUTCOME)


def _key(value: Any) -> WaveKey:
    """A bundle's wave: a number, or an ad-hoc run's key (ValueError for anything else)."""
    if isinstance(value, str) and is_adhoc_key(value):
        return value
    return int(value)


def _object(path: Path) -> dict[str, Any]:
    value = _load(path)
    if not isinstance(value, dict):
        raise InvalidValue(f"{path}: must hold a JSON object")
    return value


def _list(path: Path) -> list[dict[str, Any]]:
    value = _load(path)
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise InvalidValue(f"{path}: must hold a JSON list of objects")
    return value
