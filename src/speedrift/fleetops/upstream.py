"""Upstream proposals: a fork's commits that its parent lacks, packaged for the parent's maintainers.

A proposal is the commits the upstream packet selects (``<upstream>/<base>..<branch>``, merges
left out), stored as ``.speedrift/upstream/<id>/proposal.json`` and ``body.md`` (the draft's
title and body with the evidence: gates, the checks run, diff stats, the motivating tasks). Its
id is derived from the upstream base and the commits, so the same commits make the same proposal.

With ``make_branch`` (a person asked: ``speedrift upstream prepare`` / ``propose``), the branch
``speedrift/upstream/<id>`` is made: the commits are cherry-picked onto the upstream's base in a
throwaway detached checkout (``layout.upstream_checkout_path``, removed after), then ``git branch``
(never ``-f``) names the result. The user's checkout, index and branches are never touched;
nothing is pushed here (fleetops/upstream_propose.py does that, through repo/forge.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from speedrift import fsutil, layout
from speedrift.errors import NotFound, Refused, SpeedriftError
from speedrift.fleetops.upstream_category import categorize
from speedrift.repo import forge, git, worktrees
from speedrift.repo.landing import TRAILER
from speedrift.textclip import clip
from speedrift.times import iso_utc

BRANCH_PREFIX = "speedrift/upstream/"
MAX_COMMITS = 200
ID_RE = re.compile(r"^up-[0-9a-f]{10}$")


class ProposalState(StrEnum):
    DRAFTED = "drafted"  # record and body only: no branch yet
    BRANCH_READY = "branch_ready"  # the proposal branch exists locally, unpushed
    CONFLICT = "conflict"  # the commits do not apply on the upstream's base
    PROPOSED = "proposed"  # pushed to the fork and opened as a draft


@dataclass(frozen=True)
class Upstream:
    """Where proposals go: the remote-tracking ref holding the parent's base, and its project."""

    remote: str
    base: str  # the parent's branch the draft targets
    slug: str | None  # OWNER/REPO of the parent (None: not known from a URL or ecosystem.toml)

    @property
    def ref(self) -> str:
        return f"{self.remote}/{self.base}"


@dataclass
class Proposal:
    id: str
    repo: str
    created_at: str
    source_branch: str
    head: str
    upstream_ref: str
    upstream_slug: str | None
    base: str
    base_commit: str
    title: str
    category: str
    commits: list[dict[str, Any]]
    files: list[dict[str, str]]
    stats: dict[str, int]
    evidence: dict[str, Any]
    branch: str
    state: ProposalState = ProposalState.DRAFTED
    said: str = ""
    branch_commit: str | None = None
    pushed_to: str | None = None
    url: str | None = None
    would_run: list[str] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["state"] = self.state.value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Proposal:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["state"] = ProposalState(known.get("state", "drafted"))
        return cls(**known)


Reader = Callable[[list[str]], str]  # ``git <argv>``'s stdout; raises SpeedriftError when git fails


def _commit_of(read: Reader, ref: str) -> str | None:
    try:
        return read(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"]).strip() or None
    except SpeedriftError:
        return None


def _reading(repo: Path, read: Reader | None) -> Reader:
    return read if read is not None else (lambda argv: git.git(argv, repo))


def _quiet(read: Reader, argv: list[str]) -> str:
    try:
        return read(argv).strip()
    except SpeedriftError:
        return ""


def find_upstream(
    repo: Path,
    *,
    remote: str | None = None,
    branch: str | None = None,
    declared: str | None = None,
    read: Reader | None = None,
) -> Upstream | None:
    """The repo's upstream: ``remote`` (ecosystem ``upstream_remote``), else a remote named
    ``upstream``; its base ``branch`` (``upstream_branch``), else the remote's HEAD, else ``main``
    or ``master``; the project from ``declared`` (ecosystem ``upstream``) or the remote's URL.
    None: no upstream. ``read`` runs the read-only git commands (the hub passes its HubGit's)."""
    read = _reading(repo, read)
    remotes = _quiet(read, ["remote"]).split()
    name = remote or ("upstream" if "upstream" in remotes else None)
    if name is None or name not in remotes:
        return None
    base = branch
    if base is None:
        head = _quiet(read, ["symbolic-ref", "--quiet", f"refs/remotes/{name}/HEAD"])
        base = head.removeprefix(f"refs/remotes/{name}/") if head else None
    if base is None:
        for candidate in ("main", "master"):
            if _commit_of(read, f"refs/remotes/{name}/{candidate}") is not None:
                base = candidate
                break
    if base is None:
        return None
    url = _quiet(read, ["remote", "get-url", name])
    return Upstream(name, base, forge.slug(declared) or forge.slug(url))


def proposal_id(base_commit: str, shas: list[str]) -> str:
    digest = hashlib.sha256("\n".join([base_commit, *shas]).encode()).hexdigest()
    return f"up-{digest[:10]}"


def path_of(repo: Path, pid: str) -> Path:
    return layout.upstream_proposal_dir(repo, pid) / layout.UPSTREAM_PROPOSAL_FILE


def body_path(repo: Path, pid: str) -> Path:
    return layout.upstream_proposal_dir(repo, pid) / layout.UPSTREAM_BODY_FILE


def save(repo: Path, proposal: Proposal) -> None:
    folder = layout.upstream_proposal_dir(repo, proposal.id)
    folder.mkdir(parents=True, exist_ok=True)
    git.exclude_locally(repo, layout.EXCLUDE_PATTERN)
    fsutil.write_atomic(body_path(repo, proposal.id), render_body(proposal).encode())
    fsutil.write_atomic(path_of(repo, proposal.id), json.dumps(proposal.as_dict(), indent=2).encode())


def load(repo: Path, pid: str) -> Proposal:
    if not ID_RE.match(pid):
        raise NotFound(f"{pid!r} is not an upstream proposal id", hint="`speedrift upstream list` shows them")
    path = path_of(repo, pid)
    try:
        return Proposal.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise NotFound(
            f"no upstream proposal {pid} in {repo}", hint="`speedrift upstream list` shows them"
        ) from None
    except (ValueError, TypeError) as error:
        raise SpeedriftError(f"{path} is not a proposal record ({error})", hint="remove it") from None


def listing(repo: Path) -> list[Proposal]:
    """Every stored proposal, newest first."""
    folder = layout.upstream_dir(repo)
    found = []
    for path in sorted(folder.glob(f"up-*/{layout.UPSTREAM_PROPOSAL_FILE}")) if folder.is_dir() else []:
        with contextlib.suppress(SpeedriftError):
            found.append(load(repo, path.parent.name))
    return sorted(found, key=lambda p: p.created_at, reverse=True)


# ---------------------------------------------------------------- gathering (read-only git)


def _source_branch(repo: Path) -> str:
    current = git.current_branch(repo)
    target = current or git.default_branch(repo)
    if target is None:
        raise Refused(f"{repo} has no branch to propose from", hint="check out the branch with your commits")
    return target


def gather(
    repo: Path,
    name: str,
    upstream: Upstream,
    now: datetime,
    branch: str | None = None,
    read: Reader | None = None,
) -> Proposal:
    """The proposal of ``<upstream>..<branch>`` (not saved). Refused when there is nothing ahead.
    ``read`` runs the read-only git commands (the hub passes its HubGit's)."""
    read = _reading(repo, read)
    source = branch or _source_branch(repo)
    head = _commit_of(read, f"refs/heads/{source}")
    base_commit = _commit_of(read, f"refs/remotes/{upstream.ref}")
    if head is None or base_commit is None:
        raise Refused(
            f"{source} or {upstream.ref} is not a commit in {repo}",
            hint=f"fetch the upstream first (`git fetch {upstream.remote}`)",
        )
    span = f"{base_commit}..{head}"
    fmt = f"--format=%H%x1f%an%x1f%s%x1f%(trailers:key={TRAILER},valueonly,separator=%x2C)%x1e"
    log = read(["log", "--reverse", "--no-merges", f"--max-count={MAX_COMMITS}", fmt, span])
    commits: list[dict[str, Any]] = []
    for record in log.split("\x1e"):
        fields = record.strip("\n").split("\x1f")
        if len(fields) == 4:
            tasks = [t.strip() for t in fields[3].split(",") if t.strip()]
            commits.append({"sha": fields[0], "author": fields[1], "subject": fields[2], "tasks": tasks})
    if not commits:
        raise Refused(f"{source} has no commits ahead of {upstream.ref}: nothing to propose")
    names = read(["diff", "--name-status", "--no-renames", f"{base_commit}...{head}"])
    files = [
        {"status": s, "path": p}
        for line in names.splitlines()
        if "\t" in line
        for s, p in [line.split("\t", 1)]
    ]
    numstat = read(["diff", "--numstat", f"{base_commit}...{head}"])
    added = removed = 0
    for line in numstat.splitlines():
        a, _, rest = line.partition("\t")
        d = rest.partition("\t")[0]
        added += int(a) if a.isdigit() else 0
        removed += int(d) if d.isdigit() else 0
    category, why = categorize([c["subject"] for c in commits], [f["path"] for f in files])
    title = commits[-1]["subject"] if len(commits) == 1 else f"{category}: {len(commits)} commits from {name}"
    pid = proposal_id(base_commit, [c["sha"] for c in commits])
    return Proposal(
        id=pid,
        repo=name,
        created_at=iso_utc(now),
        source_branch=source,
        head=head,
        upstream_ref=upstream.ref,
        upstream_slug=upstream.slug,
        base=upstream.base,
        base_commit=base_commit,
        title=title,
        category=category,
        commits=commits,
        files=files,
        stats={"commits": len(commits), "files": len(files), "insertions": added, "deletions": removed},
        evidence={"category_why": why, **_evidence(repo, commits)},
        branch=BRANCH_PREFIX + pid,
    )


def _evidence(repo: Path, commits: list[dict[str, Any]]) -> dict[str, Any]:
    """The motivating tasks (``Speedrift-Task`` trailers) and the latest gate scan of the target
    branch (control/handlers/git.py ``run_gate_scan``): which gates passed, which checks ran."""
    tasks = sorted({t for c in commits for t in c["tasks"]})
    out: dict[str, Any] = {"tasks": tasks, "gates": None}
    scans = sorted(layout.scans_dir(repo).glob("*.json")) if layout.scans_dir(repo).is_dir() else []
    for path in reversed(scans):
        try:
            bundle = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(bundle, dict):
            continue
        results = [r for r in bundle.get("results") or [] if isinstance(r, dict)]
        scan_value = bundle.get("scan")
        scan: dict[str, Any] = scan_value if isinstance(scan_value, dict) else {}
        out["gates"] = {
            "bundle": path.name,
            "commit": scan.get("commit"),
            "passed": [str(r.get("gate")) for r in results if r.get("status") == "pass"],
            "failed": [str(r.get("gate")) for r in results if r.get("status") == "fail"],
            "ran": [
                {"gate": str(r.get("gate")), "status": str(r.get("status")), "command": r.get("command")}
                for r in results
            ][:30],
        }
        break
    return out


def render_body(p: Proposal) -> str:
    """The draft's body: what it changes and the evidence a maintainer can check."""
    stats = p.stats
    lines = [
        f"{p.title}",
        "",
        f"This proposes {stats['commits']} commit(s) from the fork `{p.repo}` (branch `{p.source_branch}` "
        f"at `{p.head[:12]}`) onto `{p.base}` at `{p.base_commit[:12]}`. Category: **{p.category}** "
        f"({p.evidence.get('category_why', '')}).",
        "",
        "## Evidence",
        "",
        f"- Diff: {stats['files']} file(s), +{stats['insertions']} −{stats['deletions']}",
    ]
    gates = p.evidence.get("gates")
    if gates:
        verdict = "passed" if not gates["failed"] else f"failed: {', '.join(gates['failed'])}"
        lines.append(
            f"- Gates on the fork's target branch (`{str(gates.get('commit') or '')[:12]}`): {verdict}"
            + (f"; passed: {', '.join(gates['passed'])}" if gates["passed"] else "")
        )
        for ran in gates["ran"]:
            command = f" — `{ran['command']}`" if ran.get("command") else ""
            lines.append(f"  - {ran['gate']}: {ran['status']}{command}")
    else:
        lines.append("- Gates: no gate scan recorded for this repo yet")
    tasks = p.evidence.get("tasks") or []
    lines.append(f"- Motivating tasks: {', '.join(tasks)}" if tasks else "- Motivating tasks: none recorded")
    lines += ["", f"## Commits ({len(p.commits)})", ""]
    lines += [f"- `{c['sha'][:12]}` {c['subject']} — {c['author']}" for c in p.commits]
    lines += ["", f"## Changed files ({len(p.files)})", ""]
    lines += [f"- {f['status']} `{f['path']}`" for f in p.files[:200]]
    if len(p.files) > 200:
        lines.append(f"- … and {len(p.files) - 200} more")
    lines += ["", "---", "Prepared by speedrift as a draft; a person approved opening it."]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- the branch (throwaway checkout)


def record_draft(repo: Path, fresh: Proposal) -> Proposal:
    """Store a freshly gathered proposal (no branch) unless one with its id is stored already."""
    try:
        return load(repo, fresh.id)
    except NotFound:
        save(repo, fresh)
        return fresh


def prepare(
    repo: Path, name: str, upstream: Upstream, now: datetime, *, make_branch: bool, branch: str | None = None
) -> Proposal:
    """Gather the proposal; reuse the stored one with the same id; with ``make_branch`` make its
    branch when missing. Saved either way."""
    fresh = gather(repo, name, upstream, now, branch)
    try:
        proposal = load(repo, fresh.id)
    except NotFound:
        proposal = fresh
    if make_branch and proposal.state is ProposalState.DRAFTED:
        make_proposal_branch(repo, proposal)
    save(repo, proposal)
    return proposal


def make_proposal_branch(repo: Path, p: Proposal) -> None:
    """Cherry-pick the commits onto the base in a throwaway checkout and name the result
    ``p.branch`` (never replacing a branch). Sets the state and what was said."""
    if git.rev_parse(repo, f"refs/heads/{p.branch}") is not None:
        p.state, p.said = ProposalState.CONFLICT, f"a branch {p.branch} already exists; it is never replaced"
        return
    checkout = layout.upstream_checkout_path(repo, p.id)
    if checkout.exists():
        worktrees.remove_checkout(repo, checkout)
    worktrees.add_checkout(repo, checkout, p.base_commit)
    env = git.identity_env(repo)
    try:
        for commit in p.commits:
            picked = git.run(
                ["-c", "core.hooksPath=/dev/null", "cherry-pick", "--allow-empty", commit["sha"]],
                checkout,
                check=False,
                env=env,
            )
            if picked.returncode != 0:
                git.run(["cherry-pick", "--abort"], checkout, check=False)
                said = clip((picked.stderr or picked.stdout).strip(), 300)
                p.state = ProposalState.CONFLICT
                p.said = (
                    f"{commit['sha'][:12]} ({commit['subject']}) does not apply on {p.upstream_ref}: {said}"
                )
                return
        tip = git.rev_parse(checkout, "HEAD")
        if tip is None:
            raise SpeedriftError(f"no commit in {checkout}")
        made = git.run(["branch", p.branch, tip], repo, check=False)
        if made.returncode != 0:
            p.state, p.said = (
                ProposalState.CONFLICT,
                f"git branch {p.branch}: {clip(made.stderr.strip(), 300)}",
            )
            return
        p.branch_commit = tip
        p.state = ProposalState.BRANCH_READY
        p.said = f"{p.branch} holds the {len(p.commits)} commit(s) on {p.upstream_ref}; not pushed"
    finally:
        worktrees.remove_checkout(repo, checkout)
