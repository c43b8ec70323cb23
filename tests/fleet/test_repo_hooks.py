"""Repo-plane hooks (fleet/repohooks.py): real repos, real shell tasks, real hook processes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from speedrift.failure_class import FailureClass
from speedrift.fleet.config import CONFIG_FILE, ConfigError, load_config
from speedrift.fleet.pipeline import RunOptions
from speedrift.procs import group_alive
from speedrift.repo import worktrees
from tests.fleet.conftest import Workshop
from tests.gitrepo import commit_file, sh_git
from tests.waiting import wait_for

EVENTS = ("session-start", "task-claimed", "task-completing", "task-done", "task-failed", "agent-error")
NO_SANDBOX = {"mode": "off"}  # the hooks below write outside the worktree, which a sandbox refuses


def script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def evidence_of(run_dir: str | None) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(Path(run_dir or "", "evidence.json").read_text())
    return loaded


def sent_events(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def test_each_event_fires_once_with_its_description_on_stdin(workshop: Workshop, tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    hook = script(tmp_path / "hooks" / "record", f"cat >> {log}\n")
    hooks = {event: [str(hook)] for event in EVENTS}
    pipeline = workshop.pipeline(hooks=hooks, sandbox=NO_SANDBOX)
    workshop.add("write-hello", "echo hello > hello.txt")
    done = pipeline.run("write-hello", RunOptions())
    assert done.status == "done", done.reason
    landed = sent_events(log)
    assert [e["event"] for e in landed] == ["task-claimed", "session-start", "task-completing", "task-done"]
    first = landed[0]
    assert (first["task"], first["attempt"], first["title"]) == ("write-hello", 1, "write hello")
    assert first["branch"] and first["target_branch"] == "main" and first["repo"] == str(workshop.repo)
    assert first["base_commit"] == sh_git(workshop.repo, "rev-parse", "main~1")  # main moved on landing
    assert Path(first["worktree"]).name and first["failure_class"] is None
    completing = landed[2]
    assert completing["tip"] != completing["base_commit"]  # the gated commit of the agent's change
    assert completing["gates"] and all(g["passed"] for g in completing["gates"])
    assert landed[3]["tip"] == done.landed_commit
    recorded = evidence_of(done.run_dir)["hooks"]
    assert [h["event"] for h in recorded] == [e["event"] for e in landed]
    assert all(h["ok"] and h["exit_code"] == 0 and h["timed_out"] is False for h in recorded)

    log.unlink()
    workshop.add("broken", "exit 3")
    failed = pipeline.run("broken", RunOptions())
    assert failed.status == "failed"
    sent = sent_events(log)
    assert [e["event"] for e in sent] == ["task-claimed", "session-start", "agent-error", "task-failed"]
    assert sent[-1]["failure_class"] == str(failed.failure) and sent[-1]["reason"]
    assert [h["event"] for h in evidence_of(failed.run_dir)["hooks"]] == [e["event"] for e in sent]


def test_a_vetoing_task_completing_hook_blocks_landing_as_hook_rejected(
    workshop: Workshop, tmp_path: Path
) -> None:
    veto = script(
        tmp_path / "hooks" / "check-changelog", "echo 'CHANGELOG.md has no entry for this'\nexit 1\n"
    )
    before = sh_git(workshop.repo, "rev-parse", "main")
    workshop.add("feature", "echo new > feature.txt")
    result = workshop.pipeline(hooks={"task-completing": [str(veto)]}).run("feature", RunOptions())
    assert result.status == "failed"
    assert result.failure is FailureClass.HOOK_REJECTED
    assert (
        sh_git(workshop.repo, "rev-parse", "main") == before and not (workshop.repo / "feature.txt").exists()
    )
    task = workshop.task("feature")
    assert task["speedrift"]["failure_class"] == "hook_rejected"  # type: ignore[index]
    messages = [entry["message"] for entry in task["log"]]  # type: ignore[attr-defined]
    assert any(
        m.startswith("Landing vetoed by the task-completing hook") and "no entry" in m for m in messages
    )
    evidence = evidence_of(result.run_dir)
    (hook,) = evidence["hooks"]
    assert (hook["event"], hook["exit_code"], hook["ok"]) == ("task-completing", 1, False)
    assert "CHANGELOG.md has no entry" in hook["output"]
    assert evidence["classification"]["rule"] == "hook-rejected"
    (manifest,) = worktrees.read_manifests(workshop.repo)  # the work is kept
    assert (Path(manifest.path) / "feature.txt").read_text() == "new\n"


def test_an_agent_cannot_rewrite_the_hook_that_judges_its_work(workshop: Workshop) -> None:
    commit_file(workshop.repo, "scripts/check", "#!/bin/sh\necho 'the repo says no'\nexit 1\n")
    (workshop.repo / "scripts" / "check").chmod(0o755)
    sh_git(workshop.repo, "commit", "-qam", "executable check")
    # the agent replaces the check in its worktree by one that passes: the main checkout's runs
    workshop.add("cheat", "printf '#!/bin/sh\\nexit 0\\n' > scripts/check; echo x > x.txt")
    result = workshop.pipeline(hooks={"task-completing": ["./scripts/check"]}).run("cheat", RunOptions())
    assert result.failure is FailureClass.HOOK_REJECTED
    assert "the repo says no" in evidence_of(result.run_dir)["hooks"][0]["output"]


def test_a_hanging_hook_is_killed_with_its_process_group_at_the_timeout(
    workshop: Workshop, tmp_path: Path
) -> None:
    group = tmp_path / "hook-group"
    hang = script(tmp_path / "hooks" / "hang", f"echo $$ > {group}\nsleep 300 &\nsleep 300\n")
    hooks = {"task-completing": [str(hang)], "timeout_s": 0.5}
    workshop.add("slow", "echo s > s.txt")
    result = workshop.pipeline(hooks=hooks, sandbox=NO_SANDBOX).run("slow", RunOptions())
    assert result.failure is FailureClass.HOOK_REJECTED
    (hook,) = evidence_of(result.run_dir)["hooks"]
    assert hook["timed_out"] is True and hook["exit_code"] is None and hook["ok"] is False
    assert "timed out" in result.reason
    pgid = int(group.read_text())  # the hook led its own group: nothing of it is left
    wait_for(lambda: not group_alive(pgid), f"the hook's process group {pgid} to be gone")


def test_hook_output_is_redacted_in_the_record(workshop: Workshop, tmp_path: Path) -> None:
    # a GitHub-token-shaped value, built only at run time (neither this file nor the script holds it)
    noisy = script(
        tmp_path / "hooks" / "noisy", 'printf "token=gh%s%s\\n" "p_" "$(printf "k%.0s" $(seq 40))"\n'
    )
    workshop.add("quiet", "echo q > q.txt")
    result = workshop.pipeline(hooks={"task-done": [str(noisy)]}).run("quiet", RunOptions())
    assert result.status == "done", result.reason
    value = "gh" + "p_" + "k" * 40
    (hook,) = evidence_of(result.run_dir)["hooks"]
    assert hook["output"].startswith("token=[REDACTED:")
    for name in ("evidence.json", "attempt.json"):
        assert value not in Path(result.run_dir or "", name).read_text()


def test_failing_notification_hooks_are_recorded_and_never_block(workshop: Workshop, tmp_path: Path) -> None:
    fails = script(tmp_path / "hooks" / "fails", "echo 'notifier down' >&2\nexit 2\n")
    hooks = {
        "task-claimed": [str(fails)],
        "session-start": [str(fails), "./no-such-hook"],
        "task-done": [str(fails)],
    }
    workshop.add("lands", "echo l > l.txt")
    result = workshop.pipeline(hooks=hooks).run("lands", RunOptions())
    assert result.status == "done", result.reason
    assert (workshop.repo / "l.txt").read_text() == "l\n"
    recorded = evidence_of(result.run_dir)["hooks"]
    assert [h["event"] for h in recorded] == ["task-claimed", "session-start", "session-start", "task-done"]
    assert not any(h["ok"] for h in recorded)
    assert "notifier down" in recorded[0]["output"] and recorded[0]["exit_code"] == 2
    assert "does not exist" in recorded[2]["error"]


def test_executables_under_speedrift_hooks_run_after_the_declared_ones_in_name_order(
    workshop: Workshop, tmp_path: Path
) -> None:
    log = tmp_path / "order.log"
    hooks_dir = workshop.repo / ".speedrift" / "hooks"
    script(hooks_dir / "task-done.d" / "20-second", f"echo dir-20 >> {log}\n")
    script(hooks_dir / "task-done.d" / "10-first", f"echo dir-10 >> {log}\n")
    script(hooks_dir / "task-done", f"echo file >> {log}\n")
    declared = script(tmp_path / "declared", f"echo toml >> {log}\n")
    workshop.add("ordered", "echo o > o.txt")
    pipeline = workshop.pipeline(hooks={"task-done": [str(declared)]}, sandbox=NO_SANDBOX)
    assert pipeline.run("ordered", RunOptions()).status == "done"
    assert log.read_text().split() == ["toml", "file", "dir-10", "dir-20"]


def test_a_sandboxed_hook_cannot_write_the_main_checkout(workshop: Workshop) -> None:
    probe = workshop.repo / "probe"
    commit_file(workshop.repo, "probe", "")
    hook = script(
        workshop.repo / ".speedrift" / "hooks" / "task-claimed", f"echo hacked > {probe} || echo refused\n"
    )
    workshop.add("boxed", "echo b > b.txt")
    result = workshop.pipeline(sandbox={"mode": "required"}).run("boxed", RunOptions())
    assert result.status == "done", result.reason
    assert probe.read_text() == "" and hook.exists()
    (recorded,) = evidence_of(result.run_dir)["hooks"]
    assert "refused" in recorded["output"]


@pytest.mark.parametrize(
    ("toml", "named"),
    [
        ('[hooks]\ntask-complete = ["./x"]\n', "task-complete"),
        ("[hooks]\ntimeout_s = 0\n", "hooks.timeout_s"),
        ("[hooks]\ntask-done = [3]\n", "hooks.task-done"),
        ('[hooks]\ntask-done = "./x"\n', "hooks.task-done"),
        ('[hooks]\nsession-start = ["\'unclosed"]\n', "cannot be split"),
        ('[hooks]\nagent-error = [""]\n', "is empty"),
    ],
)
def test_a_bad_hooks_table_is_an_error_naming_the_key(workshop: Workshop, toml: str, named: str) -> None:
    (workshop.repo / CONFIG_FILE).write_text(toml)
    with pytest.raises(ConfigError) as raised:
        load_config(workshop.repo)
    assert named in raised.value.message and CONFIG_FILE in raised.value.message


def test_commands_are_argv_lists_or_shell_split_strings(workshop: Workshop) -> None:
    (workshop.repo / CONFIG_FILE).write_text(
        '[hooks]\ntask-done = ["./notify --to \'the team\'", ["/bin/echo", "a b"]]\ntimeout_s = 5\n'
    )
    config = load_config(workshop.repo)
    assert config.hooks.commands("task-done") == [["./notify", "--to", "the team"], ["/bin/echo", "a b"]]
    assert config.hooks.timeout_s == 5


def test_a_sandboxed_task_completing_hook_cannot_change_what_the_gates_passed(workshop: Workshop) -> None:
    hook = 'echo changed >> app.py 2>/dev/null && echo wrote || echo "read-only"\n'
    script(workshop.repo / ".speedrift" / "hooks" / "task-completing", hook)
    workshop.add("gated", "echo g > g.txt")
    result = workshop.pipeline(sandbox={"mode": "required"}).run("gated", RunOptions())
    assert result.status == "done", result.reason
    (recorded,) = evidence_of(result.run_dir)["hooks"]
    assert "read-only" in recorded["output"] and "wrote" not in recorded["output"]
    assert sh_git(workshop.repo, "show", "main:app.py") == "print('v1')"
