"""The upstream contribution packet: a markdown page describing what a branch would contribute.

Pure: commits and changed files in, a category and markdown out. The hub writes the page; it
never pushes or opens a pull request — the packet is for a human to review and send.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from speedrift.fleetops.upstream_category import Category, categorize, is_docs, is_tooling

__all__ = ["Category", "Commit", "FileChange", "categorize", "is_docs", "is_tooling", "render"]


@dataclass(frozen=True)
class Commit:
    sha: str
    author: str
    subject: str


@dataclass(frozen=True)
class FileChange:
    status: str  # git's letter: A M D R C T
    path: str


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(
    *,
    repo: str,
    branch: str,
    head: str,
    upstream: str,
    ahead: int,
    behind: int,
    commits: Sequence[Commit],
    files: Sequence[FileChange],
    generated_at: datetime,
    cycle_id: str | None,
    limit: int = 200,
) -> tuple[Category, str]:
    """The packet as markdown, with its category."""
    category, why = categorize([c.subject for c in commits], [f.path for f in files])
    title = commits[-1].subject if len(commits) == 1 else f"{category}: {len(commits)} commits from {branch}"
    lines = [
        f"# Upstream contribution packet: {repo} `{branch}` → `{upstream}`",
        "",
        "Dry run: nothing was pushed and no pull request was opened. Review it, then send it yourself.",
        "",
        f"- Generated: {generated_at.isoformat()}" + (f" (cycle {cycle_id})" if cycle_id else ""),
        f"- Branch: `{branch}` at `{head[:12]}`",
        f"- Upstream: `{upstream}` — ahead {ahead}, behind {behind}",
        f"- Category: **{category}** ({why})",
        "",
        "## Suggested title",
        "",
        title,
        "",
        f"## Commits ({len(commits)})",
        "",
    ]
    lines += [f"- `{c.sha[:12]}` {c.subject} — {c.author}" for c in commits[:limit]]
    if len(commits) > limit:
        lines.append(f"- … and {len(commits) - limit} more")
    lines += ["", f"## Changed files ({len(files)})", "", "| status | path |", "|---|---|"]
    lines += [f"| {f.status} | `{_cell(f.path)}` |" for f in files[:limit]]
    if len(files) > limit:
        lines.append(f"| … | and {len(files) - limit} more |")
    if behind:
        lines += ["", f"Note: the branch is {behind} commit(s) behind `{upstream}`; rebase before sending."]
    return category, "\n".join(lines) + "\n"
