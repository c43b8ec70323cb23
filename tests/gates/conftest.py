"""Real repositories with planted problems, and the gate suite run over them."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from speedrift.gates.config import GatesConfig
from speedrift.gates.model import EvidenceBundle, GateResult
from speedrift.gates.suite import GateSuite
from tests.gitrepo import make_repo, sh_git

Files = Mapping[str, str | bytes | None]  # None deletes the file


class GateRepo:
    """A git repo whose first commit is the base; `change` commits an attempt's edits on top."""

    def __init__(self, path: Path, files: Files, graph: bool = False) -> None:
        self.path = make_repo(path, {"README.md": "# demo\n"}, graph=graph)
        if files:
            self.commit(files, "base")
        self.base = self.head()

    def head(self) -> str:
        return sh_git(self.path, "rev-parse", "HEAD")

    def write(self, files: Files) -> None:
        for rel, content in files.items():
            target = self.path / os.fsdecode(rel.encode("utf-8", "surrogateescape"))
            if content is None:
                target.unlink()
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content)

    def commit(self, files: Files, message: str = "change") -> str:
        self.write(files)
        sh_git(self.path, "add", "-A")
        sh_git(self.path, "commit", "-q", "--allow-empty", "-m", message)
        return self.head()

    def change(self, files: Files) -> str:
        return self.commit(files, "attempt")

    def gates(
        self,
        config: Mapping[str, Any] | None = None,
        *,
        task: dict[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        working_tree: bool = False,
        only: tuple[str, ...] = (),
    ) -> EvidenceBundle:
        settings = dict(config or {})
        if only:
            names = ("syntax", "secrets", "scope", "contract", "lint", "types", "tests", "sast", "sca")
            settings["skip"] = [n for n in names if n not in only]
        suite = GateSuite(GatesConfig.model_validate(settings), env=env, log_to_task=False)
        return suite.evaluate(self.path, self.path, self.base, self.head(), task, working_tree=working_tree)


def gate(bundle: EvidenceBundle, name: str) -> GateResult:
    return next(r for r in bundle.results if r.gate == name)


def without_tools(tmp_path: Path) -> dict[str, str]:
    """Our environment, but gate tools are looked up only in an empty directory."""
    empty = tmp_path / "no-tools"
    empty.mkdir(exist_ok=True)
    return {**os.environ, "SPEEDRIFT_GATE_PATH": str(empty)}


NewRepo = Callable[..., GateRepo]


@pytest.fixture
def new_repo(tmp_path: Path) -> NewRepo:
    counter = iter(range(1000))

    def build(files: Files | None = None, graph: bool = False) -> GateRepo:
        return GateRepo(tmp_path / f"repo{next(counter)}", files or {}, graph=graph)

    return build
