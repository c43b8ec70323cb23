"""Waiting for one Dask job on the hub (fleet/remote/executor.py submits it): the hub's heartbeat
while it waits, the worker the job started on as soon as the scheduler says, a cancel passed on to
the job, and how the wait ended — the job's result, or the outcome that stands for it.

Invariants: a job whose worker went away ends as a TRANSIENT outcome naming the worker
(transient_infra: the recovery policy retries it as a new attempt); a cancelled job's agent is
ended on the worker (the job kills its process group on the cancel event) before the hub drops
the future; ``distributed`` is imported only when a wait needs it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from speedrift import extras
from speedrift.agents.protocol import CANCELLED, FailureKind, RunOutcome
from speedrift.fleet import attempts
from speedrift.fleet.remote.spec import CANCEL_PREFIX, HEARTBEAT_PREFIX, STARTED_PREFIX, JobResult

if TYPE_CHECKING:
    from distributed import Client, Future

TICK_S = 0.2


def distributed_module() -> Any:
    """Dask's ``distributed`` (a UsageError naming the ``scale`` extra when it is missing)."""
    return extras.require("distributed", "the dask executor")


def transient(reason: str) -> RunOutcome:
    return RunOutcome(success=False, failure=FailureKind.TRANSIENT, reason=reason)


def gone(worker: str | None) -> RunOutcome:
    where = worker or "(its address unknown)"
    return transient(
        f"the Dask worker {where} running this attempt went away before it finished; nothing it did "
        "was received, and the attempt is retried as a new one (on any worker)"
    )


def _started_worker(raw: object) -> str | None:
    """The worker address in a job's STARTED metadata (an address, or a record naming it)."""
    if isinstance(raw, str) and raw:
        return raw
    if isinstance(raw, Mapping):
        for name in ("worker", "address"):
            value = raw.get(name)
            if isinstance(value, str) and value:
                return value
    return None


class Wait:
    """Waiting for one job: the hub's heartbeat while it waits, the worker it started on as soon as
    the scheduler says, a cancel passed on to the job, and how the wait ended."""

    def __init__(
        self,
        client: Client,
        future: Future[JobResult],
        key: str,
        heartbeat_s: float,
        run_dir: Path,
        placed: dict[str, Any],
    ) -> None:
        # distributed is untyped: its client and future are used as Any here
        self.client: Any = client
        self.future: Any = future
        self.key = key
        self.heartbeat_s = heartbeat_s
        self.run_dir = run_dir
        self.placed = dict(placed)
        self._done = threading.Event()

    def _beat(self) -> None:
        while True:
            # the scheduler briefly away: the future says what happened
            with contextlib.suppress(Exception):
                self.client.set_metadata(HEARTBEAT_PREFIX + self.key, time.time())
                if self.placed.get("worker") is None:
                    self._learn_worker()
            if self._done.wait(self.heartbeat_s):
                return

    def _learn_worker(self) -> str | None:
        if self.placed.get("worker") is None:
            try:
                raw = self.client.get_metadata(STARTED_PREFIX + self.key, default=None)
            except Exception:  # the scheduler is gone: the worker stays unknown
                raw = None
            found = _started_worker(raw)
            if found is not None:
                self.placed["worker"] = found
                attempts.write_attempt(self.run_dir, {"machine": self.placed})
        worker = self.placed.get("worker")
        return worker if isinstance(worker, str) else None

    def until_done(self, cancel: threading.Event, cancel_wait_s: float) -> JobResult | RunOutcome:
        beat = threading.Thread(target=self._beat, name=f"heartbeat-{self.key}", daemon=True)
        beat.start()
        finished = threading.Event()  # set by Dask the moment the job's future is done
        self.future.add_done_callback(lambda _future: finished.set())
        try:
            while not finished.wait(TICK_S):
                if cancel.is_set():
                    return self._cancelled(cancel_wait_s)
            return self._result()
        finally:
            self._done.set()
            beat.join(timeout=5)

    def _cancelled(self, wait_s: float) -> JobResult | RunOutcome:
        """Tell the job to end its agent (it kills the agent's process group), give it the kill
        grace to report, then drop the future (Dask alone would leave the agent running)."""
        distributed = distributed_module()
        with contextlib.suppress(Exception):  # the scheduler is gone: so is the job's way to report
            distributed.Event(CANCEL_PREFIX + self.key, client=self.client).set()
        deadline = time.monotonic() + wait_s
        while not self.future.done() and time.monotonic() < deadline:
            time.sleep(TICK_S)
        if self.future.done():
            got = self._result()
            if isinstance(got, JobResult):
                return got
        with contextlib.suppress(Exception):  # already gone
            self.client.cancel(self.future)
        return RunOutcome(success=False, failure=FailureKind.CRASHED, reason=CANCELLED)

    def _result(self) -> JobResult | RunOutcome:
        distributed = distributed_module()
        from distributed.scheduler import KilledWorker

        try:
            got = self.future.result()
        except KilledWorker as killed:
            last = getattr(getattr(killed, "last_worker", None), "address", None)
            return gone(self._learn_worker() or (str(last) if last else None))
        except (distributed.comm.CommClosedError, OSError, TimeoutError) as error:
            worker = self._learn_worker()
            return transient(
                f"the Dask cluster lost the job of this attempt ({type(error).__name__}: {error}) while "
                f"worker {worker or '(unknown)'} ran it; it is retried as a new attempt"
            )
        except Exception as error:  # a cancelled future, or the job's own bug on the worker
            worker = self._learn_worker()
            said = str(error)[:500] or type(error).__name__
            return RunOutcome(
                success=False,
                failure=FailureKind.CRASHED,
                reason=f"the attempt's job failed on the Dask worker {worker or '(unknown)'}: "
                f"{type(error).__name__}: {said}",
            )
        if not isinstance(got, JobResult):
            return transient(f"the Dask job returned {type(got).__name__}, not a JobResult")
        return got
