"""Waves for the compile and status tests: a real repo with a graph, and specs written in their
canonical bytes where speedrift reads them."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from speedrift.coord.records import Actor, Author
from speedrift.graph.store import GraphStore
from speedrift.plans import spec
from speedrift.plans.compiler import CompileResult, compile_plan
from tests.gitrepo import make_repo

TESTER = Author(Actor.HUMAN, name="tester")
CONTRACT = {"completion": "integrated", "durability": "durable", "proof": "unit", "doc_impact": "owned"}


def task(task_id: str, owned: list[str], *, after: list[str] | None = None, **more: Any) -> dict[str, Any]:
    found: dict[str, Any] = {
        "id": task_id,
        "title": f"The {task_id} part",
        "role": "implementation",
        "owned": owned,
        "deliverables": owned[:1],
        "exit_contract": dict(CONTRACT),
        "prompt": f"Do the {task_id} part.",
        **more,
    }
    if after:
        found["after"] = after
    return found


def three_tasks(wave: int = 1, **more: Any) -> dict[str, Any]:
    """a1, then a2 and a3 in parallel after it, each owning its own files."""
    return {
        "schema": spec.SCHEMA_ID,
        "wave": wave,
        "title": "Rate limiting",
        "mode": "oversight",
        "summary": "A token bucket in front of the API.",
        "validation": ["python -m pytest -q"],
        "tasks": [
            task(
                "a1",
                ["src/limiter.py"],
                runtime={"runtime": "claude", "model": "sonnet", "max_turns": 30, "fallbacks": ["codex"]},
                validation=["python -m pytest -q tests/test_limiter.py"],
            ),
            task("a2", ["tests/test_limiter.py"], after=["a1"], role="qa"),
            task("a3", ["docs/limits.md"], after=["a1"], role="docs"),
        ],
        **more,
    }


def edited(value: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(value)


def new_repo(path: Path) -> tuple[Path, GraphStore]:
    repo = make_repo(path, {"README.md": "# demo\n", "src/limiter.py": "", "tests/test_limiter.py": ""})
    return repo, GraphStore(repo / ".workgraph")


def write_spec(repo: Path, value: dict[str, Any]) -> Path:
    path = spec.spec_path(repo, int(value["wave"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(spec.canonical(value))
    return path


def compile_spec(repo: Path, store: GraphStore, value: dict[str, Any], **options: Any) -> CompileResult:
    write_spec(repo, value)
    return compile_plan(repo, store, int(value["wave"]), author=TESTER, **options)
