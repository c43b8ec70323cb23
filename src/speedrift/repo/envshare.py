"""A working environment inside an attempt's worktree, without rewiring the user's.

* ``.worktreeinclude`` (gitignore syntax, the convention Claude Code and Codex use): files that
  git ignores in the main checkout and that match are copied in. Symlinks are never followed
  out of the repository.
* Python virtualenvs (a shared path holding ``pyvenv.cfg``) get a **per-worktree overlay**: a
  fresh venv on the same interpreter whose startup adds the user's site-packages read-only and
  redirects paths into the main checkout (editable installs) to the worktree. ``pip install`` in
  the worktree lands in the overlay; the user's venv is never written.
* Any other shared path (``node_modules`` …) is symlinked, and fingerprinted before and after the
  run: a change to it is reported, and the attempt fails instead of landing.
* A block of TCP ports per worktree, leased by slot files so parallel attempts never collide.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from speedrift import layout
from speedrift.errors import Refused
from speedrift.procs import pid_alive
from speedrift.repo import git

INCLUDE_FILE = ".worktreeinclude"


@dataclass
class Injection:
    copied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # with the reason, e.g. "x: symlink leaves repo"
    overlays: list[str] = field(default_factory=list)
    links: dict[str, str] = field(default_factory=dict)  # shared path -> fingerprint before the run


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def copy_worktree_includes(repo: Path, worktree: Path, injection: Injection) -> None:
    include = repo / INCLUDE_FILE
    if not include.is_file():
        return
    listed = git.run(
        ["ls-files", "-z", "--others", "--ignored", f"--exclude-from={include}"], repo
    ).stdout.split("\0")
    ignored = set(
        git.run(["ls-files", "-z", "--others", "--ignored", "--exclude-standard"], repo).stdout.split("\0")
    )
    for rel in sorted(p for p in listed if p and p in ignored):
        source = repo / rel
        if source.is_symlink() and not _inside(source, repo):
            injection.skipped.append(f"{rel}: symlink points outside the repository")
            continue
        if not source.is_file():
            continue
        target = worktree / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source.resolve(), target)
        injection.copied.append(rel)


_OVERLAY_PTH = """import sys, site; exec({code!r}, {{"sys": sys, "site": site}})
"""
# Runs at interpreter start in the overlay venv: add the shared packages, then point any path
# into the main checkout (an editable install of the project) at the same place in the worktree.
_OVERLAY_CODE = """
shared, main, tree, keep = {shared!r}, {main!r}, {tree!r}, {keep!r}
site.addsitedir(shared)
def redirect(p):
    inside = p == main or p.startswith(main + "/")
    if not inside or any(p == k or p.startswith(k + "/") for k in keep):
        return p
    return tree + p[len(main):]
sys.path[:] = [redirect(p) for p in sys.path]
"""


def _venv_python(venv: Path) -> Path | None:
    for name in ("python3", "python"):
        candidate = venv / "bin" / name
        if candidate.exists():
            return candidate
    return None


def make_venv_overlay(shared_venv: Path, worktree_venv: Path, main_root: Path, worktree: Path) -> None:
    """A venv in the worktree that reads the shared venv's packages and writes only its own."""
    python = _venv_python(shared_venv)
    if python is None:
        raise FileNotFoundError(f"{shared_venv} has no bin/python")
    subprocess.run(
        [str(python), "-m", "venv", "--without-pip", str(worktree_venv)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    info = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()
    own = subprocess.run(
        [str(_venv_python(worktree_venv)), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()
    keep = [str(worktree.resolve()), str(layout.state_dir(main_root).resolve()), str(shared_venv.resolve())]
    code = _OVERLAY_CODE.format(
        shared=info, main=str(main_root.resolve()), tree=str(worktree.resolve()), keep=keep
    )
    Path(own, "_speedrift_shared_env.pth").write_text(_OVERLAY_PTH.format(code=code))


def fingerprint(path: Path) -> str:
    """Cheap change detector for a shared tree: names, sizes and mtimes two levels deep."""
    digest = hashlib.sha256()
    root = path.resolve()
    entries: list[str] = []
    for level in (root, *[p for p in root.iterdir() if p.is_dir() and not p.is_symlink()]):
        with contextlib.suppress(OSError):
            for child in sorted(level.iterdir()):
                stat = child.lstat()
                entries.append(f"{child.relative_to(root)}|{stat.st_size}|{stat.st_mtime_ns}")
    stat = root.stat()
    entries.append(f".|{stat.st_mtime_ns}")
    digest.update("\n".join(entries).encode())
    return digest.hexdigest()


def share_paths(repo: Path, worktree: Path, names: list[str], injection: Injection) -> None:
    for name in names:
        source = repo / name
        target = worktree / name
        if not source.exists() or target.exists() or target.is_symlink():
            continue
        if not _inside(source, repo) and source.is_symlink():
            injection.skipped.append(f"{name}: symlink points outside the repository")
            continue
        if git.run(["check-ignore", "-q", "--", name], repo, check=False).returncode != 0:
            # keep the injected path out of the attempt's commits (and untracked noise in both)
            git.exclude_locally(repo, f"/{name}")
        if (source / "pyvenv.cfg").is_file():
            make_venv_overlay(source, target, repo, worktree)
            injection.overlays.append(name)
            continue
        target.symlink_to(source.resolve(), target_is_directory=source.is_dir())
        injection.links[name] = fingerprint(source)


def shared_changes(repo: Path, injection: Injection) -> list[str]:
    """Shared (symlinked) paths the attempt modified; each is a reason not to land it."""
    return [name for name, before in injection.links.items() if fingerprint(repo / name) != before]


def inject(repo: Path, worktree: Path, share: list[str]) -> Injection:
    injection = Injection()
    copy_worktree_includes(repo, worktree, injection)
    share_paths(repo, worktree, share, injection)
    return injection


# --- port blocks ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class PortBlock:
    slot: int
    base: int
    count: int

    def env(self) -> dict[str, str]:
        return {
            "SPEEDRIFT_PORT_BASE": str(self.base),
            "SPEEDRIFT_PORT_COUNT": str(self.count),
            "PORT": str(self.base),
        }


def lease_ports(state_dir: Path, owner: str, base: int, count: int, max_slots: int = 256) -> PortBlock:
    """Take the first free slot (O_EXCL file); stale slots of dead owners are reclaimed."""
    folder = state_dir / layout.PORTS_DIR_NAME
    folder.mkdir(parents=True, exist_ok=True)
    for slot in range(max_slots):
        path = folder / f"{slot}.lease"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            holder = path.read_text().split(" ", 1)
            if holder and holder[0].isdigit() and not pid_alive(int(holder[0])):
                path.unlink(missing_ok=True)
                with contextlib.suppress(FileExistsError):
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                    os.write(fd, f"{os.getpid()} {owner}".encode())
                    os.close(fd)
                    return PortBlock(slot, base + slot * count, count)
            continue
        os.write(fd, f"{os.getpid()} {owner}".encode())
        os.close(fd)
        return PortBlock(slot, base + slot * count, count)
    raise Refused(f"no free port slot under {folder}")


def release_ports(state_dir: Path, block: PortBlock) -> None:
    (state_dir / layout.PORTS_DIR_NAME / f"{block.slot}.lease").unlink(missing_ok=True)
