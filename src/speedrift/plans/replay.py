"""Replay: re-derive a wave attempt's closure decision and quality metrics from its trace bundle
alone, and report every difference from what the bundle says was decided.

Hermetic: it reads the bundle directory and nothing else — no repository, no network, no agent.
It checks the bundle's integrity (plans/trace.py :func:`~speedrift.plans.trace.verify`), checks each
closure stage's output against its role's schema again (a stage is a typed record or it is not a
stage), recomputes the decision with the same pure function the run used
(:func:`speedrift.plans.closure.adjudicate`) and the metrics (plans/metrics.py), and compares
them with ``outcome.json`` path by path. Any difference — a tampered file, a changed rule in a
newer speedrift, an outcome written by hand — is reported; a repository can run it in CI as a
regression harness for its plans and for speedrift upgrades.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from speedrift import safejson
from speedrift.coord.records import Record, fold, parse_line
from speedrift.plans import closure, metrics, spec, trace
from speedrift.plans.stages import output_problems


@dataclass(frozen=True)
class Difference:
    path: str  # a JSON path into outcome.json, or the bundle file for an integrity problem
    stored: Any
    derived: Any

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "stored": self.stored, "derived": self.derived}


@dataclass(frozen=True)
class Report:
    bundle: str
    wave: spec.WaveKey | None
    attempt: int | None
    integrity: tuple[str, ...]
    invalid_stages: tuple[str, ...]
    differences: tuple[Difference, ...]
    derived: Mapping[str, Any]

    @property
    def clean(self) -> bool:
        return not (self.integrity or self.invalid_stages or self.differences)

    def as_dict(self) -> dict[str, Any]:
        return {
            "bundle": self.bundle,
            "wave": self.wave,
            "attempt": self.attempt,
            "clean": self.clean,
            "integrity": list(self.integrity),
            "invalid_stages": list(self.invalid_stages),
            "differences": [item.as_dict() for item in self.differences],
            "derived": dict(self.derived),
        }


def derive(bundle: trace.Bundle) -> dict[str, Any]:
    """The outcome the bundle's inputs give: what a run writes to ``outcome.json``."""
    wave = spec.parse(bundle.spec)
    decision = closure.adjudicate(wave, bundle.tasks, bundle.validation, bundle.stages, commit=bundle.commit)
    return {
        "commit": bundle.commit,
        "closure": decision.as_dict(),
        "metrics": metrics.measure(
            task_count=len(wave.tasks),
            verified=sum(1 for task in bundle.tasks if task.status == closure.DONE and task.verified),
            attempts=bundle.attempts,
            records=coordination_records(bundle.coordination),
            stages=bundle.stages,
            decision=decision,
        ),
    }


def coordination_records(raw: bytes) -> dict[str, Record]:
    """The folded records of a stored coordination log; a torn or foreign line is skipped, as the
    store's own reader skips it."""
    lines: list[Record] = []
    for line in raw.splitlines():
        try:
            value = safejson.loads(line)
            if isinstance(value, dict):
                lines.append(parse_line(value))
        except ValueError:
            continue
    return fold(lines)


def replay(folder: Path) -> Report:
    """Replay one bundle (see the module docstring)."""
    integrity = trace.verify(folder)
    bundle, stored = trace.read(folder)
    invalid = tuple(
        f"{stage.stage.value} {stage.record}: {problem}"
        for stage in bundle.stages
        for problem in output_problems(stage.stage, dict(stage.output))
    )
    schema_problems = spec.schema_problems(bundle.spec)
    if schema_problems:
        invalid += tuple(f"{trace.SPEC} {problem}" for problem in schema_problems)
        derived: dict[str, Any] = {}
        differences: list[Difference] = []
    else:
        derived = derive(bundle)
        differences = diff(stored, derived)
    return Report(
        bundle=str(folder),
        wave=bundle.wave,
        attempt=bundle.attempt,
        integrity=integrity.problems,
        invalid_stages=invalid,
        differences=tuple(differences),
        derived=derived,
    )


def diff(stored: Any, derived: Any, path: str = "$") -> list[Difference]:
    """Every place two JSON values differ, by JSON path (lists compared item by item)."""
    if isinstance(stored, dict) and isinstance(derived, dict):
        found: list[Difference] = []
        for key in sorted(set(stored) | set(derived)):
            if key not in stored:
                found.append(Difference(f"{path}.{key}", None, derived[key]))
            elif key not in derived:
                found.append(Difference(f"{path}.{key}", stored[key], None))
            else:
                found += diff(stored[key], derived[key], f"{path}.{key}")
        return found
    if isinstance(stored, list) and isinstance(derived, list) and len(stored) == len(derived):
        found = []
        for index, (one, other) in enumerate(zip(stored, derived, strict=True)):
            found += diff(one, other, f"{path}[{index}]")
        return found
    return [] if stored == derived else [Difference(path, stored, derived)]
