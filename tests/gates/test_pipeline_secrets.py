"""A leaked key, end to end: the real pipeline blocks it, and no record speedrift keeps holds it."""

from __future__ import annotations

import os
from pathlib import Path

from speedrift.fleet.config import RepoConfig
from speedrift.fleet.pipeline import Pipeline, RunOptions
from speedrift.gates.suite import for_repo
from speedrift.graph import ops
from speedrift.graph.store import GraphStore
from speedrift.repo import worktrees
from tests.gitrepo import make_repo

# assembled by the agent's shell at run time, so the task's own command never holds them whole
AWS_KEY = "AKIA" + "Q3EXAMPLE7KEY2TE"
GITHUB = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
BLOB = "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWprbG1ub3A="  # only detect-secrets' entropy check sees it

AGENT = (
    'A=AKIA; A="${A}Q3EXAMPLE7KEY2TE"; '
    'G=ghp_; G="${G}a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"; '
    'B=Zm9vYmFyYmF6cXV4MTIzNDU2; B="${B}Nzg5MGFiY2RlZmdoaWprbG1ub3A="; '
    'printf \'AWS = "%s"\\nTOKEN = "%s"\\nblob = "%s"\\n\' "$A" "$G" "$B" > settings.py; '
    'echo "configured $A and $G and $B"; echo "stderr says $G $B" >&2'
)


def files_holding(folder: Path, needles: list[str], skip: set[Path]) -> list[str]:
    found: list[str] = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if Path(root, d) not in skip]
        for name in names:
            data = Path(root, name).read_bytes()
            found += [f"{Path(root, name)}: {n[:6]}…" for n in needles if n.encode() in data]
    return found


def test_a_planted_key_fails_the_attempt_and_appears_in_no_log_record_or_evidence(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"README.md": "# demo\n", "app.py": "print('v1')\n"})
    store = GraphStore(repo / ".workgraph")
    spec = ops.NewTask("configure the app", task_id="configure", exec_command=AGENT)
    store.mutate(lambda g, now: ops.add_task(g, spec, now=now, actor="test"))
    config = RepoConfig.model_validate({"default_runtime": "shell"})
    pipeline = Pipeline(repo, store, config, gates=for_repo(config.gates, store))

    outcome = pipeline.run("configure", RunOptions())

    assert outcome.status == "failed"
    task = store.load().tasks["configure"]
    assert task["speedrift"]["failure_class"] == "secret_leak"
    run_dir = Path(outcome.run_dir or "")
    events = (run_dir / "events.jsonl").read_text()
    assert "[REDACTED:aws-access-key]" in events  # redacted as it was written
    assert "[REDACTED:high-entropy-string]" in events  # scrubbed once the secrets gate had found it
    stderr = (run_dir / "stderr.log").read_text().strip()
    assert stderr == "stderr says [REDACTED:github-token] [REDACTED:high-entropy-string]"
    (manifest,) = worktrees.read_manifests(repo)
    checkout = Path(manifest.path)
    assert AWS_KEY in (checkout / "settings.py").read_text()  # the agent's work itself is kept as it is
    needles = [AWS_KEY, GITHUB, BLOB]
    assert files_holding(repo / ".speedrift", needles, skip={checkout}) == []
    assert files_holding(store.directory, needles, skip=set()) == []  # graph.jsonl, log/operations.jsonl
    messages = [entry["message"] for entry in task["log"]]
    assert any("gates on " in m for m in messages)  # the one-line gate summary is in the task log
