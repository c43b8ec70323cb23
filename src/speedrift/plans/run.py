"""`speedrift plan run WAVE`: carry a compiled wave to its closure, through the same supervisor,
limits and recovery as every other attempt.

One run, until the wave closes or nothing more can happen without a person:

1. **Refuse a stale plan.** The spec must lint clean and the graph must hold it as compiled
   (every task's ``speedrift.plan.spec_hash`` is the spec's): an edited plan is recompiled first.
2. **Implementation.** The wave's ready tasks are dispatched by a service loop that sees only this
   wave (fleet/service.py ``only``): worker processes, admission against the repo's, runtime's and
   machine's limits, recovery of failed attempts (retries, escalation), merge-pending landings —
   in an oversight wave, a passed attempt waits there for `speedrift plan approve`.
3. **Validation.** With every task done, the wave's validation commands run on the target's tip,
   by speedrift (plans/validation.py).
4. **Closure stages.** Integration, documentation, evaluation: each stage's role runs on the tip
   (plans/stages.py), its record is posted, and :func:`speedrift.plans.closure.adjudicate`
   decides — a gap is never a pass. A Documentation steward that names docs still to change gets
   one corrective docs task per run (owned files: those docs), and the closure starts again on the
   commit that lands it.
5. **The end.** Closed: the closure tasks are marked done (each naming the record that passed it).
   Held: the reasons and every open gap are posted as blockers on the tasks they name. Either
   way the attempt leaves a trace bundle (plans/trace.py) that `speedrift replay` re-derives.

Invariant: closure is decided only by :func:`~speedrift.plans.closure.adjudicate` over typed
records and speedrift's own validation results; the run never marks a wave closed otherwise.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from speedrift import layout
from speedrift.coord.records import Actor, Author, Draft, Kind, Record
from speedrift.coord.store import CoordStore
from speedrift.errors import Refused
from speedrift.fleet.attempt import worker_actor
from speedrift.fleet.coordination import INBOX_FILE
from speedrift.fleet.pipeline import Pipeline
from speedrift.fleet.roles.inputs import guidance_text
from speedrift.fleet.service import ServiceLoop
from speedrift.graph import ops, query
from speedrift.graph.codec import Graph
from speedrift.graph.model import DONE, Task, status_of
from speedrift.plans import closure, lint, replay, spec, stages, status, trace, validation
from speedrift.plans.closure import Closure, Phase
from speedrift.plans.compile import behind
from speedrift.plans.compile_tasks import closure_id, command_of, key_of, wave_tag
from speedrift.plans.compile_tasks import task_id as compiled_id
from speedrift.plans.metrics import AttemptTrace, measure
from speedrift.plans.spec import CLOSURE_ORDER, ClosureStage, WaveKey, WaveSpec, scope_of
from speedrift.records import read_attempt
from speedrift.repo import git
from speedrift.times import now_utc

POLL_S = 0.5
STAGE_OF_PHASE = {
    Phase.INTEGRATION: ClosureStage.INTEGRATION,
    Phase.DOCUMENTATION: ClosureStage.DOCUMENTATION,
    Phase.EVALUATION: ClosureStage.EVALUATION,
}
MAX_STAGE_RUNS = 6  # role runs per `plan run` call: a stage that keeps failing holds the wave
MAX_DOC_FIXES = 1  # corrective docs tasks per `plan run` call


@dataclass
class RunReport:
    wave: WaveKey
    decision: Closure | None = None
    held: list[str] = field(default_factory=list)  # why the run stopped short of closure
    bundle: Path | None = None
    steps: list[str] = field(default_factory=list)

    @property
    def closed(self) -> bool:
        return self.decision is not None and self.decision.closed

    def as_dict(self) -> dict[str, Any]:
        return {
            "wave": self.wave,
            "closed": self.closed,
            "decision": self.decision.as_dict() if self.decision else None,
            "held": list(self.held),
            "bundle": str(self.bundle) if self.bundle else None,
            "steps": list(self.steps),
        }


def load_compiled(pipeline: Pipeline, number: WaveKey) -> tuple[dict[str, Any], WaveSpec]:
    """The wave's spec, lint-clean and compiled as it is now; Refused with the fix otherwise."""
    repo = pipeline.repo
    path = spec.spec_path(repo, number)
    value = spec.read(path)
    findings = lint.lint(value, file=str(path.relative_to(repo)), facts=lint.repo_facts(repo))
    if findings:
        listed = "\n".join(str(finding) for finding in findings[:20])
        raise Refused(f"wave {number} has lint findings:\n{listed}", hint=f"`speedrift plan lint {path}`")
    wave = spec.parse(value)
    missing = behind(pipeline.store.load(), value, now=now_utc())
    if missing:
        listed = ", ".join(f"{change.kind.value} {change.task_id}" for change in missing[:10])
        raise Refused(
            f"wave {number} is not compiled as its spec stands (a compile would {listed})",
            hint=f"`{command_of(number, 'compile')}` first",
        )
    return value, wave


class WaveRun:
    """One `plan run` (see the module docstring)."""

    def __init__(
        self,
        pipeline: Pipeline,
        number: WaveKey,  # a wave's number, or an ad-hoc run's key (plans/adhoc.py)
        *,
        say: Callable[[str], None] = lambda _line: None,
        clock: Callable[[], datetime] = now_utc,
        stop: threading.Event | None = None,
        validation_timeout_s: float = validation.DEFAULT_TIMEOUT_S,
    ) -> None:
        self.pipeline = pipeline
        self.repo = pipeline.repo
        self.number = number
        self.say = say
        self.clock = clock
        self.stop = stop or threading.Event()
        self.validation_timeout_s = validation_timeout_s
        self.value, self.wave = load_compiled(pipeline, number)
        self.report = RunReport(number)
        self.store = CoordStore.for_scope(self.repo, scope_of(number))
        self.loop = ServiceLoop(pipeline, log=self._step, only=self._mine)
        self.loop.stop = self.stop
        self.stage_runs = 0
        self.doc_fixes = 0
        self.decided_on = ""  # the commit the last decision judged: what the bundle records
        self.diffs = ("", "")  # (commit, the wave's diffs on it): shown to every closure stage

    def _mine(self, task: Task) -> bool:
        return key_of(task) == self.number

    def _step(self, line: str) -> None:
        self.report.steps.append(line)
        self.say(line)

    # -- the run -------------------------------------------------------------------------------
    def run(self) -> RunReport:
        self._post(Kind.DECISION, f"plan run of wave {self.number} started ({self.wave.mode.value})")
        try:
            while not self.stop.is_set():
                self._implementation()
                if self.report.held or self.stop.is_set():
                    break
                if self._closure():
                    break
        finally:
            self.loop.shutdown()
        if self.stop.is_set() and not self.report.held and not self.report.closed:
            self.report.held.append("stopped before the wave closed")
        self._finish()
        return self.report

    def _implementation(self) -> None:
        """Dispatch the wave's tasks until all are done, or none can move without a person."""
        while not self.stop.is_set():
            self.loop.check_retries()
            self.loop.supervise_claims()
            self.loop.retry_pending_merges()
            self.loop.dispatch()
            self.loop.wait_idle(POLL_S)
            with self.loop.lock:
                busy = bool(self.loop.running)
            graph = self.pipeline.store.load()
            mine = stages.wave_tasks(graph, self.number)
            if all(status_of(task) == DONE for task in mine):
                return
            if busy or self._dispatchable(graph, mine):
                continue
            self.report.held += self._waiting()
            return

    def _waiting(self) -> list[str]:
        """What holds each unfinished task of the wave, in words (plans/status.py)."""
        found = status.statuses(self.repo, self.pipeline.store, self.number, now=self.clock())
        rows = [row for item in found for row in item.tasks if not row.closure and row.status != DONE]
        return [f"{row.id}: {row.status}" + (f" ({row.holds})" if row.holds else "") for row in rows]

    def _dispatchable(self, graph: Graph, mine: list[Task]) -> bool:
        """Whether some task of the wave can still start without a person: ready now, or ready
        later by time alone (a retry's backoff) — then wait for it."""
        ids = {task["id"] for task in mine}
        now = self.clock()
        if any(task["id"] in ids for task in query.ready(graph, now)):
            self.stop.wait(POLL_S)
            return True
        later = any(task["id"] in ids for task in query.ready(graph, now + timedelta(days=1)))
        if later:
            self.stop.wait(POLL_S)
        return later

    def _closure(self) -> bool:
        """One closure step; True when the run is over (closed or held)."""
        commit = self._tip()
        required = closure.required_validation(self.wave)
        done = {(item.command, item.commit) for item in validation.recorded(self.repo, self.number)}
        missing = [command for command in required if (command, commit) not in done]
        if missing:
            validation.run_commands(
                self.repo,
                self.pipeline.config,
                self.number,
                missing,
                commit,
                now=self.clock,
                timeout_s=self.validation_timeout_s,
                say=self._step,
            )
        decision = self._decide(commit)
        self.report.decision = decision
        if decision.closed:
            return True
        stage = STAGE_OF_PHASE.get(decision.phase)
        if stage is None or stage.value in decision.records:
            return self._after_verdict(decision, commit)
        if self.stage_runs >= MAX_STAGE_RUNS:
            self.report.held.append(f"{stage.value}: {MAX_STAGE_RUNS} role runs in this plan run; held")
            return True
        self.stage_runs += 1
        ran = self._run_stage(stage, decision, commit)
        if ran.record is None:
            self.report.held.append(f"{stage.value}: {ran.failure}")
            return True
        return False

    def _after_verdict(self, decision: Closure, commit: str) -> bool:
        """A stage judged and the wave is not closed: a docs fix once, else hold."""
        if (
            decision.phase is Phase.DOCUMENTATION
            and self.doc_fixes < MAX_DOC_FIXES
            and self._docs_fix(commit)
        ):
            self.doc_fixes += 1
            return False
        self.report.held += list(decision.reasons)
        return True

    def _decide(self, commit: str) -> Closure:
        tasks = [item.state for item in stages.gather(self.repo, self.pipeline.store.load(), self.number)]
        records, refused = stages.stage_records(list(self.store.read().records.values()), commit)
        for problem in refused:
            self._step(f"refused as a stage record: {problem}")
        results = validation.recorded(self.repo, self.number)
        self.decided_on = commit
        return closure.adjudicate(self.wave, tasks, results, records, commit=commit)

    def _run_stage(self, stage: ClosureStage, decision: Closure, commit: str) -> stages.StageRun:
        self._step(f"{stage.value}: running the {spec.STAGE_ROLE[stage].value} role on {commit[:12]}")
        graph = self.pipeline.store.load()
        tasks = stages.gather(self.repo, graph, self.number)
        ran_validation = [
            (item.command, item.exit_code)
            for item in validation.recorded(self.repo, self.number)
            if item.commit == commit
        ]
        inputs = stages.inputs_for(
            stage,
            self.repo,
            self.number,
            tasks,
            ran_validation,
            decision,
            diffs=self._diffs(commit, tasks),
            guidance=guidance_text(self.repo, commit),
            now=self.clock(),
        )
        ran = stages.run_stage(
            self.repo, self.pipeline.config, stage, self.number, inputs, commit, now=self.clock
        )
        said = ran.record.summary if ran.record is not None else ran.failure
        self._step(f"{stage.value}: {said}")
        return ran

    def _diffs(self, commit: str, tasks: list[stages.WaveTask]) -> str:
        """The wave's diffs on ``commit``, made once for all three stages that judge it."""
        if self.diffs[0] != commit:
            self.diffs = (commit, stages.diffs_text(self.repo, tasks))
        return self.diffs[1]

    def _docs_fix(self, commit: str) -> bool:
        """The Documentation steward named docs still to change: one corrective task owning them."""
        records, _refused = stages.stage_records(list(self.store.read().records.values()), commit)
        report = next((r.output for r in reversed(records) if r.stage is ClosureStage.DOCUMENTATION), None)
        if report is None:
            return False
        todo = [
            item
            for item in report.get("docs_to_change", [])
            if isinstance(item, dict) and not item.get("done")
        ]
        paths = sorted({str(item.get("path")) for item in todo if item.get("path")})
        if not paths:
            return False
        proposals = [item for item in report.get("proposed", []) if isinstance(item, dict)]
        task_id = compiled_id(self.number, f"docs-{self.clock().strftime('%Y%m%d%H%M%S')}")
        lines = [f"- {item.get('path')}: {item.get('reason', '')}" for item in todo]
        lines += [f"- proposed for {item.get('path')}: {item.get('summary', '')}" for item in proposals]
        description = "The Documentation steward found docs this wave must still change:\n" + "\n".join(lines)
        new = ops.NewTask(
            f"Wave {self.number}: bring the docs up to date",
            task_id=task_id,
            description=description,
            tags=[wave_tag(self.number), "docs"],
        )

        def add(graph: Graph, now: datetime) -> ops.Mutation:
            mutation = ops.add_task(graph, new, now=now, actor=worker_actor())
            task = graph.get(task_id)
            assert task is not None
            ops.set_speedrift(task, touch=paths, plan={"wave": self.number, "task": task_id, "role": "docs"})
            return mutation

        self.pipeline.store.mutate(add, actor=worker_actor())
        self._step(f"documentation: added {task_id} for {', '.join(paths)}")
        return True

    def _tip(self) -> str:
        target = self.pipeline.target_branch()
        tip = git.rev_parse(self.repo, f"refs/heads/{target}")
        if tip is None:
            raise Refused(f"the target branch {target!r} has no commit")
        return tip

    # -- the end -------------------------------------------------------------------------------
    def _finish(self) -> None:
        decision = self.report.decision
        if decision is None:  # held before the closure: still decided and traced, as every attempt is
            decision = self.report.decision = self._decide(self._tip())
        if decision.closed:
            self._close_tasks(decision)
            self._post(Kind.DECISION, f"wave {self.number} closed", data={"closure": decision.as_dict()})
        else:
            for gap in decision.open_gaps:
                targets = tuple(f"task:{task}" for task in gap.tasks)
                self._post(Kind.BLOCKER, f"{gap.kind.value}: {gap.summary}"[:500], targets=targets)
            held = "; ".join(self.report.held)
            self._post(
                Kind.DECISION,
                f"wave {self.number} held at {decision.phase.value}" + (f": {held}"[:500] if held else ""),
                data={"closure": decision.as_dict()},
            )
        self.report.bundle = self._bundle(decision)

    def _close_tasks(self, decision: Closure) -> None:
        for stage in CLOSURE_ORDER:  # in order: each stage's task is after the one before
            task_id = closure_id(self.number, stage)
            record = decision.records.get(stage.value, "")

            def finish(
                graph: Graph, now: datetime, task_id: str = task_id, record: str = record
            ) -> ops.Mutation:
                task = graph.get(task_id)
                if task is None or status_of(task) == DONE:
                    return ops.Mutation()
                return ops.done(
                    graph, task_id, now=now, actor=worker_actor(), message=f"closed: {record} passed it"
                )

            self.pipeline.store.mutate(finish, actor=worker_actor())

    def _bundle(self, decision: Closure) -> Path:
        graph = self.pipeline.store.load()
        gathered = stages.gather(self.repo, graph, self.number)
        commit = self.decided_on  # the commit the decision judged, even if the target moved since
        coordination = self.store.path.read_bytes() if self.store.path.exists() else b""
        known = replay.coordination_records(coordination)  # what replay will read: the same bytes
        records, _refused = stages.stage_records(list(known.values()), commit)
        results = tuple(item for item in validation.recorded(self.repo, self.number) if item.commit == commit)
        attempts = tuple(_attempts(self.repo, gathered))
        bundle = trace.Bundle(
            wave=self.number,
            attempt=(trace.attempts_of(self.repo, self.number) or [0])[-1] + 1,
            spec=self.value,
            commit=commit,
            tasks=tuple(item.state for item in gathered),
            attempts=attempts,
            validation=results,
            stages=tuple(records),
            coordination=coordination,
            artifacts=_artifacts(self.repo, gathered, list(known.values())),
        )
        outcome = {
            "commit": commit,
            "closure": decision.as_dict(),
            "metrics": measure(
                task_count=len(self.wave.tasks),
                verified=sum(1 for item in gathered if item.state.status == DONE and item.state.verified),
                attempts=attempts,
                records=known,
                stages=records,
                decision=decision,
            ),
        }
        target = trace.bundle_dir(self.repo, self.number, bundle.attempt)
        written = trace.write(target, bundle, outcome, now=self.clock())
        self._step(f"trace bundle: {written.relative_to(self.repo)}")
        return written

    def _post(
        self, kind: Kind, summary: str, *, targets: tuple[str, ...] = (), data: dict[str, Any] | None = None
    ) -> None:
        self.store.post(
            Draft(kind, summary, Author(Actor.SPEEDRIFT, name="plan run"), targets=targets, data=data or {}),
            now=self.clock(),
        )


ATTEMPT_FILES = (
    layout.PROMPT_FILE,
    INBOX_FILE,
    layout.ATTEMPT_FILE,
    layout.EVIDENCE_FILE,
    layout.RESULT_FILE,
)
MAX_ARTIFACT_BYTES = 4 * 1024 * 1024


def _artifacts(repo: Path, gathered: list[stages.WaveTask], records: list[Record]) -> dict[str, bytes]:
    """What the bundle keeps beside the decision's inputs: each attempt's prompt, compiled inbox,
    run record and gate evidence, and each closure role's run (its prompts and outputs) — every
    file hashed in the manifest. A file past :data:`MAX_ARTIFACT_BYTES` is left out."""
    found: dict[str, bytes] = {}

    def take(name: str, path: Path) -> None:
        try:
            if path.is_file() and path.stat().st_size <= MAX_ARTIFACT_BYTES:
                found[name] = path.read_bytes()
        except OSError:
            pass

    for item in gathered:
        for run_dir in layout.attempt_dirs(repo, item.state.id):
            for name in ATTEMPT_FILES:
                take(f"attempts/{layout.safe_name(item.state.id)}/{run_dir.name}/{name}", run_dir / name)
    for record in records:
        if not isinstance(record.data.get("stage"), str):
            continue
        for ref in record.artifact_refs:
            folder = (repo / ref).resolve()
            if not folder.is_dir() or not folder.is_relative_to(layout.state_dir(repo).resolve()):
                continue
            for path in sorted(folder.rglob("*")):
                take(f"roles/{record.id}/{path.relative_to(folder).as_posix()}", path)
    return found


def _attempts(repo: Path, gathered: list[stages.WaveTask]) -> list[AttemptTrace]:
    """Every attempt at the wave's tasks, from their run records."""
    found = []
    for item in gathered:
        for run_dir in layout.attempt_dirs(repo, item.state.id):
            record = read_attempt(run_dir)
            if record is None:
                continue
            found.append(
                AttemptTrace(
                    task=item.state.id,
                    attempt=int(run_dir.name),
                    role="developer",
                    runtime=record.runtime or "?",
                    fallback=record.raw.get("fallback_from") is not None,
                    outcome=record.state_text,
                )
            )
    return found
