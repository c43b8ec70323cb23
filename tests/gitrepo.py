"""Real git repositories in temp dirs for tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

from speedrift.graph.store import init_graph_dir


def sh_git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def make_repo(path: Path, files: dict[str, str] | None = None, graph: bool = True) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    sh_git(path, "init", "-q", "-b", "main")
    sh_git(path, "config", "user.name", "Test Person")
    sh_git(path, "config", "user.email", "test@example.invalid")
    sh_git(path, "config", "commit.gpgsign", "false")
    for rel, text in (files or {"README.md": "# demo\n"}).items():
        target = path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    (path / ".gitignore").write_text(".speedrift/\n")
    sh_git(path, "add", "-A")
    sh_git(path, "commit", "-q", "-m", "initial")
    if graph:
        init_graph_dir(path)
        sh_git(path, "add", "-A")
        sh_git(path, "commit", "-q", "-m", "graph")
    return path


def commit_file(repo: Path, rel: str, text: str, message: str = "change") -> str:
    target = repo / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    sh_git(repo, "add", rel)
    sh_git(repo, "commit", "-q", "-m", message)
    return sh_git(repo, "rev-parse", "HEAD")
