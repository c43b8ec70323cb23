"""What the kills left, judged once every process of the run has stopped.

Job: read the files, the refs and what the hubs printed, and count each broken invariant:

- torn file — a graph with malformed lines, a speedrift JSON record that does not parse, a JSONL
  line that does not parse or a last line without its newline, a ledger with a torn or unreadable
  record, a register that fails SQLite's integrity check, ``git fsck`` failing;
- lost ledger record — a cycle a hub printed (it prints only after the fsynced append), a cycle
  seen in the ledger during the run, or a cycle in the register, missing from the ledger;
- double landing — a task's output line twice on the target, or two commits carrying its trailer;
- done without landing — a task marked done whose line is not on the target;
- stuck claim — a task still in progress once every supervisor settled and stopped;
- deleted unmerged work — an attempt branch's commit, seen during the run, reachable from no ref
  and its change (by ``git patch-id``) in no reachable commit either;
- git lock left — a git lock file or a step marker (:mod:`speedrift.repo.gitlocks`) left behind.

Invariant: nothing is repaired here, and nothing is judged from speedrift's own opinion of itself
when the files can say it (the target's content, the refs, the bytes of each record).
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import time
from collections import Counter
from pathlib import Path

import orjson

from speedrift import hubdir, layout
from speedrift.cli.chaos import forbidden
from speedrift.cli.chaos.ecosystem import PUSH_MARK, WORKSHOPS, Workshop, git
from speedrift.cli.chaos.figures import Figures
from speedrift.graph.codec import Graph
from speedrift.register.ledger import Ledger
from speedrift.repo import gitlocks, landing

_PRINTED = re.compile(r"^\S+ (c-\d{8}T\d{6}Z-[0-9a-f]+) ", re.MULTILINE)


def check(
    figures: Figures, shop: Workshop, logs: Path, state_home: Path, tips: dict[str, set[str]], seen: set[str]
) -> None:
    wait_for_git_steps(shop)
    torn_files(figures, shop, state_home)
    ledger(figures, shop, logs, seen)
    for name in WORKSHOPS:
        landings(figures, shop, name)
        claims(figures, shop, name)
        unmerged(figures, shop, name, tips.get(name, set()))
        git_state(figures, shop.repo(name))
    agent_pushes(figures, shop)


def wait_for_git_steps(shop: Workshop) -> None:
    """A git step a killed process started runs on in its own session; give it time to end."""
    until = time.monotonic() + 60
    while time.monotonic() < until and any(
        not marker.over() for name in WORKSHOPS for marker in gitlocks.markers(shop.repo(name))
    ):
        time.sleep(0.05)


# ---------------------------------------------------------------------------------- torn files
def _repos(workdir: Path) -> list[Path]:
    return sorted(
        p for folder in (workdir / "eco", workdir / "writers") if folder.is_dir()
        for p in [folder, *folder.iterdir()] if p.is_dir() and (p / ".workgraph").is_dir()
    )  # fmt: skip


def agent_dirs_of(workdir: Path) -> set[Path]:
    """The agents' checkouts (worktrees, quarantined ones, the hub's scratch worktrees): their
    files are the agents' work, not speedrift's records."""
    skip: set[Path] = set()
    for repo in _repos(workdir):
        for folder in (
            layout.worktrees_dir(repo),
            layout.quarantine_dir(repo),
            layout.hub_worktrees_dir(repo),
        ):
            if folder.is_dir():
                skip.update(p for p in folder.iterdir() if p.is_dir())
    return skip


def speedrift_dirs_of(workdir: Path, state_home: Path) -> list[Path]:
    """Every directory speedrift writes its own files into during the run: each repo's state
    directory and graph directory, the hub's directory, the machine-wide state directory, and
    what the hubs printed."""
    folders = [state_home, workdir / "logs"]
    ecosystem_file = workdir / "eco" / hubdir.ECOSYSTEM_FILE
    if ecosystem_file.is_file():
        folders.append(hubdir.hub_dir(ecosystem_file, create=False))
    for repo in _repos(workdir):
        folders += [layout.state_dir(repo), repo / ".workgraph"]
    return folders


def torn_files(figures: Figures, shop: Workshop, state_home: Path) -> None:
    skip = agent_dirs_of(shop.root)
    for folder in speedrift_dirs_of(shop.root, state_home):
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            if not path.is_file() or path.is_symlink() or any(path.is_relative_to(s) for s in skip):
                continue
            problem = _record_problem(path)
            if problem:
                figures.violation("torn file", f"{path}: {problem}")
    for path in sorted(shop.eco.glob("*/.workgraph/graph.jsonl")):
        problems = Graph.from_bytes(path.read_bytes()).problems
        if problems:
            figures.violation("torn file", f"{path}: malformed lines {problems[:3]}")
    register = hubdir.register_db_path(shop.hub)
    if register.exists():
        db = sqlite3.connect(f"file:{register}?mode=ro", uri=True)
        try:
            verdict = db.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            db.close()
        if verdict != "ok":
            figures.violation("torn file", f"{register}: integrity check says {verdict}")


def _record_problem(path: Path) -> str | None:
    name = path.name
    if name.endswith(".torn"):
        return None  # the ledger's own record of torn tails it cut off (kept for a human)
    if name.endswith(".json"):
        try:
            orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError:
            return "a JSON record that does not parse"
    elif name.endswith(".jsonl"):
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            return "a last line without its newline (half a record)"
        for number, line in enumerate(data.splitlines(), 1):
            if line.strip():
                try:
                    orjson.loads(line)
                except orjson.JSONDecodeError:
                    return f"line {number} does not parse"
    return None


# ---------------------------------------------------------------------------------- the ledger
def ledger(figures: Figures, shop: Workshop, logs: Path, seen: set[str]) -> None:
    book = Ledger(shop.hub)
    records = book.read()
    if book.torn or book.problems:
        figures.violation("torn file", f"the ledger: {book.torn or book.problems[0]}")
    recorded = {str(r["cycle_id"]) for r in records if r.get("cycle_id")}
    printed: set[str] = set()
    for out in sorted(logs.glob("hub-*.out")):
        printed.update(_PRINTED.findall(out.read_text(errors="replace")))
    register: set[str] = set()
    path = hubdir.register_db_path(shop.hub)
    if path.exists():
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            register = {row[0] for row in db.execute("SELECT cycle_id FROM cycles")}
        finally:
            db.close()
    for source, ids in (
        ("printed by a hub", printed),
        ("seen during the run", seen),
        ("in the register", register),
    ):
        for cycle in sorted(ids - recorded):
            figures.violation("lost ledger record", f"cycle {cycle}, {source}, is not in the ledger")
    figures.notes.append(
        f"ledger: {len(recorded)} cycles recorded; {len(printed)} printed by the hubs, "
        f"{len(seen)} seen during the run, {len(register)} in the register — all checked against it"
    )


# ---------------------------------------------------------------------------------- landings
def landings(figures: Figures, shop: Workshop, name: str) -> None:
    repo = shop.repo(name)
    graph = shop.store(name).load()
    trailers = Counter(
        git(repo, "log", "main", f"--format=%(trailers:key={landing.TRAILER},valueonly)").split()
    )
    for task_id, count in trailers.items():
        if count > 1:
            figures.violation("double landing", f"{name}: {count} commits carry the trailer of {task_id}")
    for task_id in (t for t in shop.tasks if shop.workshop_of(t) == name):
        shown = subprocess.run(
            ["git", "show", f"main:out/{task_id}.txt"], cwd=repo, capture_output=True, text=True, check=False
        )
        lines = shown.stdout.splitlines() if shown.returncode == 0 else []
        if len(lines) > 1 and trailers[task_id] <= 1:
            figures.violation("double landing", f"{name}: out/{task_id}.txt holds {len(lines)} lines")
        if graph.tasks.get(task_id, {}).get("status") == "done":
            figures.tasks_landed += 1
            if lines != [task_id]:
                figures.violation(
                    "done without landing", f"{name}: {task_id} is done, its line is not on main"
                )


def claims(figures: Figures, shop: Workshop, name: str) -> None:
    graph = shop.store(name).load()
    for task_id, task in graph.tasks.items():
        if task.get("status") == "in-progress":
            figures.violation(
                "stuck claim",
                f"{name}: {task_id} is still claimed by {task.get('assigned')} with nothing running",
            )


# ---------------------------------------------------------------------------------- unmerged work
def unmerged(figures: Figures, shop: Workshop, name: str, tips: set[str]) -> None:
    repo = shop.repo(name)
    reachable = set(git(repo, "rev-list", "--all").split())
    lost = [tip for tip in tips if tip not in reachable]
    if not lost:
        return
    patches = git(repo, "log", "--all", "-p", "--format=commit %H", "--no-color")
    kept = {line.split()[0] for line in git(repo, "patch-id", "--stable", stdin=patches).splitlines() if line}
    for tip in lost:
        diff = git(repo, "show", "--format=commit %H", "--no-color", tip, check=False)
        if not diff:
            figures.violation(
                "deleted unmerged work", f"{name}: commit {tip[:12]} of an attempt branch is gone"
            )
            continue
        ids = git(repo, "patch-id", "--stable", stdin=diff).split()
        if ids and ids[0] not in kept:
            figures.violation(
                "deleted unmerged work",
                f"{name}: commit {tip[:12]} of an attempt branch is on no ref and its change nowhere else",
            )


def git_state(figures: Figures, repo: Path) -> None:
    locks = [p for p in (repo / ".git").rglob("*.lock") if p.name != "speedrift-worktrees.lock"]
    for lock in locks:
        figures.violation("git lock left", f"{lock}")
    for marker in gitlocks.markers(repo):
        figures.violation("git lock left", f"{repo.name}: step marker {marker.path.name} left")
    fsck = subprocess.run(
        ["git", "fsck", "--no-dangling", "--no-progress"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    if fsck.returncode != 0:
        figures.violation("torn file", f"{repo.name}: git fsck: {fsck.stderr.strip()[:300]}")


# ---------------------------------------------------------------------------------- agents' pushes
def agent_pushes(figures: Figures, shop: Workshop) -> None:
    """Each hostile agent printed git push's exit status after trying: 0 means it arrived."""
    repo = shop.repo("factory")
    for task_id in sorted(shop.pushers):
        for run_dir in layout.attempt_dirs(repo, task_id):
            try:
                events = layout.events_path(run_dir).read_bytes()
            except OSError:
                continue
            for status in re.findall(rb"%s(\d+)" % PUSH_MARK.encode(), events):
                figures.agent_pushes += 1
                figures.agent_pushes_landed += 1 if status == b"0" else 0
    arrived = git(shop.remote, "for-each-ref", "--format=%(refname)", forbidden.AGENT_PUSH_PREFIX).split()
    figures.notes.append(
        f"agents' force-pushes: {figures.agent_pushes} tried, {figures.agent_pushes_landed} accepted "
        f"({len(arrived)} refs arrived on the remote)"
    )
