"""Where attempts develop, as configured: ``[executor]`` in ecosystem.toml and the environment the
hub hands what it starts; every bad value an error naming the key; the local executor recording
where it ran; how a worker is told to obtain the repository."""

from __future__ import annotations

import pickle
import socket
from argparse import Namespace
from pathlib import Path

import pytest

from speedrift import hubdir
from speedrift.cli.worker_cmds import pipeline_executor
from speedrift.control.ecosystem.load import parse_ecosystem
from speedrift.control.handlers.base import HandlerContext
from speedrift.errors import UsageError
from speedrift.fleet.pipeline import RunOptions
from speedrift.fleet.remote.config import (
    EXECUTOR_ENV,
    SCHEDULER_ENV,
    ExecutorConfig,
    RepoSourceMode,
    parse_table,
    resolve,
)
from speedrift.fleet.remote.executor import DaskExecutor, LocalExecutor
from speedrift.fleet.remote.source import is_local_url, repo_source
from speedrift.fleet.remote.spec import ExecutorKind, SourceKind
from speedrift.register.record import RepoEntry
from tests.fleet.conftest import Workshop
from tests.fleet.remote.executor_helpers import attempt_record, evidence_of
from tests.gitrepo import sh_git

SCHEDULER = "tcp://127.0.0.1:8786"


def ecosystem(tmp_path: Path, executor: str) -> Path:
    path = tmp_path / "ecosystem.toml"
    path.write_text(f'schema = 1\n\n[repos.shop]\npath = "shop"\n\n[executor]\n{executor}\n')
    return path


def test_an_executor_table_is_read_with_every_bad_value_named() -> None:
    config, problems = parse_table(
        {"backend": "dask", "scheduler": SCHEDULER, "repo_source": "bundle", "heartbeat_s": 2}
    )
    assert config == ExecutorConfig(ExecutorKind.DASK, SCHEDULER, RepoSourceMode.BUNDLE, 10.0, 2.0)
    assert problems == []
    _config, problems = parse_table(
        {"backend": "ray", "scheduler": "host:8786", "repo_source": "nfs", "heartbeat_s": 0, "shceduler": "x"}
    )
    assert sorted(key for key, _problem, _fix in problems) == [
        "backend",
        "heartbeat_s",
        "repo_source",
        "scheduler",
        "shceduler",
    ]


def test_the_environment_picks_the_backend_and_the_scheduler_alone_means_dask() -> None:
    assert resolve({}) == ExecutorConfig()
    assert resolve({SCHEDULER_ENV: SCHEDULER}).backend is ExecutorKind.DASK
    assert resolve({SCHEDULER_ENV: SCHEDULER, EXECUTOR_ENV: "local"}).backend is ExecutorKind.LOCAL
    from_file = ExecutorConfig(ExecutorKind.DASK, "tcp://10.0.0.1:8786")
    assert resolve({SCHEDULER_ENV: SCHEDULER}, from_file).scheduler == SCHEDULER  # the environment wins
    with pytest.raises(UsageError, match=r"\$SPEEDRIFT_EXECUTOR=dask names no scheduler"):
        resolve({EXECUTOR_ENV: "dask"})
    with pytest.raises(UsageError, match="not one of local, dask"):
        resolve({EXECUTOR_ENV: "ray"})
    with pytest.raises(UsageError, match="SPEEDRIFT_DASK_SCHEDULER"):
        resolve({SCHEDULER_ENV: "not an address"})


def test_ecosystem_toml_names_the_executor_and_refuses_dask_without_a_scheduler(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SCHEDULER_ENV, raising=False)
    monkeypatch.delenv(EXECUTOR_ENV, raising=False)
    path = ecosystem(tmp_path, f'backend = "dask"\nscheduler = "{SCHEDULER}"')
    assert parse_ecosystem(path.read_text(), path).executor.scheduler == SCHEDULER
    path = ecosystem(tmp_path, 'backend = "dask"')
    with pytest.raises(UsageError) as missing:
        parse_ecosystem(path.read_text(), path)
    assert "executor.backend" in missing.value.message and "scheduler" in missing.value.message
    assert f"{path}:7:" in missing.value.message  # the line of [executor]'s backend
    path = ecosystem(tmp_path, 'backend = "dask"\nshceduler = "tcp://x:1"')
    with pytest.raises(UsageError, match=r"executor\.shceduler: unknown key"):
        parse_ecosystem(path.read_text(), path)
    monkeypatch.setenv(SCHEDULER_ENV, "tcp://127.0.0.2:9999")  # overrides the file, as the register URL does
    path = ecosystem(tmp_path, 'backend = "dask"')
    assert parse_ecosystem(path.read_text(), path).executor.scheduler == "tcp://127.0.0.2:9999"


def test_the_hub_hands_its_executor_to_what_it_starts_and_the_cli_builds_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SCHEDULER_ENV, raising=False)
    monkeypatch.delenv(EXECUTOR_ENV, raising=False)
    monkeypatch.delenv(hubdir.ECOSYSTEM_ENV, raising=False)
    entry = RepoEntry(name="shop", path=tmp_path)
    inherited = {SCHEDULER_ENV: "tcp://127.0.0.9:1", "PATH": "/usr/bin"}
    local = HandlerContext(repo=tmp_path, entry=entry, env=inherited, executor=ExecutorConfig())
    assert local.process_env()[EXECUTOR_ENV] == "local" and SCHEDULER_ENV not in local.process_env()
    dask = HandlerContext(
        repo=tmp_path, entry=entry, env=inherited, executor=ExecutorConfig(ExecutorKind.DASK, SCHEDULER)
    )
    assert {k: dask.process_env()[k] for k in (EXECUTOR_ENV, SCHEDULER_ENV)} == {
        EXECUTOR_ENV: "dask",
        SCHEDULER_ENV: SCHEDULER,
    }
    assert isinstance(pipeline_executor(Namespace()), LocalExecutor)
    path = ecosystem(tmp_path, f'backend = "dask"\nscheduler = "{SCHEDULER}"')
    built = pipeline_executor(Namespace(ecosystem=str(path)))
    assert isinstance(built, DaskExecutor) and built.scheduler == SCHEDULER
    assert pickle.loads(pickle.dumps(built)).config == built.config  # it travels to a worker process
    monkeypatch.setenv(EXECUTOR_ENV, "local")  # as the hub hands it: wins over the file
    assert isinstance(pipeline_executor(Namespace(ecosystem=str(path))), LocalExecutor)


def test_the_local_executor_records_this_machine_in_the_attempt_and_its_evidence(workshop: Workshop) -> None:
    workshop.add("hello", "echo hello > hello.txt")
    result = workshop.pipeline().run("hello", RunOptions())
    assert result.status == "done", result.reason
    here = {"executor": "local", "worker": None, "host": socket.gethostname()}
    assert attempt_record(result.run_dir or "")["machine"] == here
    assert evidence_of(result.run_dir or "")["machine"] == here


def test_a_worker_fetches_from_a_shared_remote_holding_the_base_else_gets_a_bundle(
    workshop: Workshop,
) -> None:
    repo = workshop.repo
    base = sh_git(repo, "rev-parse", "main")
    bundled = repo_source(repo, repo, "main", base, RepoSourceMode.AUTO)  # no origin: a bundle
    assert bundled.kind is SourceKind.BUNDLE and bundled.bundle and bundled.ref == "refs/heads/main"
    sh_git(repo, "remote", "add", "origin", "git@127.0.0.1:shop.git")  # never contacted here
    assert repo_source(repo, repo, "main", base, RepoSourceMode.AUTO).kind is SourceKind.BUNDLE  # no ref yet
    with pytest.raises(UsageError, match="repo_source"):
        repo_source(repo, repo, "main", base, RepoSourceMode.REMOTE)
    sh_git(repo, "update-ref", "refs/remotes/origin/main", base)  # as a fetch would have left it
    shared = repo_source(repo, repo, "main", base, RepoSourceMode.AUTO)
    assert (shared.kind, shared.url, shared.ref) == (
        SourceKind.REMOTE,
        "git@127.0.0.1:shop.git",
        "refs/heads/main",
    )
    assert repo_source(repo, repo, "main", base, RepoSourceMode.BUNDLE).kind is SourceKind.BUNDLE
    assert [
        is_local_url(u) for u in ("/srv/shop.git", "file:///srv/shop", "../shop", "ssh://h/x", "h:x")
    ] == [
        True,
        True,
        True,
        False,
        False,
    ]
