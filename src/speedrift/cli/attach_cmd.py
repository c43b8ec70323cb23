"""``speedrift attach TASK [--attempt N] [--tmux] [--json]`` and ``speedrift attach --all [--tmux]``:
follow a RUNNING attempt in the terminal, its events rendered as ``speedrift tail`` renders them.

Attach is ``tail -f`` of a running attempt (the follow loop is :mod:`speedrift.cli.tail_cmd`'s, the
rendering :mod:`speedrift.eventview`'s) with a header naming the task, attempt, runtime, worktree and
pids, and a footer with the end state. A task with no running attempt is an error naming its latest
state, with the ``speedrift run`` / ``speedrift tail`` hints. ``--all`` follows every running attempt
of this repo — or of the ecosystem (``--ecosystem FILE`` or ``$SPEEDRIFT_ECOSYSTEM``) — each line
prefixed by ``[task]`` (``[repo:task]`` in an ecosystem), until all have ended.

``--tmux`` runs the follow in a tmux window named after the task instead: a new window of the
current session inside tmux (``$TMUX`` set), else a window of the detached session ``speedrift``
(created when missing; the ``tmux attach -t speedrift`` line is printed). ``--all --tmux`` opens one
window per running attempt. Windows stay open after the follow ends (``remain-on-exit``), so the
footer can be read. Window names are slugs (``[A-Za-z0-9_-]``): a task id's ``:`` or ``.`` never
becomes tmux target syntax, and the window's command is an argv (no shell ever parses a task id).

Invariant: attaching only reads the run directory. It never signals, waits on or holds anything of
the agent's, so detaching (Ctrl-C, closing the pane, killing attach) never affects the agent.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from argparse import Namespace
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from speedrift import layout, records
from speedrift.cli import tail_cmd
from speedrift.cli.base import store
from speedrift.cli.output import emit_json, say
from speedrift.cli.worker_cmds import running_rows
from speedrift.control.ecosystem.peers import named_ecosystem, repo_paths
from speedrift.errors import NotFound, Refused, UsageError
from speedrift.graph.store import GraphStore
from speedrift.procs import record_alive
from speedrift.repo import worktrees
from speedrift.termtext import printable

SESSION = "speedrift"  # the detached session opened outside tmux
WINDOW_NAME_MAX = 40
NO_TMUX = "tmux is not installed: apt-get install tmux, or run without --tmux"


@dataclass(frozen=True)
class Running:
    """One running attempt: where it is and what its record says."""

    repo: Path
    graph_dir: Path
    task_id: str
    attempt: int
    record: dict[str, Any]
    repo_name: str | None = None  # set when found through an ecosystem

    @property
    def label(self) -> str:
        return f"{self.repo_name}:{self.task_id}" if self.repo_name else self.task_id

    @property
    def folder(self) -> Path:
        return layout.attempt_dir(self.repo, self.task_id, self.attempt)

    def worktree(self) -> Path | None:
        path = layout.worktrees_dir(self.repo) / worktrees.attempt_name(self.task_id, self.attempt)
        return path if path.is_dir() else None

    def header(self) -> dict[str, Any]:
        raw = self.record
        agent = raw.get("agent_pgid") if record_alive(raw, "agent_pgid", "agent_start") else None
        tree = self.worktree()
        return {
            "repo": self.repo_name or str(self.repo),
            "task": self.task_id,
            "attempt": self.attempt,
            "runtime": raw.get("runtime"),
            "model": raw.get("model"),
            "worktree": str(tree) if tree else None,
            "pid": agent,
            "worker_pid": raw.get("pid"),
            "started": raw.get("started"),
        }


def attach(args: Namespace) -> int:
    if args.tmux and shutil.which("tmux") is None:
        raise Refused(NO_TMUX)
    if args.attach_all:
        if args.task_id is not None or args.attempt is not None:
            raise UsageError(
                "`attach --all` takes no TASK or --attempt", hint="`speedrift attach TASK`, or --all"
            )
        return _attach_all(args)
    if args.task_id is None:
        raise UsageError("name a TASK to attach to", hint="`speedrift attach TASK`, or `--all` for every one")
    if args.ecosystem is not None:
        raise UsageError("--ecosystem goes with --all", hint="attach to a task from its own repo (or --dir)")
    graph_store = store(args)
    target = running_attempt(graph_store.directory.parent, graph_store.directory, args.task_id, args.attempt)
    if args.tmux:
        return _open_tmux([target], args, pinned=args.attempt is not None)
    return _follow_one(target, as_json=bool(args.as_json), chain=args.attempt is None)


def running_attempt(repo: Path, graph_dir: Path, task_id: str, attempt: int | None) -> Running:
    """The task's running attempt (``attempt``, else its latest); NotFound naming the latest state."""
    folders = layout.attempt_dirs(repo, task_id)
    if attempt is not None:
        folders = [f for f in folders if int(f.name) == attempt]
    hints = f"`speedrift run {task_id}` starts an attempt; `speedrift tail {task_id}` shows a finished one"
    if not folders:
        what = f"attempt {attempt} of {task_id!r}" if attempt is not None else f"no attempt of {task_id!r}"
        raise NotFound(
            f"{what} has not run here" if attempt is not None else f"{what} has run here", hint=hints
        )
    folder = folders[-1]
    record = records.read_attempt(folder) or records.AttemptRecord({})
    if record.state is not records.AttemptState.RUNNING:
        raise NotFound(
            f"{task_id!r} has no running attempt: attempt {folder.name} is {record.state_text}", hint=hints
        )
    if not record_alive(record.raw):
        raise NotFound(
            f"{task_id!r} has no running attempt: attempt {folder.name} says running, but its process "
            "is gone",
            hint=hints,
        )
    return Running(repo, graph_dir, task_id, int(folder.name), record.raw)


def _follow_one(target: Running, *, as_json: bool, chain: bool) -> int:
    head = target.header()
    if as_json:
        tail_cmd.json_line({"attach": head})
    else:
        _say_header(head)
    try:
        end = tail_cmd.follow_task(
            target.repo, target.task_id, target.folder, follow=True, as_json=as_json, chain=chain
        )
    except KeyboardInterrupt:
        return _detached([target], as_json)
    if not as_json:
        words = tail_cmd.end_words(end) if end is not None else "unknown"
        say(
            f"— {printable(target.label)} ended {words}; "
            f"`speedrift tail {printable(target.task_id)}` shows it again"
        )
    return 0


def _say_header(head: dict[str, Any]) -> None:
    say(f"Attached to {printable(str(head['task']))} — attempt {head['attempt']} (running)")
    runtime = " · ".join(printable(str(v)) for v in (head["runtime"], head["model"]) if v)
    say(f"  runtime   {runtime or '-'}")
    say(f"  repo      {printable(str(head['repo']))}")
    say(f"  worktree  {printable(head['worktree'] or '- (not in this repo)')}")
    pid = head["pid"] if head["pid"] is not None else "- (not started, or gone)"
    say(f"  pid       {pid} (agent process group), worker {head['worker_pid']}")
    say(f"  started   {printable(str(head['started'] or '-'))}")
    say("Ctrl-C detaches; the agent keeps running.")


def _detached(targets: Sequence[Running], as_json: bool) -> int:
    if not as_json:
        names = ", ".join(printable(t.label) for t in targets)
        say(f"— detached from {names}; the agent keeps running (`speedrift attach` again to follow)")
    return 0


# --- all running attempts --------------------------------------------------------------------


def all_running(args: Namespace) -> list[Running]:
    """Every running attempt of the ecosystem (``--ecosystem`` / ``$SPEEDRIFT_ECOSYSTEM``), else of
    this repo."""
    ecosystem = named_ecosystem(getattr(args, "ecosystem", None), Path.cwd())
    places: list[tuple[str | None, GraphStore]] = []
    if ecosystem is None:
        places.append((None, store(args)))
    else:
        for repo_name, path in sorted(repo_paths(ecosystem).items()):
            found = GraphStore.of_repo(path)
            if found is not None:
                places.append((repo_name, found))
    out: list[Running] = []
    for name, graph_store in places:
        repo = graph_store.directory.parent
        for row in running_rows(repo, graph_store):
            record = {k: v for k, v in row.items() if k not in ("task", "pid", "worker_pid", "run_dir")}
            record["pid"] = row.get("worker_pid")
            out.append(Running(repo, graph_store.directory, row["task"], int(row["attempt"]), record, name))
    return out


def _attach_all(args: Namespace) -> int:
    targets = all_running(args)
    as_json = bool(args.as_json)
    if not targets:
        if as_json and args.tmux:
            emit_json({"session": None, "windows": [], "attach": None})
        elif not as_json:
            say("No attempts are running.")
        return 0
    if args.tmux:
        return _open_tmux(targets, args, pinned=False)
    followers: list[tail_cmd.Follower] = []
    for target in targets:
        head = target.header()
        prefix = f"[{printable(target.label)}] "
        if as_json:
            tail_cmd.json_line({"attach": head})
        else:
            runtime = printable(str(head["runtime"] or "-"))
            tree = printable(head["worktree"] or "-")
            say(f"{prefix}attempt {target.attempt} · {runtime} · pid {head['pid'] or '-'} · worktree {tree}")
        tag = {"repo": head["repo"], "task": target.task_id}
        followers.append(tail_cmd.Follower(target.folder, prefix=prefix, tag=tag))
    if not as_json:
        say("Ctrl-C detaches; the agents keep running.")
    try:
        tail_cmd.follow_all(followers, follow=True, as_json=as_json)
    except KeyboardInterrupt:
        return _detached(targets, as_json)
    return 0


# --- tmux ------------------------------------------------------------------------------------


def window_name(label: str) -> str:
    """A tmux window name for a task: only ``[A-Za-z0-9_-]`` (``:``, ``.``, ``#``, spaces become ``-``),
    so it is never read as ``session:window.pane`` target syntax or a ``#{format}``."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", label).strip("-")[:WINDOW_NAME_MAX].strip("-")
    return slug or "task"


def follow_argv(target: Running, *, pinned: bool) -> list[str]:
    """The command a window runs: this same speedrift, on the task's graph (the tmux server's
    environment is not the caller's, so nothing is left to ``$WG_DIR`` or the PATH)."""
    argv = [sys.executable, "-m", "speedrift", "attach", "--dir", str(target.graph_dir)]
    if pinned:
        argv += ["--attempt", str(target.attempt)]
    return [*argv, "--", target.task_id]


def tmux_argv(
    windows: Sequence[tuple[str, Path, Sequence[str]]], *, inside: bool, session_exists: bool
) -> list[list[str]]:
    """The tmux commands opening one window per ``(name, cwd, command)``: in the current session
    inside tmux (the first window selected), else in the detached session :data:`SESSION`, created
    by the first command unless it exists. Each window keeps its pane once the command ends."""
    out: list[list[str]] = []
    keep = [";", "set-option", "-w", "remain-on-exit", "on"]  # applies to the window just made
    for name, cwd, command in windows:
        if inside:
            opening = ["tmux", "new-window", *(["-d"] if out else []), "-n", name, "-c", str(cwd)]
        elif not session_exists and not out:
            opening = ["tmux", "new-session", "-d", "-s", SESSION, "-n", name, "-c", str(cwd)]
        else:
            opening = ["tmux", "new-window", "-d", "-t", f"={SESSION}:", "-n", name, "-c", str(cwd)]
        out.append([*opening, "--", *command, *keep])
    return out


def _open_tmux(targets: Sequence[Running], args: Namespace, *, pinned: bool) -> int:
    inside = bool(os.environ.get("TMUX"))
    exists = not inside and _tmux(["tmux", "has-session", "-t", f"={SESSION}"], check=False).returncode == 0
    windows = [(window_name(t.label), t.repo, follow_argv(t, pinned=pinned)) for t in targets]
    commands = tmux_argv(windows, inside=inside, session_exists=exists)
    for argv in commands:
        _tmux(argv, check=True)
    hint = None if inside else f"tmux attach -t {SESSION}"
    if args.as_json:
        emit_json(
            {
                "session": None if inside else SESSION,
                "windows": [
                    {"name": name, "task": t.task_id, "attempt": t.attempt, "repo": str(t.repo), "argv": argv}
                    for (name, _cwd, _cmd), t, argv in zip(windows, targets, commands, strict=True)
                ],
                "attach": hint,
            }
        )
        return 0
    for (name, _cwd, _cmd), target in zip(windows, targets, strict=True):
        where = "this tmux session" if inside else f"tmux session {SESSION}"
        say(f"Opened window {name} in {where}: following {printable(target.label)} attempt {target.attempt}")
    if hint:
        say(f"See it with:\n  {hint}")
    return 0


def _tmux(argv: list[str], *, check: bool) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
    if check and done.returncode != 0:
        said = printable((done.stderr or done.stdout).strip()[:500]) or f"exit {done.returncode}"
        raise Refused(f"tmux failed: {said}", hint="run the command shown by --json yourself to see why")
    return done
