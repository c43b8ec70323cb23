"""A real Dask cluster for the tests, started by the tests themselves.

``dask_cluster``: a ``LocalCluster`` of two worker processes (one thread each) on 127.0.0.1,
offering ``runtime:shell``, with ``$SPEEDRIFT_WORKER_CACHE`` set to a temp dir before it starts (its
workers inherit it). Function-scoped: a test may kill a worker. At the end the hub side's clients
(fleet/remote/executor.py) are closed before the cluster, so nothing keeps reconnecting to it.

Where ``distributed`` is missing the tests that need it are skipped with the fix — except under
``$CI``, which fails them (``pip install 'speedrift[scale]'``, which the ``dev`` extra includes).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

FIX = "pip install 'speedrift[scale]' (the dev extra includes it)"
RESOURCES = {"runtime:shell": 1}


@dataclass
class DaskCluster:
    """A running cluster: its scheduler address, a client of the test's own, the worker cache."""

    cluster: Any
    client: Any
    cache: Path

    @property
    def address(self) -> str:
        return str(self.cluster.scheduler_address)

    def workers(self) -> set[str]:
        return set(self.client.scheduler_info(n_workers=-1)["workers"])

    def pids(self) -> dict[str, int]:
        """Each worker process's pid, by its address."""
        return {str(addr): int(pid) for addr, pid in self.client.run(os.getpid).items()}

    def kill(self, address: str) -> int:
        """SIGKILL the worker process at ``address`` (its nanny may start a new one, at a new address)."""
        pid = self.pids()[address]
        os.kill(pid, signal.SIGKILL)
        return pid


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail(f"distributed is not installed: {FIX}", pytrace=False)
        pytest.skip(f"distributed is not installed: {FIX}")
    return distributed


@pytest.fixture
def dask_cluster(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[DaskCluster]:
    distributed = _distributed()
    cache = tmp_path_factory.mktemp("worker-cache")
    monkeypatch.setenv("SPEEDRIFT_WORKER_CACHE", str(cache))  # before the workers start: they inherit it
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        host="127.0.0.1",
        resources=dict(RESOURCES),
    )
    client = distributed.Client(cluster, set_as_default=False)
    try:
        client.wait_for_workers(2, timeout=120)
        yield DaskCluster(cluster, client, cache)
    finally:
        from speedrift.fleet.remote.executor import close_clients

        close_clients()
        client.close()
        cluster.close()
