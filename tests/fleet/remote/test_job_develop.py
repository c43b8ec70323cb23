"""The attempt job's Dask-free core (fleet/remote/job.py ``develop``) on real repositories, with the
shell runtime: the repository from a bundle or a remote, the agent's commit back as a bundle the
hub can fetch, gates on the worker, failures and crashes as outcomes, and nothing left behind."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import pytest

from speedrift.errors import InvalidValue
from speedrift.fleet.remote import repocache
from speedrift.fleet.remote.job import develop
from speedrift.fleet.remote.spec import JobResult, JobSpec, RepoSource, SourceKind
from tests.fleet.remote.job_helpers import branches, leftovers, make_spec, user_repo
from tests.gitrepo import commit_file, sh_git

WORKER = "tcp://127.0.0.1:1"


def run(spec: JobSpec, cache: Path, cancel: threading.Event | None = None) -> JobResult:
    return develop(spec, cancel=cancel or threading.Event(), cache=cache, worker=WORKER, host="test-host")


def test_a_job_from_a_bundle_brings_the_agents_commit_back_as_a_bundle_the_hub_fetches(
    tmp_path: Path,
) -> None:
    repo = user_repo(tmp_path / "repo")
    sh_git(repo, "rm", "-q", ".gitignore")  # nothing in the repo excludes .speedrift/: the cache does
    sh_git(repo, "commit", "-q", "-m", "no ignore file")
    cache = tmp_path / "cache"
    report = '{"status": "done", "summary": "wrote out.txt"}'
    command = f"echo made-on-worker > out.txt && echo '{report}' > \"$SPEEDRIFT_RESULT\" && echo done"
    # the machine's sandbox when it has one ([sandbox] mode auto): the cache repo is its git dir
    spec = make_spec(repo, command, config={"sandbox": {"mode": "auto"}})

    answer = run(spec, cache)

    assert answer.outcome["success"] is True, answer.outcome
    assert answer.tip is not None and answer.tip != spec.base_commit
    assert answer.bundle is not None and answer.key == spec.key and answer.worker == WORKER
    assert "fetch" in answer.timings and "cached" not in answer.timings
    assert b"done" in answer.files["events.jsonl"]
    assert "prompt.md" not in answer.files and answer.sandbox is not None
    assert answer.outcome["result_file"] == "result.json" and b"wrote out.txt" in answer.files["result.json"]
    bundle = tmp_path / "result.bundle"
    bundle.write_bytes(answer.bundle)
    sh_git(repo, "fetch", "-q", str(bundle), "HEAD:refs/remotes/worker/attempt")
    assert sh_git(repo, "rev-parse", "refs/remotes/worker/attempt") == answer.tip
    assert sh_git(repo, "show", f"{answer.tip}:out.txt") == "made-on-worker"
    assert sh_git(repo, "diff", "--name-only", spec.base_commit, answer.tip) == "out.txt"  # no report
    assert sh_git(repo, "rev-parse", "main") == spec.base_commit  # the user's repo is only read
    cache_repo = repocache.repo_path(cache, spec.repo_key)
    assert leftovers(cache) == [] and branches(cache_repo) == []
    assert len(list((cache / repocache.RESULTS_DIR).glob("*.bundle"))) == 1  # kept on the worker too

    again = run(make_spec(repo, "echo second > two.txt", task_id="t-two"), cache)

    assert again.outcome["success"] is True and again.bundle is not None
    assert "cached" in again.timings and "fetch" not in again.timings  # the base was not fetched again
    assert leftovers(cache) == []


def test_a_job_fetches_its_base_from_the_repos_remote_and_a_newer_base_fetches_again(tmp_path: Path) -> None:
    repo = user_repo(tmp_path / "repo")
    remote = tmp_path / "shared.git"
    sh_git(tmp_path, "clone", "-q", "--bare", str(repo), str(remote))
    source = RepoSource(SourceKind.REMOTE, url=str(remote), ref="refs/heads/main")
    cache = tmp_path / "cache"

    first = run(make_spec(repo, "echo a > a.txt", source=source), cache)
    newer = commit_file(repo, "b.txt", "b\n")
    sh_git(repo, "push", "-q", str(remote), "main")
    spec = make_spec(repo, "echo c > c.txt", source=source, task_id="t-c")
    second = run(spec, cache)

    assert first.outcome["success"] is True and "fetch" in first.timings
    assert second.base_commit == newer and "fetch" in second.timings
    assert sh_git(repocache.repo_path(cache, spec.repo_key), "cat-file", "-t", newer) == "commit"
    bundle = tmp_path / "second.bundle"
    assert second.bundle is not None
    bundle.write_bytes(second.bundle)
    sh_git(repo, "fetch", "-q", str(bundle), "HEAD:refs/remotes/worker/c")
    assert sh_git(repo, "show", "refs/remotes/worker/c:c.txt") == "c"


def test_a_failing_command_comes_back_failed_with_its_output_and_its_partial_work_ungated(
    tmp_path: Path,
) -> None:
    repo = user_repo(tmp_path / "repo")
    cache = tmp_path / "cache"

    spec = make_spec(repo, "echo partial > p.txt; echo broken >&2; exit 3")
    answer = run(spec, cache)

    assert answer.outcome["success"] is False and answer.outcome["exit_code"] == 3
    assert answer.outcome["failure"] == "agent_error"
    assert answer.verdict is None  # nothing failed is gated
    assert b"broken" in answer.files["stderr.log"]
    assert leftovers(cache) == []
    # what it left comes back (the hub keeps it in the failed attempt's worktree, as a local run's)
    assert answer.bundle is not None and answer.tip != answer.base_commit
    bundle = tmp_path / "partial.bundle"
    bundle.write_bytes(answer.bundle)
    sh_git(repo, "fetch", "-q", str(bundle), "HEAD:refs/remotes/worker/p")
    assert sh_git(repo, "show", "refs/remotes/worker/p:p.txt") == "partial"


def test_gates_that_fail_on_the_workers_commit_come_back_as_a_failed_verdict(tmp_path: Path) -> None:
    repo = user_repo(tmp_path / "repo")
    cache = tmp_path / "cache"
    gates = {
        "skip": ["sast", "sca", "lint", "types"],
        "tests": {"command": ["sh", "-c", "test ! -f bad.txt"]},
    }

    failed = run(make_spec(repo, "echo x > bad.txt", config={"gates": gates}, run_gates=True), cache)
    passed = run(
        make_spec(repo, "echo x > good.txt", config={"gates": gates}, run_gates=True, task_id="t-ok"), cache
    )

    assert failed.outcome["success"] is True and failed.verdict is not None
    assert failed.verdict.passed is False and failed.verdict.evidence["tip"] == failed.tip
    assert "bundle_file" not in failed.verdict.evidence  # a worker path would mean nothing on the hub
    assert "lanes" not in failed.verdict.evidence["worker_gates"]  # no graph, no policy on the worker
    assert any(item.startswith("scope") for item in failed.verdict.evidence["not_judged_on_worker"])
    assert failed.bundle is not None  # the work comes back all the same: the hub decides
    assert passed.verdict is not None
    assert passed.verdict.passed is True, passed.verdict.summary
    assert leftovers(cache) == []


def test_an_agent_that_changes_the_cache_repositorys_git_config_fails_and_the_cache_is_dropped(
    tmp_path: Path,
) -> None:
    repo = user_repo(tmp_path / "repo")
    cache = tmp_path / "cache"
    spec = make_spec(repo, "echo x > x.txt && git config core.fsmonitor /bin/true")  # unsandboxed

    answer = run(spec, cache)

    assert answer.outcome["success"] is False and answer.outcome["failure"] == "agent_error"
    assert "core.fsmonitor" in answer.outcome["reason"] and answer.verdict is None
    assert not repocache.repo_path(cache, spec.repo_key).exists()  # the next job fetches afresh
    assert leftovers(cache) == []


def test_a_cancelled_job_ends_the_agents_whole_process_group(tmp_path: Path) -> None:
    repo = user_repo(tmp_path / "repo")
    cache = tmp_path / "cache"
    pid_file = tmp_path / "sleeper.pid"
    spec = make_spec(repo, f"sleep 300 & echo $! > {pid_file}; wait")
    cancel = threading.Event()

    def cancel_once_sleeping() -> None:
        for _ in range(600):
            if pid_file.is_file() and pid_file.read_text().strip():
                break
            threading.Event().wait(0.1)
        cancel.set()

    threading.Thread(target=cancel_once_sleeping, daemon=True).start()
    answer = run(spec, cache, cancel)

    sleeper = int(pid_file.read_text())
    assert not _running(sleeper)
    assert answer.outcome["success"] is False and answer.outcome["reason"] == "cancelled"
    assert answer.bundle is None and leftovers(cache) == []


def test_a_worker_of_another_version_refuses_the_job_and_runs_nothing(tmp_path: Path) -> None:
    repo = user_repo(tmp_path / "repo")
    cache = tmp_path / "cache"

    answer = run(make_spec(repo, "touch ran.txt", version="0.0.1-other"), cache)

    assert answer.refused is not None and "0.0.1-other" in answer.refused
    assert answer.outcome == {} and answer.bundle is None
    assert not cache.exists()


def test_a_required_sandbox_the_worker_cannot_give_refuses_the_job(
    tmp_path: Path, path_without_bwrap: str
) -> None:
    repo = user_repo(tmp_path / "repo")
    cache = tmp_path / "cache"

    answer = run(make_spec(repo, "touch ran.txt", config={"sandbox": {"mode": "required"}}), cache)

    assert answer.refused is not None and "required" in answer.refused
    assert answer.sandbox is not None and answer.sandbox["used"] is False
    assert not cache.exists()


def test_a_source_that_cannot_be_fetched_is_a_crashed_outcome_not_an_exception(tmp_path: Path) -> None:
    repo = user_repo(tmp_path / "repo")
    cache = tmp_path / "cache"
    gone = RepoSource(SourceKind.REMOTE, url=str(tmp_path / "no-such-remote.git"), ref="refs/heads/main")

    answer = run(make_spec(repo, "touch ran.txt", source=gone), cache)

    assert answer.outcome["success"] is False and answer.outcome["failure"] == "crashed"
    assert WORKER in answer.outcome["reason"] and "could not fetch" in answer.outcome["reason"]
    assert answer.bundle is None and leftovers(cache) == []


def test_a_spec_that_cannot_be_a_job_raises(tmp_path: Path) -> None:
    repo = user_repo(tmp_path / "repo")
    spec = make_spec(repo, "true")

    with pytest.raises(InvalidValue, match="base_commit"):
        run(replace(spec, base_commit="main"), tmp_path / "cache")
    with pytest.raises(InvalidValue, match="repo_key"):
        run(replace(spec, repo_key="../elsewhere"), tmp_path / "cache")


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")
