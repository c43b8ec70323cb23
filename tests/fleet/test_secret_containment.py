"""Secrets never leave: real attempts (shell runtime) whose agent echoes the secrets speedrift holds
— bare, base64'd and hex'd, into files, stdout and stderr. The commit that carries them is blocked,
taken off its branch and every ref (a `git push --all` publishes nothing of it), its files kept in
the quarantined worktree; and no file speedrift wrote holds any of the values in any encoding."""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import threading
from pathlib import Path

import pytest

from speedrift import redact
from speedrift.fleet.config import RepoConfig
from speedrift.fleet.pipeline import Pipeline, RunOptions
from speedrift.fleet.service import ServiceLoop
from speedrift.gates.suite import for_repo
from speedrift.repo import worktrees
from tests.fleet.conftest import Workshop
from tests.gitrepo import sh_git
from tests.waiting import wait_for


def random_value(prefix: str, length: int) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return prefix + "".join(secrets.choice(alphabet) for _ in range(length))


@pytest.fixture
def held(workshop: Workshop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Secrets in speedrift's environment: two it withholds from the agent, one passed through
    `[env] secrets`. The withheld ones also sit in a file outside the repo, standing in for the
    `/proc/$PPID/environ` an unsandboxed agent can read."""
    values = {
        "GITHUB_TOKEN": random_value("ghp_", 36),
        "AWS_SECRET_ACCESS_KEY": random_value("", 40),
        "DEPLOY_PHRASE": random_value("dp", 30),
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "parent-environ").write_text(f"{values['GITHUB_TOKEN']}\n{values['AWS_SECRET_ACCESS_KEY']}\n")
    return values


def leaking_agent(source: Path, *, into_files: bool) -> str:
    """A hostile agent: reads the withheld secrets, gets the passed one from its environment, and
    prints each bare, base64'd and hex'd to stdout and stderr — and, ``into_files``, into leak.txt."""
    out = (
        'printf "out %s\\n" "$v"; printf %s "$v" | base64; '
        "printf %s \"$v\" | od -An -tx1 | tr -d ' \\n'; echo; "
        'printf "err %s\\n" "$v" >&2; printf %s "$v" | base64 -w0 >&2; echo >&2; '
    )
    files = (
        'printf "%s\\n" "$v" >> leak.txt; printf %s "$v" | base64 >> leak.txt; '
        "printf %s \"$v\" | od -An -tx1 | tr -d ' \\n' >> leak.txt; echo >> leak.txt; "
    )
    return (
        f"G=$(sed -n 1p {source}); A=$(sed -n 2p {source}); "
        f'for v in "$G" "$A" "$DEPLOY_PHRASE"; do {out}{files if into_files else ""}done; '
        "echo done > notes.txt"
    )


def pipeline(workshop: Workshop) -> Pipeline:
    config = RepoConfig.model_validate({"default_runtime": "shell", "env": {"secrets": ["DEPLOY_PHRASE"]}})
    gates = for_repo(config.gates, workshop.store, config.target_branch, config.env.secrets)
    return Pipeline(workshop.repo, workshop.store, config, gates=gates)


def forms(value: str) -> list[bytes]:
    """Every way the test looks for a value: the forms the gate knows, plus the whole encodings."""
    raw = value.encode()
    whole = [base64.b64encode(raw), base64.urlsafe_b64encode(raw), raw.hex().encode()]
    return [needle for _encoding, needle in redact.encoded_forms(value)] + whole


def files_holding(folder: Path, needles: dict[bytes, str], skip: Path | None = None) -> list[str]:
    found: list[str] = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if skip is None or Path(root, d) != skip]
        for name in names:
            path = Path(root, name)
            if path.is_symlink() or not path.is_file():
                continue
            data = path.read_bytes()
            found += [f"{path}: {what}" for needle, what in needles.items() if needle in data]
    return found


def test_a_blocked_commit_leaves_every_ref_its_files_stay_quarantined_and_nothing_written_holds_a_secret(
    workshop: Workshop, held: dict[str, str], tmp_path: Path, private_state_home: Path
) -> None:
    source = tmp_path / "parent-environ"
    workshop.add("chatty", exec_command=leaking_agent(source, into_files=False))
    workshop.add("leak", exec_command=leaking_agent(source, into_files=True))

    landed = pipeline(workshop).run("chatty", RunOptions())  # the secrets only in its output: it lands
    blocked = pipeline(workshop).run("leak", RunOptions())

    assert landed.status == "done", landed.reason
    assert (blocked.status, blocked.failure) == ("failed", "secret_leak")
    # the gate names each variable and encoding, never the value
    secrets_gate = next(g for g in blocked.evidence["gates"][-1]["results"] if g["gate"] == "secrets")
    kinds = {f["kind"] for f in secrets_gate["findings"]}
    for name in held:
        assert {f"{name} value", f"{name} as base64", f"{name} as hex"} <= kinds

    # the commit is off its branch and every ref: a push of everything publishes nothing of it
    withdrawn = blocked.evidence["withdrawn"]
    commit, branch = withdrawn["commit"], worktrees.branch_name("leak", 1)
    assert withdrawn["done"] is True and withdrawn["branch"] == branch
    assert sh_git(workshop.repo, "for-each-ref", "--contains", commit) == ""
    assert sh_git(workshop.repo, "rev-parse", branch) == withdrawn["branch_now_at"] != commit
    remote = tmp_path / "remote.git"
    sh_git(tmp_path, "init", "-q", "--bare", str(remote))
    sh_git(workshop.repo, "push", "-q", "--all", str(remote))
    published = subprocess.run(["git", "cat-file", "-e", commit], cwd=remote, capture_output=True)
    assert published.returncode != 0

    # the files are kept for a human, in the quarantined worktree, and the task's log says where
    kept = Path(withdrawn["worktree"])
    assert kept.parent == workshop.repo / ".speedrift" / "quarantine"
    assert blocked.evidence["worktree"] == str(kept)
    leak = (kept / "leak.txt").read_text()
    assert all(value in leak for value in held.values())
    assert sh_git(kept, "status", "--porcelain").splitlines() == ["A  leak.txt"]  # staged, uncommitted
    assert subprocess.run(["git", "symbolic-ref", "-q", "HEAD"], cwd=kept).returncode != 0  # detached
    (manifest,) = [m for m in worktrees.read_manifests(workshop.repo) if m.task_id == "leak"]
    assert manifest.state is worktrees.ManifestState.QUARANTINED and manifest.path == str(kept)
    entries = workshop.task("leak")["log"]
    assert isinstance(entries, list)
    log = [entry["message"] for entry in entries]
    assert any(m.startswith("Secret leak contained:") and str(kept) in m for m in log)

    # no file speedrift wrote holds a value, in any encoding: its state, the graph, the machine's
    # state home and the landed tree (everything but the quarantined worktree's own files)
    needles = {
        needle: f"{name} form {i}" for name, value in held.items() for i, needle in enumerate(forms(value))
    }
    assert files_holding(workshop.repo / ".speedrift", needles, skip=kept) == []
    assert files_holding(workshop.store.directory, needles) == []
    assert files_holding(private_state_home, needles) == []
    tree = subprocess.run(
        ["git", "archive", "main"], cwd=workshop.repo, capture_output=True, check=True
    ).stdout
    history = sh_git(workshop.repo, "log", "--format=%B%an%ae%cn%ce", "main").encode()
    assert [what for needle, what in needles.items() if needle in tree or needle in history] == []
    events = (Path(landed.run_dir or "") / "events.jsonl").read_text()
    assert "[REDACTED:GITHUB_TOKEN]" in events and "[REDACTED:DEPLOY_PHRASE]" in events


def test_a_worker_process_forked_for_the_attempt_knows_the_secrets_and_withdraws_the_commit(
    workshop: Workshop, held: dict[str, str], tmp_path: Path, private_state_home: Path
) -> None:
    workshop.add("leak", exec_command=leaking_agent(tmp_path / "parent-environ", into_files=True))
    loop = ServiceLoop(pipeline(workshop))  # each attempt in a worker forked from the forkserver
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: workshop.task("leak").get("status") == "failed", "the attempt to fail")
    finally:
        loop.stop.set()
        thread.join(timeout=60)

    task = workshop.task("leak")
    assert task["speedrift"]["failure_class"] == "secret_leak"  # type: ignore[index]
    evidence = json.loads(Path(str(task["speedrift"]["evidence"])).read_text())  # type: ignore[index]
    secrets_gate = next(g for g in evidence["gates"][-1]["results"] if g["gate"] == "secrets")
    assert {f"{name} as hex" for name in held} <= {f["kind"] for f in secrets_gate["findings"]}
    kept = Path(evidence["withdrawn"]["worktree"])
    assert sh_git(workshop.repo, "for-each-ref", "--contains", evidence["withdrawn"]["commit"]) == ""
    assert all(value in (kept / "leak.txt").read_text() for value in held.values())
    needles = {needle: name for name, value in held.items() for needle in forms(value)}
    assert files_holding(workshop.repo / ".speedrift", needles, skip=kept) == []
    assert files_holding(workshop.store.directory, needles) == []
    assert files_holding(private_state_home, needles) == []


def test_stderr_log_holds_no_secret_even_while_the_agent_still_runs(
    workshop: Workshop, held: dict[str, str]
) -> None:
    # the agent prints the passed secret to stderr, then waits for the test to let it go
    agent = 'printf "err %s\\n" "$DEPLOY_PHRASE" >&2; while [ ! -f go ]; do sleep 0.05; done; rm go'
    workshop.add("waits", exec_command=agent)
    done: list[object] = []
    thread = threading.Thread(target=lambda: done.append(pipeline(workshop).run("waits", RunOptions())))
    thread.start()
    stderr_log = workshop.repo / ".speedrift" / "runs" / "waits" / "1" / "stderr.log"
    try:
        wait_for(lambda: stderr_log.is_file() and b"err " in stderr_log.read_bytes(), "the agent's stderr")
        live = stderr_log.read_bytes()
    finally:
        (workshop.repo / ".speedrift" / "worktrees" / "waits-1" / "go").touch()
        thread.join(timeout=120)

    assert live == b"err [REDACTED:DEPLOY_PHRASE]\n"
    assert done and stderr_log.read_bytes() == live
