"""The upstream contribution packet: a markdown page describing what a branch would contribute.

Pure: commits and changed files in, a category and markdown out. The hub writes the page; it
never pushes or opens a pull request — the packet is for a human to review and send.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath
from typing import Literal

Category = Literal["bugfix", "docs", "tooling", "feature"]

DOC_SUFFIXES = frozenset({".md", ".rst", ".txt", ".adoc"})
DOC_DIRS = frozenset({"docs", "doc", "documentation"})
DOC_NAMES = re.compile(
    r"^(readme|changelog|changes|license|licence|contributing|authors|notice)(\..*)?$", re.I
)
TOOLING_DIRS = frozenset(
    {".github", ".gitlab", ".ci", ".circleci", "scripts", "tools", "ci", ".devcontainer"}
)
TOOLING_NAMES = frozenset(
    {
        "makefile", "dockerfile", "justfile", "pyproject.toml", "setup.cfg", "setup.py", "tox.ini",
        "noxfile.py", ".pre-commit-config.yaml", ".gitignore", ".gitattributes", ".editorconfig",
        ".gitlab-ci.yml", "package.json", "package-lock.json", "cargo.toml", "go.mod", "go.sum",
        "requirements.txt", "ruff.toml", "mypy.ini", ".dockerignore",
    }
)  # fmt: skip
FIX_WORDS = re.compile(r"(^fix(\(.*\))?!?:)|\b(fix|fixes|fixed|bug|bugfix|hotfix|crash|regression)\b", re.I)


@dataclass(frozen=True)
class Commit:
    sha: str
    author: str
    subject: str


@dataclass(frozen=True)
class FileChange:
    status: str  # git's letter: A M D R C T
    path: str


def is_docs(path: str) -> bool:
    pure = PurePosixPath(path)
    return (
        pure.suffix.lower() in DOC_SUFFIXES
        or bool(DOC_DIRS & {part.lower() for part in pure.parts[:-1]})
        or bool(DOC_NAMES.match(pure.name))
    )


def is_tooling(path: str) -> bool:
    pure = PurePosixPath(path)
    return pure.name.lower() in TOOLING_NAMES or (
        len(pure.parts) > 1 and pure.parts[0].lower() in TOOLING_DIRS
    )


def categorize(subjects: Sequence[str], paths: Sequence[str]) -> tuple[Category, str]:
    """(category, why). Paths decide first (docs-only, docs-and-tooling), then commit subjects."""
    if paths and all(is_docs(p) for p in paths):
        return "docs", "every changed file is documentation"
    if paths and all(is_docs(p) or is_tooling(p) for p in paths):
        return "tooling", "only build, CI, packaging or script files (and docs) change"
    fixes = [s for s in subjects if FIX_WORDS.search(s)]
    if fixes:
        return "bugfix", f"{len(fixes)} of {len(subjects)} commit subject(s) describe a fix"
    return "feature", "source files change and no commit describes a fix"


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
