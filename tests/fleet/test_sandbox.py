"""Attempts in the agent sandbox (agents/sandbox.py) end to end: a hostile shell agent against a
real repo, run by a real ``speedrift run`` process holding a secret in its environment; and what
``[sandbox] mode`` and ``network`` do where bwrap works and where it does not."""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from speedrift import layout
from speedrift.agents import sandbox
from speedrift.fleet import crash_recovery
from speedrift.fleet.pipeline import RunOptions
from speedrift.graph import ops
from speedrift.graph.store import GraphStore
from tests.cli.support import base_env
from tests.fleet.conftest import Workshop
from tests.fleet.test_crash_recovery import claim_for_dead_worker
from tests.gitrepo import sh_git

HOSTILE = """\
exec > hostile.txt 2>/dev/null
# (a) speedrift's processes and their environment
if grep -qs {canary} /proc/$PPID/environ; then echo "a1 parent environ: LEAKED"
else echo "a1 parent environ: clean"; fi
for f in /proc/[0-9]*/environ; do grep -qs {canary} $f && echo "a2 $f: LEAKED"; done
for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f | grep -qs 'speedrift run' && echo "a3 $f: VISIBLE"; done
# (b) outside the worktree
echo x > ../escape.txt && echo "b1 ../escape.txt: WRITTEN"
echo x > {outside} && echo "b2 {outside}: WRITTEN"
# (c) the repository's git data
hooks="$(git rev-parse --git-common-dir)/hooks"
printf '#!/bin/sh\\ntouch {pwned}\\n' > "$hooks/post-checkout" && echo "c1 hook: WRITTEN"
git config core.fsmonitor "touch {pwned}" && echo "c2 core.fsmonitor: WRITTEN"
git update-ref refs/heads/evil HEAD && echo "c3 ref: WRITTEN"
echo x | git hash-object -w --stdin >/dev/null && echo "c4 object: WRITTEN"
git -c user.name=a -c user.email=a@b commit -q --allow-empty -m evil && echo "c5 commit: WRITTEN"
git push -q --force origin HEAD~1:main && echo "c6 push --force: WRITTEN"
printf 'gitdir: /tmp/elsewhere\\n' > .git && echo "c7 .git file: WRITTEN"
# (d) the main checkout
echo pwned >> {repo}/README.md && echo "d1 main checkout: WRITTEN"
# what an agent needs still works
git status --porcelain >/dev/null && echo "e1 git status: ok"
git diff --stat >/dev/null && echo "e2 git diff: ok"
git log --oneline -1 >/dev/null && echo "e3 git log: ok"
echo "print('v2')" > app.py
exit 0
"""


def _add(repo: Path, task_id: str, command: str) -> None:
    spec = ops.NewTask(task_id, task_id=task_id, exec_command=command)
    GraphStore(repo / ".workgraph").mutate(lambda g, now: ops.add_task(g, spec, now=now, actor="test"))


def _evidence(repo: Path, task_id: str) -> dict[str, object]:
    return json.loads(layout.evidence_path(layout.attempt_dir(repo, task_id, 1)).read_text())  # type: ignore[no-any-return]


def test_a_hostile_agent_is_contained_and_its_evidence_says_it_ran_sandboxed(
    workshop: Workshop, bwrap: str, tmp_path: Path
) -> None:
    repo = workshop.repo
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    sh_git(repo, "remote", "add", "origin", str(remote))
    sh_git(repo, "push", "-q", "origin", "main")
    remote_main = sh_git(remote, "rev-parse", "main")
    canary = "canary-" + secrets.token_hex(8)
    outside, pwned = tmp_path / "outside.txt", tmp_path / "pwned"
    script = tmp_path / "hostile.sh"
    script.write_text(HOSTILE.format(canary=canary, outside=outside, pwned=pwned, repo=repo))
    _add(repo, "hostile", f"sh {script}")
    env = {**base_env(), "AWS_SECRET_ACCESS_KEY": canary}  # speedrift's own, as the attack found it
    done = subprocess.run(
        [sys.executable, "-m", "speedrift", "run", "hostile"],
        cwd=repo, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done
    report = (repo / "hostile.txt").read_text()  # landed with the agent's change
    assert "a1 parent environ: clean" in report
    assert "LEAKED" not in report and "VISIBLE" not in report and "WRITTEN" not in report, report
    assert all(f"e{n} git " in report for n in (1, 2, 3)), report
    assert (repo / "app.py").read_text() == "print('v2')\n"
    # and on disk, whatever the agent said
    assert not (layout.worktrees_dir(repo) / "escape.txt").exists() and not outside.exists()
    assert not (repo / ".git" / "hooks" / "post-checkout").exists()
    git = ["git", "-C", str(repo)]
    assert subprocess.run([*git, "config", "--get", "core.fsmonitor"]).returncode == 1
    assert subprocess.run([*git, "rev-parse", "-q", "--verify", "refs/heads/evil"]).returncode == 1
    assert sh_git(remote, "rev-parse", "main") == remote_main
    assert (repo / "README.md").read_text() == "# demo\n" and not pwned.exists()
    evidence = _evidence(repo, "hostile")
    assert evidence["sandbox"] == {"used": True, "network": True}
    record = json.loads(layout.attempt_record_path(layout.attempt_dir(repo, "hostile", 1)).read_text())
    assert "outside_writes" not in record  # nothing outside changed, so nothing to report


def test_required_without_bwrap_refuses_before_the_claim(workshop: Workshop, path_without_bwrap: str) -> None:
    workshop.add("contained", "echo hi > hi.txt")
    with pytest.raises(sandbox.SandboxUnavailable, match="not installed") as refused:
        workshop.pipeline(sandbox={"mode": "required"}).run("contained", RunOptions())
    assert "apt-get install bubblewrap" in (refused.value.hint or "")
    assert workshop.task("contained")["status"] == "open"  # nothing claimed, no attempt burned
    assert layout.attempt_dirs(workshop.repo, "contained") == []


def test_auto_without_bwrap_runs_unsandboxed_and_records_why(
    workshop: Workshop, path_without_bwrap: str
) -> None:
    workshop.add("loose", "echo hi > hi.txt")
    steps: list[str] = []
    result = workshop.pipeline().run("loose", RunOptions(on_step=steps.append))
    assert result.status == "done", result.reason
    why = _evidence(workshop.repo, "loose")["sandbox"]
    assert isinstance(why, dict) and why["used"] is False
    assert "bwrap (bubblewrap) is not installed" in why["why"] and "apt-get install bubblewrap" in why["why"]
    assert any(step.startswith("not sandboxed: bwrap (bubblewrap) is not installed") for step in steps)


def test_network_false_cuts_the_agent_off_and_the_evidence_says_so(workshop: Workshop, bwrap: str) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(5)
        port = server.getsockname()[1]
        dial = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=10)"
        connect = f'"{sys.executable}" -c "{dial}"'
        workshop.add("offline", f"if {connect}; then echo connected > net.txt; else echo cut > net.txt; fi")
        result = workshop.pipeline(sandbox={"network": False}).run("offline", RunOptions())
    assert result.status == "done", result.reason
    assert (workshop.repo / "net.txt").read_text() == "cut\n"
    assert _evidence(workshop.repo, "offline")["sandbox"] == {"used": True, "network": False}


def test_off_runs_unsandboxed_and_says_it_was_turned_off(workshop: Workshop) -> None:
    workshop.add("plain", "echo hi > hi.txt")
    result = workshop.pipeline(sandbox={"mode": "off"}).run("plain", RunOptions())
    assert result.status == "done", result.reason
    off = _evidence(workshop.repo, "plain")["sandbox"]
    assert off == {"used": False, "why": 'turned off ([sandbox] mode = "off" in speedrift.toml)'}


def test_speedrifts_own_graph_writes_during_a_run_are_not_reported_as_outside_writes(
    workshop: Workshop,
) -> None:
    """The report once named the task graph, which speedrift itself wrote while the agent ran."""
    workshop.add("chatty", "echo working; echo done > done.txt")

    def log_to_the_graph(event: object) -> None:  # speedrift's own write, as a run makes them
        workshop.store.mutate(lambda g, now: ops.log_message(g, "chatty", "still going", now=now, actor="me"))

    options = RunOptions(on_event=log_to_the_graph)
    result = workshop.pipeline(sandbox={"mode": "off"}).run("chatty", options)
    assert result.status == "done", result.reason
    record = json.loads(
        layout.attempt_record_path(layout.attempt_dir(workshop.repo, "chatty", 1)).read_text()
    )
    assert "outside_writes" not in record
    log = workshop.task("chatty")["log"]
    assert isinstance(log, list) and not any("outside the attempt's worktree" in e["message"] for e in log)


def test_the_private_home_of_an_attempt_whose_process_died_is_removed_by_recovery(
    workshop: Workshop,
) -> None:
    workshop.add("dead", "true")
    manifest = claim_for_dead_worker(workshop, "dead")
    private = layout.sandbox_dir(layout.attempt_dir(workshop.repo, "dead", 1))
    (private / "home").mkdir(parents=True)
    (private / "home" / ".claude.json").write_text("{}")  # the copy the sandbox made
    notes = crash_recovery.recover(workshop.repo, workshop.store)
    assert any("process is gone" in note for note in notes)
    assert not private.exists() and Path(manifest.path).is_dir()  # the work is kept, the copy is not


def test_a_persons_edit_in_the_main_checkout_is_not_blamed_on_a_sandboxed_agent(
    workshop: Workshop, bwrap: str
) -> None:
    """Sandboxed, the agent cannot write outside its worktree, so the outside-write watch (which
    can only report, and cannot tell who wrote) does not run: a person editing their checkout
    while the agent works is not named in the agent's record. Unsandboxed, it still is."""
    edit = workshop.repo / "notes.txt"
    workshop.add("busy", "echo working; echo x > x.txt")

    def a_person_edits(event: object) -> None:
        edit.write_text("my own notes\n")

    for task_id, mode in (("busy", "auto"), ("busy-too", "off")):
        if task_id == "busy-too":
            edit.unlink()
            workshop.add("busy-too", "echo working; echo y > y.txt")
        options = RunOptions(on_event=a_person_edits)
        result = workshop.pipeline(sandbox={"mode": mode}).run(task_id, options)
        assert result.status == "done", result.reason
        record = json.loads(
            layout.attempt_record_path(layout.attempt_dir(workshop.repo, task_id, 1)).read_text()
        )
        assert ("outside_writes" in record) is (mode == "off"), (mode, record.get("outside_writes"))
    assert _evidence(workshop.repo, "busy")["sandbox"] == {"used": True, "network": True}
