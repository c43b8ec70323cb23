"""Git as a boundary for attempts: nothing an agent writes into a repository's git config or hooks
runs in speedrift's git; a change there is a boundary violation named in the evidence and the
task's log (files and keys, never values) and holds the attempt; with `[git] hooks = "repo"` only
the hooks that were there before the attempt run on speedrift's commit and landing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from speedrift.fleet import recovery_graph
from speedrift.fleet.pipeline import RunOptions
from tests.fleet.conftest import Workshop
from tests.gitrepo import sh_git

# the agent's own writes into .git are what these tests are about: no sandbox (which would stop
# them before they happen) — what a repo without bubblewrap gets
UNSANDBOXED: dict[str, Any] = {"sandbox": {"mode": "off"}}
EVIL_VALUE = "not-a-real-fsmonitor-value"


def hook(folder: Path, name: str, marker: Path, *, code: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"#!/bin/sh\ntouch {marker}\nexit {code}\n")
    path.chmod(0o755)
    return path


def evidence_of(run_dir: str | None) -> dict[str, Any]:
    return dict(json.loads(Path(run_dir or "", "evidence.json").read_text()))


def messages(workshop: Workshop, task_id: str) -> str:
    return "\n".join(entry["message"] for entry in workshop.task(task_id)["log"])  # type: ignore[attr-defined]


def test_an_agent_that_edits_git_config_and_hooks_is_held_and_named_in_the_evidence_and_log(
    workshop: Workshop, tmp_path: Path
) -> None:
    repo = workshop.repo
    ran = tmp_path / "post-commit-ran"
    agent = (
        f"git config core.fsmonitor {EVIL_VALUE} && "
        'hooks="$(git rev-parse --git-common-dir)/hooks" && '
        f'printf \'#!/bin/sh\\ntouch {ran}\\n\' > "$hooks/post-commit" && chmod +x "$hooks/post-commit" && '
        "echo work > work.txt"
    )
    workshop.add("tamper", agent)
    main_before = sh_git(repo, "rev-parse", "main")
    result = workshop.pipeline(**UNSANDBOXED).run("tamper", RunOptions())
    assert result.status == "waiting", result.reason
    assert sh_git(repo, "rev-parse", "main") == main_before and not (repo / "work.txt").exists()
    assert not ran.exists()
    evidence = evidence_of(result.run_dir)
    assert evidence["waiting"] == recovery_graph.BOUNDARY_VIOLATION
    assert evidence["git_changes"] == [".git/config: core.fsmonitor added", ".git/hooks/post-commit added"]
    assert "--unset-all core.fsmonitor" in " ".join(evidence["git_undo"])
    assert "core.fsmonitor added" in evidence["reason"]
    task = workshop.task("tamper")
    assert task["status"] == "open" and task.get("paused") is True
    log = messages(workshop, "tamper")
    assert (
        "Needs a human:" in log
        and ".git/hooks/post-commit added" in log
        and "--unset-all core.fsmonitor" in log
    )
    written = Path(result.run_dir or "")
    assert all(EVIL_VALUE not in p.read_text() for p in written.glob("*.json"))  # keys, never values
    assert EVIL_VALUE not in log
    # the work is kept, not landed: its worktree still holds it
    assert (Path(evidence["worktree"]) / "work.txt").read_text() == "work\n"


def test_hooks_and_an_fsmonitor_planted_earlier_do_not_run_when_speedrift_lands(
    workshop: Workshop, tmp_path: Path
) -> None:
    """Left by an earlier agent (or anyone): every hook fails and writes a marker; the attempt lands
    without any of them running — worktree creation, commit, rebase, fast-forward of main."""
    repo = workshop.repo
    markers = tmp_path / "ran"
    for name in (
        "pre-commit",
        "commit-msg",
        "post-commit",
        "post-checkout",
        "post-merge",
        "reference-transaction",
    ):
        hook(repo / ".git" / "hooks", name, markers / name, code=1)
    monitor = hook(tmp_path, "fsmonitor.sh", markers / "fsmonitor", code=1)
    sh_git(repo, "config", "core.fsmonitor", str(monitor))
    markers.mkdir()
    workshop.add("plain", "echo x > x.txt")
    result = workshop.pipeline(**UNSANDBOXED).run("plain", RunOptions())
    assert result.status == "done", result.reason
    assert (repo / "x.txt").read_text() == "x\n"
    assert sorted(p.name for p in markers.iterdir()) == []


def test_with_git_hooks_repo_a_pre_existing_pre_commit_hook_runs_on_speedrifts_commit(
    workshop: Workshop, tmp_path: Path
) -> None:
    ran = tmp_path / "pre-commit-ran"
    hook(workshop.repo / ".git" / "hooks", "pre-commit", ran)
    workshop.add("gated", "echo x > x.txt")
    result = workshop.pipeline(git={"hooks": "repo"}, **UNSANDBOXED).run("gated", RunOptions())
    assert result.status == "done", result.reason
    assert ran.exists()
    assert "hooks_not_run" not in evidence_of(result.run_dir)


def test_with_git_hooks_repo_a_pre_existing_hook_that_refuses_fails_the_commit(workshop: Workshop) -> None:
    hook(workshop.repo / ".git" / "hooks", "pre-commit", workshop.repo.parent / "ran", code=1)
    workshop.add("refused", "echo x > x.txt")
    result = workshop.pipeline(git={"hooks": "repo"}, **UNSANDBOXED).run("refused", RunOptions())
    assert result.status == "failed" and "was refused" in result.reason


def test_with_git_hooks_repo_a_hook_the_agent_adds_does_not_run_and_is_reported(
    workshop: Workshop, tmp_path: Path
) -> None:
    """core.hooksPath names a tracked directory (.githooks): the agent's worktree has its own copy,
    so adding a hook there is no write into .git — the attempt lands, its commit runs only the hook
    that was there before, and the added one is named in the evidence and the task's log."""
    repo = workshop.repo
    before, added = tmp_path / "pre-commit-ran", tmp_path / "post-commit-ran"
    hook(repo / ".githooks", "pre-commit", before)
    sh_git(repo, "add", ".githooks")
    sh_git(repo, "commit", "-q", "-m", "hooks")
    sh_git(repo, "config", "core.hooksPath", ".githooks")
    agent = f"printf '#!/bin/sh\\ntouch {added}\\n' > .githooks/post-commit && chmod +x .githooks/post-commit"
    workshop.add("sneak-hook", f"{agent} && echo x > x.txt")
    result = workshop.pipeline(git={"hooks": "repo"}, **UNSANDBOXED).run("sneak-hook", RunOptions())
    assert result.status == "done", result.reason
    assert before.exists() and not added.exists()
    assert evidence_of(result.run_dir)["hooks_not_run"] == ["post-commit (added during the attempt)"]
    log = messages(workshop, "sneak-hook")
    assert "Hooks not run on speedrift's commit and landing: post-commit (added during the attempt)" in log


def test_with_git_hooks_repo_a_hook_the_agent_writes_into_git_is_held_not_run(
    workshop: Workshop, tmp_path: Path
) -> None:
    ran = tmp_path / "pre-commit-ran"
    agent = (
        'hooks="$(git rev-parse --git-common-dir)/hooks" && '
        f'printf \'#!/bin/sh\\ntouch {ran}\\n\' > "$hooks/pre-commit" && chmod +x "$hooks/pre-commit" && '
        "echo x > x.txt"
    )
    workshop.add("plant-hook", agent)
    result = workshop.pipeline(git={"hooks": "repo"}, **UNSANDBOXED).run("plant-hook", RunOptions())
    assert result.status == "waiting" and not ran.exists()
    assert evidence_of(result.run_dir)["git_changes"] == [".git/hooks/pre-commit added"]
