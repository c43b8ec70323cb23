"""Thin bundles through the hub's pipeline on a real two-worker Dask cluster: once every worker is
known to hold a commit, an attempt ships only what follows it; when the hub's record is wrong the
worker says what it lacks, runs nothing, and the attempt goes again with the whole history and
lands once."""

from __future__ import annotations

from speedrift.fleet.pipeline import RunOptions
from speedrift.fleet.remote import held
from tests.daskcluster import DaskCluster
from tests.fleet.conftest import Workshop
from tests.fleet.remote.executor_helpers import attempt_record, commits_touching, dask_pipeline
from tests.gitrepo import sh_git


def test_once_every_worker_holds_a_commit_the_next_attempt_ships_only_what_follows_it(
    workshop: Workshop, dask_cluster: DaskCluster
) -> None:
    workshop.add("first", "echo one > one.txt")
    workshop.add("second", "echo two > two.txt")
    pipeline = dask_pipeline(workshop, dask_cluster)
    first = pipeline.run("first", RunOptions())
    assert first.status == "done", first.reason
    shipped = attempt_record(first.run_dir or "")["machine"]
    assert shipped["source"] == "bundle" and shipped["bundle_after"] is None  # nothing known yet
    base = sh_git(workshop.repo, "rev-parse", f"{first.landed_commit}~1")
    known = held.read(workshop.repo, dask_cluster.address)
    assert known == {shipped["worker"]: base}  # what the job obtained there
    # the fixture's workers share one cache: each holds what one of them fetched
    for worker in dask_cluster.workers():
        held.record(workshop.repo, dask_cluster.address, worker, base)

    second = pipeline.run("second", RunOptions())

    assert second.status == "done", second.reason
    thin = attempt_record(second.run_dir or "")["machine"]
    assert thin["bundle_after"] == base and 0 < thin["bundle_bytes"] < shipped["bundle_bytes"]
    assert "thin_bundle_lacked" not in thin
    assert commits_touching(workshop.repo, "two.txt") == 1


def test_a_worker_lacking_what_the_hub_counted_on_gets_the_whole_history_and_the_task_lands_once(
    workshop: Workshop, dask_cluster: DaskCluster
) -> None:
    workshop.add("counted", "echo counted > counted.txt")
    start = sh_git(workshop.repo, "rev-parse", "main")
    for worker in dask_cluster.workers():  # wrong: no job of this repository ran on them yet
        held.record(workshop.repo, dask_cluster.address, worker, start)

    result = dask_pipeline(workshop, dask_cluster).run("counted", RunOptions())

    assert result.status == "done", result.reason
    record = attempt_record(result.run_dir or "")["machine"]
    assert record["thin_bundle_lacked"]["commits"] == [start]
    assert record["thin_bundle_lacked"]["worker"] in dask_cluster.workers()
    assert record["bundle_after"] is None and record["bundle_bytes"] > 0  # the whole history, then
    assert commits_touching(workshop.repo, "counted.txt") == 1
    # the worker that ran it is known again, by what it obtained this time
    assert held.read(workshop.repo, dask_cluster.address)[record["worker"]] == start
