"""Crash-safe file primitives (POSIX): atomic replace, exclusive create, fsynced append, flock.

Every file speedrift owns is written through here, so a crash or a concurrent writer leaves the
old content or the new one, never half of either: data goes to a temp file in the same directory,
is fsynced, renamed over the target, and the directory is fsynced so the rename itself survives a
power loss. Temp names are unique per process and thread (``.<name>.<pid>.<thread id>.tmp``), so
threads and processes writing the same file never share one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

DEFAULT_MODE = 0o644


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """fsync a directory, making renames, links and unlinks in it durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is written (one call may write only part of the buffer)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def temp_path(path: Path) -> Path:
    """The temp file a write of ``path`` uses: same directory, hidden, unique per process and thread."""
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")


def _existing_mode(path: Path) -> int | None:
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None  # no file (or none we may stat): the new file gets the caller's mode


def _open_fresh(tmp: Path, mode: int) -> BinaryIO:
    # A leftover from a crashed write with the same pid and thread id must not lend us its mode
    # (O_TRUNC would keep it), so the temp file is always created anew.
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    return open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), "wb")


@contextlib.contextmanager
def atomic_writer(
    path: Path,
    *,
    mode: int | None = None,
    keep_mode: bool = True,
    tmp: Path | None = None,
    durable: bool = True,
) -> Iterator[BinaryIO]:
    """A binary handle whose content replaces ``path`` atomically when the block ends without error.

    On any failure (in the block or while committing) the temp file is removed and ``path`` is
    untouched. ``keep_mode``: an existing file's permission bits carry over exactly; otherwise, and
    for a new file, the file gets ``mode`` (default 0o644, less the umask). ``tmp`` names the temp
    file for callers whose readers rely on its name (it must be in ``path``'s directory and not
    shared with a concurrent writer). ``durable=False`` skips the fsyncs: still atomic for every
    reader, but not meant to survive a power loss (volatile state whose meaning ends at a reboot,
    such as the live-attempt entries of :mod:`speedrift.statehome`)."""
    tmp = temp_path(path) if tmp is None else tmp
    kept = _existing_mode(path) if keep_mode else None
    try:
        with _open_fresh(tmp, DEFAULT_MODE if mode is None else mode) as handle:
            if kept is not None:
                os.fchmod(handle.fileno(), kept)  # exact bits: the umask must not narrow them
            yield handle
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(path.parent)


def write_atomic(
    path: Path,
    data: bytes,
    *,
    mode: int | None = None,
    keep_mode: bool = True,
    tmp: Path | None = None,
    durable: bool = True,
) -> None:
    """Replace ``path`` with ``data`` atomically and (unless ``durable=False``) durably (see
    :func:`atomic_writer`)."""
    with atomic_writer(path, mode=mode, keep_mode=keep_mode, tmp=tmp, durable=durable) as handle:
        handle.write(data)


def create_new(path: Path, data: bytes, *, mode: int = DEFAULT_MODE) -> bool:
    """Create ``path`` holding ``data``, complete or not at all; False (nothing written) if it exists.

    Of two concurrent creators exactly one wins; the other sees False and can read the winner's file.
    """
    tmp = temp_path(path)
    try:
        with _open_fresh(tmp, mode) as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(tmp, path)  # unlike rename, link never replaces an existing file
    except FileExistsError:
        return False
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    fsync_dir(path.parent)
    return True


def append_synced(path: Path, data: bytes, *, mode: int = DEFAULT_MODE) -> None:
    """Append ``data`` to ``path`` (created if missing) and fsync before returning."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, mode)
    try:
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def try_flock(lock_path: Path) -> int | None:
    """An exclusive ``flock`` on ``lock_path`` (created, with its directory, if missing) if it is
    free right now: the descriptor holding it (give it back with :func:`release_flock`); None when
    another holder has it. Like every flock it is dropped if the process dies."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, DEFAULT_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def release_flock(fd: int) -> None:
    """Give back a lock :func:`try_flock` took."""
    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextlib.contextmanager
def flocked(lock_path: Path, *, shared: bool = False, create_dirs: bool = True) -> Iterator[None]:
    """Hold a ``flock`` on ``lock_path`` (created if missing) for the block: exclusive, or ``shared``.

    The kernel drops the lock if the process dies, so a crashed holder never blocks anyone.
    ``create_dirs=False``: a missing directory raises FileNotFoundError instead of being created
    (for callers that must never conjure a directory, such as a graph dir)."""
    if create_dirs:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, DEFAULT_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
