"""Finding gate tools and running them under a deadline.

Lookup order for a tool: ``[gates.tools]`` in speedrift.toml, then the repo's own environment
(``<worktree>/.venv/bin``, ``<repo>/.venv/bin``, ``node_modules/.bin`` for JavaScript tools), then
``$SPEEDRIFT_GATE_PATH`` when set — otherwise ``$PATH`` followed by the directory of speedrift's own
interpreter (where ``pip install speedrift[gates]`` put ruff, mypy and semgrep).

A run gets its own process group, output goes to temporary files (no pipe can fill up and no
grandchild holding a pipe can keep the call open), and on the deadline the whole group is killed.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from speedrift import procs
from speedrift.errors import SpeedriftError

GATE_PATH_ENV = "SPEEDRIFT_GATE_PATH"
NODE_TOOLS = frozenset({"eslint", "tsc"})

INSTALL_HINTS = {
    "ruff": "pip install ruff (or speedrift[gates])",
    "mypy": "pip install mypy (or speedrift[gates])",
    "semgrep": "pip install semgrep (or speedrift[gates])",
    "pip-audit": "pip install pip-audit (or speedrift[gates])",
    "pytest": "pip install pytest in the repo's environment",
    "node": "install Node.js",
    "npm": "install Node.js (npm comes with it)",
    "eslint": "npm install --save-dev eslint",
    "tsc": "npm install --save-dev typescript",
    "go": "install Go: https://go.dev/doc/install",
    "cargo": "install Rust with rustup: https://rustup.rs",
    "make": "install make (apt-get install make, or the Xcode command line tools)",
}


class GateTimeout(SpeedriftError):
    """A tool ran past the gate's deadline; its process group has been killed."""

    def __init__(self, what: str, seconds: float) -> None:
        super().__init__(f"{what} timed out after {seconds:.0f}s")
        self.what = what
        self.seconds = seconds


@dataclass(frozen=True, slots=True)
class ToolRun:
    argv: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes
    seconds: float

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", "replace")

    @property
    def err(self) -> str:
        return self.stderr.decode("utf-8", "replace")


class ToolFinder:
    def __init__(
        self,
        repo: Path,
        worktree: Path,
        configured: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.repo = repo
        self.worktree = worktree
        self.configured = dict(configured or {})
        self.env = dict(os.environ if env is None else env)
        self._cache: dict[str, Path | None] = {}

    def search_dirs(self, tool: str) -> list[Path]:
        local: list[Path] = []
        roots = [self.worktree] + ([self.repo] if self.repo != self.worktree else [])
        if tool in NODE_TOOLS:
            local += [root / "node_modules" / ".bin" for root in roots]
        else:
            local += [root / ".venv" / "bin" for root in roots]
        explicit = self.env.get(GATE_PATH_ENV)
        if explicit is not None:
            general = [Path(p) for p in explicit.split(os.pathsep) if p]
        else:
            general = [Path(p) for p in self.env.get("PATH", os.defpath).split(os.pathsep) if p]
            general.append(Path(sys.executable).parent)
        return local + general

    def find(self, tool: str) -> Path | None:
        if tool in self._cache:
            return self._cache[tool]
        found: Path | None = None
        configured = self.configured.get(tool)
        if configured:
            path = Path(configured)
            path = path if path.is_absolute() else self.repo / path
            found = path if _executable(path) else None
        else:
            for folder in self.search_dirs(tool):
                candidate = folder / tool
                if _executable(candidate):
                    found = candidate
                    break
        self._cache[tool] = found
        return found

    def missing_reason(self, tool: str) -> str:
        configured = self.configured.get(tool)
        if configured:
            return f"{tool} not found at {configured} (set in [gates.tools] of speedrift.toml)"
        hint = INSTALL_HINTS.get(tool, f"install {tool}")
        return f"{tool} not installed ({hint})"

    def fingerprint(self, tool: str) -> str:
        """Identifies the installed tool for caches, without running it (semgrep takes 1 s to start)."""
        path = self.find(tool)
        if path is None:
            return "missing"
        try:
            stat = path.resolve().stat()
        except OSError:
            return str(path)
        return hashlib.sha256(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def run(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    what: str,
) -> ToolRun:
    """Run ``argv`` in its own process group (:func:`speedrift.procs.run`); raise
    :class:`GateTimeout` after ``timeout`` seconds. Helpers it left behind do not outlive the gate."""
    started = time.monotonic()
    try:
        done = procs.run(argv, cwd=cwd, env=env, timeout=max(0.01, timeout), end_group=True)
    except OSError as error:
        raise ToolNotRunnable(f"could not start {argv[0]}: {error.strerror or error}") from None
    except procs.ProcessTimeout:
        raise GateTimeout(what, timeout) from None
    return ToolRun(tuple(argv), done.returncode, done.stdout, done.stderr, time.monotonic() - started)


class ToolNotRunnable(SpeedriftError):
    pass
