"""The executor seam: where an attempt's development phase (the agent's run) happens.

:class:`LocalExecutor` runs it here, in the attempt's worktree (agents/session.py), as speedrift
always did. :class:`DaskExecutor` ships it to a Dask worker as a :class:`~.spec.JobSpec`, waits,
and applies the :class:`~.spec.JobResult` to the hub's attempt (fleet/remote/ingest.py): the run's
files in the hub's run dir, the worker's commits fast-forwarded onto the attempt's branch, the
outcome rebuilt. Everything else — the claim, the worktree, the prompt, the boundary checks, the
gates, the review and the merge queue — stays on the hub, whichever executor ran the agent.

Invariants: ``distributed`` is imported only here and in fleet/remote/wait.py (the wait for a
job), and only when a Dask executor is used: the default path never needs it. One client per
process and scheduler, connected on first use; an executor holds only its config (and its last look
at the workers), so a pipeline carrying one pickles into a worker process. A job whose worker went
away comes back as a TRANSIENT failure naming the worker (transient_infra: the recovery policy
retries it as a new attempt, which Dask may place on any worker); a cancelled attempt's agent is
ended on the worker (its process group, by the job) before the hub gives up on it; a job whose thin
bundle its worker could not take is sent once more with the whole history. Every attempt records
where it ran and how its repository travelled (``machine``: executor, worker, host, source) in
``attempt.json``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import speedrift
from speedrift.agents import sandbox, session
from speedrift.agents.protocol import (
    CANCELLED,
    AgentEvent,
    FailureKind,
    ProviderFault,
    RunOutcome,
    RunRequest,
    Runtime,
)
from speedrift.agents.rlimits import RLimitPlan
from speedrift.errors import SpeedriftError, UsageError
from speedrift.fleet import attempts, merging, supervisor
from speedrift.fleet.attempt import Attempt
from speedrift.fleet.config import RepoConfig
from speedrift.fleet.remote import held, ingest
from speedrift.fleet.remote.config import ExecutorConfig, Offers, resources_for
from speedrift.fleet.remote.source import repo_source
from speedrift.fleet.remote.spec import (
    EnvRecipe,
    ExecutorKind,
    JobResult,
    JobSpec,
    SourceKind,
    make_key,
)
from speedrift.fleet.remote.wait import Wait, distributed_module, gone, transient
from speedrift.gates.verdict import GateVerdict
from speedrift.graph.model import Task
from speedrift.graph.store import GraphStore
from speedrift.repo import git

if TYPE_CHECKING:
    from distributed import Client, Future

CANCEL_WAIT_S = 30.0  # after a cancel, beyond the agent's kill grace, the wait for the job to end
# how long one look at the cluster's workers serves for thin bundles: a worker that joined since
# and takes the job says what it lacks, and the job goes again with the whole history
OFFERS_TTL_S = 5.0


def machine(executor: ExecutorKind, worker: str | None, host: str | None) -> dict[str, Any]:
    """Where an attempt ran, as ``attempt.json`` and the evidence record it."""
    return {"executor": executor.value, "worker": worker, "host": host}


@dataclass
class Development:
    """One development phase, whichever executor runs it: the attempt and its task as claimed,
    the request and environment the local session needs, and what a remote job is built from."""

    repo: Path
    store: GraphStore
    config: RepoConfig
    attempt: Attempt
    task: Task
    runtime: Runtime
    request: RunRequest
    env: dict[str, str]  # the agent's environment here (agents/env.py)
    recipe: EnvRecipe  # how a worker builds it from its own
    cancel: threading.Event
    on_event: Callable[[AgentEvent], None] | None = None
    on_start: Callable[[int], None] | None = None
    sandboxed: sandbox.Policy | None = None
    limits: RLimitPlan | None = None


@dataclass
class Developed:
    """What the development phase came to: the agent's outcome, where it ran, and — from a worker
    — its gate verdict when it PASSED on exactly the tip now on the attempt's branch (a failed one
    is never passed on: the hub gates itself) and the worker's sandbox decision."""

    outcome: RunOutcome
    machine: dict[str, Any]
    verdict: GateVerdict | None = None
    sandbox: dict[str, Any] | None = None


class Executor(Protocol):
    kind: ExecutorKind

    def preflight(self, runtime: str, task: Task) -> str | None:
        """Why no machine can take ``task`` on ``runtime`` now (None: one can)."""
        ...

    def develop(self, work: Development) -> Developed: ...


class LocalExecutor:
    """The agent runs on this machine, in the attempt's worktree (exactly what speedrift did before)."""

    kind = ExecutorKind.LOCAL

    def preflight(self, runtime: str, task: Task) -> str | None:
        return None  # the runtime's own preflight (fleet/admission.py) is the local one

    def develop(self, work: Development) -> Developed:
        here = machine(ExecutorKind.LOCAL, None, socket.gethostname())
        attempts.write_attempt(work.attempt.run_dir, {"machine": here})
        outcome = session.run_session(
            work.runtime,
            work.request,
            env=work.env,
            run_dir=work.attempt.run_dir,
            cancel=work.cancel,
            on_event=work.on_event,
            on_start=work.on_start,
            sandboxed=work.sandboxed,
            limits=work.limits,
        )
        return Developed(outcome, here)


def executor_for(config: ExecutorConfig) -> Executor:
    """The executor ``config`` names."""
    return DaskExecutor(config) if config.backend is ExecutorKind.DASK else LocalExecutor()


def cluster_check(config: ExecutorConfig) -> Callable[[str, Task], str | None]:
    """For one dispatch: why no worker can take a task on a runtime (None: one can), from at most
    one scheduler query (made at the first question; an unreachable scheduler is every answer)."""
    executor = DaskExecutor(config)
    seen: list[Offers | str] = []

    def check(runtime: str, task: Task) -> str | None:
        if not seen:
            try:
                seen.append(executor.offers())
            except ClusterUnreachable as error:
                seen.append(error.message)
        found = seen[0]
        return found if isinstance(found, str) else found.refusal(resources_for(runtime, task))

    return check


# --- the client, one per process and scheduler -----------------------------------------------------------
_clients: dict[tuple[int, str], Client] = {}
_clients_lock = threading.Lock()


class ClusterUnreachable(SpeedriftError):
    """The Dask scheduler did not answer."""


def client_for(config: ExecutorConfig) -> Client:
    """This process's client of ``config.scheduler``, connected on first use. Raises
    ClusterUnreachable when the scheduler does not answer within ``connect_timeout_s``."""
    address = config.scheduler or ""
    key = (os.getpid(), address)
    with _clients_lock:
        known = _clients.get(key)
        if known is not None and known.status in ("running", "connecting"):
            return known
        distributed = distributed_module()
        try:
            made: Client = distributed.Client(address, timeout=config.connect_timeout_s, set_as_default=False)
        except (OSError, TimeoutError) as error:
            raise ClusterUnreachable(
                f"the Dask scheduler {address} is unreachable: {error}",
                hint="start it (`speedrift cluster up`, or `dask scheduler`), or fix [executor] scheduler",
            ) from None
        _clients[key] = made
        return made


def close_clients() -> None:
    """Close this process's clients (a test's cluster going away, a hub stopping)."""
    with _clients_lock:
        made: list[Any] = list(_clients.values())  # distributed is untyped
        _clients.clear()
    for client in made:
        with contextlib.suppress(Exception):
            client.close(timeout=10)


class DaskExecutor:
    """Attempts develop on a Dask cluster (see the module docstring)."""

    kind = ExecutorKind.DASK

    def __init__(self, config: ExecutorConfig) -> None:
        if config.backend is not ExecutorKind.DASK or not config.scheduler:
            raise UsageError('a Dask executor needs [executor] backend = "dask" and a scheduler')
        self.config = config
        self._seen: tuple[float, Offers] | None = None  # the workers, as last asked (_held)

    @property
    def scheduler(self) -> str:
        return self.config.scheduler or ""

    def offers(self) -> Offers:
        """One scheduler query: every worker and the resources it offers. Raises ClusterUnreachable."""
        client = client_for(self.config)
        try:
            info = client.scheduler_info(n_workers=-1)
        except (OSError, TimeoutError) as error:
            raise ClusterUnreachable(f"the Dask scheduler {self.scheduler} did not answer: {error}") from None
        workers = {
            str(address): {str(k): float(v) for k, v in (details.get("resources") or {}).items()}
            for address, details in (info.get("workers") or {}).items()
        }
        return Offers(self.scheduler, workers)

    def preflight(self, runtime: str, task: Task) -> str | None:
        try:
            return self.offers().refusal(resources_for(runtime, task))
        except ClusterUnreachable as error:
            return error.message

    # --- one job -----------------------------------------------------------------------------------
    def develop(self, work: Development) -> Developed:
        attempt = work.attempt
        worktree = attempt.worktree
        start = git.rev_parse(worktree, "HEAD") or attempt.base_commit  # a revision builds on the last round
        thin = True  # the first job's bundle may start after what the workers hold (fleet/remote/held.py)
        refused_thin: dict[str, Any] = {}  # a worker that lacked what the thin bundle started after
        while True:
            key = make_key(work.repo.name, attempt.task_id, attempt.number, uuid.uuid4().hex[:12])
            placed = machine(ExecutorKind.DASK, None, None) | {"scheduler": self.scheduler, "job": key}
            attempts.write_attempt(attempt.run_dir, {"machine": placed})
            try:
                client = client_for(self.config)
                spec = self._spec(work, key, start, thin)
            except ClusterUnreachable as error:
                return Developed(transient(error.message), placed)
            except UsageError as error:  # how the worker would get the repository is misconfigured
                said = f"{error.message}; fix: {error.hint}" if error.hint else error.message
                return Developed(RunOutcome(success=False, failure=FailureKind.CONFIG, reason=said), placed)
            placed |= _shipped(spec) | refused_thin
            attempts.write_attempt(attempt.run_dir, {"machine": placed})
            expected = ingest.Expected(key, attempt.task_id, attempt.number, os.getpid())
            resources = resources_for(attempt.runtime, work.task)
            from speedrift.fleet.remote.job import run_job

            try:
                future: Future[JobResult] = client.submit(
                    run_job, spec, key=key, pure=False, resources=resources, retries=0
                )
            except (OSError, TimeoutError) as error:  # the scheduler went away since it was asked
                said = f"the Dask scheduler {self.scheduler} took no job: {error}"
                return Developed(transient(said), placed)
            waited = Wait(client, future, key, self.config.heartbeat_s, attempt.run_dir, placed)
            got = waited.until_done(work.cancel, work.request.budgets.kill_grace_s + CANCEL_WAIT_S)
            if isinstance(got, RunOutcome):
                return Developed(got, waited.placed)
            if got.missing_base and spec.source.prerequisite is not None:
                # the worker lacks what it was counted on to hold: nothing ran; the whole history now
                ingest.ensure_current(got, expected, work.store, attempt.run_dir)  # or raises
                held.forget(work.repo, self.scheduler, got.worker)
                lacked = {"worker": got.worker, "commits": list(got.missing_base)}
                refused_thin = {"thin_bundle_lacked": lacked}
                thin = False
                continue
            return self._ingest(work, got, expected, start, waited.placed)

    def _ingest(
        self, work: Development, got: JobResult, expected: ingest.Expected, start: str, placed: dict[str, Any]
    ) -> Developed:
        attempt = work.attempt
        ingest.ensure_current(got, expected, work.store, attempt.run_dir)  # or raises: nothing lands
        if got.rerun_of:  # its first worker went away; another one answered that nothing ran again
            ran = placed | machine(ExecutorKind.DASK, got.rerun_of, None) | {"answered_by": got.worker}
            attempts.write_attempt(attempt.run_dir, {"machine": ran})
            return Developed(gone(got.rerun_of), ran)
        ran = placed | machine(ExecutorKind.DASK, got.worker or None, got.host or None)
        attempts.write_attempt(attempt.run_dir, {"machine": ran})
        if got.missing_base:  # even the whole history did not do: this worker's cache is broken
            said = ", ".join(commit[:12] for commit in got.missing_base)
            reason = f"the Dask worker {got.worker} could not take the repository's history (it lacks {said})"
            return Developed(transient(reason), ran)
        if got.holds:  # what its cache holds now (the base, or newer: another job's there)
            held.record(work.repo, self.scheduler, got.worker, got.holds)
        applied = ingest.apply(
            got,
            expected,
            store=work.store,
            run_dir=attempt.run_dir,
            worktree=attempt.worktree,
            branch=attempt.branch,
            start=start,
        )
        if got.refused:
            said = f"the Dask worker {got.worker} refused the job: {got.refused}"
            return Developed(RunOutcome(success=False, failure=FailureKind.CONFIG, reason=said), ran)
        outcome = rebuilt_outcome(got.outcome)
        if outcome.failure is FailureKind.CRASHED and outcome.reason.startswith(CANCELLED):
            outcome.reason = CANCELLED  # as a local run says it (a stop reopens such a task)
        if got.commit_problem and outcome.success:
            failed = FailureKind.AGENT_ERROR
            outcome = replace(outcome, success=False, failure=failed, reason=got.commit_problem)
        verdict = None
        if (
            got.verdict is not None
            and got.verdict.passed
            and applied.tip is not None
            and got.tip == applied.tip
            and start == attempt.base_commit  # judged against the attempt's base, as the hub's gate is
        ):
            verdict = got.verdict
            verdict.evidence["tip"] = applied.tip
            verdict.evidence.setdefault("gated_on", got.worker)
        return Developed(outcome, ran, verdict, got.sandbox)

    def _held(self, work: Development) -> tuple[str, ...]:
        """For each worker that can take the attempt, the newest base its cache was last seen to
        hold of the repository (fleet/remote/held.py); empty when one of them is not known (or the
        scheduler does not answer): the bundle then carries the whole history."""
        known = held.read(work.repo, self.scheduler)
        if not known:
            return ()
        now = time.monotonic()
        if self._seen is None or now - self._seen[0] > OFFERS_TTL_S:
            try:
                self._seen = (now, self.offers())
            except ClusterUnreachable:
                return ()
        return held.of_all(known, self._seen[1].capable(resources_for(work.attempt.runtime, work.task)))

    def _spec(self, work: Development, key: str, start: str, thin: bool) -> JobSpec:
        attempt, request = work.attempt, work.request
        mode = self.config.repo_source

        def bases() -> tuple[str, ...]:
            return self._held(work) if thin else ()

        return JobSpec(
            key=key,
            version=speedrift.__version__,
            repo_name=work.repo.name,
            repo_key=supervisor.repo_key(work.repo),
            source=repo_source(work.repo, attempt.worktree, attempt.branch, start, mode, bases),
            base_commit=start,
            branch=attempt.branch,
            target_branch=attempt.target_branch,
            task=dict(work.task),
            attempt=attempt.number,
            prompt=request.prompt,
            runtime=attempt.runtime,
            model=request.model,
            exec_command=request.exec_command,
            options=dict(request.options),
            budgets=request.budgets,
            env=work.recipe,
            config=work.config,
            limits=work.limits,
            run_gates=True,
            hub_host=socket.gethostname(),
            heartbeat_s=self.config.heartbeat_s,
            git_identity=tuple(git.identity_env(work.repo).items()),
        )


def _shipped(spec: JobSpec) -> dict[str, Any]:
    """How the job's repository travelled, for ``attempt.json``: from the remote, or a bundle of
    the whole history or of what follows ``bundle_after``."""
    source = spec.source
    if source.kind is not SourceKind.BUNDLE:
        return {"source": source.kind.value}
    return {
        "source": source.kind.value,
        "bundle_after": source.prerequisite,
        "bundle_bytes": len(source.bundle or b""),
    }


def rebuilt_outcome(raw: Mapping[str, Any]) -> RunOutcome:
    """The worker's outcome (fleet/merging.py ``outcome_record``'s shape) read back, with its own
    verdict: success, failure kind and provider fault as the worker judged them."""
    outcome = merging.outcome_from(dict(raw))
    success = raw.get("success") is True
    failure_raw = raw.get("failure")
    failure = next((k for k in FailureKind if k.value == failure_raw), None)
    fault = next((f for f in ProviderFault if f.value == raw.get("fault")), None)
    if not success and failure is None:
        failure = FailureKind.AGENT_ERROR
    return replace(outcome, success=success, failure=failure, fault=fault, result_file=None)
