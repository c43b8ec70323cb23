"""Fleets of N real git repositories with real task graphs in varied states, for the hub benchmark.

:func:`ensure_fleet` returns ``<base>/speedrift-fleet-<n>-<hash>/`` holding ``repo-0000`` ...
``repo-<n-1>`` and an ``ecosystem.toml`` registering them all (``plan_only = true``). The fleet is
cached: a later call reuses it when ``params.json`` matches (n, seed, a hash of this generator and
of ``graphgen.py``) and no ``.in-use`` marker was left behind by an interrupted benchmark;
otherwise it is rebuilt.

Each repo is one commit made by ``git fast-import`` (files, graph and commit date in one process)
and checked out by ``git reset --hard`` (so the index carries real stat data, as in a developer's
clone), starting from a copied empty ``.git`` template: two git processes per repo, four repos at
a time. States cycle through :data:`STATES` — healthy, ready work, dirty, untracked, missing
dependencies, aging in-progress, stale open work, a failed blocker, no graph, a ``.wg`` graph, a
large graph (graphgen, 400 tasks) and a detached HEAD — so every branch of the observer runs.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import os
import random
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

if __package__ in (None, ""):  # run as a script: make the `benchmarks` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.graphgen import generate_graph

STATES = (
    "healthy",
    "ready",
    "dirty",
    "untracked",
    "missing-deps",
    "in-progress",
    "stale",
    "failed-blocker",
    "no-graph",
    "wg-dir",
    "big-graph",
    "detached",
)
IN_USE = ".in-use"
EPOCH = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", "GIT_CONFIG_NOSYSTEM": "1"}


def _generator_hash() -> str:
    here = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for name in ("fleetgen.py", "graphgen.py"):
        digest.update((here / name).read_bytes())
    return digest.hexdigest()[:12]


def fleet_dir(n: int, base: Path, seed: int = 7) -> Path:
    return base / f"speedrift-fleet-{n}-s{seed}-{_generator_hash()}"


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _task(task_id: str, status: str = "open", **fields: Any) -> dict[str, Any]:
    return {"kind": "task", "id": task_id, "title": task_id.replace("-", " "), "status": status, **fields}


def _graph_for(state: str, index: int, rng: random.Random) -> bytes | None:
    """The graph.jsonl content a repo in ``state`` commits (None: no graph at all)."""
    if state == "no-graph":
        return None
    if state == "big-graph":
        return generate_graph(400, seed=index)
    recent = EPOCH - timedelta(hours=rng.randint(1, 48))
    tasks = [
        _task(f"done-{k}", "done", created_at=_stamp(recent - timedelta(days=5)))
        for k in range(rng.randint(5, 25))
    ]
    opened = _stamp(recent)
    if state in ("ready", "healthy", "dirty", "untracked", "wg-dir", "detached"):
        tasks += [_task(f"todo-{k}", created_at=opened) for k in range(rng.randint(0, 4))]
    if state == "missing-deps":
        tasks += [
            _task("needs-ghost", after=["ghost-task"], created_at=opened),
            _task("also", after=["gone"]),
        ]
    if state == "in-progress":
        started = _stamp(EPOCH - timedelta(days=rng.choice((0, 1, 4))))
        tasks += [_task("working", "in-progress", started_at=started, created_at=started, assigned="agent-1")]
    if state == "stale":
        tasks += [_task(f"old-{k}", created_at=_stamp(EPOCH - timedelta(days=30))) for k in range(3)]
    if state == "failed-blocker":
        tasks += [
            _task("broken", "failed", created_at=opened),
            _task("waiting", after=["broken"], created_at=opened),
        ]
    return b"".join(orjson.dumps(t) + b"\n" for t in tasks)


def _fast_import_stream(files: dict[str, bytes], when: datetime, message: str) -> bytes:
    stamp = int(when.timestamp())
    parts = [
        b"commit refs/heads/main\n",
        f"committer Bench <bench@example.invalid> {stamp} +0000\n".encode(),
        f"data {len(message.encode())}\n".encode() + message.encode() + b"\n",
    ]
    for path, content in sorted(files.items()):
        parts.append(f"M 100644 inline {path}\n".encode())
        parts.append(f"data {len(content)}\n".encode() + content + b"\n")
    parts.append(b"\n")
    return b"".join(parts)


def _git(repo: Path, *args: str, data: bytes | None = None) -> None:
    subprocess.run(
        ["git", *args], cwd=repo, input=data, check=True, capture_output=True, env={**os.environ, **GIT_ENV}
    )


def _build_repo(root: Path, template: Path, index: int, seed: int) -> str:
    rng = random.Random(seed * 1_000_003 + index)
    state = STATES[index % len(STATES)]
    name = f"repo-{index:04d}"
    repo = root / name
    shutil.copytree(template, repo / ".git", symlinks=True)
    files: dict[str, bytes] = {
        "README.md": f"# {name}\n\nA benchmark repository ({state}).\n".encode(),
        ".gitignore": b".speedrift/\n",
    }
    for k in range(rng.randint(3, 12)):
        files[f"src/pkg_{k % 3}/mod_{k}.py"] = f"VALUE_{k} = {rng.randint(0, 10**6)}\n".encode()
    graph = _graph_for(state, index, rng)
    if graph is not None:
        folder = ".wg" if state == "wg-dir" else ".workgraph"
        files[f"{folder}/graph.jsonl"] = graph
        files[f"{folder}/.gitignore"] = b"agents/\nservice/\n"
    when = EPOCH - timedelta(hours=rng.randint(1, 24 * 60))
    _git(repo, "fast-import", "--quiet", data=_fast_import_stream(files, when, f"{name}: initial"))
    _git(repo, "reset", "-q", "--hard")
    if state == "dirty":
        (repo / "src" / "pkg_0" / "mod_0.py").write_text("VALUE_0 = 'edited'\n")
    elif state == "untracked":
        (repo / "notes.txt").write_text("scratch\n")
        (repo / "src" / "pkg_1" / "draft.py").write_text("pass\n")
    elif state == "detached":
        head = (repo / ".git" / "refs" / "heads" / "main").read_text().strip()
        (repo / ".git" / "HEAD").write_text(head + "\n")
    return name


def _write_ecosystem(root: Path, names: list[str]) -> None:
    lines = ["# generated by benchmarks/fleetgen.py", "schema = 1", "", "[policy]", "plan_only = true", ""]
    for name in names:
        lines += [f"[repos.{name}]", f'path = "{name}"', ""]
    (root / "ecosystem.toml").write_text("\n".join(lines))


def generate_fleet(n: int, root: Path, seed: int = 7, workers: int = 4) -> list[str]:
    """Build a fresh fleet of ``n`` repos under ``root`` (which must not exist). Returns repo names."""
    root.mkdir(parents=True)
    template = root / ".template"
    template.mkdir()
    _git(template, "init", "-q", "--template=", "-b", "main")
    with cf.ThreadPoolExecutor(max_workers=workers) as pool:
        names = list(pool.map(lambda i: _build_repo(root, template / ".git", i, seed), range(n)))
    shutil.rmtree(template)
    _write_ecosystem(root, names)
    return names


def ensure_fleet(n: int, base: Path = Path("/tmp"), seed: int = 7, *, log: Any = None) -> Path:
    """The cached fleet for ``n`` (built when missing, stale, or left dirty by an interrupted run)."""
    root = fleet_dir(n, base, seed)
    params = {"n": n, "seed": seed, "generator": _generator_hash()}
    marker = root / "params.json"
    if root.exists():
        try:
            current = orjson.loads(marker.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            current = None
        if current == params and not (root / IN_USE).exists():
            return root
        shutil.rmtree(root)
    if log:
        log(f"generating a fleet of {n} repos in {root} ...")
    generate_fleet(n, root, seed)
    marker.write_bytes(orjson.dumps(params))
    return root


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int)
    parser.add_argument("--base", type=Path, default=Path("/tmp"))
    options = parser.parse_args()
    print(ensure_fleet(options.n, options.base, log=lambda m: print(m, file=sys.stderr)))
