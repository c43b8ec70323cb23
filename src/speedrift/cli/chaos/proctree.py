"""The chaos run's own processes, read from ``/proc``, and the kills it deals them (Linux).

Job: list every live process the run started (the run makes itself a child subreaper, so detached
services and workers whose parent died are re-parented to it and stay in its tree), tell what each
is (hub, service, worker, agent) and SIGKILL exactly the one listed.

Invariants: a signal goes through a pidfd and only after the process's start time was checked
again, so a pid reused by another process (another engineer's test, say) is never signalled; a
tree is frozen (SIGSTOP) before it is killed, so nothing it spawns between the listing and the
kill escapes; the run reaps the orphans re-parented to it, never a child a caller still waits for.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
AGENT_NAMES = frozenset({"sh", "bash", "dash", "sleep"})


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    name: str  # the kernel's command name (comm)
    started: int  # clock ticks since boot: with the pid, names one process
    argv: tuple[str, ...]


def become_subreaper() -> bool:
    """Make orphans of this process's descendants its children (so they stay in its tree)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _read(pid: int) -> Proc | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    argv = tuple(part.decode(errors="replace") for part in raw.split(b"\0") if part)
    return Proc(pid, int(fields[1]), stat[stat.find("(") + 1 : stat.rfind(")")], int(fields[19]), argv)


def descendants(root: int) -> dict[int, Proc]:
    """Every live process below ``root`` (not ``root`` itself)."""
    children: dict[int, list[Proc]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (proc := _read(int(entry))) is not None:
            children.setdefault(proc.ppid, []).append(proc)
    found: dict[int, Proc] = {}
    frontier = [root]
    while frontier:
        for child in children.get(frontier.pop(), []):
            if child.pid not in found:
                found[child.pid] = child
                frontier.append(child.pid)
    return found


def signal_exact(proc: Proc, sig: signal.Signals) -> bool:
    """Send ``sig`` to exactly this process (same pid and start time); False if it is gone."""
    try:
        fd = os.pidfd_open(proc.pid)
    except OSError:
        return False
    try:
        now = _read(proc.pid)
        if now is None or now.started != proc.started:
            return False
        signal.pidfd_send_signal(fd, sig)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def freeze_and_kill(procs: Iterable[Proc], under: int | None = None) -> int:
    """SIGSTOP every process listed (and, with ``under``, whatever appeared below that pid while
    freezing), then SIGKILL them all. Returns how many were killed."""
    frozen: dict[int, Proc] = {}
    pending = {proc.pid: proc for proc in procs}
    for _ in range(5):
        for pid, proc in pending.items():
            if signal_exact(proc, signal.SIGSTOP):
                frozen[pid] = proc
        if under is None:
            break
        pending = {pid: proc for pid, proc in descendants(under).items() if pid not in frozen}
        if not pending:
            break
    return sum(1 for proc in frozen.values() if signal_exact(proc, signal.SIGKILL))


def reap_orphans(keep: Iterable[int] = ()) -> int:
    """Reap the finished children of this process that nobody waits for (orphans re-parented to
    it), except the pids in ``keep`` (children a caller will wait for itself)."""
    kept = set(keep)
    me = os.getpid()
    reaped = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in kept:
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if fields[0] == "Z" and int(fields[1]) == me:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(int(entry), os.WNOHANG)
                reaped += 1
    return reaped


def kind_of(proc: Proc, tree: dict[int, Proc], hub_pids: set[int]) -> str | None:
    """hub, service, forkserver, worker, agent or git (None: something else of the run)."""
    if proc.pid in hub_pids:
        return "hub"
    argv = " ".join(proc.argv)
    if proc.name == "git" or argv.startswith("git "):
        return "git"
    if proc.name in AGENT_NAMES:
        return "agent"
    if "service run" in argv and "speedrift" in argv:
        return "service"
    if "multiprocessing.forkserver" in argv:
        return "forkserver"
    if proc.name.startswith("python"):
        parent = tree.get(proc.ppid)
        if parent is not None and "multiprocessing.forkserver" in " ".join(parent.argv):
            return "worker"  # an attempt forked by a service's forkserver
        if " run " in f" {argv} " and "speedrift" in argv:
            return "worker"  # `speedrift run TASK --hub` dispatched by the hub
        if "worker_cmds" in argv:
            return "worker"  # the hub's warm worker, before or after it took its command
    return None
