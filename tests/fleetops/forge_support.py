"""Forge fakes for tests, never the network: a fake `gh` on PATH that records its argv, and a fork
set-up in real local git — the parent a bare repo (``acme/demo.git``), the user's fork another
(``me/demo.git``, the clone's origin), the clone with the parent as its ``upstream`` remote."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.cli.support import Cli
from tests.gitrepo import commit_file, make_repo, sh_git

PR_URL = "https://github.example/acme/demo/pull/7"
OPT_IN = '[upstream]\npropose = true\nforge = "github"\n'


def fake_gh(folder: Path, log: Path, *, logged_in: bool = True) -> Path:
    """A `gh` that appends its argv (and, for `pr create`, the body it was given) to ``log``."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "gh"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        "argv = sys.argv[1:]\n"
        "entry = {'argv': argv}\n"
        "if argv[:2] == ['pr', 'create']:\n"
        "    entry['body'] = open(argv[argv.index('--body-file') + 1]).read()\n"
        f"with open({str(log)!r}, 'a') as out:\n"
        "    out.write(json.dumps(entry) + '\\n')\n"
        "if argv[:2] == ['auth', 'status']:\n"
        f"    if not {logged_in}:\n"
        "        sys.stderr.write('You are not logged into any GitHub hosts. '\n"
        "                         'To log in, run: gh auth login\\n')\n"
        "        sys.exit(1)\n"
        "    print('Logged in to github.com account tester')\n"
        "elif argv[:2] == ['pr', 'create']:\n"
        f"    print({PR_URL!r})\n"
    )
    script.chmod(0o755)
    return folder


def calls(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def forked(tmp_path: Path, config: str = OPT_IN) -> tuple[Path, Path, Path]:
    """(clone, parent bare, fork bare); the clone is 2 commits ahead of the parent's main."""
    seed = make_repo(tmp_path / "seed", graph=False)
    parent = tmp_path / "acme" / "demo.git"
    fork = tmp_path / "me" / "demo.git"
    sh_git(tmp_path, "clone", "-q", "--bare", str(seed), str(parent))
    sh_git(tmp_path, "clone", "-q", "--bare", str(parent), str(fork))
    clone = tmp_path / "clone"
    sh_git(tmp_path, "clone", "-q", str(fork), str(clone))
    for key, value in (("user.name", "Fork Person"), ("user.email", "fork@example.invalid")):
        sh_git(clone, "config", key, value)
    sh_git(clone, "config", "commit.gpgsign", "false")
    sh_git(clone, "remote", "add", "upstream", str(parent))
    sh_git(clone, "fetch", "-q", "upstream")
    if config:
        (clone / "speedrift.toml").write_text(config)
        sh_git(clone, "add", "speedrift.toml")
        sh_git(clone, "commit", "-q", "-m", "chore: speedrift config")
        sh_git(clone, "push", "-q", "origin", "main")
    commit_file(clone, "src/app.py", "print('fixed')\n", "fix: the crash on empty input")
    target = clone / "docs" / "usage.md"
    target.parent.mkdir(parents=True)
    target.write_text("# usage\n")
    sh_git(clone, "add", "docs/usage.md")
    sh_git(clone, "commit", "-q", "-m", "docs: usage\n\nSpeedrift-Task: write-usage")
    return clone, parent, fork


def proposed_ecosystem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: str = OPT_IN, upstream: str | None = "acme/demo"
) -> tuple[Path, Path, Path, str, Path]:
    """A forked clone with a prepared upstream proposal, the fake `gh` on PATH, and an ecosystem
    registering the clone as ``demo`` (with ``upstream`` when given): (clone, parent, fork,
    proposal id, ecosystem.toml). ``config`` is the clone's speedrift.toml."""
    clone, parent, fork = forked(tmp_path, config)
    folder = fake_gh(tmp_path / "bin", tmp_path / "gh.jsonl")
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    pid = Cli(clone).json("upstream", "prepare")["id"]
    hub = tmp_path / "hub"
    hub.mkdir()
    eco = hub / "ecosystem.toml"
    named = f'upstream = "{upstream}"\n' if upstream else ""
    eco.write_text(f'schema = 1\n\n[repos.demo]\npath = "{clone}"\n{named}')
    return clone, parent, fork, pid, eco
