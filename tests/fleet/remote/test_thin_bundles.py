"""Thin bundles (fleet/remote/source.py, held.py, repocache.py): the hub ships only the history
after a commit every worker that may take the job is known to hold; a worker that lacks it after
all runs nothing and names what it lacks; the hub's record of what workers hold is a hint that a
torn file or a wrong entry can never turn into a wrong result."""

from __future__ import annotations

import threading
from pathlib import Path

from speedrift.fleet.remote import held, repocache
from speedrift.fleet.remote.config import RepoSourceMode
from speedrift.fleet.remote.job import develop
from speedrift.fleet.remote.source import common_ancestor, repo_source
from speedrift.fleet.remote.spec import JobResult, JobSpec, RepoSource, SourceKind
from tests.fleet.remote.job_helpers import leftovers, make_spec, user_repo
from tests.gitrepo import commit_file, sh_git

WORKER = "tcp://127.0.0.1:1"


def run(spec: JobSpec, cache: Path) -> JobResult:
    return develop(spec, cancel=threading.Event(), cache=cache, worker=WORKER, host="test-host")


def source_after(repo: Path, after: str | None) -> RepoSource:
    return repo_source(
        repo,
        repo,
        "main",
        sh_git(repo, "rev-parse", "main"),
        RepoSourceMode.BUNDLE,
        lambda: (after,) if after else (),
    )


def test_a_bundle_starts_after_the_newest_commit_every_worker_holds(tmp_path: Path) -> None:
    repo = user_repo(tmp_path / "repo")
    first = sh_git(repo, "rev-parse", "main")
    second = commit_file(repo, "b.txt", "b\n")
    newest = commit_file(repo, "c.txt", "c\n")

    whole = source_after(repo, None)
    thin = source_after(repo, second)

    assert whole.prerequisite is None and repocache.bundle_prerequisites(whole.bundle or b"") == ()
    assert thin.prerequisite == second and repocache.bundle_prerequisites(thin.bundle or b"") == (second,)
    assert len(thin.bundle or b"") < len(whole.bundle or b"")
    # two workers at different commits: the bundle starts after what both hold
    assert common_ancestor(repo, newest, [second, first]) == first
    # a commit this repository never had (a worker of another history): the whole history
    assert common_ancestor(repo, newest, ["0" * 40]) is None
    # every worker holds the base itself: nothing travels but the promise
    nothing = source_after(repo, newest)
    assert nothing.bundle == b"" and nothing.prerequisite == newest


def test_a_thin_bundle_a_worker_can_take_fetches_only_what_follows(tmp_path: Path) -> None:
    repo = user_repo(tmp_path / "repo")
    cache = tmp_path / "cache"
    assert run(make_spec(repo, "echo a > a.txt"), cache).outcome["success"] is True  # holds main now
    held_base = sh_git(repo, "rev-parse", "main")
    newer = commit_file(repo, "later.txt", "later\n")

    spec = make_spec(repo, "cat later.txt > seen.txt", source=source_after(repo, held_base), task_id="t-thin")
    answer = run(spec, cache)

    assert answer.outcome["success"] is True and "fetch" in answer.timings
    assert answer.base_commit == newer and answer.missing_base == ()
    assert answer.tip is not None and sh_git(repo, "cat-file", "-t", newer) == "commit"
    bundle = tmp_path / "thin-result.bundle"
    bundle.write_bytes(answer.bundle or b"")
    sh_git(repo, "fetch", "-q", str(bundle), "HEAD:refs/remotes/worker/thin")
    assert sh_git(repo, "show", "refs/remotes/worker/thin:seen.txt") == "later"


def test_a_worker_lacking_what_the_bundle_starts_after_runs_nothing_and_names_it(tmp_path: Path) -> None:
    repo = user_repo(tmp_path / "repo")
    cache = tmp_path / "cache"
    base = sh_git(repo, "rev-parse", "main")
    commit_file(repo, "later.txt", "later\n")
    marker = tmp_path / "ran"

    lacking = run(make_spec(repo, f"touch {marker}", source=source_after(repo, base)), cache)
    nothing = run(
        make_spec(repo, f"touch {marker}", source=source_after(repo, sh_git(repo, "rev-parse", "main"))),
        cache,
    )

    assert lacking.missing_base == (base,) and nothing.missing_base == (nothing.base_commit,)
    for answer in (lacking, nothing):
        assert answer.outcome == {} and answer.bundle is None and answer.files == {}
    assert not marker.exists() and leftovers(cache) == []
    # the whole history always does
    whole = run(
        make_spec(
            repo,
            f"touch {marker}",
            source=RepoSource(
                SourceKind.BUNDLE, bundle=source_after(repo, None).bundle, ref="refs/heads/main"
            ),
        ),
        cache,
    )
    assert whole.outcome["success"] is True and marker.exists()


def test_the_hubs_record_of_what_workers_hold_is_a_hint(tmp_path: Path) -> None:
    repo = user_repo(tmp_path / "repo")
    one, two = "a" * 40, "b" * 40
    held.record(repo, "tcp://s:1", "tcp://w1:1", one)
    held.record(repo, "tcp://s:1", "tcp://w2:1", two)
    held.record(repo, "tcp://other:1", "tcp://w1:1", two)  # another cluster: its own record

    assert held.read(repo, "tcp://s:1") == {"tcp://w1:1": one, "tcp://w2:1": two}
    assert held.of_all(held.read(repo, "tcp://s:1"), ["tcp://w1:1", "tcp://w2:1"]) == (one, two)
    assert held.of_all(held.read(repo, "tcp://s:1"), ["tcp://w1:1", "tcp://w3:1"]) == ()  # w3 unknown
    held.forget(repo, "tcp://s:1", "tcp://w1:1")
    assert held.read(repo, "tcp://s:1") == {"tcp://w2:1": two}
    held.record(repo, "tcp://s:1", "tcp://w2:1", "not a commit")  # ignored
    assert held.read(repo, "tcp://s:1") == {"tcp://w2:1": two}

    held.held_path(repo).write_text('{"tcp://s:1": {"tcp://w1:1": 5, "tcp://w2:1": "' + one + '"}')  # torn
    assert held.read(repo, "tcp://s:1") == {}
    held.held_path(repo).write_text('{"tcp://s:1": {"tcp://w1:1": 5, "tcp://w2:1": "' + one + '"}}')
    assert held.read(repo, "tcp://s:1") == {"tcp://w2:1": one}  # a hostile entry is no knowledge
