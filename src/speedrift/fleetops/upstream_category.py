"""What kind of change a set of commits is — bugfix, docs, tooling or feature — for upstream packets
and proposals. Pure: commit subjects and changed paths in, a category and the reason out."""

from __future__ import annotations

import re
from collections.abc import Sequence
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
