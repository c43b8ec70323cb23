"""A Dask result that is not the waiting attempt's — another job's key, or an attempt recovery
already ended — is recognized on the hub, recorded as discarded, and nothing of it lands; a result
that is the attempt's is taken onto its branch only by fast-forward."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from speedrift.fleet.config import RepoConfig
from speedrift.fleet.pipeline import Pipeline, RunOptions
from speedrift.fleet.remote import ingest
from speedrift.fleet.remote.config import ExecutorConfig
from speedrift.fleet.remote.executor import DaskExecutor, Developed, Development
from speedrift.fleet.remote.ingest import DISCARDED_FILE, IngestFailed, StaleResult
from speedrift.fleet.remote.spec import ExecutorKind, JobResult
from speedrift.graph import ops
from speedrift.graph.model import speedrift_data
from speedrift.repo import worktrees
from tests.fleet.conftest import Workshop
from tests.fleet.remote.executor_helpers import SETTINGS
from tests.gitrepo import commit_file, sh_git

WORKER = "tcp://127.0.0.1:9"  # a worker address nothing listens on: no cluster is needed here


def work_from(repo: Path, start: str, branch: str, files: dict[str, str]) -> tuple[str, bytes]:
    """A commit on ``branch`` after ``start`` made in a clone (as a worker makes it), and the
    bundle of ``start..tip`` it would send back."""
    clone = repo.parent / f"worker-clone-{branch.replace('/', '-')}"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True, capture_output=True)
    sh_git(clone, "checkout", "-q", "-b", branch, start)
    tip = ""
    for name, text in files.items():
        tip = commit_file(clone, name, text, f"worker: {name}")
    bundle = subprocess.run(
        ["git", "bundle", "create", "-q", "-", f"refs/heads/{branch}", f"^{start}"],
        cwd=clone,
        check=True,
        capture_output=True,
    ).stdout
    return tip, bundle


@dataclass
class Delivery:
    """What the fake cluster delivers: a result for another job key, or for an attempt recovery
    ends (``end_attempt``) while the job runs."""

    other_key: bool = False
    end_attempt: bool = False


class DeliveringExecutor(DaskExecutor):
    """A Dask executor whose cluster is a fake: ``develop`` builds the worker's result itself (a
    real commit, a real bundle) and hands it to the real ingestion path."""

    def __init__(self, delivery: Delivery) -> None:
        super().__init__(ExecutorConfig(ExecutorKind.DASK, WORKER))
        self.delivery = delivery

    def preflight(self, runtime: str, task: dict[str, object]) -> str | None:
        return None

    def develop(self, work: Development) -> Developed:
        attempt = work.attempt
        key = f"speedrift-attempt-{attempt.task_id}-{attempt.number}"
        tip, bundle = work_from(work.repo, attempt.base_commit, attempt.branch, {"late.txt": "late\n"})
        if self.delivery.end_attempt:  # recovery failed the attempt meanwhile (its worker presumed dead)
            work.store.mutate(
                lambda g, now: ops.fail(g, attempt.task_id, reason="presumed dead", now=now, actor="recovery")
            )
        got = JobResult(
            key=key + ("-earlier" if self.delivery.other_key else ""),
            task_id=attempt.task_id,
            attempt=attempt.number,
            worker=WORKER,
            host="elsewhere",
            outcome={"success": True, "reason": "", "final_text": "done"},
            base_commit=attempt.base_commit,
            tip=tip,
            bundle=bundle,
            files={"events.jsonl": b'{"kind": "message", "text": "late"}\n'},
        )
        expected = ingest.Expected(key, attempt.task_id, attempt.number, os.getpid())
        placed = {"executor": "dask", "worker": None, "host": None}
        return self._ingest(work, got, expected, attempt.base_commit, placed)


@pytest.mark.parametrize(
    "delivery", [Delivery(other_key=True), Delivery(end_attempt=True)], ids=["another-key", "ended-attempt"]
)
def test_a_stale_dask_result_is_discarded_and_nothing_of_it_lands(
    workshop: Workshop, delivery: Delivery
) -> None:
    workshop.add("late", "echo late > late.txt")
    before = sh_git(workshop.repo, "rev-parse", "main")
    pipeline = Pipeline(
        workshop.repo,
        workshop.store,
        RepoConfig.model_validate(SETTINGS),
        executor=DeliveringExecutor(delivery),
    )
    with pytest.raises(StaleResult) as stale:
        pipeline.run("late", RunOptions())
    assert stale.value.claim_held is delivery.other_key
    assert sh_git(workshop.repo, "rev-parse", "main") == before
    assert not (workshop.repo / "late.txt").exists()
    run_dir = workshop.repo / ".speedrift" / "runs" / "late" / "1"
    (discarded,) = json.loads((run_dir / DISCARDED_FILE).read_text())
    assert discarded["worker"] == WORKER and discarded["attempt"] == 1
    assert ("speedrift-attempt-late-1" in discarded["why"]) is delivery.other_key
    assert not (run_dir / "events.jsonl").exists()  # nothing of it was written
    task = workshop.task("late")
    assert task["status"] == "failed"  # released by this process, or left as recovery recorded it
    assert speedrift_data(task).get("worker") is None or delivery.end_attempt
    for manifest in worktrees.read_manifests(workshop.repo):  # an unused worktree may go; none moved
        assert sh_git(workshop.repo, "rev-parse", manifest.branch) == before


def test_a_result_that_does_not_descend_from_the_attempts_branch_is_never_forced_onto_it(
    workshop: Workshop, tmp_path: Path
) -> None:
    base = sh_git(workshop.repo, "rev-parse", "main")
    start = commit_file(workshop.repo, "other.txt", "other\n", "moves main on")
    worktree = tmp_path / "wt"
    sh_git(workshop.repo, "worktree", "add", "-q", "-b", "speedrift/t/1", str(worktree), start)
    sibling, bundle = work_from(workshop.repo, base, "side", {"side.txt": "side\n"})  # beside start
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    result = JobResult("k", "t", 1, WORKER, "elsewhere", tip=sibling, bundle=bundle, base_commit=base)
    with pytest.raises(IngestFailed, match="does not descend"):
        ingest.fetch_result(worktree, "speedrift/t/1", start, result, run_dir)
    assert sh_git(worktree, "rev-parse", "HEAD") == start
    tip, ahead = work_from(workshop.repo, start, "speedrift/t/1", {"ok.txt": "ok\n"})
    taken = ingest.fetch_result(
        worktree, "speedrift/t/1", start, replace(result, tip=tip, bundle=ahead), run_dir
    )
    assert taken == tip == sh_git(worktree, "rev-parse", "HEAD")
    assert (worktree / "ok.txt").read_text() == "ok\n"
    assert sh_git(workshop.repo, "rev-parse", "main") == start  # no other ref moved
    assert list(run_dir.iterdir()) == []  # the received bundle does not stay
