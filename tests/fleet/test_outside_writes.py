"""Writes outside an attempt's worktree, and tool calls the agent's CLI refused, end to end: the
fake opencode CLI (tests/agents/fakes) makes real writes from its worktree and speaks opencode's
event stream, unsandboxed (the watch is for an agent that could write outside), and a real
pipeline commits, gates and lands — or fails — what it left."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from speedrift import layout
from speedrift.fleet.pipeline import RunOptions
from speedrift.graph import ops
from speedrift.repo import worktrees
from tests.agents.conftest import FAKES
from tests.fleet.conftest import Workshop
from tests.gitrepo import commit_file, sh_git

FAKE_ENV = {"allow": ["FAKE_AGENT_SCENARIO"]}
UNSANDBOXED = {"mode": "off"}
REJECTED = "The user rejected permission to use this specific tool call."


def opencode_bin(tmp_path: Path) -> Path:
    """An `opencode` on PATH that answers the preflight as opencode 1.18.33 does and runs the
    shared fake CLI for an attempt."""
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    script = folder / "opencode"
    script.write_text(
        "#!/bin/sh\n"
        'case "$1" in\n'
        '  --version) echo "1.18.33"; exit 0;;\n'
        '  auth) echo "0 credentials"; exit 0;;\n'
        "esac\n"
        f'exec "{sys.executable}" "{FAKES / "opencode"}" "$@"\n'
    )
    script.chmod(0o755)
    return folder


@pytest.fixture
def agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fake opencode on PATH; returns the scenario file it reads."""
    monkeypatch.setenv("PATH", f"{opencode_bin(tmp_path)}{os.pathsep}{os.environ['PATH']}")
    scenario = tmp_path / "scenario.json"
    monkeypatch.setenv("FAKE_AGENT_SCENARIO", str(scenario))
    return scenario


def scenario(file: Path, *steps: dict[str, Any]) -> None:
    file.write_text(json.dumps(list(steps)))


def edit(path: str, content: str = "x\n") -> dict[str, Any]:
    return {"do": "edit", "path": path, "content": content}


FINISH = {"do": "finish", "text": "Done."}
REFUSED = {"do": "rejected"}  # a write to ../outside.txt, auto-rejected; opencode's run ends there


def run(workshop: Workshop, task_id: str, **options: Any) -> Any:
    workshop.add(task_id, model="opencode:mock/mock-model")
    return workshop.pipeline(env=FAKE_ENV, sandbox=UNSANDBOXED).run(task_id, RunOptions(**options))


def evidence_of(result: Any) -> dict[str, Any]:
    return json.loads(layout.evidence_path(Path(result.run_dir)).read_text())  # type: ignore[no-any-return]


def record_of(result: Any) -> dict[str, Any]:
    return json.loads(layout.attempt_record_path(Path(result.run_dir)).read_text())  # type: ignore[no-any-return]


def log_of(workshop: Workshop, task_id: str) -> list[str]:
    log = workshop.task(task_id)["log"]
    assert isinstance(log, list)
    return [entry["message"] for entry in log]


# --- what the watch sees ------------------------------------------------------------------------------
def test_a_write_to_git_ignored_files_in_the_main_checkout_is_reported(
    workshop: Workshop, agent: Path
) -> None:
    repo = workshop.repo
    commit_file(repo, ".gitignore", ".speedrift/\n*.log\nbuild/\n", "ignore logs and build output")
    (repo / "debug.log").write_text("the user's log\n")
    (repo / "build").mkdir()
    (repo / "build" / "app.bin").write_text("built\n")
    # the worktree is .speedrift/worktrees/<name>/: three levels up is the main checkout
    scenario(
        agent,
        edit("../../../debug.log", "overwritten\n"),
        edit("../../../build/escape.txt"),
        edit("in.txt"),
        FINISH,
    )
    result = run(workshop, "ignored")
    assert result.status == "done", result.reason
    expected = {f"{repo}/debug.log", f"{repo}/build/escape.txt"}
    assert expected <= set(record_of(result)["outside_writes"])
    assert expected <= set(evidence_of(result)["outside_writes"])
    assert any(
        "outside the attempt's worktree" in line and "debug.log" in line
        for line in log_of(workshop, "ignored")
    )


def test_a_write_next_to_the_worktree_in_speedrifts_state_dir_is_reported(
    workshop: Workshop, agent: Path
) -> None:
    scenario(agent, edit("../escape.txt"), edit("../../stray/note.txt"), edit("in.txt"), FINISH)
    (workshop.repo / layout.STATE_DIR / "stray").mkdir(parents=True)
    result = run(workshop, "escape")
    assert result.status == "done", result.reason
    state = layout.state_dir(workshop.repo)
    assert {f"{layout.worktrees_dir(workshop.repo)}/escape.txt", f"{state}/stray/note.txt"} <= set(
        evidence_of(result)["outside_writes"]
    )


def test_a_file_dropped_into_the_git_dir_is_reported(workshop: Workshop, agent: Path) -> None:
    scenario(
        agent, edit("../../../.git/escape.txt"), edit("../../../.git/info/notes"), edit("in.txt"), FINISH
    )
    result = run(workshop, "git-dir")
    assert result.status == "done", result.reason
    common = Path(sh_git(workshop.repo, "rev-parse", "--absolute-git-dir"))
    assert {f"{common}/escape.txt", f"{common}/info/notes"} <= set(evidence_of(result)["outside_writes"])


def test_speedrifts_own_writes_during_a_run_are_not_reported(workshop: Workshop, agent: Path) -> None:
    """While the agent works, a whole other attempt runs and lands (a worktree, its manifest and
    run record, the merge queue, the landing log, the outcomes, git's refs, objects and locks, the
    main checkout moved on) and the task graph is written: none of it is the agent's doing."""
    scenario(agent, edit("in.txt", "mine\n"), FINISH)
    workshop.add("other", "echo theirs > theirs.txt")
    landed: list[str] = []

    def another_attempt_lands(event: object) -> None:
        if not landed:
            landed.append(workshop.pipeline(sandbox=UNSANDBOXED).run("other", RunOptions()).status)
            workshop.store.mutate(
                lambda g, now: ops.log_message(g, "quiet", "still going", now=now, actor="me")
            )

    result = run(workshop, "quiet", on_event=another_attempt_lands)
    assert landed == ["done"] and result.status == "done", result.reason
    assert (workshop.repo / "theirs.txt").is_file() and (workshop.repo / "in.txt").read_text() == "mine\n"
    assert "outside_writes" not in record_of(result) and "outside_writes" not in evidence_of(result)
    assert not any("outside the attempt's worktree" in line for line in log_of(workshop, "quiet"))
    assert evidence_of(result)["refused"] == []


# --- an agent that stopped after a refused call -------------------------------------------------------
def test_an_agent_stopped_by_a_refused_call_still_lands_the_work_it_left_when_the_gates_pass(
    workshop: Workshop, agent: Path
) -> None:
    scenario(agent, edit("hello.txt", "hello\n"), REFUSED)  # no finish: opencode ends after the refusal
    result = run(workshop, "stopped")
    assert result.status == "done", result.reason
    assert (workshop.repo / "hello.txt").read_text() == "hello\n"
    assert sh_git(workshop.repo, "rev-parse", "main") == result.landed_commit
    evidence = evidence_of(result)
    assert len(evidence["refused"]) == 1 and "outside.txt" in evidence["refused"][0]
    assert "refused 1 tool call(s)" in evidence["agent_stopped"]
    said = [line for line in log_of(workshop, "stopped") if "refused 1 tool call(s)" in line]
    assert said and "committed and checked like a finished run's" in said[0]
    assert not (workshop.repo.parent / "outside.txt").exists()


def test_an_agent_stopped_by_a_refused_call_with_nothing_done_is_retried_told_to_stay_inside(
    workshop: Workshop, agent: Path
) -> None:
    scenario(agent, REFUSED)
    result = run(workshop, "refused")
    assert result.status == "failed" and result.failure == "exploration_death", result.reason
    evidence = evidence_of(result)
    assert evidence["classification"]["rule"] == "refused-calls"
    assert "outside.txt" in evidence["refused"][0] and "outside.txt" in evidence["reason"]
    assert evidence["recovery"]["recovery"] == "retry_with_diagnosis"
    assert "work only inside the worktree" in evidence["recovery"]["diagnosis"]
    (manifest,) = worktrees.read_manifests(workshop.repo)
    assert manifest.state is worktrees.ManifestState.FAILED  # kept, as every failed attempt's is
