"""A full disk and a read-only filesystem under a repo's graph and a hub's ledger and register.

Job: in a private mount namespace (``unshare --mount``, with ``--map-root-user`` when not root), a
size-limited tmpfs holds a tiny ecosystem — one git repo with its ``.workgraph/``, the hub's
directory with ``register.db`` and ``ledger/cycles.jsonl``. The disk is then filled (to the last
byte, and to a few pages short of it) and the filesystem remounted read-only, and every time the
graph and the ledger are written through the CLI (``speedrift add``, ``speedrift log``,
``speedrift hub once``) and through the store and ledger APIs. Afterwards space returns or the
filesystem is writable again, and the same writes must work.

Invariants checked: a write that fails says so in one clear line (``error: …``, no traceback) or
raises, and leaves the graph, the operations log and the ledger byte for byte as they were — no
torn file, no half ledger record, no temp file left behind; once space returns, work resumes.

The namespace dies with the child process, and the tmpfs with it: nothing is mounted on the host.
Run as ``python -m speedrift.cli.chaos.diskfull MOUNTPOINT SECONDS LOG`` inside the namespace (the
parent side, :func:`run`, does that); it prints one JSON object.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from speedrift import hubdir
from speedrift.cli.chaos import planted
from speedrift.cli.chaos.figures import Figures

SIZE = "8m"
PAGE = 4096
CLI_TIMEOUT_S = 120.0


# ------------------------------------------------------------------------------------ parent side
def namespace_prefix() -> tuple[list[str], str] | None:
    """The argv prefix that runs a command where it may mount a tmpfs of its own, and its name;
    None when this machine offers none (verified by really mounting one)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    prefix = [unshare, "--mount", "--propagation", "private"]
    name = "unshare --mount (root)"
    if os.geteuid() != 0:
        prefix.append("--map-root-user")
        name = "unshare --mount --map-root-user"
    with tempfile.TemporaryDirectory(prefix="speedrift-chaos-probe-") as probe:
        script = (
            f"mount -t tmpfs -o size=64k chaos {probe} && mount -o remount,ro {probe}"
            f" && mount -o remount,rw {probe}"
        )
        try:
            done = subprocess.run([*prefix, "sh", "-c", script], capture_output=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
    return (prefix, name) if done.returncode == 0 else None


def run(figures: Figures, workdir: Path, seconds: float, env: dict[str, str]) -> None:
    """The disk phase: the child in its namespace does the work; its figures are added here."""
    found = namespace_prefix()
    if found is None:
        figures.disk_mechanism = "unavailable"
        figures.notes.append(
            "disk full / read-only phase not run: no `unshare --mount` here (nor root to mount a tmpfs)"
        )
        return
    prefix, name = found
    figures.disk_mechanism = f"tmpfs size={SIZE} via {name}"
    mount, logs = workdir / "disk", workdir / "logs"
    mount.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    argv = [*prefix, sys.executable, "-m", "speedrift.cli.chaos.diskfull", str(mount), f"{seconds:.1f}"]
    argv.append(str(logs / "disk-hub-up.out"))  # outside the tmpfs: the hub's output survives it
    try:
        done = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=seconds + 240, check=False
        )
    except subprocess.TimeoutExpired:
        figures.violation("unclean write failure", "the disk phase hung (a write blocked on a full disk?)")
        return
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        figures.errors.append(f"the disk phase crashed: {' | '.join(tail)}")
        return
    result = json.loads(lines[-1])
    figures.disk_refused += result["refused"]
    figures.disk_resumed += result["resumed"]
    figures.secrets_found += len(result["secrets"])
    figures.files_swept += result["files_swept"]
    for kind, detail in result["violations"]:
        figures.violation(kind, f"disk phase: {detail}")
    figures.notes.extend(result["notes"])
    for hit in result["secrets"]:
        figures.notes.append(f"secret found: {hit}")


# ------------------------------------------------------------------------------------ child side
@dataclass
class Files:
    graph: bytes
    oplog: bytes
    ledger: bytes


@dataclass
class Disk:
    mount: Path
    env: dict[str, str]
    refused: int = 0
    resumed: int = 0
    violations: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    counter: Counter[str] = field(default_factory=Counter)
    hub_proc: subprocess.Popen[bytes] | None = None
    reported: set[str] = field(default_factory=set)  # torn states already counted (counted once)

    @property
    def eco(self) -> Path:
        return self.mount / "eco"

    @property
    def repo(self) -> Path:
        return self.eco / "r"

    @property
    def graph_dir(self) -> Path:
        return self.repo / ".workgraph"

    @property
    def hub(self) -> Path:
        return hubdir.hub_dir(self.eco / hubdir.ECOSYSTEM_FILE, create=False)

    # -- the conditions --------------------------------------------------------------------------
    def filler(self) -> Path:
        return self.mount / "filler"

    def fill(self, leave_pages: int) -> None:
        """Fill the filesystem to the last byte, then give back ``leave_pages`` pages."""
        fd = os.open(self.filler(), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for chunk in (1 << 20, 1 << 16, PAGE, 1):
                block = b"\0" * chunk
                while True:
                    try:
                        if os.write(fd, block) < chunk:
                            break
                    except OSError:
                        break
            if leave_pages:
                size = os.fstat(fd).st_size
                os.ftruncate(fd, max(0, size - leave_pages * PAGE))
        finally:
            os.close(fd)

    def free(self) -> None:
        self.filler().unlink(missing_ok=True)

    def remount(self, mode: str) -> None:
        """Remount read-only or read-write (a writer still closing its files delays it a little)."""
        for _ in range(50):
            done = subprocess.run(["mount", "-o", f"remount,{mode}", str(self.mount)], capture_output=True)
            if done.returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError(
            f"cannot remount {self.mount} {mode}: {done.stderr.decode(errors='replace').strip()}"
        )

    # -- writes ----------------------------------------------------------------------------------
    def cli(self, *argv: str) -> tuple[bool, str]:
        command = [sys.executable, "-m", "speedrift", *argv]
        try:
            done = subprocess.run(
                command, cwd=self.eco, env=self.env, capture_output=True, text=True, timeout=CLI_TIMEOUT_S
            )
        except subprocess.TimeoutExpired:
            return False, f"`speedrift {' '.join(argv)}` hung for {CLI_TIMEOUT_S:.0f}s"
        return done.returncode == 0, done.stderr

    def add(self, number: int, big: bool) -> tuple[bool, str]:
        text = ("a long description that makes the graph grow " * (60 if big else 1)).strip()
        return self.cli("--dir", str(self.graph_dir), "add", f"disk task {number}", "-d", text)

    def hub_once(self) -> tuple[bool, str]:
        return self.cli("hub", "once", "--ecosystem", str(self.eco / hubdir.ECOSYSTEM_FILE))

    def api_mutate(self, number: int) -> tuple[bool, str]:
        from speedrift.graph import ops
        from speedrift.graph.store import GraphStore

        spec = ops.NewTask(f"api task {number}", description="d" * 3000)
        try:
            GraphStore(self.graph_dir).mutate(lambda g, now: ops.add_task(g, spec, now=now, actor="chaos"))
        except Exception as error:  # the API may raise; what matters is that the files are intact
            return False, f"{type(error).__name__}: {error}"
        return True, ""

    def api_ledger(self, number: int) -> tuple[bool, str]:
        from speedrift.register.ledger import Ledger

        try:
            Ledger(self.hub).append({"kind": "chaos", "number": number, "padding": "p" * 6000})
        except Exception as error:
            return False, f"{type(error).__name__}: {error}"
        return True, ""

    # -- checks ----------------------------------------------------------------------------------
    def files(self) -> Files:
        def read(path: Path) -> bytes:
            try:
                return path.read_bytes()
            except FileNotFoundError:
                return b""

        return Files(
            read(self.graph_dir / "graph.jsonl"),
            read(self.graph_dir / "log" / "operations.jsonl"),
            read(hubdir.cycles_path(self.hub)),
        )

    def violation(self, kind: str, detail: str, state: str | None = None) -> None:
        """Count a violation; one ``state`` (a torn file's description) is counted only once."""
        if state is not None:
            if state in self.reported:
                return
            self.reported.add(state)
        self.violations.append((kind, detail))

    def readable(self, what: str) -> None:
        """The graph, the operations log and the ledger parse, whole, right now."""
        from speedrift.graph.codec import Graph
        from speedrift.register.ledger import Ledger

        now = self.files()
        problems = Graph.from_bytes(now.graph).problems
        if problems:
            shown = f"graph.jsonl has malformed lines {problems[:2]}"
            self.violation("torn file", f"{what}: {shown}", shown)
        if now.oplog and not now.oplog.endswith(b"\n"):
            shown = f"the operations log ends in half a record ({len(now.oplog)} bytes)"
            self.violation("torn file", f"{what}: {shown}", shown)
        for number, line in enumerate(now.oplog.splitlines(), 1):
            try:
                json.loads(line)
            except ValueError:
                shown = f"the operations log holds a torn record at line {number}"
                self.violation("torn file", f"{what}: {shown}", shown)
                break
        ledger = Ledger(self.hub)
        ledger.read()
        if ledger.torn or ledger.problems:
            shown = f"half a ledger record: {ledger.torn or ledger.problems[0]}"
            self.violation("torn file", f"{what}: {shown}", shown)
        debris = [
            p.name
            for folder in (self.graph_dir, hubdir.ledger_dir(self.hub))
            if folder.is_dir()
            for p in folder.iterdir()
            if p.name.startswith(".graph.tmp.") or (p.name.startswith(".") and p.name.endswith(".tmp"))
        ]
        if debris:
            self.violation("unclean write failure", f"{what}: temp files left behind: {debris}")

    def attempt(self, what: str, write: tuple[bool, str], before: Files, cli: bool) -> None:
        """One write under pressure: a failure must be clean and leave every file as it was."""
        ok, said = write
        self.counter[what] += 1
        found = len(self.violations)
        if not ok:
            if cli and ("Traceback" in said or "error:" not in said):
                last = said.strip().splitlines()[-1] if said.strip() else "(nothing on stderr)"
                self.violation("unclean write failure", f"{what}: not a clear error: {last[:300]}")
            after = self.files()
            if after.graph != before.graph:
                self.violation(
                    "unclean write failure", f"{what} failed ({said.strip()[-200:]}) yet changed graph.jsonl"
                )
            if after.oplog != before.oplog:
                self.violation("unclean write failure", f"{what} failed yet changed the operations log")
            # the ledger may only have gained whole records (the hub's cycles go on meanwhile)
            added = after.ledger[len(before.ledger) :]
            if not after.ledger.startswith(before.ledger) or (added and not added.endswith(b"\n")):
                self.violation("torn file", f"{what} failed and left half a ledger record")
        self.readable(what)
        if not ok and len(self.violations) == found:
            self.refused += 1

    def resume(self, what: str, write: tuple[bool, str]) -> None:
        ok, said = write
        if ok:
            self.resumed += 1
        else:
            tail = said.strip().splitlines()[-1] if said.strip() else ""
            self.violation(
                "unclean write failure", f"{what} did not resume once the disk was usable: {tail[:300]}"
            )
        self.readable(what)

    # -- the phase -------------------------------------------------------------------------------
    def setup(self) -> None:
        from speedrift.graph import ops
        from speedrift.graph.store import GraphStore, init_graph_dir

        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "speedrift-chaos", str(self.mount)], check=True
        )
        self.repo.mkdir(parents=True)
        git = ["git", "-c", "user.name=chaos", "-c", "user.email=chaos@speedrift.invalid"]
        subprocess.run([*git, "init", "-q", "-b", "main"], cwd=self.repo, check=True)
        (self.repo / "README.md").write_text("# disk\n")
        subprocess.run([*git, "add", "-A"], cwd=self.repo, check=True)
        subprocess.run([*git, "commit", "-qm", "init"], cwd=self.repo, check=True)
        init_graph_dir(self.repo)
        store = GraphStore(self.graph_dir)
        spec = ops.NewTask("t0", task_id="t0")
        store.mutate(lambda g, now: ops.add_task(g, spec, now=now, actor="chaos"))
        (self.eco / hubdir.ECOSYSTEM_FILE).write_text('schema = 1\n\n[repos.r]\npath = "r"\n')
        for what, write in (("add", self.add(0, False)), ("hub once", self.hub_once())):
            if not write[0]:
                raise RuntimeError(f"the disk phase's `{what}` failed before any pressure: {write[1][-500:]}")

    def start_hub(self, log: Path) -> None:
        """`hub up` over the tiny ecosystem for the whole phase: it must live through every full
        disk and read-only spell (cycles skipped) and record cycles again afterwards."""
        argv = [sys.executable, "-m", "speedrift", "hub", "up", "--no-dashboard", "--interval", "0.3"]
        argv += ["--ecosystem", str(self.eco / hubdir.ECOSYSTEM_FILE)]
        seen = self.cycles()
        with open(log, "ab") as out:
            self.hub_proc = subprocess.Popen(argv, cwd=self.eco, env=self.env, stdout=out, stderr=out)
        deadline = time.monotonic() + 60  # up and cycling before any pressure
        while time.monotonic() < deadline and self.hub_proc.poll() is None and not self.cycles() - seen:
            time.sleep(0.1)

    def cycles(self) -> set[str]:
        from speedrift.register.ledger import Ledger

        return {str(r["cycle_id"]) for r in Ledger(self.hub).read(last=50) if r.get("cycle_id")}

    def hub_alive(self, label: str, log: Path) -> bool:
        """Whether `hub up` lives; its death is counted once, and a new one started."""
        if self.hub_proc is not None and self.hub_proc.poll() is None:
            return True
        tail = log.read_text(errors="replace").strip().splitlines()[-2:] if log.exists() else []
        self.violation("unclean write failure", f"`hub up` died during {label}: {' '.join(tail)[:300]}")
        self.hub_proc = None
        return False

    def hub_resumed(self, label: str, log: Path, before: set[str]) -> None:
        if self.hub_proc is None:  # stopped for a read-only spell, or died under pressure (counted)
            before = self.cycles()
            self.start_hub(log)  # a new hub: its first cycle is the resumption
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.cycles() - before:
                self.resumed += 1
                return
            time.sleep(0.2)
        self.violation("unclean write failure", f"`hub up` recorded no cycle after {label}")

    def stop_hub(self) -> None:
        if self.hub_proc is not None and self.hub_proc.poll() is None:
            self.hub_proc.terminate()
            try:
                self.hub_proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.hub_proc.kill()
                self.hub_proc.wait()
        self.hub_proc = None

    def pressure(self, label: str, number: int) -> None:
        writes: list[tuple[str, bool, Any]] = [
            ("speedrift add", True, lambda: self.add(number, True)),
            ("speedrift hub once", True, self.hub_once),
            ("GraphStore.mutate", False, lambda: self.api_mutate(number)),
            ("Ledger.append", False, lambda: self.api_ledger(number)),
        ]
        for what, cli, write in writes:
            before = self.files()
            self.attempt(f"{what} ({label})", write(), before, cli)

    def recover(self, label: str, number: int) -> None:
        self.resume(f"speedrift add after {label}", self.add(number, True))
        self.resume(f"speedrift hub once after {label}", self.hub_once())
        self.resume(f"GraphStore.mutate after {label}", self.api_mutate(number))
        self.resume(f"Ledger.append after {label}", self.api_ledger(number))

    def rounds(self, seconds: float, log: Path) -> int:
        deadline = time.monotonic() + seconds
        number, done = 0, 0
        self.start_hub(log)
        try:
            while True:
                for label in ("disk full", "a few pages left", "read-only"):
                    number += 1
                    seen = self.cycles()
                    if label == "read-only":
                        # the kernel refuses to make a filesystem read-only under an open writer
                        # (the hub's register): this spell's hub is the one started afterwards
                        self.stop_hub()
                        self.remount("ro")
                    else:
                        self.fill(0 if label == "disk full" else 1 + done % 3)
                    try:
                        self.pressure(label, number)
                        if self.hub_proc is not None:
                            time.sleep(0.5)  # a cycle or two of `hub up` under pressure
                            self.hub_alive(label, log)
                    finally:
                        if label == "read-only":
                            self.remount("rw")
                        else:
                            self.free()
                    self.recover(label, number)
                    self.hub_resumed(label, log, seen)
                done += 1
                if time.monotonic() >= deadline:
                    return done
        finally:
            self.stop_hub()


def main(argv: list[str]) -> int:
    mount, seconds, log = Path(argv[0]), float(argv[1]), Path(argv[2])
    disk = Disk(mount, dict(os.environ))
    disk.setup()
    rounds = disk.rounds(seconds, log)
    found = planted.sweep([disk.eco], {k: v for k, v in os.environ.items() if k in planted.NAMES})
    disk.notes.append(
        f"disk phase: {rounds} round(s) of a full disk, a few pages left and a read-only filesystem: "
        f"{sum(disk.counter.values())} writes under pressure (speedrift add, hub once, GraphStore.mutate, "
        "Ledger.append) while `hub up` ran on"
    )
    print(
        json.dumps(
            {
                "refused": disk.refused,
                "resumed": disk.resumed,
                "violations": disk.violations,
                "notes": disk.notes[:1],
                "secrets": found.hits,
                "files_swept": found.files,
            }
        )
    )
    with contextlib.suppress(subprocess.CalledProcessError):
        subprocess.run(["umount", "-l", str(mount)], check=True, capture_output=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
