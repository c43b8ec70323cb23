"""Handlers that read git (through :class:`HubGit` only): fetch from upstream, write an upstream
contribution packet, and run the gates on the target branch in a detached scratch worktree.

The packet also stores an upstream proposal's record (fleetops/upstream.py) for a fork with an
upstream; never its branch. None of them touches the user's checkout or any branch: ``fetch``
writes remote-tracking refs only — with the hub's own refspec, never the repo's configured one,
under a guard that makes git refuse anything else (control/authority.py ``HubGit.fetch``) — the
packet and the scan results are files under ``.speedrift/``, and the scan's worktree is a detached one under
``.speedrift/hub-worktrees/``, removed afterwards.
"""

from __future__ import annotations

import contextlib
from typing import Any

import orjson

from speedrift import layout
from speedrift.control.authority import HubGit, hub_refspec
from speedrift.control.ecosystem.load import load_ecosystem
from speedrift.control.handlers import upstream_packet
from speedrift.control.handlers.base import (
    HandlerContext,
    HandlerFailed,
    HandlerResult,
    ensure_dir,
    ensure_excluded,
    fresh_path,
    prune,
    run_bounded,
    tail,
)
from speedrift.errors import SpeedriftError
from speedrift.fleetops import upstream as upstream_proposals
from speedrift.fsutil import write_atomic
from speedrift.register.actions import Action
from speedrift.repo import gitlocks
from speedrift.times import stamp

DEFAULT_SCAN_DEPTH = 20  # a scan looks at the target branch's last N commits (or all, if fewer)
MAX_PACKET_COMMITS = 500
KEEP_FILES = 20  # retention: the newest scan bundles / packets per repo


def _ref_arg(value: str, what: str) -> str:
    """A ref name from the configuration is data: one that looks like an option is never passed to git."""
    if value.startswith("-"):
        raise HandlerFailed(f"the {what} {value!r} is not a ref name")
    return value


def _refs(hub_git: HubGit) -> dict[str, str]:
    """Every ref -> its object (a symbolic ref -> ``-> <target>``: it moves with its target)."""
    out = hub_git.out("for-each-ref", "--format=%(refname) %(objectname) %(symref)")
    found: dict[str, str] = {}
    for line in out.splitlines():
        ref, _, rest = line.partition(" ")
        oid, _, symref = rest.partition(" ")
        found[ref] = f"-> {symref}" if symref else oid
    return found


def outside_remote(before: dict[str, str], after: dict[str, str], remote: str) -> list[str]:
    """The refs outside ``refs/remotes/<remote>/`` that differ between two listings."""
    into = f"refs/remotes/{remote}/"
    return sorted(
        ref
        for ref in set(before) | set(after)
        if not ref.startswith(into) and before.get(ref) != after.get(ref)
    )


def _configured_outside(hub_git: HubGit, remote: str) -> list[str]:
    """The remote's configured fetch refspecs that map anywhere but ``refs/remotes/<remote>/``."""
    done = hub_git.run("config", "--get-all", f"remote.{remote}.fetch", check=False)
    into = f"refs/remotes/{remote}/"
    return [
        spec
        for spec in done.stdout.split()
        if not spec.removeprefix("+").partition(":")[2].startswith(into) and not spec.startswith("^")
    ]


def sync_upstream(action: Action, ctx: HandlerContext) -> HandlerResult:
    """``git fetch`` of the upstream remote's branches into ``refs/remotes/<remote>/`` and nothing
    else (``HubGit.fetch``): never the repo's configured refspec, never merges, rebases or pushes.
    A configured refspec that maps elsewhere is refused by name in the outcome; a ref outside the
    namespace that changed meanwhile (someone else's doing: git refuses the fetch's) is named too."""
    remote = ctx.entry.upstream_remote or "origin"
    hub_git = ctx.git()
    safe = not remote.startswith("-")  # an option-like name is refused by HubGit before anything runs
    before = _refs(hub_git) if safe else {}
    refused = _configured_outside(hub_git, remote) if safe else []
    hub_git.fetch(remote, timeout=max(ctx.timeout_s, 120))
    after = _refs(hub_git)
    into = f"refs/remotes/{remote}/"
    updated = sorted(ref for ref, sha in after.items() if ref.startswith(into) and before.get(ref) != sha)
    detail = f"fetched {remote}: {len(updated)} remote-tracking ref(s) updated"
    evidence: dict[str, Any] = {"remote": remote, "refspec": hub_refspec(remote), "updated": updated[:50]}
    if refused:
        detail += (
            f"; refused the repo's configured refspec {', '.join(refused)} (it maps outside {into}): "
            f"fetched with {hub_refspec(remote)} instead"
        )
        evidence["refused_refspecs"] = refused
    elsewhere = outside_remote(before, after, remote)
    if elsewhere:
        evidence["changed_meanwhile"] = elsewhere[:50]  # not by the fetch: its guard allows none
    return HandlerResult("succeeded", detail, evidence)


# ---------------------------------------------------------------- upstream packet


def _upstream_of(hub_git: HubGit, ctx: HandlerContext, branch: str) -> str:
    if ctx.entry.upstream_remote:
        return f"{ctx.entry.upstream_remote}/{ctx.entry.upstream_branch or branch}"
    done = hub_git.run(
        "rev-parse", "--abbrev-ref", "--symbolic-full-name", f"{branch}@{{upstream}}", check=False
    )
    if done.returncode != 0 or not done.stdout.strip():
        raise HandlerFailed(
            f"{branch} has no upstream to compare with; fix: set upstream_remote (and upstream_branch) "
            f"for {ctx.entry.name} in ecosystem.toml, or give the branch an upstream"
        )
    return done.stdout.strip()


def prepare_upstream_packet(action: Action, ctx: HandlerContext) -> HandlerResult:
    """Write ``.speedrift/upstream/<timestamp>.md``; never pushes, never opens a pull request."""
    hub_git = ctx.git()
    done = hub_git.run("symbolic-ref", "--quiet", "--short", "HEAD", check=False)
    branch = done.stdout.strip() or hub_git.target()
    upstream = _upstream_of(hub_git, ctx, branch)
    head = hub_git.out("rev-parse", "--verify", f"{branch}^{{commit}}")
    hub_git.out("rev-parse", "--verify", f"{upstream}^{{commit}}")
    behind, ahead = (
        int(n) for n in hub_git.out("rev-list", "--left-right", "--count", f"{upstream}...{branch}").split()
    )
    if ahead == 0:
        return HandlerResult(
            "skipped", f"{branch} has no commits ahead of {upstream}", {"ahead": 0, "behind": behind}
        )
    log = hub_git.out(
        "log",
        "--reverse",
        f"--max-count={MAX_PACKET_COMMITS}",
        "--format=%H%x1f%an%x1f%s%x1e",
        f"{upstream}..{branch}",
    )
    commits = [
        upstream_packet.Commit(*fields)
        for record in log.split("\x1e")
        if len(fields := record.strip().split("\x1f")) == 3
    ]
    files = _changed_files(hub_git, f"{upstream}...{branch}")
    now = ctx.now()
    category, text = upstream_packet.render(
        repo=ctx.entry.name,
        branch=branch,
        head=head,
        upstream=upstream,
        ahead=ahead,
        behind=behind,
        commits=commits,
        files=files,
        generated_at=now,
        cycle_id=ctx.cycle_id,
    )
    ensure_excluded(hub_git)
    folder = ensure_dir(layout.upstream_dir(ctx.repo))
    path = fresh_path(folder, stamp(now), ".md")
    write_atomic(path, text.encode())
    prune(folder, "*.md", KEEP_FILES)
    evidence: dict[str, Any] = {
        "path": str(path), "category": category, "ahead": ahead, "behind": behind, "branch": branch,
    }  # fmt: skip
    detail = f"wrote a {category} packet for {branch} ({ahead} commit(s) ahead of {upstream}) to {path}"
    proposal = _record_proposal(hub_git, ctx, branch)
    if proposal is not None:
        evidence["proposal"] = proposal
        detail += f"; upstream proposal {proposal['id']} ({proposal['state']})"
    return HandlerResult("succeeded", detail, evidence)


def _record_proposal(hub_git: HubGit, ctx: HandlerContext, branch: str) -> dict[str, Any] | None:
    """For a fork with an upstream (``upstream_remote`` in ecosystem.toml, or a remote named
    ``upstream``), store the packet's commits as an upstream proposal (fleetops/upstream.py):
    the record and the draft's body only — no branch (the hub never makes one; a person's
    ``speedrift upstream prepare``/``propose`` does), nothing pushed. The commits are those ahead
    of the upstream's base (which may differ from what the packet compared with, e.g. the fork's
    origin); ``upstream = "OWNER/REPO"`` under ``[repos.NAME]`` names the parent project.
    None: no upstream, or nothing to propose."""
    declared = None
    if ctx.ecosystem_path is not None:
        with contextlib.suppress(SpeedriftError):
            extras = load_ecosystem(ctx.ecosystem_path).repo_extras.get(ctx.entry.name, {})
            declared = extras.get("upstream") if isinstance(extras.get("upstream"), str) else None

    def read(argv: list[str]) -> str:
        return hub_git.out(*argv)

    target = upstream_proposals.find_upstream(
        ctx.repo,
        remote=ctx.entry.upstream_remote,
        branch=ctx.entry.upstream_branch,
        declared=declared,
        read=read,
    )
    if target is None:
        return None
    try:
        fresh = upstream_proposals.gather(ctx.repo, ctx.entry.name, target, ctx.now(), branch, read=read)
    except SpeedriftError:
        return None
    stored = upstream_proposals.record_draft(ctx.repo, fresh)
    return {"id": stored.id, "state": stored.state.value, "branch": stored.branch, "title": stored.title}


def _changed_files(hub_git: HubGit, span: str) -> list[upstream_packet.FileChange]:
    out = hub_git.run("diff", "--name-status", "-z", "--no-renames", span).stdout
    tokens = [t for t in out.split("\0") if t]
    return [upstream_packet.FileChange(tokens[i], tokens[i + 1]) for i in range(0, len(tokens) - 1, 2)]


# ---------------------------------------------------------------- gate scan


def run_gate_scan(action: Action, ctx: HandlerContext) -> HandlerResult:
    """``speedrift gates run --json`` on a detached scratch worktree of the target branch's tip."""
    hub_git = ctx.git()
    target = _ref_arg(hub_git.target(), "target branch")
    tip = hub_git.out("rev-parse", "--verify", f"{target}^{{commit}}")
    base = _scan_base(hub_git, tip)
    ensure_excluded(hub_git)
    now = ctx.now()
    scratch = fresh_path(ensure_dir(layout.hub_worktrees_dir(ctx.repo)), f"scan-{stamp(now)}", "")
    locks = gitlocks.new_worktree_locks(ctx.repo, scratch.name)
    hub_git.step("add-scratch-worktree", ["worktree", "add", "--detach", "--quiet", str(scratch), tip], locks)
    try:
        argv = [*ctx.speedrift_argv, "gates", "run", "--worktree", str(scratch), "--base", base, "--json"]
        done = run_bounded(argv, cwd=ctx.repo, env=ctx.process_env(), timeout=ctx.scan_timeout_s)
    finally:
        with contextlib.suppress(SpeedriftError):
            removing = ["worktree", "remove", "--force", str(scratch)]
            hub_git.step("remove-scratch-worktree", removing, gitlocks.checkout_locks(scratch), check=False)
    if done.returncode not in (0, 1):
        raise HandlerFailed(
            f"`speedrift gates run` exited {done.returncode}: {tail(done.stderr or done.stdout, 600)}",
            exit_code=done.returncode,
        )
    try:
        bundle = orjson.loads(done.stdout)
    except orjson.JSONDecodeError:
        bundle = None
    if not isinstance(bundle, dict):
        raise HandlerFailed(f"`speedrift gates run --json` printed no bundle: {tail(done.stdout, 300)!r}")
    blocking = _blocking(bundle)
    # where its findings are: the target branch at this commit (control/observe/runs.py reads it)
    bundle["scan"] = {
        "where": "target_branch",
        "target": target,
        "tip": tip,
        "commit": tip,
        "base": base,
        "cycle": ctx.cycle_id,
        "action": action.id,
    }
    folder = ensure_dir(layout.scans_dir(ctx.repo))
    path = fresh_path(folder, stamp(now), ".json")
    write_atomic(path, orjson.dumps(bundle, option=orjson.OPT_INDENT_2))
    prune(folder, "*.json", KEEP_FILES)
    where = f"{target}@{tip[:12]} (since {base[:12]})"
    detail = (
        f"gates found blocking results on {where}: {', '.join(blocking)}"
        if blocking
        else f"gates passed on {where}"
    )
    return HandlerResult(
        "succeeded",
        detail,
        {
            "bundle": str(path),
            "passed": not blocking,
            "blocking": blocking,
            "tip": tip,
            "where": {"where": "target_branch", "branch": target, "commit": tip},
        },
    )


def _scan_base(hub_git: HubGit, tip: str) -> str:
    depth = DEFAULT_SCAN_DEPTH
    done = hub_git.run("rev-parse", "--verify", "--quiet", f"{tip}~{depth}^{{commit}}", check=False)
    if done.returncode == 0 and done.stdout.strip():
        return done.stdout.strip()
    roots = hub_git.out("rev-list", "--max-parents=0", tip).split()
    return roots[-1] if roots else tip  # fewer than N commits: the whole history since the root


def _blocking(bundle: dict[str, Any]) -> list[str]:
    listed = bundle.get("blocking")
    if isinstance(listed, list):
        return [str(name) for name in listed]
    results = bundle.get("results")
    blocked: list[str] = []
    for result in results if isinstance(results, list) else []:
        if isinstance(result, dict):
            required = bool(result.get("required"))
            status = result.get("status")
            if status == "fail" or (required and status in ("warn", "skipped")):
                blocked.append(str(result.get("gate")))
    return blocked
