"""The attempt job a Dask worker runs: one attempt's development phase, on the worker machine.

Job: :func:`run_job` is what the hub submits (``client.submit(run_job, spec, key=spec.key,
pure=False, …)``); :func:`develop` is its Dask-free core. For a :class:`~.spec.JobSpec` it obtains
the repository at the base commit in the worker's cache (fleet/remote/repocache.py), takes a
checkout detached there (one kept from an earlier job and reset: fleet/remote/slots.py), runs the
agent runtime there as the hub's pipeline does (fleet/pipeline.py ``_run_agent``: the environment
from the worker's own with the job's :class:`~.spec.EnvRecipe`, the worker's sandbox, the budgets
and rlimits), commits what the agent left (repo/landing.py ``commit_all``, no hook), runs the
repo's gate suite on that commit (fleet/lanegate.py ``suite_for``) and returns a
:class:`~.spec.JobResult`: the commits made as a git bundle (of ``HEAD``; the hub fast-forwards its
attempt branch to the tip), the verdict, the run dir's files (redacted) and timings. Landing stays
on the hub.

Invariants:

- A job never raises for an attempt's failure: whatever goes wrong after the job began (a fetch,
  the worktree, the agent, the gates) comes back as a failed ``crashed`` outcome naming the worker
  — only arguments that cannot be a job (a malformed key, commit or task) raise.
- Whatever happens, a one-off worktree, the run dir and the running record are removed before the
  job returns (a kept checkout stays for the next job, which resets it: fleet/remote/slots.py);
  the result bundle stays in the cache's ``results/`` (the newest 50).
- The agent runs in its own process group (agents/session.py); a cancel — the hub's
  ``distributed.Event(CANCEL_PREFIX + key)``, or the hub's heartbeat (``HEARTBEAT_PREFIX + key``)
  unchanged for ``max(3 × heartbeat_s, 60 s)`` — ends the whole group. A worker process that dies
  leaves a running record whose group the next job's sweep ends (fleet/remote/orphans.py).
- A job whose thin bundle starts after commits this worker's cache lacks runs nothing and answers
  ``missing_base``: the hub sends it again with the whole history.
- A job Dask runs again after its first worker vanished (``STARTED_PREFIX + key`` names another
  worker) runs nothing and answers ``rerun_of``: the hub retries the attempt under a new key.
- A worker of another speedrift version, without the runtime, or without the sandbox a
  ``required`` mode asks for, refuses the job (``refused``), running nothing.
- ``distributed`` is imported only inside :func:`run_job` (the ``scale`` extra).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson

import speedrift
from speedrift import layout, redact, statehome
from speedrift.agents import choose as registry
from speedrift.agents import env as agent_env
from speedrift.agents import result, sandbox, session
from speedrift.agents.protocol import CANCELLED, FailureKind, RunOutcome, RunRequest
from speedrift.errors import InvalidValue, SpeedriftError
from speedrift.failure_class import FailureClass
from speedrift.fleet import lanegate
from speedrift.fleet.merging import outcome_record
from speedrift.fleet.remote import orphans, repocache, slots
from speedrift.fleet.remote.spec import (
    CANCEL_PREFIX,
    HEARTBEAT_PREFIX,
    STARTED_PREFIX,
    JobResult,
    JobSpec,
)
from speedrift.gates.verdict import GateBlocked, GateVerdict
from speedrift.procs import identity_of
from speedrift.repo import git, gitboundary, landing

MAX_FILE_BYTES = 4 * 1024 * 1024  # a run-dir file larger than this comes back as its last 4 MB
CUT_FILE = "files-cut.json"  # in JobResult.files when a file was cut: {"cut": {name: size}, …}
NOT_SENT = frozenset({layout.PROMPT_FILE})  # the hub wrote the prompt itself
HEARTBEAT_FLOOR_S = 60.0  # the hub's heartbeat may stay unchanged this long at least
POLL_S = 1.0  # how long one wait on the cancel event lasts
# what the hub's suite judges that the worker's cannot (it has no graph): in every worker verdict
NOT_JUDGED = (
    "scope: files in other open tasks' declared scope (the worker has no graph)",
    "lanes: the drift policy's blocking lanes (read with the hub's graph)",
)


def heartbeat_window(heartbeat_s: float) -> float:
    """How long the hub's heartbeat may stay unchanged before the job stops: the hub stopped waiting."""
    return max(3 * heartbeat_s, HEARTBEAT_FLOOR_S)


# --- the Dask side ------------------------------------------------------------------------------
def run_job(spec: JobSpec) -> JobResult:
    """The function a Dask worker runs for one attempt (see the module docstring)."""
    from distributed import Event, get_worker

    worker = get_worker()
    address, host = str(worker.address), socket.gethostname()
    refused = refusal(spec)
    if refused is not None:
        return _answer(spec, address, host, refused=refused)
    client: Any = worker.client  # distributed's metadata and Event calls are untyped
    started_key = STARTED_PREFIX + spec.key
    earlier = client.get_metadata(started_key, default=None)
    if earlier is not None and earlier != address:
        return _answer(spec, address, host, rerun_of=str(earlier))
    client.set_metadata(started_key, address)
    cancel = threading.Event()
    event_type: Any = Event
    event = event_type(CANCEL_PREFIX + spec.key, client=client)
    watch = CancelWatch(
        cancel,
        cancelled=lambda timeout: bool(event.wait(timeout=timeout)),
        heartbeat=lambda: client.get_metadata(HEARTBEAT_PREFIX + spec.key, default=None),
        window_s=heartbeat_window(spec.heartbeat_s),
    )
    watch.start()
    try:
        answer = develop(spec, cancel=cancel, cache=statehome.worker_cache_dir(), worker=address, host=host)
    finally:
        watch.stop()
    if watch.hub_gone and answer.outcome.get("reason") == CANCELLED:  # the hub's own cancel says "cancelled"
        answer = replace(answer, outcome={**answer.outcome, "reason": f"{CANCELLED}: {watch.why}"})
    return answer


class CancelWatch:
    """Sets ``cancel`` when the hub cancels the job (``cancelled(timeout)`` answers True) or stops
    refreshing its heartbeat (``heartbeat()`` returns the same value for ``window_s`` seconds of
    ``clock``). Compares values, never clocks: the hub's clock and ours need not agree. A failing
    look (the scheduler unreachable) counts as no change."""

    def __init__(
        self,
        cancel: threading.Event,
        *,
        cancelled: Callable[[float], bool],
        heartbeat: Callable[[], object],
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cancel = cancel
        self._cancelled = cancelled
        self._heartbeat = heartbeat
        self.window_s = window_s
        self._clock = clock
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self.why = ""
        self.hub_gone = False  # cancelled because the heartbeat stopped (not by the hub's event)
        self._last: object = self._look()
        self._changed = clock()

    def _look(self) -> object:
        try:
            return self._heartbeat()
        except Exception:
            return getattr(self, "_last", None)

    def poll(self, timeout: float = POLL_S) -> bool:
        """One look; True once the job must stop (``cancel`` is set then)."""
        try:
            if self._cancelled(timeout):
                self.why = "the hub cancelled the attempt"
                self.cancel.set()
                return True
        except Exception:
            self._done.wait(timeout)  # the scheduler unreachable: look again later
        value = self._look()
        now = self._clock()
        if value != self._last:
            self._last, self._changed = value, now
        elif now - self._changed >= self.window_s:
            self.why = (
                f"the hub's heartbeat stopped for {now - self._changed:.0f}s: nobody waits for this job"
            )
            self.hub_gone = True
            self.cancel.set()
            return True
        return False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="speedrift-job-cancel", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.is_set() and not self.cancel.is_set():
            if self.poll():
                return

    def stop(self) -> None:
        """Stop watching. Not joined: the thread may sit in one wait on the cancel event for up to
        :data:`POLL_S`, and the job's answer must not wait for it — whatever it does after this is
        harmless (it can only set the finished job's own cancel flag) and it ends within POLL_S."""
        self._done.set()


# --- the job ------------------------------------------------------------------------------------
def refusal(spec: JobSpec) -> str | None:
    """Why this worker will not run ``spec`` at all (None: it will)."""
    if spec.version != speedrift.__version__:
        return (
            f"this worker runs speedrift {speedrift.__version__}, the hub {spec.version}: "
            "install the hub's version on the worker"
        )
    try:
        registry.runtime_for(spec.runtime)
    except InvalidValue as error:
        return error.message
    return None


def develop(spec: JobSpec, *, cancel: threading.Event, cache: Path, worker: str, host: str) -> JobResult:
    """Run ``spec``'s attempt in ``cache`` (see the module docstring); ``worker``/``host`` name this
    worker in the result. Raises InvalidValue only for a spec that cannot be a job."""
    refused = refusal(spec)
    if refused is not None:
        return _answer(spec, worker, host, refused=refused)
    _check(spec)
    decision = sandbox.decide(spec.config.sandbox.mode, network=spec.config.sandbox.network)
    try:
        sandbox.require(spec.config.sandbox.mode, decision)
    except sandbox.SandboxUnavailable as error:
        said = f"{error.message} ({error.hint})" if error.hint else error.message
        return _answer(spec, worker, host, refused=said, sandbox=decision.evidence())
    return _Job(spec, cancel, cache, worker, host, decision).run()


def _check(spec: JobSpec) -> None:
    task_id = spec.task.get("id")
    if not isinstance(task_id, str) or not task_id:
        raise InvalidValue("JobSpec.task has no id", hint="pass the task as claimed")
    if not spec.key or not spec.branch:
        raise InvalidValue("JobSpec needs a key and a branch")
    repocache.check_repo_key(spec.repo_key)
    repocache.check_commit(spec.base_commit)


def _answer(spec: JobSpec, worker: str, host: str, **fields: Any) -> JobResult:
    return JobResult(
        key=spec.key,
        task_id=str(spec.task.get("id", "")),
        attempt=spec.attempt,
        worker=worker,
        host=host,
        base_commit=spec.base_commit,
        **fields,
    )


class _Job:
    def __init__(
        self,
        spec: JobSpec,
        cancel: threading.Event,
        cache: Path,
        worker: str,
        host: str,
        decision: sandbox.Decision,
    ) -> None:
        self.spec, self.cancel, self.cache = spec, cancel, cache
        self.worker, self.host, self.decision = worker, host, decision
        self.task_id = str(spec.task["id"])
        self.job = repocache.safe_name(spec.key)
        self.run_dir = repocache.run_dir(cache, self.job)
        self.timings: dict[str, float] = {}
        self.checkout: repocache.Checkout | None = None
        self.slot: slots.Slot | None = None  # the kept checkout this job holds
        self.holds = ""  # the newest base the cache holds, once obtained
        self.record: orphans.Running | None = None
        self.result_kept = False  # the agent's report was copied into the run dir
        self.poisoned = False  # the agent changed the cache repository's git config or hooks

    def run(self) -> JobResult:
        try:
            return self._attempt()
        except repocache.MissingBase as missing:  # nothing ran: the hub sends the whole history
            return _answer(self.spec, self.worker, self.host, missing_base=missing.commits)
        except Exception as error:
            said = error.message if isinstance(error, SpeedriftError) else f"{type(error).__name__}: {error}"
            reason = redact.redact_text(f"the job failed on worker {self.worker} ({self.host}): {said}")
            crashed = RunOutcome(success=False, failure=FailureKind.CRASHED, reason=reason[:4000])
            files: dict[str, bytes] = {}
            with contextlib.suppress(Exception):
                files = self._files()
            return self._answer(crashed, files=files)
        finally:
            self._clean()

    def _answer(self, outcome: RunOutcome, **fields: Any) -> JobResult:
        record = outcome_record(outcome)
        record["result_file"] = layout.RESULT_FILE if self.result_kept else None  # in files, by name
        record["fault"] = outcome.fault.value if outcome.fault is not None else None  # the provider's side
        return _answer(
            self.spec,
            self.worker,
            self.host,
            outcome=record,
            sandbox=self.decision.evidence(),
            timings=dict(self.timings),
            holds=self.holds,
            **fields,
        )

    @contextlib.contextmanager
    def _timed(self, name: str) -> Iterator[None]:
        began = time.monotonic()
        try:
            yield
        finally:
            self.timings[name] = round(time.monotonic() - began, 3)

    def _attempt(self) -> JobResult:
        spec, cache = self.spec, self.cache
        began = time.monotonic()
        orphans.sweep(cache)
        obtained = repocache.obtain(cache, spec.repo_key, spec.source, spec.base_commit, tag=self.job)
        # "fetch": the base commit was fetched; "cached": the cache held it already
        self.timings["fetch" if obtained.fetched else "cached"] = round(time.monotonic() - began, 3)
        repo = obtained.repo
        self.holds = repocache.newest_base(repo, spec.base_commit)

        # a checkout kept from an earlier job when a slot is free (fleet/remote/slots.py), else a
        # one-off worktree
        def busy(worktree: Path) -> bool:
            return orphans.agent_left_in(cache, worktree)

        self.slot = slots.take(cache, spec.repo_key, repo, spec.repo_name, busy=busy)
        checkout = (
            self.slot.checkout
            if self.slot is not None
            else repocache.Checkout(repo, repocache.worktree_path(cache, self.job, spec.repo_name))
        )
        self.checkout = checkout
        self.record = orphans.Running(
            spec.key, self.job, identity_of(), spec.repo_key, checkout, self.run_dir
        )
        orphans.write(cache, self.record)  # before the checkout is touched: a sweep can always clean up
        began = time.monotonic()
        if self.slot is not None and slots.prepare(cache, spec.repo_key, checkout, spec.base_commit):
            self.timings["checkout"] = round(time.monotonic() - began, 3)  # a kept one, reset
        else:
            if self.slot is None:
                repocache.add_worktree(cache, spec.repo_key, checkout, spec.base_commit)
            self.timings["worktree"] = round(time.monotonic() - began, 3)  # made afresh
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with self._timed("agent"):
            outcome = self._agent(repo, checkout.worktree)
        tip: str | None = spec.base_commit
        problem: str | None = None
        # whatever the agent left is committed and brought back, failed or cancelled too: the hub
        # keeps a failed attempt's work in its worktree as a local run's is (nothing is lost)
        if spec.git_identity:  # commit as the hub commits in this repo, not as the worker's user
            git.adopt(git.RepoFacts(repo, git.common_dir(repo), spec.git_identity))
        with self._timed("commit"):
            try:
                title = str(spec.task.get("title", self.task_id))
                landing.commit_all(repo, checkout.worktree, self.task_id, title, hooks=None)
            except landing.CommitRejected as rejected:
                problem = rejected.message
            tip = git.rev_parse(checkout.worktree, "HEAD")
        verdict: GateVerdict | None = None
        changed = tip is not None and tip != spec.base_commit
        if spec.run_gates and outcome.success and changed and problem is None and not self.cancel.is_set():
            assert tip is not None
            with self._timed("gates"):
                verdict = self._gates(repo, checkout.worktree, tip)
        bundle: bytes | None = None
        if changed:
            with self._timed("bundle"):
                bundle = repocache.bundle(cache, checkout.worktree, spec.base_commit, self.job)
        return self._answer(
            outcome, tip=tip, bundle=bundle, verdict=verdict, files=self._files(), commit_problem=problem
        )

    def _agent(self, repo: Path, worktree: Path) -> RunOutcome:
        """The agent's run in the worktree, as fleet/pipeline.py ``_run_agent`` runs it."""
        spec, run_dir = self.spec, self.run_dir
        if self.cancel.is_set():
            return RunOutcome(success=False, failure=FailureKind.CRASHED, reason=CANCELLED)
        prompt_file = layout.prompt_path(run_dir)
        prompt_file.write_text(spec.prompt)
        request = RunRequest(
            task_id=self.task_id,
            attempt=spec.attempt,
            prompt=spec.prompt,
            prompt_file=prompt_file,
            cwd=worktree,
            model=spec.model,
            exec_command=spec.exec_command,
            options=dict(spec.options),
            budgets=spec.budgets,
        )
        environment = agent_env.agent_env(
            {**spec.env.extra, "SPEEDRIFT_TASK_ID": self.task_id, "SPEEDRIFT_ATTEMPT": str(spec.attempt)},
            allow=spec.env.allow,
            passthrough_secrets=spec.env.secrets,
        )
        before = gitboundary.snapshot(repo, worktree)
        outcome = session.run_session(
            registry.runtime_for(spec.runtime),
            request,
            env=environment,
            run_dir=run_dir,
            cancel=self.cancel,
            on_start=self._started,
            sandboxed=self._policy(repo, worktree),
            limits=spec.limits,
        )
        report, _problem = result.read_report(outcome.result_file) if outcome.result_file else (None, "")
        if outcome.result_file and outcome.result_file.is_file():
            kept = layout.result_path(run_dir)
            shutil.copyfile(outcome.result_file, kept)
            redact.redact_file(kept)
            self.result_kept = True
        outcome = result.apply_report(outcome, report)
        after = gitboundary.snapshot(repo, worktree, before)
        holding = [change for change in gitboundary.changes(before, after) if not change.routine]
        if holding:
            # the cache repository is the worker's, not the user's, but nothing of it is trusted
            # again: it is dropped after this job; the attempt fails as the hub's would be held
            self.poisoned = True
            outcome.success, outcome.failure = False, FailureKind.AGENT_ERROR
            outcome.reason = redact.redact_text(
                "the agent changed the git configuration or hooks of the worker's cache repository: "
                + gitboundary.describe(holding)
            )
        return outcome

    def _started(self, pgid: int) -> None:
        """The agent runs: its group goes into the running record (a dead worker's sweep ends it)."""
        if self.record is not None:
            self.record = replace(self.record, agent=identity_of(pgid))
            orphans.write(self.cache, self.record)

    def _policy(self, repo: Path, worktree: Path) -> sandbox.Policy | None:
        """As fleet/pipeline.py ``_sandbox_policy``: writable only the worktree (and the private
        HOME and TMPDIR under the run dir), the cache repository read-only."""
        decision = self.decision
        if not decision.used or decision.bwrap is None:
            return None
        return sandbox.Policy(
            decision.bwrap,
            worktree=worktree,
            run_dir=self.run_dir,
            git_common_dir=git.common_dir(repo),
            network=decision.network,
            runtime=self.spec.runtime,
            hide=self.spec.config.sandbox.hidden(),
        )

    def _gates(self, repo: Path, worktree: Path, tip: str) -> GateVerdict:
        """The repo's gate suite on ``tip`` against the base; a gate that cannot run fails."""
        spec = self.spec
        names: list[str] = []
        try:
            # the bare cache repository holds no graph and no drift policy: no lanes gate, and the
            # scope gate knows only this task's scope (NOT_JUDGED, in the evidence)
            # nor a target branch: the tip is compared with the job's base, never a target's tip
            suite = lanegate.suite_for(repo, None, spec.config, log_to_task=False)
            suite = replace(suite, follow_target=False)
            names = [gate.name for gate in suite.gates]
            verdict = suite.check(repo, worktree, spec.base_commit, tip, spec.task)
        except GateBlocked as blocked:
            verdict = blocked.verdict
        except Exception as error:
            said = error.message if isinstance(error, SpeedriftError) else f"{type(error).__name__}: {error}"
            verdict = GateVerdict(
                passed=False,
                summary=redact.redact_text(f"the gates could not run on worker {self.worker}: {said}")[:4000],
                failure_class=FailureClass.ENV_BOOTSTRAP,
            )
        verdict.evidence.pop("bundle_file", None)  # a worker path: the evidence travels in the verdict
        verdict.evidence.setdefault("tip", tip)
        verdict.evidence.setdefault("worker", self.worker)
        verdict.evidence["worker_gates"] = names
        verdict.evidence["not_judged_on_worker"] = list(NOT_JUDGED)
        return verdict

    def _files(self) -> dict[str, bytes]:
        """The run dir's files, redacted; one larger than :data:`MAX_FILE_BYTES` as its last part
        (from a line start), named in :data:`CUT_FILE`."""
        files: dict[str, bytes] = {}
        cut: dict[str, int] = {}
        if not self.run_dir.is_dir():
            return files
        for path in sorted(self.run_dir.iterdir()):
            if path.name in NOT_SENT or path.is_symlink() or not path.is_file():
                continue
            redact.redact_file(path)
            size = path.stat().st_size
            with path.open("rb") as handle:
                if size > MAX_FILE_BYTES:
                    handle.seek(size - MAX_FILE_BYTES)
                    data = handle.read()
                    data = data[data.find(b"\n") + 1 :]
                    cut[path.name] = size
                else:
                    data = handle.read()
            files[path.name] = data
        if cut:
            files[CUT_FILE] = orjson.dumps({"cut": cut, "kept_bytes": MAX_FILE_BYTES})
        return files

    def _clean(self) -> None:
        """A one-off worktree, the run dir and the running record go, whatever happened; a kept
        checkout's slot is given back last (the next job resets it)."""
        spec = self.spec
        try:
            if self.checkout is not None:
                with contextlib.suppress(Exception):
                    repocache.discard_worktree(self.cache, spec.repo_key, self.checkout)
            shutil.rmtree(self.run_dir, ignore_errors=True)
            if self.poisoned:
                with contextlib.suppress(Exception):
                    repocache.discard_repo(self.cache, spec.repo_key)
            orphans.drop(self.cache, self.job)
        finally:
            if self.slot is not None:
                self.slot.release()
