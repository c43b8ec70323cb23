"""Several hubs over the same real repos: the repos, and one ecosystem.toml per hub.

Each repo is a real git repository in ``supervise`` mode whose graph holds a task blocked on a task
that does not exist, so every executing cycle plans one cheap, real action there:
``repair_dependencies`` writes a corrective task into the repo's graph (its lanes are switched off,
so nothing else is planned). Two ecosystem.toml files in two folders name the same repos (absolute
paths) and the same register, so their two hubs — two hub directories, two hub ids — compete for
the same repos.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from speedrift.control.controlfile import write_control
from speedrift.graph.store import GraphStore
from tests.gitrepo import make_repo

REPOS = ("alpha", "beta", "gamma")
BLOCKED = '{"kind":"task","id":"build","title":"build it","status":"open","after":["ghost"]}\n'


def repair_action(repo: str) -> str:
    """The action id a cycle plans in each of these repos."""
    return f"{repo}:repair_dependencies:speedrift-fix-dependencies-build-ghost"


def shared_repos(root: Path, names: tuple[str, ...] = REPOS) -> dict[str, Path]:
    repos: dict[str, Path] = {}
    for name in names:
        repo = make_repo(root / name)
        (repo / ".workgraph" / "graph.jsonl").write_text(BLOCKED)
        (repo / ".workgraph" / "drift-policy.toml").write_text("schema = 1\norder = []\n")
        write_control(
            repo, "supervise", owner="ops", lease_ttl=None, actor="ops", reason=None, now=datetime.now(UTC)
        )
        repos[name] = repo
    return repos


def ecosystem(folder: Path, repos: dict[str, Path], url: str | None = None) -> Path:
    """``folder/ecosystem.toml`` naming ``repos``, executing, on the register ``url`` (None: SQLite)."""
    folder.mkdir(parents=True, exist_ok=True)
    # no cooldown: new work needing repair is repaired the next cycle (dedup still holds a repeat)
    lines = [
        "schema = 1",
        "",
        "[policy]",
        "plan_only = false",
        "cooldown_seconds = { repair_dependencies = 0 }",
        "",
    ]
    if url:
        lines += ["[register]", f'url = "{url}"', ""]
    for name, path in repos.items():
        lines += [f"[repos.{name}]", f'path = "{path}"', ""]
    path = folder / "ecosystem.toml"
    path.write_text("\n".join(lines))
    return path


def corrective_tasks(repo: Path) -> list[str]:
    """The corrective tasks the hub wrote into the repo's graph."""
    return sorted(t for t in GraphStore(repo / ".workgraph").load().tasks if t.startswith("speedrift-fix-"))
