"""Ad-hoc runs: `speedrift adhoc run --task "…"` — one transient wave, drafted, verified, compiled,
run and closed by the same machinery as a numbered wave, without entering the numbered roadmap.

A run is named by its *run id*, ``<UTC yyyymmdd-hhmmss>-<slug of the task>`` (sortable; ``-2``,
``-3``… when taken), and its wave by the key ``adhoc-<run id>`` (plans/spec.py :data:`WaveKey`):
its spec says ``"wave": 0`` and ``"adhoc": "<run id>"`` and lives in the run's directory
``.speedrift/plans/adhoc/<run id>/`` (git-excluded) with ``run.json`` (the task, when, the state,
the decision, the trace bundle) and the draft's records (``draft/<k>/``). Its tasks are
``adhoc-<run id>-<local>`` with the closure ``adhoc-<run id>.<stage>``, its coordination scope and
state ``adhoc-<run id>``, its traces ``.speedrift/traces/adhoc-<run id>/attempt-<k>/``.

The steps are the numbered wave's: the Wave Architect and the Plan Verifier in the bounded loop of
plans/draft.py (:func:`~speedrift.plans.draft.architect_rounds`) with speedrift's schema and lint
checks between them; the spec written; plans/compiler.py; plans/run.py's :class:`WaveRun`; its
closure. The state moves ``drafting → drafted → compiled → running → closed | held``; a run that
fails at any step is ``held`` with the reasons.

Invariants: nothing under ``plans/`` is written and no numbered wave is named (``plan status``,
``plan lint`` and ``plan metrics`` never see an ad-hoc run); nothing reaches the graph unless the
last draft round was lint-clean and verified; ``run.json`` is written whole (atomically) at each
step, so it always says where the run stopped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson

from speedrift import fsutil, layout, safejson
from speedrift.coord.records import Actor, Author
from speedrift.errors import InvalidValue, NotFound, Refused, SpeedriftError
from speedrift.fleet.decompose import files_text, numbered_record_dir
from speedrift.fleet.pipeline import Pipeline
from speedrift.fleet.roles.inputs import guidance_text
from speedrift.graph.codec import Graph
from speedrift.graph.ids import slugify
from speedrift.graph.model import status_of
from speedrift.graph.store import GraphStore
from speedrift.plans import compiler, draft, lint, project, spec, status, templates
from speedrift.plans.compile_tasks import compiled_tasks, stage_of
from speedrift.plans.run import WaveRun
from speedrift.repo import git
from speedrift.textclip import clip
from speedrift.times import iso_utc, now_utc

RUN_FILE = "run.json"
RUN_SCHEMA = "speedrift.adhoc-run/1"
SLUG_CHARS = 24
AUTHOR = Author(Actor.SPEEDRIFT, name="adhoc run")


class State(StrEnum):
    DRAFTING = "drafting"  # the Architect and the Verifier are at work
    DRAFTED = "drafted"  # verified and lint-clean: the spec is written
    COMPILED = "compiled"  # its tasks and closure are in the graph
    RUNNING = "running"  # dispatched: `plan run`'s loop carries it
    CLOSED = "closed"  # the closure passed
    HELD = "held"  # stopped short: not verified, refused, or the closure held (see ``held``)


@dataclass(frozen=True)
class Request:
    task: str
    template: str | None = None
    mode: spec.Mode | None = None  # default: the project's (or the template pack's)
    max_rounds: int = draft.DEFAULT_MAX_ROUNDS


@dataclass(frozen=True)
class AdhocRun:
    """What ``run.json`` holds: one ad-hoc run and where it stands."""

    id: str
    task: str
    created: str
    state: State
    updated: str = ""
    mode: str | None = None
    template: str | None = None
    title: str | None = None
    spec_hash: str | None = None
    draft_record: str | None = None  # repo-relative
    tasks: tuple[str, ...] = ()  # the graph ids compiled (closure included)
    held: tuple[str, ...] = ()
    decision: Mapping[str, Any] | None = None  # the closure decision (plans/closure.py)
    bundle: str | None = None  # the trace bundle, repo-relative

    @property
    def key(self) -> str:
        return spec.adhoc_key(self.id)

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema": RUN_SCHEMA,
            "run": self.id,
            "key": self.key,
            "task": self.task,
            "created": self.created,
            "updated": self.updated,
            "state": self.state.value,
            "mode": self.mode,
            "template": self.template,
            "title": self.title,
            "spec_hash": self.spec_hash,
            "draft_record": self.draft_record,
            "tasks": list(self.tasks),
            "held": list(self.held),
            "decision": dict(self.decision) if self.decision is not None else None,
            "bundle": self.bundle,
        }


# --- run ids and run.json ----------------------------------------------------------------------
def runs_dir(repo: Path) -> Path:
    return layout.plans_state_dir(repo) / spec.ADHOC_DIR


def base_id(task: str, now: datetime) -> str:
    """``<yyyymmdd-hhmmss>-<slug>``: the UTC second the run started and the task's first words."""
    slug = slugify(task)[:SLUG_CHARS].strip("-") or "task"
    return f"{now.astimezone(UTC).strftime('%Y%m%d-%H%M%S')}-{slug}"


def _claim_dir(repo: Path, task: str, now: datetime) -> str:
    """A new run's id, its directory created (so two runs never share one)."""
    base = base_id(task, now)
    runs_dir(repo).mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        run_id = base if n == 1 else f"{base}-{n}"
        try:
            spec.adhoc_dir(repo, run_id).mkdir()
        except FileExistsError:
            continue
        return run_id
    raise Refused(f"too many ad-hoc runs named {base}", hint="wait a second, or say the task differently")


def run_ids(repo: Path) -> list[str]:
    """Every ad-hoc run that has a run.json, oldest first."""
    folder = runs_dir(repo)
    if not folder.is_dir():
        return []
    found = (e.name for e in folder.iterdir() if e.is_dir() and (e / RUN_FILE).is_file())
    return sorted(name for name in found if spec.ADHOC_RUN_ID.match(name))


def resolve(repo: Path, given: str) -> str:
    """The run id ``given`` names: a run id, or its key ``adhoc-<run id>``; NotFound otherwise."""
    run_id = given.removeprefix(spec.ADHOC_PREFIX)
    if not spec.ADHOC_RUN_ID.match(run_id) or not (spec.adhoc_dir(repo, run_id) / RUN_FILE).is_file():
        raise NotFound(f"no ad-hoc run {clip(given, 80)!r}", hint="`speedrift adhoc list` lists them")
    return run_id


def save(repo: Path, run: AdhocRun) -> None:
    data = orjson.dumps(run.as_dict(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    fsutil.write_atomic(spec.adhoc_dir(repo, run.id) / RUN_FILE, data)


def load(repo: Path, run_id: str) -> AdhocRun:
    """The run's run.json, checked; InvalidValue naming the file and field when it is not one."""
    path = spec.adhoc_dir(repo, run_id) / RUN_FILE
    try:
        value = safejson.loads(path.read_bytes())
    except FileNotFoundError:
        raise NotFound(f"no ad-hoc run {run_id!r}", hint="`speedrift adhoc list` lists them") from None
    except ValueError as error:
        raise InvalidValue(f"{path}: not valid JSON: {error}") from None
    try:
        return _from_dict(value, run_id)
    except (KeyError, TypeError, ValueError) as error:
        raise InvalidValue(
            f"{path}: not an ad-hoc run record ({clip(repr(error), 200)})",
            hint="it is speedrift's own state: remove the run's directory if it was damaged",
        ) from None


def _from_dict(value: Any, run_id: str) -> AdhocRun:
    if not isinstance(value, dict) or value.get("schema") != RUN_SCHEMA or value.get("run") != run_id:
        raise ValueError(f"schema must be {RUN_SCHEMA} and run {run_id}")

    def text(name: str) -> str | None:
        item = value.get(name)
        if item is not None and not isinstance(item, str):
            raise TypeError(f"{name} must be a string")
        return item

    def texts(name: str) -> tuple[str, ...]:
        items = value.get(name) or []
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise TypeError(f"{name} must be a list of strings")
        return tuple(items)

    decision = value.get("decision")
    if decision is not None and not isinstance(decision, dict):
        raise TypeError("decision must be an object")
    return AdhocRun(
        id=run_id,
        task=str(value["task"]),
        created=str(value["created"]),
        state=State(value["state"]),
        updated=text("updated") or "",
        mode=text("mode"),
        template=text("template"),
        title=text("title"),
        spec_hash=text("spec_hash"),
        draft_record=text("draft_record"),
        tasks=texts("tasks"),
        held=texts("held"),
        decision=decision,
        bundle=text("bundle"),
    )


def _relative(repo: Path, path: Path) -> str:
    try:
        return path.relative_to(repo).as_posix()
    except ValueError:
        return str(path)


# --- the run -----------------------------------------------------------------------------------
@dataclass
class _Prepared:
    mode: spec.Mode
    pack: templates.Pack | None
    profile: project.Profile
    commit: str
    facts: lint.RepoFacts


@dataclass
class Runner:
    """One `adhoc run` (see the module docstring); :meth:`start` or :meth:`resume` it."""

    pipeline: Pipeline
    say: Callable[[str], None] = lambda _line: None
    clock: Callable[[], datetime] = now_utc
    stop: threading.Event = field(default_factory=threading.Event)

    @property
    def repo(self) -> Path:
        return self.pipeline.repo

    def _save(self, run: AdhocRun, **changes: Any) -> AdhocRun:
        run = replace(run, **changes, updated=iso_utc(self.clock()))
        save(self.repo, run)
        return run

    def start(self, request: Request) -> AdhocRun:
        """Draft, write, compile and run a new ad-hoc wave for ``request``. Raises SpeedriftError
        before the run exists when the request cannot be planned (an unknown template, no commit,
        a dark-factory run without a tests gate); after that, a failure leaves the run ``held``
        with the reason (and is raised again when it is an error to show)."""
        if not request.task.strip():
            raise Refused("the task is empty", hint='say what the run must deliver: --task "…"')
        if not 1 <= request.max_rounds <= draft.MAX_ROUNDS:
            raise Refused(f"--max-rounds {request.max_rounds}: give 1 to {draft.MAX_ROUNDS}")
        ready = self._prepare(request)
        now = self.clock()
        run_id = _claim_dir(self.repo, request.task, now)
        run = self._save(
            AdhocRun(
                id=run_id,
                task=request.task,
                created=iso_utc(now),
                state=State.DRAFTING,
                mode=ready.mode.value,
                template=ready.pack.name if ready.pack else None,
            )
        )
        self.say(f"ad-hoc run {run_id} ({ready.mode.value}): {spec.adhoc_dir(self.repo, run_id)}")
        try:
            run = self._draft(run, request, ready)
            if run.state is State.HELD:
                return run
            run = self._compile(run)
        except BaseException as error:  # refused, failed or interrupted: never left half-way
            self._save(run, state=State.HELD, held=(_why(error),))
            raise
        return self._run(run)

    def resume(self, run_id: str) -> AdhocRun:
        """Run a compiled (or held, or interrupted) ad-hoc wave again: after an approval, a fix,
        or a stop. Refused for a run that was never compiled, or is closed."""
        run = load(self.repo, run_id)
        if run.state is State.CLOSED:
            raise Refused(f"ad-hoc run {run_id} is closed", hint="start a new one with `speedrift adhoc run`")
        if not run.tasks:
            raise Refused(
                f"ad-hoc run {run_id} was never compiled ({run.state.value}): nothing to resume",
                hint="start a new one with `speedrift adhoc run`",
            )
        return self._run(run)

    def _prepare(self, request: Request) -> _Prepared:
        pack = templates.load(request.template) if request.template else None
        profile = project.load(self.repo)
        mode = request.mode or draft.chosen_mode(profile, pack)
        commit = git.rev_parse(self.repo, "HEAD")
        if commit is None:
            raise Refused(f"{self.repo} has no commit to plan on", hint="make a first commit, then run it")
        facts = lint.repo_facts(self.repo)
        if mode is spec.Mode.DARK_FACTORY and not facts.tests_gate_blocks:  # no Architect could fix that
            raise Refused(
                "a dark-factory run needs a tests gate that can block, and this repo's cannot: "
                + facts.tests_gate_why,
                hint="give the repo tests, or set [gates.tests] command in speedrift.toml (docs/gates.md); "
                "or run it with --mode oversight",
            )
        return _Prepared(mode, pack, profile, commit, facts)

    def _draft(self, run: AdhocRun, request: Request, ready: _Prepared) -> AdhocRun:
        repo, commit = self.repo, ready.commit
        record_dir = numbered_record_dir(spec.adhoc_dir(repo, run.id) / "draft")
        run = self._save(run, draft_record=_relative(repo, record_dir))
        text = draft.request_text(draft.Request(request.task, "--task"))
        given = {
            "request": text,
            "wave": wave_text(ready.mode),
            "files": files_text(repo, commit),
            "project": draft.project_text(ready.profile),
            "template": ready.pack.prompt_text() if ready.pack else "",
            "guidance": guidance_text(repo, commit),
        }
        target = spec.spec_path(repo, run.key)
        loop = draft.Loop(
            spec.ADHOC_WAVE,
            ready.mode,
            given,
            judged_against=text,
            commit=commit,
            facts=ready.facts,
            shown=lint.display_name(repo, target),
            record_dir=record_dir,
            again="speedrift adhoc run --task '…'",
            max_rounds=request.max_rounds,
            complete=lambda wave: {**wave, "adhoc": run.id},
        )
        rounds = draft.architect_rounds(repo, self.pipeline.config, loop, self.say)
        last = rounds[-1]
        if not last.passed:
            why = [f"not verified in {len(rounds)} round(s); nothing was compiled"]
            return self._save(run, state=State.HELD, held=(*why, *draft.last_findings(last)))
        fsutil.write_atomic(target, spec.canonical(last.wave))
        self.say(f"drafted: {clip(str(last.wave['title']), 200)} ({len(last.wave['tasks'])} task(s))")
        return self._save(
            run, state=State.DRAFTED, title=str(last.wave["title"]), spec_hash=spec.spec_hash(last.wave)
        )

    def _compile(self, run: AdhocRun) -> AdhocRun:
        done = compiler.compile_plan(self.repo, self.pipeline.store, run.key, author=AUTHOR)
        tasks = tuple(done.compiled.task_ids)
        self.say(f"compiled: {', '.join(tasks)}")
        return self._save(run, state=State.COMPILED, tasks=tasks)

    def _run(self, run: AdhocRun) -> AdhocRun:
        try:
            wave_run = WaveRun(self.pipeline, run.key, say=self.say, clock=self.clock, stop=self.stop)
        except SpeedriftError as error:
            self._save(run, state=State.HELD, held=(_why(error),))
            raise
        run = self._save(run, state=State.RUNNING, held=())
        try:
            report = wave_run.run()
        except BaseException as error:  # interrupted or crashed: never left "running"
            self._save(run, state=State.HELD, held=(_why(error),))
            raise
        decision = report.decision.as_dict() if report.decision is not None else None
        bundle = _relative(self.repo, report.bundle) if report.bundle is not None else None
        state = State.CLOSED if report.closed else State.HELD
        return self._save(run, state=state, held=tuple(report.held), decision=decision, bundle=bundle)


def _why(error: BaseException) -> str:
    if isinstance(error, SpeedriftError):
        return clip(error.message, 2000)
    return f"the run stopped: {clip(repr(error), 500)} (`speedrift adhoc resume` carries on a compiled run)"


def wave_text(mode: spec.Mode) -> str:
    """What the Wave Architect is told about the wave it writes for an ad-hoc run."""
    return (
        f"You are writing an ad-hoc wave, in `{mode.value}` mode: one transient wave for this request "
        "alone, outside the repository's numbered roadmap. It comes after no other wave: leave "
        "`sequencing.after_waves` out."
    )


# --- what a run holds now ----------------------------------------------------------------------
def counts(graph: Graph, run: AdhocRun) -> dict[str, Any]:
    """The run's compiled tasks by status (its closure tasks apart) and the stage it is at."""
    tasks = compiled_tasks(graph, run.key)
    work = [t for t in tasks if stage_of(t) is None]
    by_status: dict[str, int] = {}
    for task in work:
        by_status[status_of(task)] = by_status.get(status_of(task), 0) + 1
    stage = status.wave_stage(tasks)
    return {"tasks": len(work), "by_status": by_status, "stage": stage.value if stage else None}


def summary(graph: Graph, run: AdhocRun) -> dict[str, Any]:
    """One line of `adhoc list`: the run and its task counts."""
    return {**run.as_dict(), "counts": counts(graph, run)}


def details(repo: Path, store: GraphStore, run: AdhocRun, *, now: datetime) -> dict[str, Any]:
    """`adhoc show`: the run, its spec in brief, its tasks as the graph holds them (plans/status.py)."""
    out = run.as_dict()
    path = spec.spec_path(repo, run.key)
    out["spec_file"] = _relative(repo, path)
    out["spec"] = None
    if path.is_file():
        value = spec.read(path)
        listed = value.get("tasks")
        tasks = listed if isinstance(listed, list) else []
        out["spec"] = {
            "title": value.get("title"),
            "mode": value.get("mode"),
            "summary": value.get("summary", ""),
            "validation": value.get("validation", []),
            "tasks": [
                {
                    "id": item.get("id"),
                    "role": item.get("role"),
                    "owned": item.get("owned", []),
                    "after": item.get("after", []),
                }
                for item in tasks
                if isinstance(item, dict)
            ],
        }
    out["status"] = None
    if run.tasks:
        found = status.statuses(repo, store, run.key, now=now)
        out["status"] = found[0].as_dict() if found else None
    return out
