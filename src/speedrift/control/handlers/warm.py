"""A warm worker: one ``speedrift`` interpreter started ahead of need, its imports done, waiting to
become the next ``speedrift run`` the hub dispatches.

Job: most of the time from a task becoming ready to its agent starting is a fresh interpreter
importing speedrift (pydantic models, the pipeline, the gates) before it can claim. A long-lived
hub (``hub up``) keeps one such process ready: :meth:`WarmWorkers.take` hands it the command line,
environment, working directory and log file of the worker it is to become, and a new one is
started for the next dispatch (:meth:`WarmWorkers.refill`), off the latency path.

Invariants: a warm process leads its own session, exactly like a worker started cold (it outlives
the hub, a Ctrl-C to the hub never reaches it); it runs nothing until it is handed a command; a
warm process nobody took exits when the hub does (its stdin closes); it is used only for the
environment it was started with, and a hand-over that fails falls back to a cold start.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import orjson

from speedrift import procs

# what the warm process runs: the imports a `run` needs, then it waits for its command
WARM_CODE = """
import json, os, sys
from speedrift.cli import app, worker_cmds
import speedrift.fleet.pipeline, speedrift.fleet.config, speedrift.gates.suite, speedrift.control.authority
if os.environ.get("SPEEDRIFT_DASK_SCHEDULER") or os.environ.get("SPEEDRIFT_EXECUTOR") == "dask":
    try:  # the dask executor's client library, imported ahead too (fleet/remote/executor.py)
        import distributed
    except ImportError:
        pass
line = sys.stdin.readline()
if not line.strip():
    sys.exit(0)
order = json.loads(line)
os.chdir(order["cwd"])
os.environ.clear()
os.environ.update(order["env"])
log = os.open(order["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
os.dup2(log, 1)
os.dup2(log, 2)
sys.exit(app.main(order["argv"]))
"""


class WarmWorkers:
    """At most one warm process per environment, kept by the hub between cycles."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spare: subprocess.Popen[bytes] | None = None
        self._key: tuple[str, ...] | None = None

    @property
    def ready_pid(self) -> int | None:
        """The warm process waiting for a command, if there is one."""
        with self._lock:
            spare = self._spare
        return spare.pid if spare is not None and spare.poll() is None else None

    @staticmethod
    def _key_of(python: str, env: Mapping[str, str]) -> tuple[str, ...]:
        return (python, *sorted(f"{k}={v}" for k, v in env.items()))

    def take(
        self,
        python: str,
        env: Mapping[str, str],
        argv: Sequence[str],
        cwd: Path,
        log: Path,
        extra: Mapping[str, str] | None = None,
    ) -> subprocess.Popen[bytes] | None:
        """Hand the warm process its command (``speedrift`` arguments, without the interpreter),
        to run with ``env`` plus ``extra`` (what differs per worker, e.g. its slot); None when there
        is none for ``env``, or it is gone — then start one cold."""
        with self._lock:
            spare, key = self._spare, self._key
            self._spare = self._key = None
        if spare is None or key != self._key_of(python, env) or spare.poll() is not None:
            self._discard(spare)
            return None
        order = {"argv": list(argv), "cwd": str(cwd), "env": {**env, **(extra or {})}, "log": str(log)}
        assert spare.stdin is not None
        try:
            spare.stdin.write(orjson.dumps(order) + b"\n")
            spare.stdin.close()
        except OSError:
            self._discard(spare)
            return None
        return spare

    def refill(self, python: str, env: Mapping[str, str], cwd: Path) -> None:
        """Start the warm process for the next dispatch (unless one for ``env`` is ready)."""
        key = self._key_of(python, env)
        with self._lock:
            if self._spare is not None and self._key == key and self._spare.poll() is None:
                return
            old, self._spare, self._key = self._spare, None, None
        self._discard(old)
        try:
            spare = procs.popen_group(
                [python, "-c", WARM_CODE],
                cwd=cwd,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        except OSError:
            return  # the next dispatch starts cold
        threading.Thread(target=spare.wait, name=f"reap-{spare.pid}", daemon=True).start()
        with self._lock:
            self._spare, self._key = spare, key

    def close(self) -> None:
        with self._lock:
            spare, self._spare, self._key = self._spare, None, None
        self._discard(spare)

    @staticmethod
    def _discard(spare: subprocess.Popen[bytes] | None) -> None:
        if spare is not None and spare.stdin is not None:
            with contextlib.suppress(OSError):
                spare.stdin.close()  # an empty command: it exits


WARM = WarmWorkers()
