"""A task no Dask worker can take is refused before its claim, naming why — by the pipeline, and by
the hub's dispatch, which holds it with limit ``cluster`` and starts nothing for it — while the
tasks a worker can take are dispatched to the cluster through the processes the hub starts."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from speedrift.control.handlers.dispatch import execute
from speedrift.errors import Refused
from speedrift.fleet import attempts
from speedrift.fleet.config import RepoConfig
from speedrift.fleet.pipeline import Pipeline, RunOptions
from speedrift.fleet.remote.config import EXECUTOR_ENV, SCHEDULER_ENV, ExecutorConfig, resources_for
from speedrift.fleet.remote.executor import DaskExecutor
from speedrift.fleet.remote.spec import ExecutorKind
from speedrift.graph import ops
from speedrift.register.actions import DispatchParams
from tests.control.test_handlers import action, add_task, context, grant, status_of
from tests.daskcluster import DaskCluster
from tests.fleet.conftest import Workshop
from tests.fleet.remote.executor_helpers import SETTINGS, attempt_record, dask_pipeline
from tests.gitrepo import make_repo
from tests.waiting import wait_for

FAST_TOML = '[gates]\nskip = ["sast", "sca", "lint", "types"]\n[sandbox]\nmode = "off"\n'


def test_a_task_on_a_runtime_no_worker_offers_is_refused_before_its_claim_naming_what_workers_offer(
    workshop: Workshop, dask_cluster: DaskCluster
) -> None:
    workshop.add("port-it", model="codex:gpt-5")
    with pytest.raises(Refused) as refused:
        dask_pipeline(workshop, dask_cluster).run("port-it", RunOptions())
    said = refused.value.message
    assert "runtime:codex" in said and "runtime:shell=1" in said
    assert all(worker in said for worker in dask_cluster.workers())
    task = workshop.task("port-it")
    assert task["status"] == "open"  # not claimed: no attempt burned
    assert attempts.latest_attempt_dir(workshop.repo, "port-it") is None


def test_a_task_that_needs_a_gpu_or_more_memory_than_any_worker_offers_is_refused(
    workshop: Workshop, dask_cluster: DaskCluster
) -> None:
    workshop.add("train", "echo train", tags=["needs:gpu"])
    assert resources_for("shell", workshop.task("train")) == {"runtime:shell": 1.0, "gpu": 1.0}
    with pytest.raises(Refused, match="gpu=1"):
        dask_pipeline(workshop, dask_cluster).run("train", RunOptions())
    assert workshop.task("train")["status"] == "open"
    workshop.add("big", "echo big")
    limits = {"agent": {"limits": {"memory_mb": 4096}}}
    workshop.store.mutate(lambda g, now: ops.set_fields(g, "big", speedrift=limits, now=now, actor="test"))
    assert resources_for("shell", workshop.task("big")) == {"runtime:shell": 1.0, "memory": 4096.0}
    with pytest.raises(Refused, match="memory=4096"):
        dask_pipeline(workshop, dask_cluster).run("big", RunOptions())
    assert workshop.task("big")["status"] == "open"


def test_an_unreachable_scheduler_refuses_the_task_before_its_claim(workshop: Workshop) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    executor = DaskExecutor(ExecutorConfig(ExecutorKind.DASK, address, connect_timeout_s=2))
    workshop.add("hello", "echo hello > hello.txt")
    pipeline = Pipeline(workshop.repo, workshop.store, RepoConfig.model_validate(SETTINGS), executor=executor)
    with pytest.raises(Refused, match="unreachable"):
        pipeline.run("hello", RunOptions())
    assert workshop.task("hello")["status"] == "open"


def test_the_hubs_dispatch_holds_what_no_worker_takes_and_hands_the_cluster_to_what_it_starts(
    tmp_path: Path, dask_cluster: DaskCluster
) -> None:
    repo = make_repo(tmp_path / "shop", {"README.md": "# shop\n", "speedrift.toml": FAST_TOML})
    grant(repo)
    add_task(repo, "port-it", model="codex:gpt-5")
    add_task(repo, "hello", "echo hi > hello.txt")
    executor = ExecutorConfig(ExecutorKind.DASK, dask_cluster.address, connect_timeout_s=60)
    ctx = context(repo, tmp_path, executor=executor)
    assert ctx.process_env()[EXECUTOR_ENV] == "dask"
    assert ctx.process_env()[SCHEDULER_ENV] == dask_cluster.address
    outcome = execute(action("dispatch_ready", None, DispatchParams(("port-it", "hello"), max=2)), ctx)
    assert outcome.status == "succeeded", outcome.detail
    (held,) = outcome.evidence["held"]
    assert held["task"] == "port-it" and held["limit"] == "cluster"
    assert "runtime:codex" in held["reason"]
    assert list(outcome.evidence["pids"]) == ["hello"]
    assert status_of(repo, "port-it") == "open"
    wait_for(lambda: status_of(repo, "hello") in ("done", "failed"), "the dispatched attempt", 180)
    log = Path(outcome.evidence["logs"]["hello"])
    assert status_of(repo, "hello") == "done", log.read_text()[-2000:]
    record = attempt_record(attempts.latest_attempt_dir(repo, "hello") or "")
    assert record["machine"]["executor"] == "dask"
    assert record["machine"]["worker"] in dask_cluster.workers()
    assert (repo / "hello.txt").read_text() == "hi\n"
