"""Fixtures for end-to-end CLI tests: real git repositories with a real ``speedrift init``.

``cli`` runs commands in this process (see tests/cli/support.py); a test that needs a real
``speedrift`` process builds its own ``Cli(repo, process=True)`` and says why.

``speedrift init`` runs once per session in a template repository; each test gets a fresh copy,
which keeps the suite fast without sharing any state between tests.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.cli.support import Cli, git


def _git_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    return path


@pytest.fixture(scope="session")
def template_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = _git_repo(tmp_path_factory.mktemp("template") / "repo")
    Cli(repo).ok("init")
    return repo


@pytest.fixture
def bare_repo(tmp_path: Path) -> Path:
    """A git repository speedrift has not been initialised in."""
    return _git_repo(tmp_path / "bare")


@pytest.fixture
def repo(template_repo: Path, tmp_path: Path) -> Path:
    """A git repository with an empty, freshly initialised ``.workgraph/``."""
    target = tmp_path / "repo"
    shutil.copytree(template_repo, target, symlinks=True)
    return target


@pytest.fixture
def cli(repo: Path) -> Cli:
    """``speedrift`` running inside :func:`repo`."""
    return Cli(repo)
