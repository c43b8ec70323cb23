"""Running the real ``speedrift`` CLI, and reading what it left on disk.

Nothing is mocked: every command goes through the CLI's own ``main(argv)`` in a real git
repository, and the tests look at exit codes, stdout/stderr and the bytes in ``.workgraph/``.

By default a command runs in this process (``speedrift.cli.app.main`` with the working directory,
environment and standard streams a ``python -m speedrift`` child would have), which is what keeps
the CLI suite fast. ``Cli(..., process=True)`` runs a real ``python -m speedrift`` subprocess
instead: for the few tests that need a process of its own (a detached child it leaves behind,
signals, broken pipes, several commands at once). ``SPEEDRIFT_TEST_CLI=process`` in the
environment forces the subprocess everywhere, to check that both ways agree.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import io
import json
import os
import signal
import subprocess
import sys
import threading
import traceback
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import speedrift
from speedrift import redact
from speedrift.cli import app
from speedrift.repo import boundary

GRAPH_DIR = ".workgraph"
GRAPH_FILE = "graph.jsonl"

# Variables that would steer speedrift or git away from the temp repo under test.
_SCRUBBED = ("WG_DIR", "WG_AGENT_ID", "WG_USER", "GIT_DIR", "GIT_WORK_TREE", "COLUMNS", "LINES")

TEST_USER = "tester"

FORCE_PROCESS = os.environ.get("SPEEDRIFT_TEST_CLI") == "process"


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    env.update(
        GIT_AUTHOR_NAME="Speedrift Test",
        GIT_AUTHOR_EMAIL="test@speedrift.invalid",
        GIT_COMMITTER_NAME="Speedrift Test",
        GIT_COMMITTER_EMAIL="test@speedrift.invalid",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        WG_USER=TEST_USER,
        # Rich wraps human output at the terminal width (80 when piped); a wide "terminal" keeps
        # table rows and long temp paths on one line. The wrapping itself is tested on its own.
        COLUMNS="250",
        PYTHONIOENCODING="utf-8",
    )
    return env


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=repo, env=base_env(), capture_output=True, text=True, check=True
    )
    return done.stdout


@dataclass(frozen=True)
class Result:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def __str__(self) -> str:
        shown = " ".join(repr(a) if len(a) < 200 else f"<{len(a)} chars>" for a in self.args)
        return (
            f"speedrift {shown}\n-> exit {self.returncode}\n"
            f"--- stdout ---\n{self.stdout[-3000:]}\n--- stderr ---\n{self.stderr[-3000:]}"
        )


class Cli:
    """``speedrift`` bound to a working directory and environment.

    ``process=True``: every command is a real ``python -m speedrift`` subprocess (see the module
    docstring for when a test needs that); otherwise commands run in this process.
    """

    def __init__(self, cwd: Path, env: Mapping[str, str] | None = None, *, process: bool = False) -> None:
        self.cwd = cwd
        self.env = dict(env) if env is not None else base_env()
        self.process = process or FORCE_PROCESS

    def __call__(
        self,
        *args: str,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 60,
    ) -> Result:
        """Run one command. ``timeout`` bounds a subprocess (in this process there is none)."""
        full_env = {**self.env, **(env or {})}
        where = cwd or self.cwd
        if not self.process:
            return run_in_process(args, cwd=where, env=full_env)
        done = subprocess.run(
            [sys.executable, "-m", "speedrift", *args],
            cwd=where,
            env=full_env,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        return Result(
            tuple(args),
            done.returncode,
            done.stdout.decode("utf-8", "replace"),
            done.stderr.decode("utf-8", "replace"),
        )

    def ok(self, *args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None) -> Result:
        """Run and insist on exit 0."""
        result = self(*args, cwd=cwd, env=env)
        assert result.returncode == 0, str(result)
        return result

    def json(self, *args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None) -> Any:
        """Run with ``--json``, insist on exit 0, decode stdout."""
        return self.ok(*args, "--json", cwd=cwd, env=env).json()

    def fails(
        self, code: int, *args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None
    ) -> Result:
        """Run and insist on exit ``code`` (1 refused/failed, 2 usage)."""
        result = self(*args, cwd=cwd, env=env)
        assert result.returncode == code, str(result)
        return result


# --- in this process -----------------------------------------------------------------------------
# One in-process command at a time: the working directory, os.environ and sys.std* are per process.
_IN_PROCESS = threading.Lock()
_MAIN_PY = str(Path(speedrift.__file__).with_name("__main__.py"))  # sys.argv[0] under `python -m`
# Signals a command may take over while it runs (the hub traps SIGINT and SIGTERM).
_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE, signal.SIGCHLD, signal.SIGUSR1)


def run_in_process(args: tuple[str, ...] | list[str], *, cwd: Path, env: Mapping[str, str]) -> Result:
    """What ``python -m speedrift ARGS`` would do, without the process: the CLI's ``main`` run
    with ``cwd`` as the working directory, exactly ``env`` as the environment, an empty stdin and
    stdout/stderr captured as UTF-8 bytes (``--json`` writes to ``sys.stdout.buffer``). The exit
    status is the process's: ``main``'s return value, a usage error's ``SystemExit(2)``, 1 and a
    traceback on stderr for an uncaught exception. State a fresh process would not have (module
    caches, remembered secrets, signal handlers, the GC switch) is reset around the command."""
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError(
            "an in-process command changes process-wide state: from a thread, use Cli(process=True)"
        )
    out, err = _Capture("strict"), _Capture("backslashreplace")  # as a child's stdout and stderr
    with _IN_PROCESS, _as_a_fresh_process(cwd, env, [_MAIN_PY, *args], out.text, err.text):
        try:
            code = app.main(list(args))
        except SystemExit as stop:
            code = _exit_status(stop.code)
        except Exception:  # what the interpreter does with an uncaught exception
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
    return Result(tuple(args), code % 256, out.value(), err.value())


class _Capture:
    """A text stream over bytes, like a child's piped stdout: ``.buffer`` takes raw writes."""

    def __init__(self, errors: str) -> None:
        self.raw = io.BytesIO()
        self.text = io.TextIOWrapper(self.raw, encoding="utf-8", errors=errors, write_through=True)

    def value(self) -> str:
        self.text.flush()
        return self.raw.getvalue().decode("utf-8", "replace")


def _exit_status(code: object) -> int:
    """The exit status of a process ending with ``SystemExit(code)``."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


@contextlib.contextmanager
def _as_a_fresh_process(
    cwd: Path, env: Mapping[str, str], argv: list[str], stdout: io.TextIOWrapper, stderr: io.TextIOWrapper
) -> Iterator[None]:
    saved_env = _set_environ(env)
    saved_cwd = os.getcwd()
    saved_argv = sys.argv
    saved_streams = sys.stdin, sys.stdout, sys.stderr
    saved_handlers = {sig: signal.getsignal(sig) for sig in _SIGNALS}
    saved_state = _module_state()
    gc_enabled = gc.isenabled()
    try:
        os.chdir(cwd)
        _reset_module_state()
        sys.argv = argv
        sys.stdin = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")  # as under pytest: nothing to read
        sys.stdout, sys.stderr = stdout, stderr
        yield
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved_streams
        sys.argv = saved_argv
        for sig, handler in saved_handlers.items():
            if handler is not None and signal.getsignal(sig) is not handler:
                signal.signal(sig, handler)
        if gc_enabled != gc.isenabled():
            (gc.enable if gc_enabled else gc.disable)()
        _reset_module_state(saved_state)
        os.chdir(saved_cwd)
        _set_environ(saved_env)


def _set_environ(env: Mapping[str, str]) -> dict[str, str]:
    """Make os.environ exactly ``env``, touching only the variables that differ (other threads may
    read the C environment meanwhile); returns what it was."""
    before = dict(os.environ)
    for name in before.keys() - env.keys():
        del os.environ[name]
    for name, value in env.items():
        if before.get(name) != value:
            os.environ[name] = value
    return before


_ModuleState = tuple[dict[str, str], Any, dict[str, Any], dict[Path, tuple[float, list[Path]]]]


def _module_state() -> _ModuleState:
    return redact._known, redact._known_match, redact._named, boundary._listings


def _reset_module_state(state: _ModuleState | None = None) -> None:
    """Module-level state a new process starts without (or, given ``state``, put it back): the
    redactor's remembered secrets, the worktree listings and every ``functools`` cache."""
    redact._known, redact._known_match, redact._named, boundary._listings = state or ({}, None, {}, {})
    for name, module in list(sys.modules.items()):
        if name == "speedrift" or name.startswith("speedrift."):
            for value in list(vars(module).values()):
                if isinstance(value, functools._lru_cache_wrapper):
                    value.cache_clear()


# --- what is on disk ----------------------------------------------------------------------------
def graph_path(repo: Path) -> Path:
    return repo / GRAPH_DIR / GRAPH_FILE


def graph_bytes(repo: Path) -> bytes:
    return graph_path(repo).read_bytes()


def graph_tasks(repo: Path) -> dict[str, dict[str, Any]]:
    """The task nodes in graph.jsonl by id (skipping lines that are not JSON objects)."""
    out: dict[str, dict[str, Any]] = {}
    for line in graph_bytes(repo).splitlines():
        try:
            node = json.loads(line)
        except ValueError:
            continue
        if isinstance(node, dict) and node.get("kind") == "task":
            out[node["id"]] = node
    return out


def append_line(repo: Path, line: bytes | dict[str, Any]) -> int:
    """Append one raw line to graph.jsonl as another tool would; returns its 1-based line number."""
    raw = line if isinstance(line, bytes) else json.dumps(line, separators=(",", ":")).encode()
    path = graph_path(repo)
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        data += b"\n"
    path.write_bytes(data + raw + b"\n")
    return len(path.read_bytes().splitlines())


def task_node(task_id: str, title: str | None = None, **fields: Any) -> dict[str, Any]:
    """A task line as wg writes it: open, created just now (so no age bump) unless given."""
    node: dict[str, Any] = {
        "kind": "task",
        "id": task_id,
        "title": title if title is not None else task_id,
        "status": "open",
        "created_at": datetime.now(UTC).isoformat(),
    }
    node.update(fields)
    return node


def oplog_records(repo: Path) -> list[dict[str, Any]]:
    path = repo / GRAPH_DIR / "log" / "operations.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def seed(repo: Path, *nodes: dict[str, Any]) -> None:
    """Write task lines straight into graph.jsonl (setup that is not the behaviour under test)."""
    for node in nodes:
        append_line(repo, node)
