"""The thin wrapper every git call goes through: argv lists, never a shell string."""

from __future__ import annotations

import subprocess
from pathlib import Path

from speedrift.errors import SpeedriftError


class GitError(SpeedriftError):
    pass


def git(args: list[str], cwd: Path, *, check: bool = True, timeout: float = 60) -> str:
    try:
        result = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError:
        raise GitError("git is not installed", hint="install git (e.g. `apt-get install git`)") from None
    if check and result.returncode != 0:
        raise GitError(f"git {' '.join(args)} failed in {cwd}: {result.stderr.strip()}")
    return result.stdout.strip() if result.returncode == 0 else ""


def toplevel(path: Path) -> Path | None:
    out = git(["rev-parse", "--show-toplevel"], path, check=False)
    return Path(out) if out else None


def exclude_locally(repo: Path, pattern: str) -> bool:
    """Add ``pattern`` to the repo's ``info/exclude`` once. Returns True if it was added."""
    exclude = Path(git(["rev-parse", "--git-path", "info/exclude"], repo))
    if not exclude.is_absolute():
        exclude = repo / exclude
    exclude.parent.mkdir(parents=True, exist_ok=True)
    current = exclude.read_text() if exclude.exists() else ""
    if pattern in current.splitlines():
        return False
    with open(exclude, "a") as handle:
        handle.write(("" if current.endswith("\n") or not current else "\n") + pattern + "\n")
    return True
