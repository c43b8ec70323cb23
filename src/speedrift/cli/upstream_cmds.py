"""``speedrift upstream list|show|prepare|propose``: upstream proposals (fleetops/upstream.py).

``--repo`` is a repository by path or an ecosystem repo by name (default: the repository here).
``prepare`` packages the commits ahead of the upstream as a proposal with its local branch
``speedrift/upstream/<id>`` (nothing pushed). ``propose ID`` — run by a person, which is the
approval — pushes that branch to the fork and opens a draft through gh/glab, only where the repo
opted in (``[upstream] propose = true``); otherwise it prints exactly what it would run and the
fix, and exits 1. Every propose is recorded in the hub's ledger when there is an ecosystem.
"""

from __future__ import annotations

from argparse import Namespace
from dataclasses import dataclass
from pathlib import Path

from speedrift import hubdir
from speedrift.cli.base import actor_name
from speedrift.cli.output import emit_json, say, table
from speedrift.errors import NotFound
from speedrift.fleetops import upstream
from speedrift.repo import git
from speedrift.times import now_utc


@dataclass(frozen=True)
class Where:
    name: str
    path: Path
    ecosystem: Path | None
    remote: str | None = None
    branch: str | None = None
    declared: str | None = None


def _ecosystem(args: Namespace) -> Path | None:
    explicit = Path(args.ecosystem) if getattr(args, "ecosystem", None) else None
    try:
        return hubdir.find_ecosystem(explicit, Path.cwd())
    except NotFound:
        if explicit is not None:
            raise
        return None


def where(args: Namespace) -> Where:
    from speedrift.control.ecosystem.load import load_ecosystem

    text = getattr(args, "repo", None) or "."
    eco_path = _ecosystem(args)
    eco = load_ecosystem(eco_path) if eco_path is not None else None
    path = Path(text).expanduser()
    top = git.toplevel(path.resolve()) if path.exists() else None
    if eco is not None:
        for entry in eco.repos:
            if entry.name == text or (top is not None and entry.path.resolve() == top.resolve()):
                declared = eco.repo_extras.get(entry.name, {}).get("upstream")
                return Where(
                    entry.name,
                    entry.path,
                    eco_path,
                    entry.upstream_remote,
                    entry.upstream_branch,
                    declared if isinstance(declared, str) else None,
                )
    if top is None:
        raise NotFound(f"{text} is not a git repository or a repo of the ecosystem", hint="pass --repo PATH")
    return Where(top.name, top, None)


def _row(p: upstream.Proposal) -> list[str]:
    return [p.id, p.state.value, f"{p.stats['commits']}", f"{p.upstream_ref}", p.title]


def list_(args: Namespace) -> int:
    at = where(args)
    found = upstream.listing(at.path)
    if args.as_json:
        emit_json([{"repo": at.name, **p.as_dict()} for p in found])
        return 0
    if not found:
        say(f"No upstream proposals in {at.name}: `speedrift upstream prepare --repo {at.path}` makes one.")
        return 0
    table(
        f"upstream proposals of {at.name}",
        ["id", "state", "commits", "onto", "title"],
        [_row(p) for p in found],
    )
    return 0


def show(args: Namespace) -> int:
    at = where(args)
    p = upstream.load(at.path, args.proposal_id)
    if args.as_json:
        emit_json({"repo": at.name, **p.as_dict(), "body": upstream.body_path(at.path, p.id).read_text()})
        return 0
    say(f"{p.id} ({p.state.value}) — {p.title}")
    say(f"branch {p.branch} onto {p.upstream_ref} ({p.upstream_slug or 'project unknown'})")
    if p.said:
        say(p.said)
    if p.url:
        say(f"draft: {p.url}")
    say("")
    say(upstream.body_path(at.path, p.id).read_text())
    return 0


def prepare(args: Namespace) -> int:
    at = where(args)
    found = upstream.find_upstream(at.path, remote=at.remote, branch=at.branch, declared=at.declared)
    if found is None:
        raise NotFound(
            f"{at.name} has no upstream",
            hint="add the parent as a remote named `upstream` (`git remote add upstream URL` and "
            "`git fetch upstream`), or set upstream_remote for it in ecosystem.toml",
        )
    p = upstream.prepare(at.path, at.name, found, now_utc(), make_branch=True)
    if args.as_json:
        emit_json({"repo": at.name, **p.as_dict()})
    else:
        say(f"{p.id} ({p.state.value}): {p.title}")
        say(p.said or f"{len(p.commits)} commit(s) onto {p.upstream_ref}")
        say(
            f"`speedrift upstream show {p.id}` shows the draft; `speedrift upstream propose {p.id}` opens it."
        )
    return 0 if p.state is not upstream.ProposalState.CONFLICT else 1


def propose(args: Namespace) -> int:
    from speedrift.control import upstream_ops

    at = where(args)
    result = upstream_ops.propose(
        at.path, args.proposal_id, actor=actor_name(), source="cli", ecosystem_path=at.ecosystem
    )
    if args.as_json:
        emit_json(result)
    else:
        say(result["said"])
        if not result["ok"]:
            say(f"fix: {result['fix']}")
            say("it would run:")
            for line in result["would_run"]:
                say(f"  {line}")
    return 0 if result["ok"] else 1
