"""Running git: the one place that builds a git command line and its environment.

Job: turn git arguments into an argv (``git`` + args, ``--no-optional-locks`` for a look that must
not take ``index.lock``) and an environment, and run it through the process-group runner
(:mod:`speedrift.procs`) under a timeout. git *operations* (rev-parse, status, worktrees…) live in
``speedrift.repo.git``; the observer's concurrent reads in ``speedrift.control.observe.git``.

Invariants: argv is a list, never a shell string; git never prompts (``GIT_TERMINAL_PROMPT=0``),
speaks the C locale, never reads our stdin, and is never pointed at another repository by a
variable inherited from our own environment (``GIT_DIR``, ``GIT_WORK_TREE``…, as set in a git hook)
— only a variable the caller passes explicitly relocates it. Past its timeout the whole process
group is killed (:class:`~speedrift.procs.ProcessTimeout`).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from speedrift import procs
from speedrift.errors import SpeedriftError

DEFAULT_TIMEOUT_S = 120.0
# set in our own environment (a hook, a script run by git), these would point git at the wrong
# repository
LOCATION_VARS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_OBJECT_DIRECTORY")
BASE_ENV = {"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
READ_ONLY_ENV = {"GIT_OPTIONAL_LOCKS": "0"}
NO_OPTIONAL_LOCKS = "--no-optional-locks"


class GitError(SpeedriftError):
    """git failed, or could not be run."""


def command(args: Sequence[str], *, no_optional_locks: bool = False) -> list[str]:
    """``git`` + ``args``; ``no_optional_locks``: git takes no optional lock (``index.lock``) while
    it looks, so a look can never make another process's ``git add`` fail."""
    return ["git", *([NO_OPTIONAL_LOCKS] if no_optional_locks else []), *args]


def environment(extra: Mapping[str, str] | None = None, *, no_optional_locks: bool = False) -> dict[str, str]:
    """Our environment without repository-relocating variables, plus :data:`BASE_ENV`, then
    ``extra`` (which may relocate on purpose, e.g. ``GIT_INDEX_FILE``)."""
    clean = {k: v for k, v in os.environ.items() if k not in LOCATION_VARS}
    return {**clean, **BASE_ENV, **(READ_ONLY_ENV if no_optional_locks else {}), **(extra or {})}


def run(
    args: Sequence[str],
    cwd: Path,
    *,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    input_text: str | None = None,
    no_optional_locks: bool = False,
) -> subprocess.CompletedProcess[str]:
    """``git <args>`` in ``cwd``, output as text. ``env``: variables added to :func:`environment`'s.
    ``check``: raise :class:`GitError` on a non-zero exit. Raises GitError when git or ``cwd`` is
    missing, :class:`~speedrift.procs.ProcessTimeout` past ``timeout``."""
    line = command(args, no_optional_locks=no_optional_locks)
    full_env = environment(env, no_optional_locks=no_optional_locks)
    try:
        result = procs.run(line, cwd=cwd, env=full_env, input=input_text, timeout=timeout, text=True)
    except FileNotFoundError:
        raise _not_found(cwd, args) from None
    if check and result.returncode != 0:
        shown = " ".join(line[1:])
        raise GitError(f"git {shown} failed in {cwd}: {result.stderr.strip() or result.stdout.strip()}")
    return result


def run_bytes(
    args: Sequence[str],
    cwd: Path,
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    input_bytes: bytes | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """``git <args>`` in ``cwd``, output as bytes (paths that are not UTF-8, blobs); never raises
    for git's exit code. Raises GitError when git or ``cwd`` is missing, ProcessTimeout past
    ``timeout``."""
    try:
        return procs.run(command(args), cwd=cwd, env=environment(env), input=input_bytes, timeout=timeout)
    except FileNotFoundError:
        raise _not_found(cwd, args) from None


def start(
    args: Sequence[str],
    cwd: Path,
    *,
    deadline: float,
    environ: Mapping[str, str] | None = None,
    no_optional_locks: bool = False,
    input_bytes: bytes | None = None,
) -> procs.Running:
    """Start ``git <args>`` now; collect it with ``finish()``. ``deadline`` is a ``time.monotonic()``
    value; ``environ`` a prebuilt :func:`environment` (None builds it); ``input_bytes`` its stdin.
    Raises ProcessTimeout when the deadline has passed already, OSError when git cannot be started."""
    full_env = environ if environ is not None else environment(no_optional_locks=no_optional_locks)
    line = command(args, no_optional_locks=no_optional_locks)
    return procs.start(line, deadline=deadline, cwd=cwd, env=full_env, input=input_bytes)


def _not_found(cwd: Path, args: Sequence[str]) -> GitError:
    if not Path(cwd).is_dir():
        return GitError(f"{cwd} does not exist (git {' '.join(args[:2])})")
    return GitError("git is not installed", hint="install git (e.g. `apt-get install git`)")
