"""Compound review's pull request: prepared always, opened as a draft only where a repo opted in.

By default (``[compound_review] create_prs = false``) this is a dry run: the title, the branch
(``speedrift/review-<stem>``), the base (the target branch) and the body (the report) are
prepared and shown — in the report and on the command line — and nothing is written.

With ``create_prs = true`` in the repo's speedrift.toml (and write authority over the repo):

1. a throwaway detached checkout of the target's tip (repo/worktrees.py ``add_checkout``, under
   ``.speedrift/reviews/checkouts/``) gets ONE new commit adding the report as
   ``docs/reviews/<stem>.md`` (trailer ``Speedrift-Review: <stem>``; no hook runs); the user's
   checkout, index and branches are never touched, no history is rewritten;
2. the branch is created at that commit (``git branch``, never ``-f``: an existing branch is
   reported and left alone), and the checkout removed;
3. ``gh`` must be installed and ``gh auth status`` succeed — otherwise the report and the CLI say
   so plainly, and the branch stays local, unpushed;
4. the branch is pushed to the repo's upstream remote (the target branch's ``branch.<t>.remote``,
   else ``origin``, else the only remote) through repo/forge.py, whose one authority check
   refuses anything but a new ``speedrift/`` branch (never the target, never an existing name,
   never forced);
5. ``gh pr create --draft --title … --body-file … --head <branch> --base <target>`` opens it.

Every step's outcome is a sentence in :attr:`PullRequest.said`; nothing here raises for a step
that failed (a review never fails over its pull request).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from speedrift import fsutil, layout
from speedrift.errors import Refused, SpeedriftError
from speedrift.fleetops.compound_scan import REVIEW_TRAILER
from speedrift.repo import forge, git, worktrees
from speedrift.textclip import clip

DOCS_DIR = "docs/reviews"  # where the report is committed, relative to the repo
BRANCH_PREFIX = "speedrift/review-"
MAX_BODY_CHARS = 60_000  # GitHub refuses a body past 65,536 characters
BODY_SUFFIX = "pr-body.md"


class PrState(StrEnum):
    DRY_RUN = "dry_run"  # prepared and shown only
    CREATED = "created"  # a draft pull request is open
    NOT_CREATED = "not_created"  # opted in, but a step could not be done (said why)


@dataclass
class PullRequest:
    title: str
    branch: str
    base: str
    body_file: str  # the report the body is read from
    state: PrState = PrState.DRY_RUN
    said: str = ""  # what happened, plainly
    commit: str | None = None
    remote: str | None = None
    pushed: bool = False
    url: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "title": self.title,
            "branch": self.branch,
            "base": self.base,
            "body_file": self.body_file,
            "said": self.said,
            "commit": self.commit,
            "remote": self.remote,
            "pushed": self.pushed,
            "url": self.url,
        }

    def markdown(self) -> list[str]:
        head = {
            PrState.DRY_RUN: "Dry run — prepared, not created",
            PrState.CREATED: f"Draft pull request created: {self.url or '(no URL given)'}",
            PrState.NOT_CREATED: "Not created",
        }[self.state]
        return [
            f"**{head}.** {self.said}",
            "",
            f"- title: {self.title}",
            f"- branch: `{self.branch}`",
            f"- base: `{self.base}`",
            f"- body: the report above (`{self.body_file}`)",
        ]


def prepare(repo: Path, stem: str, base: str, title: str, why_dry: str) -> PullRequest:
    """The dry run: what would be proposed, and why it is only shown."""
    body = layout.review_report_path(repo, stem, "md")
    return PullRequest(title, BRANCH_PREFIX + stem, base, str(body), PrState.DRY_RUN, why_dry)


def docs_path(stem: str) -> str:
    return f"{DOCS_DIR}/{layout.safe_name(stem)}.md"


def create(repo: Path, pr: PullRequest, body: str, tip: str, remote: str | None = None) -> PullRequest:
    """Open ``pr`` as a draft (see the module docstring); ``body`` is the report's Markdown,
    committed and used as the body; ``remote`` overrides the upstream remote (the ecosystem's
    ``upstream_remote``). Returns ``pr`` with its state and what was said."""
    gh_problem = gh_ready(repo)
    if git.rev_parse(repo, f"refs/heads/{pr.branch}") is not None:
        return _not(pr, f"the branch {pr.branch} already exists; speedrift never replaces a branch")
    try:
        pr.commit = _commit_report(repo, pr, body, tip)
    except SpeedriftError as error:
        return _not(pr, f"the report commit could not be made: {error}")
    made = git.run(["branch", pr.branch, pr.commit], repo, check=False)
    if made.returncode != 0:
        return _not(pr, f"git branch {pr.branch} failed: {clip(made.stderr.strip(), 300)}")
    if gh_problem:
        return _not(pr, f"{gh_problem}; the branch {pr.branch} is ready locally and was not pushed")
    pr.remote = remote or upstream_remote(repo, pr.base)
    if pr.remote is None:
        return _not(
            pr, f"the repo has no remote to push to; the branch {pr.branch} is ready locally, unpushed"
        )
    try:
        pushed = forge.push_new_branch(repo, pr.remote, pr.branch, [pr.base])
    except Refused as refused:
        return _not(pr, f"{refused.message}; the branch {pr.branch} is ready locally and was not pushed")
    if not pushed.ok:
        return _not(pr, pushed.said)
    pr.pushed = True
    body_file = _body_file(repo, pr, body)
    argv = forge.draft_argv(
        forge.Forge.GITHUB, branch=pr.branch, base=pr.base, title=pr.title, body_file=body_file, body=body
    )
    opened = forge.open_draft(forge.Forge.GITHUB, argv, repo)
    if not opened.ok:
        return _not(pr, f"{opened.said}; the branch {pr.branch} is pushed to {pr.remote}")
    pr.url = opened.url
    pr.state = PrState.CREATED
    pr.said = f"opened as a draft from {pr.branch} (pushed to {pr.remote}) onto {pr.base}"
    return pr


def _not(pr: PullRequest, said: str) -> PullRequest:
    pr.state, pr.said = PrState.NOT_CREATED, said
    return pr


def gh_ready(repo: Path) -> str:
    """ "" when ``gh`` is installed and authenticated, else what is wrong (repo/forge.py)."""
    return forge.cli_ready(forge.Forge.GITHUB, repo)


def upstream_remote(repo: Path, target: str) -> str | None:
    """The remote the target branch tracks, else ``origin``, else the only remote."""
    tracked = git.git(["config", "--get", f"branch.{target}.remote"], repo, check=False)
    remotes = git.git(["remote"], repo, check=False).split()
    if tracked and tracked in remotes:
        return tracked
    if "origin" in remotes:
        return "origin"
    return remotes[0] if len(remotes) == 1 else None


def _commit_report(repo: Path, pr: PullRequest, body: str, tip: str) -> str:
    """One commit on top of ``tip`` adding the report, made in a throwaway checkout. Its id."""
    stem = pr.branch.removeprefix(BRANCH_PREFIX)
    checkout = layout.review_checkout_path(repo, stem)
    if checkout.exists():
        worktrees.remove_checkout(repo, checkout)
    worktrees.add_checkout(repo, checkout, tip)
    try:
        target = checkout / docs_path(stem)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(body, encoding="utf-8")
        git.run(["add", "--", docs_path(stem)], checkout)
        message = (
            f"{pr.title}\n\nThe compound review's report, added by speedrift.\n\n{REVIEW_TRAILER}: {stem}\n"
        )
        git.run(
            ["commit", "-q", "--no-verify", "-F", "-"],
            checkout,
            env=git.identity_env(repo),
            input_text=message,
        )
        commit = git.rev_parse(checkout, "HEAD")
        if commit is None:
            raise SpeedriftError(f"no commit was made in {checkout}")
        return commit
    finally:
        worktrees.remove_checkout(repo, checkout)


def _body_file(repo: Path, pr: PullRequest, body: str) -> Path:
    """The body as ``gh`` reads it: the report, clipped past GitHub's limit, beside the report."""
    stem = pr.branch.removeprefix(BRANCH_PREFIX)
    path = layout.review_report_path(repo, stem, BODY_SUFFIX)
    if len(body) > MAX_BODY_CHARS:
        note = f"\n\n… (clipped: the whole report is `{docs_path(stem)}` on the branch)\n"
        body = body[: MAX_BODY_CHARS - len(note)] + note
    fsutil.write_atomic(path, body.encode())
    pr.body_file = str(path)
    return path
