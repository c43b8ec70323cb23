"""How a Dask worker obtains an attempt's repository: from the repo's shared remote, or from a git
bundle the hub ships with the job (:class:`~.spec.RepoSource`).

Invariant: a worker is sent to a remote only when its URL is not a path of this machine and one of
its remote-tracking refs here already holds the commit the job starts from; otherwise the job
carries the history itself, as a bundle of the attempt's branch: only what follows the newest
commit every worker that may take the job is known to hold (fleet/remote/held.py; a worker that
lacks it after all says so, and the hub sends the whole history), else all of it. Nothing here
writes a ref.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from speedrift import gitcmd
from speedrift.errors import UsageError
from speedrift.fleet.remote.config import RepoSourceMode
from speedrift.fleet.remote.spec import RepoSource, SourceKind
from speedrift.repo import git


def is_local_url(url: str) -> bool:
    """A URL only this machine can read (a path, ``file://``): never a worker's source."""
    text = url.strip()
    if not text or text.startswith(("/", ".", "~", "file:")):
        return True
    if "://" in text:
        return False
    head = text.split(":", 1)[0]
    return ":" not in text or "/" in head  # scp-like host:path is remote; C:/ or a/b:c are not


def repo_source(
    repo: Path,
    worktree: Path,
    branch: str,
    start: str,
    mode: RepoSourceMode,
    held: Callable[[], Sequence[str]] | None = None,
) -> RepoSource:
    """How the worker obtains the repository at ``start``: from ``origin`` when its URL is not a
    local one and a remote-tracking ref of it already contains ``start`` (``auto``, ``remote``);
    else a ``git bundle`` of ``branch`` (which is at ``start``), shipped with the job. ``held``:
    asked only for a bundle — for each worker that may take the job, a commit it holds (empty
    when one of them is not known): the bundle then starts after their common ancestor."""
    if mode is not RepoSourceMode.BUNDLE:
        found = _remote_holding(repo, start)
        if found is not None:
            url, ref = found
            return RepoSource(SourceKind.REMOTE, url=url, ref=ref)
        if mode is RepoSourceMode.REMOTE:
            raise UsageError(
                f'[executor] repo_source = "remote", but the origin remote of {repo} is local or holds '
                f"no ref containing {start[:12]}",
                hint='push the target branch to a shared remote, or set repo_source = "auto"',
            )
    ref = f"refs/heads/{branch}"
    after = common_ancestor(worktree, start, held()) if held is not None else None
    if after == start:  # every worker holds the base itself: nothing to ship
        return RepoSource(SourceKind.BUNDLE, bundle=b"", ref=ref, prerequisite=start)
    thin = [f"^{after}"] if after else []
    done = gitcmd.run_bytes(["bundle", "create", "--quiet", "-", ref, *thin], worktree)
    if done.returncode != 0 or not done.stdout:
        said = done.stderr.decode(errors="replace").strip()[-500:]
        raise gitcmd.GitError(f"git bundle create failed for {branch} in {repo}: {said}")
    return RepoSource(SourceKind.BUNDLE, bundle=done.stdout, ref=ref, prerequisite=after)


def common_ancestor(worktree: Path, start: str, held: Sequence[str]) -> str | None:
    """The newest commit that is an ancestor of ``start`` and of every commit in ``held`` (so each
    worker holding one of those holds it too); None when ``held`` is empty, names a commit this
    repository does not have, or shares no history with ``start``."""
    if not held:
        return None
    found = git.run(["merge-base", "--octopus", start, *dict.fromkeys(held)], worktree, check=False)
    commit = found.stdout.strip()
    return commit if found.returncode == 0 and commit else None


def _remote_holding(repo: Path, commit: str) -> tuple[str, str] | None:
    url = git.git(["config", "--get", "remote.origin.url"], repo, check=False)
    if not url or is_local_url(url):
        return None
    listed = git.git(["for-each-ref", "--format=%(refname)", "refs/remotes/origin/"], repo, check=False)
    for tracking in listed.splitlines():
        if tracking.endswith("/HEAD"):
            continue
        held = git.run(["merge-base", "--is-ancestor", commit, tracking], repo, check=False)
        if held.returncode == 0:
            return url, "refs/heads/" + tracking.removeprefix("refs/remotes/origin/")
    return None
