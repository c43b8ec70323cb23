"""Compound review's scan: the commits that reached a repo's target branch in a range, and what is risky.

:func:`scan` reads the commits of ``base..tip`` (or, on a first review, the commits of the last
:data:`FIRST_WINDOW` — at most :data:`FIRST_MAX_COMMITS` of them) with ONE ``git log --numstat``
through the git runner (:mod:`speedrift.repo.git`: an argv list, never a shell, no hooks, no diff
programs). For each commit: sha, parents, author, committer time, subject, files with their lines
added and removed, and two judgements:

- **by** — ``agent`` when it carries speedrift's marker (the ``Speedrift-Task`` trailer the merge
  queue writes on an agent's work, repo/landing.py; speedrift's fallback commit identity; the
  ``Speedrift-Review`` trailer of a review's own report commit) or lies inside an attempt's landed
  range; otherwise ``human``;
- **gated** — it lies inside some attempt's landed range ``landed_onto..landed_commit`` (the
  attempt's ``evidence.json``, read through :mod:`speedrift.records`, or the merge queue's
  landings log, which keeps the ranges of attempts whose run records were pruned). A commit no
  range covers "landed without speedrift's gates".

The flags (:class:`FlagReason`), one per commit and reason, each naming its files: a large diff
(more than ``[compound_review] large_diff_lines`` lines added and removed), a CI configuration
change, a git hook change, a dependency manifest (with or without a lock of its family,
lanes/builtin/_manifests.py ``LOCKS_FOR``), a lockfile changed without its manifest, and an
ungated landing. A human's ungated commit is flagged but asks for no review task (people commit
directly as a matter of course; the flag tells the reader which changes no gate saw); an agent's
ungated commit does.

Invariant: pure but for git and the run records it reads; ``now`` is a parameter. Hostile text
(a subject, a path) is data: never interpreted, escaped where it is shown.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Any

from speedrift import layout, records
from speedrift.gitcmd import GitError
from speedrift.lanes.builtin._manifests import LOCKS_FOR
from speedrift.repo import git, landings
from speedrift.repo.landing import TRAILER
from speedrift.times import format_time, parse_time

REVIEW_TRAILER = "Speedrift-Review"  # on the commit that adds a review's report (compound_pr.py)
FIRST_WINDOW = timedelta(hours=24)  # a first review looks back this far…
FIRST_MAX_COMMITS = 50  # …at no more than this many commits
MAX_COMMITS = 500  # any review: the newest this many (the report says when there were more)
MAX_FLAG_FILES = 20  # files named per flag
MAX_RANGES = 500  # landed ranges checked per review (the newest)
_MARK = "\x1eC"  # starts each commit's header in the log output (never a numstat token: no tabs)
_HEADER = ("%H", "%P", "%an", "%ae", "%cI", "%s", f"%(trailers:key={TRAILER},valueonly,separator=%x2C)")
_FORMAT = "%x1eC%x00" + "%x00".join((*_HEADER, f"%(trailers:key={REVIEW_TRAILER},valueonly)"))
_NUMSTAT = re.compile(r"^\n?(\d+|-)\t(\d+|-)\t(.*)$", re.DOTALL)

CI_PREFIXES = (".github/workflows/", ".github/actions/", ".circleci/", ".buildkite/")
CI_FILES = frozenset({".gitlab-ci.yml", "azure-pipelines.yml"})
CI_NAMES = frozenset({"Jenkinsfile"})  # in any directory
HOOK_PREFIXES = (".githooks/", ".husky/")
HOOK_FILES = frozenset({".pre-commit-config.yaml", "lefthook.yml", "lefthook.yaml", ".lefthook.yml"})
LOCK_FAMILY = {lock: manifest for manifest, locks in LOCKS_FOR.items() for lock in locks}


class By(StrEnum):
    AGENT = "agent"
    HUMAN = "human"


class FlagReason(StrEnum):
    LARGE_DIFF = "large_diff"
    CI_CONFIG = "ci_config"
    HOOKS = "hooks"
    MANIFEST = "manifest"
    LOCKFILE = "lockfile"
    UNGATED = "ungated"


# what a review task asks, per reason ("Review the CI change in abc1234: .github/workflows/ci.yml")
TASK_WORDS: Mapping[FlagReason, str] = {
    FlagReason.LARGE_DIFF: "Review the large change",
    FlagReason.CI_CONFIG: "Review the CI change",
    FlagReason.HOOKS: "Review the git hook change",
    FlagReason.MANIFEST: "Review the dependency change",
    FlagReason.LOCKFILE: "Review the lockfile change",
    FlagReason.UNGATED: "Review the agent's commit that landed without speedrift's gates",
}


@dataclass(frozen=True)
class FileChange:
    path: str
    added: int | None  # None: a binary file
    deleted: int | None

    @property
    def lines(self) -> int:
        return (self.added or 0) + (self.deleted or 0)


@dataclass
class CommitFact:
    sha: str
    parents: list[str]
    author: str
    email: str
    committed_at: datetime | None
    subject: str
    files: list[FileChange]
    task: str | None  # the Speedrift-Task trailer, else the attempt's task whose range holds it
    review: bool = False  # a review's own report commit (Speedrift-Review)
    by: By = By.HUMAN
    gated: bool = False
    attempt: str | None = None  # "task#n" of the attempt whose landed range holds it

    @property
    def short(self) -> str:
        return self.sha[:7]

    @property
    def added(self) -> int:
        return sum(f.added or 0 for f in self.files)

    @property
    def deleted(self) -> int:
        return sum(f.deleted or 0 for f in self.files)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["committed_at"] = format_time(self.committed_at) if self.committed_at else None
        out["by"] = self.by.value
        out["added"], out["deleted"] = self.added, self.deleted
        return out


@dataclass(frozen=True)
class Flag:
    commit: str
    reason: FlagReason
    files: tuple[str, ...]
    detail: str
    by: By
    needs_review: bool  # a review task is asked for

    @property
    def key(self) -> str:
        """What deduplicates its review task across runs: the commit and the reason."""
        return f"{self.commit}:{self.reason.value}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "commit": self.commit,
            "reason": self.reason.value,
            "files": list(self.files),
            "detail": self.detail,
            "by": self.by.value,
            "needs_review": self.needs_review,
        }


@dataclass
class Scan:
    target: str
    tip: str
    base: str | None  # the last reviewed commit the range starts after (None: a first review)
    window: str  # the range in words
    commits: list[CommitFact]  # newest first
    truncated: bool = False  # more commits than were read
    flags: list[Flag] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "tip": self.tip,
            "base": self.base,
            "window": self.window,
            "truncated": self.truncated,
            "commits": [c.as_dict() for c in self.commits],
            "flags": [f.as_dict() for f in self.flags],
        }


def scan(
    repo: Path,
    target: str,
    *,
    now: datetime,
    base: str | None,
    large_diff_lines: int,
    base_said: str = "",
) -> Scan:
    """The commits of ``base..target`` (``base`` None: the first review's window before ``now``),
    judged and flagged. Raises GitError when the target cannot be read."""
    tip = git.rev_parse(repo, f"refs/heads/{target}") or git.rev_parse(repo, target)
    if tip is None:
        raise GitError(f"{repo}: the target branch {target!r} has no commit", hint="check target_branch")
    if base is not None:
        limit = MAX_COMMITS
        spec = [f"{base}..{tip}"]
        window = base_said or f"the commits after {base[:7]}, the last reviewed"
    else:
        limit = FIRST_MAX_COMMITS
        spec = [f"--since={format_time(now - FIRST_WINDOW)}", tip]
        window = base_said or (
            f"first review: the commits of the last {int(FIRST_WINDOW.total_seconds() // 3600)} hours, "
            f"at most {FIRST_MAX_COMMITS}"
        )
    args = ["log", "--no-renames", "--numstat", "-z", f"--format={_FORMAT}", f"-n{limit + 1}", *spec, "--"]
    out = git.run(args, repo).stdout
    commits = parse_log(out)
    truncated = len(commits) > limit
    commits = commits[:limit]
    judge(repo, commits)
    result = Scan(target, tip, base, window, commits, truncated)
    result.flags = flags_of(commits, large_diff_lines)
    return result


def parse_log(out: str) -> list[CommitFact]:
    """The commits of ``git log -z --numstat --format=<_FORMAT>`` output, in its order."""
    commits: list[CommitFact] = []
    tokens = out.split("\0")
    index = 0
    width = len(_HEADER) + 1
    while index < len(tokens):
        if tokens[index].lstrip("\n") != _MARK:
            match = _NUMSTAT.match(tokens[index])
            if match and commits:
                added, deleted, path = match.groups()
                commits[-1].files.append(FileChange(path, _count(added), _count(deleted)))
            index += 1
            continue
        fields = tokens[index + 1 : index + 1 + width]
        index += 1 + width
        if len(fields) < width:
            break
        sha, parents, author, email, when, subject, task, review = fields
        commits.append(
            CommitFact(
                sha=sha,
                parents=parents.split(),
                author=author,
                email=email,
                committed_at=parse_time(when),
                subject=subject,
                files=[],
                task=(task.split(",")[0].strip() or None) if task else None,
                review=bool(review.strip()),
            )
        )
    return commits


def _count(text: str) -> int | None:
    return int(text) if text.isdigit() else None


# --- agent or human, gated or not ------------------------------------------------------------------
@dataclass(frozen=True)
class LandedRange:
    onto: str
    landed: str
    attempt: str  # "task#n"
    task: str


def landed_ranges(repo: Path) -> list[LandedRange]:
    """Every landed attempt's range: from its evidence (``landed_onto``, ``landed_commit``), and
    from the merge queue's landings log for attempts whose run records are gone. Newest last."""
    found: dict[tuple[str, str], LandedRange] = {}
    for landing in landings.read(repo):
        found[(landing.old, landing.new)] = LandedRange(
            landing.old, landing.new, f"{landing.task}#{landing.attempt}", landing.task
        )
    for run_dir in _run_dirs(repo):
        evidence = records.read_evidence(run_dir)
        if evidence is None:
            continue
        onto, landed = evidence.raw.get("landed_onto"), evidence.raw.get("landed_commit")
        if not (isinstance(onto, str) and isinstance(landed, str) and onto and landed):
            continue
        task = evidence.task or run_dir.parent.name
        found[(onto, landed)] = LandedRange(onto, landed, f"{task}#{run_dir.name}", task)
    return list(found.values())[-MAX_RANGES:]


def _run_dirs(repo: Path) -> Iterable[Path]:
    runs = layout.runs_dir(repo)
    try:
        tasks = sorted(p for p in runs.iterdir() if p.is_dir() and p.name != layout.ROLE_RUNS_DIR)
    except OSError:
        return []
    dirs: list[Path] = []
    for folder in tasks:
        try:
            dirs += sorted((p for p in folder.iterdir() if p.is_dir() and p.name.isdigit()), key=_number)
        except OSError:
            continue
    return dirs


def _number(path: Path) -> int:
    return int(path.name)


def judge(repo: Path, commits: list[CommitFact]) -> None:
    """Set each commit's ``by``, ``gated`` and ``attempt`` (in place). Only the ranges whose
    landed tip is one of ``commits`` can hold any of them: each is listed with ``git rev-list``."""
    shas = {c.sha: c for c in commits}
    for landed in landed_ranges(repo):
        if landed.landed not in shas:
            continue
        listed = git.run(["rev-list", f"{landed.onto}..{landed.landed}", "--"], repo, check=False)
        if listed.returncode != 0:
            continue  # a range git no longer knows (a pruned object): it holds none of these
        for sha in listed.stdout.split():
            commit = shas.get(sha)
            if commit is not None and not commit.gated:
                commit.gated, commit.attempt = True, landed.attempt
                commit.task = commit.task or landed.task
    for commit in commits:
        marked = commit.task is not None or commit.review or commit.email == git.FALLBACK_EMAIL
        commit.by = By.AGENT if marked or commit.gated else By.HUMAN


# --- the flags --------------------------------------------------------------------------------------
def is_ci(path: str) -> bool:
    return path.startswith(CI_PREFIXES) or path in CI_FILES or PurePosixPath(path).name in CI_NAMES


def is_hook(path: str) -> bool:
    return path.startswith(HOOK_PREFIXES) or path in HOOK_FILES


def flags_of(commits: list[CommitFact], large_diff_lines: int) -> list[Flag]:
    found: list[Flag] = []
    for commit in commits:
        found += commit_flags(commit, large_diff_lines)
    return found


def commit_flags(commit: CommitFact, large_diff_lines: int) -> list[Flag]:
    paths = [f.path for f in commit.files]
    flags: list[Flag] = []

    def flag(reason: FlagReason, files: list[str], detail: str, needs_review: bool = True) -> None:
        shown = tuple(files[:MAX_FLAG_FILES])
        more = f" (and {len(files) - len(shown)} more files)" if len(files) > len(shown) else ""
        flags.append(Flag(commit.sha, reason, shown, detail + more, commit.by, needs_review))

    lines = commit.added + commit.deleted
    if lines > large_diff_lines:
        biggest = [f.path for f in sorted(commit.files, key=lambda f: -f.lines)]
        flag(
            FlagReason.LARGE_DIFF,
            biggest,
            f"+{commit.added}/-{commit.deleted} lines in {len(paths)} files, over large_diff_lines = "
            f"{large_diff_lines}",
        )
    ci = [p for p in paths if is_ci(p)]
    if ci:
        flag(FlagReason.CI_CONFIG, ci, "changes how CI builds and tests the repository")
    hooks = [p for p in paths if is_hook(p)]
    if hooks:
        flag(FlagReason.HOOKS, hooks, "changes the git hooks that run on people's and agents' commits")
    manifests, lone_locks = _dependencies(paths)
    if manifests:
        flag(
            FlagReason.MANIFEST, [m for m, _ in manifests], "; ".join(f"{m}: {said}" for m, said in manifests)
        )
    if lone_locks:
        flag(FlagReason.LOCKFILE, lone_locks, "a lockfile changed without its manifest")
    if not commit.gated and not commit.review:
        if commit.by is By.AGENT:
            detail = (
                f"by an agent (task {commit.task}), but no attempt's landed range holds it: it reached "
                "the target outside speedrift's merge queue and gates"
                if commit.task
                else "by an agent, but no attempt's landed range holds it"
            )
            flag(FlagReason.UNGATED, [], detail)
        else:
            flag(FlagReason.UNGATED, [], "by a human, committed directly: no speedrift gate ran", False)
    return flags


def _dependencies(paths: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """The manifests changed (each with whether a lock of its family in its directory changed
    too) and the lockfiles changed without any manifest of their family beside them."""
    changed = set(paths)
    manifests: list[tuple[str, str]] = []
    lone_locks: list[str] = []
    for path in paths:
        pure = PurePosixPath(path)
        if pure.name in LOCKS_FOR:
            locks = LOCKS_FOR[pure.name]
            with_lock = [str(pure.parent / lock) for lock in locks if str(pure.parent / lock) in changed]
            said = (
                f"changed with its lockfile {', '.join(with_lock)}"
                if with_lock
                else f"changed without its lockfile ({', '.join(locks)})"
            )
            manifests.append((path, said))
        elif pure.name in LOCK_FAMILY and str(pure.parent / LOCK_FAMILY[pure.name]) not in changed:
            lone_locks.append(path)
    return manifests, lone_locks
