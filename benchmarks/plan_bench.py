"""Plans at size: lint and compile a wave of N tasks, and replay a trace bundle of N tasks, each
against the floor of parsing the same JSON files.

Measured interleaved round by round, medians:

- ``floor-spec``: read ``wave-1.json`` and ``json.loads`` it — the least any reader of the spec does;
- ``lint``: ``plans.lint.lint_file`` on it (read, parse, the JSON Schema, every lint rule);
- ``schema``: the JSON Schema check alone on the parsed value (the part of ``lint`` jsonschema does);
- ``compile``: ``plans.compile.compile_wave`` against the repo's graph (read, parse, build the one
  mutation — the pure part of ``plan compile``; nothing is written);
- ``compile-again``: the same against the graph that already holds the wave (the idempotent no-op);
- ``floor-bundle``: read every file of a bundle of N tasks and ``json.loads`` each JSON file;
- ``replay``: ``plans.replay.replay`` on it (hashes every file, re-checks every stage output
  against its role schema, re-derives closure and metrics, diffs).

Ratios are to the floor measured in the same run (target: <= 3x). No goal is asserted; the
numbers are printed.

    .venv/bin/python benchmarks/plan_bench.py --tasks 500 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.gitrepo import make_repo

from speedrift.coord.records import Actor, Author, Draft, Kind, Status
from speedrift.coord.store import CoordStore
from speedrift.graph.store import GraphStore, init_graph_dir
from speedrift.plans import lint, replay, spec, trace
from speedrift.plans.closure import CommandResult, StageRecord, TaskState
from speedrift.plans.compile import compile_wave
from speedrift.plans.metrics import AttemptTrace
from speedrift.plans.spec import ClosureStage

NOW = datetime(2026, 12, 1, tzinfo=UTC)
CONTRACT = {"completion": "integrated", "durability": "durable", "proof": "unit", "doc_impact": "owned"}


def wave(tasks: int) -> dict[str, Any]:
    """N tasks in chains of 5 (each after the one before), each owning its own two files."""
    items = []
    for n in range(tasks):
        item: dict[str, Any] = {
            "id": f"t{n}",
            "title": f"Part {n}",
            "role": "implementation",
            "owned": [f"src/part{n}/**", f"tests/test_part{n}.py"],
            "deliverables": [f"src/part{n}/main.py"],
            "exit_contract": dict(CONTRACT),
            "runtime": {"runtime": "claude", "max_turns": 40},
            "prompt": f"Build part {n}: read the spec section {n}, implement it, test it.",
        }
        if n % 5:
            item["after"] = [f"t{n - 1}"]
        items.append(item)
    return {
        "schema": spec.SCHEMA_ID,
        "wave": 1,
        "title": "A large wave",
        "mode": "dark-factory",
        "validation": ["python -m pytest -q"],
        "tasks": items,
    }


def bundle(folder: Path, tasks: int) -> Path:
    value = wave(tasks)
    commit = "ab" * 20
    states = tuple(TaskState(f"w1-t{n}", f"t{n}", "done", True) for n in range(tasks))
    attempts = tuple(AttemptTrace(f"w1-t{n}", 1 + n % 2, "developer", "claude") for n in range(tasks))
    verdicts = [
        {
            "target": f"w1-t{n}#1",
            "kind": "acceptance_criterion",
            "task": f"w1-t{n}",
            "verdict": "pass",
            "evidence": ["ok"],
        }
        for n in range(tasks)
    ]
    stages = (
        StageRecord(
            ClosureStage.INTEGRATION,
            "wave-1-1",
            {
                "recommendation": "ready",
                "open_claims": [],
                "conflicting_claims": [],
                "unresolved_blockers": [],
                "changed_interfaces": [],
                "cross_component_impacts": [],
                "proof_gaps": [],
                "doc_gaps": [],
                "deploy_risks": [],
                "detail": "fits",
            },
        ),
        StageRecord(
            ClosureStage.DOCUMENTATION,
            "wave-1-2",
            {
                "status": "complete",
                "summary": "ok",
                "docs_to_change": [],
                "gaps_found": [],
                "gaps_closed": [],
                "files_written": [],
                "proposed": [],
            },
        ),
        StageRecord(
            ClosureStage.EVALUATION,
            "wave-1-3",
            {"overall": "pass", "summary": "ok", "verdicts": verdicts, "gaps": []},
        ),
    )
    store = CoordStore.for_scope(folder / "repo", "wave-1")
    for n in range(tasks * 2):
        posted = store.post(
            Draft(
                Kind.REQUEST if n % 2 else Kind.BLOCKER,
                f"item {n}",
                Author(Actor.AGENT, task=f"w1-t{n % tasks}"),
            ),
            now=NOW + timedelta(seconds=n),
        )
        if n % 3 == 0:
            store.update(
                posted.id,
                Status.RESOLVED,
                author=Author(Actor.SPEEDRIFT),
                now=NOW + timedelta(seconds=n + 30),
            )
    prompts = {f"attempts/w1-t{n}/1/prompt.md": f"Build part {n}.\n".encode() * 40 for n in range(tasks)}
    made = trace.Bundle(
        wave=1,
        attempt=1,
        spec=value,
        commit=commit,
        tasks=states,
        attempts=attempts,
        validation=(CommandResult("python -m pytest -q", commit, 0),),
        stages=stages,
        coordination=store.path.read_bytes(),
        artifacts=prompts,
    )
    return trace.write(folder / "bundle", made, replay.derive(made), now=NOW)


def floor_bundle(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            if path.suffix == ".json":
                json.loads(data)
            elif path.suffix == ".jsonl":
                for line in data.splitlines():
                    json.loads(line)


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="speedrift-plan-bench-") as tmp:
        root = Path(tmp)
        repo = make_repo(
            root / "repo", {"README.md": "# bench\n", "tests/test_it.py": "def test_it(): pass\n"}
        )
        store = GraphStore(init_graph_dir(repo))
        path = spec.spec_path(repo, 1)
        path.parent.mkdir(parents=True)
        path.write_bytes(spec.canonical(wave(args.tasks)))
        facts = lint.repo_facts(repo)
        empty = store.load()
        value = json.loads(path.read_bytes())
        problems = lint.lint(value, file="wave-1.json", facts=facts)
        assert not problems, f"the generated wave must lint clean: {problems[:3]}"
        first = compile_wave(empty, value, now=NOW, actor="bench")
        store.mutate(lambda graph, now: compile_wave(graph, value, now=now, actor="bench").mutation)
        full = store.load()
        folder = bundle(root, args.tasks)
        replayed = replay.replay(folder)
        assert replayed.clean, f"the generated bundle must replay clean: {replayed.as_dict()}"

        cases: dict[str, Callable[[], object]] = {
            "floor-spec": lambda: json.loads(path.read_bytes()),
            "lint": lambda: lint.lint_file(repo, path, facts=facts),
            "schema": lambda: spec.schema_problems(value),
            "compile": lambda: compile_wave(empty, json.loads(path.read_bytes()), now=NOW, actor="bench"),
            "compile-again": lambda: compile_wave(
                full, json.loads(path.read_bytes()), now=NOW, actor="bench"
            ),
            "floor-bundle": lambda: floor_bundle(folder),
            "replay": lambda: replay.replay(folder),
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.rounds):
            for name, fn in cases.items():
                times[name].append(timed(fn))
        median = {name: statistics.median(values) for name, values in times.items()}
        result = {
            "tasks": args.tasks,
            "rounds": args.rounds,
            "compiled_changes": len(first.changes),
            "ms": {name: round(value * 1000, 2) for name, value in median.items()},
            "ratio": {
                "lint": round(median["lint"] / median["floor-spec"], 1),
                "schema": round(median["schema"] / median["floor-spec"], 1),
                "compile": round(median["compile"] / median["floor-spec"], 1),
                "compile-again": round(median["compile-again"] / median["floor-spec"], 1),
                "replay": round(median["replay"] / median["floor-bundle"], 1),
            },
        }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{args.tasks} tasks, {args.rounds} rounds (medians); target <= 3x the floor")
    for name, value in result["ms"].items():
        print(f"  {name:<14} {value:>9.2f} ms")
    for name, ratio in result["ratio"].items():
        floor = "floor-bundle" if name == "replay" else "floor-spec"
        print(f"  {name:<14} {ratio:>6.1f}x {floor}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
