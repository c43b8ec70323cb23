"""`speedrift gates run|list`: the quality gates by hand, on any checkout."""

from __future__ import annotations

import os
from argparse import Namespace
from pathlib import Path
from typing import Any

from speedrift import layout
from speedrift.cli.output import emit_json, printable, say, table
from speedrift.errors import NotFound, UsageError
from speedrift.graph.store import GraphStore
from speedrift.repo import git

MAX_FINDINGS_SHOWN = 60


def _checkout(args: Namespace) -> tuple[Path, Path]:
    """(main repository, checkout to check): a worktree's main repository holds caches and config."""
    start = Path(args.worktree).expanduser() if getattr(args, "worktree", None) else Path.cwd()
    if not start.is_dir():
        raise NotFound(f"{start} is not a directory", hint="pass --worktree PATH of a git checkout")
    worktree = git.toplevel(start)
    if worktree is None:
        raise NotFound(f"{start} is not inside a git repository", hint="pass --worktree PATH of a checkout")
    common = Path(git.git(["rev-parse", "--git-common-dir"], worktree))
    common = common if common.is_absolute() else (worktree / common)
    repo = common.resolve().parent if common.name == ".git" else worktree
    return repo, worktree


def _store(args: Namespace, repo: Path) -> GraphStore | None:
    if getattr(args, "dir", None) or os.environ.get("WG_DIR"):
        return GraphStore.locate(getattr(args, "dir", None))
    return GraphStore.of_repo(repo)


def _base(worktree: Path, repo: Path, explicit: str | None, target: str | None) -> str:
    if explicit:
        commit = git.rev_parse(worktree, explicit)
        if commit is None:
            raise UsageError(f"--base {explicit!r} is not a commit in {worktree}")
        return commit
    head = git.rev_parse(worktree, "HEAD")
    if head is None:
        raise NotFound(f"{worktree} has no commit yet", hint="commit something first, or pass --base")
    branch = target_branch(repo, target)
    if branch is None:
        return head
    merge_base = git.git(["merge-base", "HEAD", branch], worktree, check=False)
    return merge_base or head


def target_branch(repo: Path, configured: str | None) -> str | None:
    """The configured target, else origin's HEAD, else main or master — not merely whatever
    branch happens to be checked out (that would compare a feature branch with itself)."""
    if configured:
        return configured
    ref = ["symbolic-ref", "--quiet", "--short", "refs/remotes/origin/HEAD"]
    remote_head = git.git(ref, repo, check=False)
    if remote_head.startswith("origin/"):
        return remote_head.removeprefix("origin/")
    for name in ("main", "master"):
        if git.rev_parse(repo, name):
            return name
    return git.default_branch(repo)


def run(args: Namespace) -> int:
    from speedrift.fleet.config import load_config
    from speedrift.fleet.lanegate import suite_for
    from speedrift.gates import bundle

    repo, worktree = _checkout(args)
    config = load_config(repo)
    store = _store(args, repo)
    task: dict[str, Any] | None = None
    if args.task:
        if store is None:
            raise NotFound(f"no graph in {repo} holds task {args.task!r}", hint="pass --dir, or drop --task")
        task = store.load().get(args.task)
        if task is None:
            raise NotFound(f"no task {args.task!r} in {store.graph_path}")
    base = _base(worktree, repo, args.base, config.target_branch)
    tip = git.rev_parse(worktree, "HEAD") or base
    dirty = any(not p.startswith(layout.STATE_PREFIX) for p in git.status_porcelain(worktree))
    suite = suite_for(repo, store, config, log_to_task=False)
    evidence = suite.evaluate(repo, worktree, base, tip, task, working_tree=dirty)
    data = bundle.to_dict(evidence)
    if not dirty:
        data["bundle_file"] = str(bundle.write(repo, evidence))
    if args.as_json:
        emit_json(data)
    else:
        _show(data, evidence_summary=bundle.summary(evidence))
    return 0 if evidence.passed else 1


def _show(data: dict[str, Any], evidence_summary: str) -> None:
    rows = [
        (
            r["gate"],
            r["status"] + (" (required)" if r.get("required") and r["status"] != "pass" else ""),
            f"{r['duration_ms'] / 1000:.2f}s",
            r["reason"],
        )
        for r in data["results"]
    ]
    title = f"Gates on {data['commit'][:12]} vs {data['base'][:12]}"
    if data.get("extra", {}).get("working_tree"):
        title += " (with uncommitted changes)"
    table(title, ["gate", "status", "time", "reason"], rows)
    shown = 0
    for result in data["results"]:
        for finding in result["findings"]:
            if shown >= MAX_FINDINGS_SHOWN:
                break
            where = f"{finding['file']}:{finding['line']}" if finding.get("line") else finding["file"]
            age = "" if finding.get("new", True) else " (pre-existing)"
            say(f"  {result['gate']:8} {where}  {finding['severity']}  {printable(finding['message'])}{age}")
            shown += 1
    total = sum(len(r["findings"]) for r in data["results"])
    if total > shown:
        say(f"  … {total - shown} more finding(s); --json has them all")
    say(evidence_summary)
    if data.get("bundle_file"):
        say(f"evidence: {data['bundle_file']}")


def list_gates(args: Namespace) -> int:
    from speedrift.fleet.config import load_config
    from speedrift.gates import inventory

    repo, worktree = _checkout(args)
    config = load_config(repo)
    rows = inventory.describe(repo, worktree, config.gates)
    if args.as_json:
        emit_json(rows)
        return 0
    table(
        "Gates (in the order they run)",
        ["gate", "runs", "tools"],
        [
            (
                row["gate"],
                row["runs"],
                "; ".join(
                    f"{t['tool']}: {t['path'] or 'missing — ' + t['hint']}"
                    + ("" if t["used"] else " (not used here)")
                    for t in row["tools"]
                ),
            )
            for row in rows
        ],
    )
    return 0
