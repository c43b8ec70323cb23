"""Arguments of the review commands: ``speedrift review compound``."""

from __future__ import annotations

import argparse
from collections.abc import Callable

Command = Callable[[str, str, str], argparse.ArgumentParser]


def add(command: Command, common: argparse.ArgumentParser) -> None:
    p = command(
        "review", "review_cmds:compound", "Reviews of what reached a repo's target branch (compound)."
    )
    sub = p.add_subparsers(dest="review_command", metavar="{compound}", required=True)
    q = sub.add_parser(
        "compound",
        help="review the commits since the last review now: flags, summary, review tasks, pull request",
        description="Review the commits that reached each repo's target branch since its last review: "
        "authors, files and size, flagged risky changes, a summary by the Compound reviewer role, "
        "the report .speedrift/reviews/<date>.md, review tasks, and the pull request (a dry run "
        "unless the repo sets [compound_review] create_prs = true).",
        parents=[common],
    )
    q.set_defaults(handler="review_cmds:compound")
    q.add_argument("repos", nargs="*", metavar="REPO", help="repos of the ecosystem, by name")
    q.add_argument(
        "--ecosystem",
        metavar="PATH",
        default=None,
        help="ecosystem.toml: its [compound_review] and repos (no REPO and no --repo: every repo in it)",
    )
    q.add_argument(
        "--repo",
        dest="repo_paths",
        action="append",
        metavar="PATH",
        help="a repository by path (repeatable; default: the repository here)",
    )
    q.add_argument(
        "--since", metavar="REV", help="review the commits after REV instead of the last reviewed one"
    )
    q.add_argument("--json", dest="as_json", action="store_true", help="print the report's JSON")
