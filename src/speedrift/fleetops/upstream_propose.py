"""Proposing an upstream proposal: push its branch to the user's fork, open a draft on the parent.

Runs only when a person asked (``speedrift upstream propose ID``, or the dashboard's button with
its token: the request itself is the human approval) AND the repo opted in with
``[upstream] propose = true`` in its speedrift.toml. The push and the draft go through
repo/forge.py, whose one authority check allows nothing but a NEW ``speedrift/upstream/<id>``
branch on the fork remote — never the target branch, never an existing name, never forced.

When a condition is missing (no opt-in, no CLI, not logged in, an unknown forge), nothing is
pushed: the result says what is wrong, the fix, and EXACTLY the commands that would run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from speedrift.errors import Refused
from speedrift.fleet.config import load_config
from speedrift.fleetops import upstream
from speedrift.fleetops.upstream import Proposal, ProposalState
from speedrift.repo import forge, git
from speedrift.times import iso_utc


@dataclass
class Outcome:
    proposal: Proposal
    ok: bool
    said: str
    fix: str = ""
    would_run: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.proposal.id,
            "ok": self.ok,
            "state": self.proposal.state.value,
            "said": self.said,
            "fix": self.fix,
            "would_run": self.would_run,
            "branch": self.proposal.branch,
            "url": self.proposal.url,
            "pushed_to": self.proposal.pushed_to,
        }


def _forge_of(repo: Path, configured: str, p: Proposal, fork_url: str | None) -> forge.Forge | None:
    if configured != "auto":
        return forge.Forge(configured)
    upstream_url = forge.remote_url(repo, p.upstream_ref.split("/", 1)[0])
    return forge.detect(upstream_url) or forge.detect(fork_url)


def plan(repo: Path, p: Proposal) -> tuple[list[str], list[tuple[str, str]], forge.Forge | None, list[str]]:
    """(the argv lines that would run, [(problem, fix)], the forge, the draft argv)."""
    options = load_config(repo).upstream
    problems: list[tuple[str, str]] = []
    fork = options.fork_remote
    fork_url = forge.remote_url(repo, fork)
    if fork_url is None:
        problems.append(
            (f"the repo has no remote {fork!r} (your fork)", f"`git remote add {fork} URL-OF-YOUR-FORK`")
        )
    kind = _forge_of(repo, options.forge, p, fork_url)
    if kind is None:
        problems.append(
            (
                "the forge cannot be told from the remotes' URLs",
                'set `[upstream] forge = "github"` (or "gitlab") in speedrift.toml',
            )
        )
    if not options.propose:
        problems.append(
            (
                f"{p.repo} has not opted in to upstream proposals",
                "set `[upstream] propose = true` in the repo's speedrift.toml",
            )
        )
    if p.state is ProposalState.CONFLICT:
        problems.append(
            (f"the proposal cannot be proposed: {p.said}", "rebase the commits onto the upstream")
        )
    fork_slug = forge.slug(fork_url)
    head_owner = None
    if fork_slug and kind is forge.Forge.GITHUB:
        head_owner = fork_slug.split("/", 1)[0]
    elif fork_slug:
        head_owner = fork_slug
    body = upstream.body_path(repo, p.id)
    argv: list[str] = []
    lines = [" ".join(forge.push_argv(fork, p.branch))]
    if kind is not None:
        text = body.read_text(encoding="utf-8") if body.is_file() else ""
        argv = forge.draft_argv(
            kind,
            branch=p.branch,
            base=p.base,
            title=p.title,
            body_file=body,
            body=text,
            repo_slug=p.upstream_slug,
            head_owner=head_owner,
        )
        lines.append(forge.shown(argv, body))
        if not p.upstream_slug:
            problems.append(
                (
                    "the upstream project (OWNER/REPO) is not known",
                    f'set `upstream = "OWNER/REPO"` under [repos.{p.repo}] in ecosystem.toml',
                )
            )
        ready = forge.cli_ready(kind, repo)
        if ready:
            cli = forge.CLI[kind]
            problems.append((ready, f"install {cli} and run `{cli} auth login`"))
    return lines, problems, kind, argv


def propose(repo: Path, pid: str, now: datetime, actor: str) -> Outcome:
    """Push the proposal branch to the fork and open the draft (see the module docstring)."""
    p = upstream.load(repo, pid)
    if p.state is ProposalState.PROPOSED:
        return Outcome(p, True, f"already proposed: {p.url or p.pushed_to}")
    if p.state is ProposalState.DRAFTED:
        upstream.make_proposal_branch(repo, p)
        upstream.save(repo, p)
    lines, problems, kind, argv = plan(repo, p)
    p.would_run = lines
    if problems or kind is None:
        said = "; ".join(problem for problem, _ in problems)
        fix = "; ".join(fix for _, fix in problems)
        _history(p, now, actor, "refused", said)
        upstream.save(repo, p)
        return Outcome(p, False, f"not proposed: {said}", fix, lines)
    fork = load_config(repo).upstream.fork_remote
    protected = [p.base, p.source_branch, git.default_branch(repo) or ""]
    try:
        pushed = forge.push_new_branch(repo, fork, p.branch, protected)
    except Refused as refused:
        _history(p, now, actor, "refused", refused.message)
        upstream.save(repo, p)
        return Outcome(p, False, f"not proposed: {refused.message}", refused.hint or "", lines)
    if not pushed.ok:
        _history(p, now, actor, "failed", pushed.said)
        upstream.save(repo, p)
        return Outcome(p, False, pushed.said, "check the fork remote and your access to it", lines)
    p.pushed_to = fork
    opened = forge.open_draft(kind, argv, repo)
    if not opened.ok:
        said = f"{opened.said}; {p.branch} is pushed to {fork}"
        _history(p, now, actor, "failed", said)
        upstream.save(repo, p)
        return Outcome(p, False, said, f"open it yourself: {lines[-1]}", lines)
    p.url = opened.url
    p.state = ProposalState.PROPOSED
    p.said = f"opened as a draft {forge.REQUEST[kind]}: {p.url or '(no URL given)'}"
    _history(p, now, actor, "proposed", p.said)
    upstream.save(repo, p)
    return Outcome(p, True, p.said, "", lines)


def _history(p: Proposal, now: datetime, actor: str, what: str, said: str) -> None:
    p.history.append({"at": iso_utc(now), "actor": actor, "outcome": what, "said": said})
    if what != "proposed":
        p.said = said
