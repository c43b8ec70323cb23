"""A wave spec: the canonical JSON form of one wave of a plan, its vocabulary and where it lives.

A plan is a sequence of waves; wave ``n`` is ``plans/waves/specs/wave-<n>.json`` (committed, the
source of truth, validated by ``plans/data/wave.schema.json``) rendered to
``plans/waves/wave-<n>.md`` for people (plans/render.py). Each task of a wave owns explicit file
globs, names its deliverables, an exit contract, a runtime profile and a prompt; the closure tasks
(integration → documentation → evaluation) are never written in a spec: compiling a wave always
adds them (plans/compile.py).

This module is the one home of that vocabulary (enums, the ordered exit-contract levels), the
typed view of a schema-valid spec (:func:`parse`), the canonical bytes (:func:`canonical`: what
is written, hashed and compared) and the paths. Pure but for :func:`read` and the schema load.

A wave is named by its *key* (:data:`WaveKey`): a numbered wave by its number ``n``; an ad-hoc run
(`speedrift adhoc run`, plans/adhoc.py) by ``adhoc-<run id>``. An ad-hoc spec says ``"wave": 0``
and ``"adhoc": "<run id>"``; it lives in ``.speedrift/plans/adhoc/<run id>/spec.json`` (git-excluded:
transient), never in ``plans/waves``, and its tasks, scope, state and traces are named by its key
where a numbered wave's are by ``wave-<n>`` (:func:`key_name`), so it never enters the roadmap.

Invariant: :func:`parse` is only given a value the schema accepted (:func:`schema_problems` is
empty); it raises :class:`~speedrift.errors.InvalidValue` rather than guess when that is not so.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from speedrift import layout, safejson
from speedrift.errors import InvalidValue, NotFound
from speedrift.fleet.roles.names import RoleName

if TYPE_CHECKING:
    from speedrift.jsonvalid import Checked

SCHEMA_ID = "speedrift.wave/1"
PLANS_DIR = "plans"
WAVES_DIR = f"{PLANS_DIR}/waves"
SPECS_DIR = f"{WAVES_DIR}/specs"
PROJECT_FILE = f"{PLANS_DIR}/project.toml"
SPEC_NAME = re.compile(r"^wave-(\d+)\.json$")
MARKDOWN_NAME = re.compile(r"^wave-(\d+)\.md$")
TASK_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")
ADHOC_PREFIX = "adhoc-"  # an ad-hoc run's key: adhoc-<run id>
ADHOC_DIR = "adhoc"  # under .speedrift/plans/: one directory per ad-hoc run
ADHOC_WAVE = 0  # the `wave` of every ad-hoc spec: it has no place in the numbered roadmap
ADHOC_RUN_ID = re.compile(r"^[0-9]{8}-[0-9]{6}(-[a-z0-9]+)*$")  # as the schema's `adhoc`

WaveKey = int | str  # a numbered wave's n, or an ad-hoc run's "adhoc-<run id>"


class Mode(StrEnum):
    """``oversight``: a person approves merges, deploys and replans; ``dark-factory``: nobody is
    waited on, so lint demands what replaces the person (validation, the tests gate, rollbacks)."""

    OVERSIGHT = "oversight"
    DARK_FACTORY = "dark-factory"


class TaskRole(StrEnum):
    """What a wave task is for. Closure roles are not here: compile adds those tasks itself."""

    IMPLEMENTATION = "implementation"
    QA = "qa"
    INFRA = "infra"
    DEPLOY = "deploy"
    DESIGN = "design"
    SECURITY = "security"
    DOCS = "docs"


class ClosureStage(StrEnum):
    """The closure, in order: each stage's task depends on the one before."""

    INTEGRATION = "integration"
    DOCUMENTATION = "documentation"
    EVALUATION = "evaluation"


CLOSURE_ORDER = (ClosureStage.INTEGRATION, ClosureStage.DOCUMENTATION, ClosureStage.EVALUATION)
# the role that carries out each closure stage (fleet/roles)
STAGE_ROLE: Mapping[ClosureStage, RoleName] = {
    ClosureStage.INTEGRATION: RoleName.INTEGRATION,
    ClosureStage.DOCUMENTATION: RoleName.DOCUMENTATION,
    ClosureStage.EVALUATION: RoleName.EVALUATOR,
}

# The exit-contract levels, lowest first: a task's result meets a contract when it reaches each
# level at least (wave-orchestration's agent-state ordering).
COMPLETION = ("contract", "integrated", "authoritative", "live")
DURABILITY = ("none", "ephemeral", "durable")
PROOF = ("unit", "integration", "live")
DOC_IMPACT = ("none", "owned", "shared-plan")
MATURITY = (
    "inventoried",
    "contract-frozen",
    "repo-landed",
    "baseline-proved",
    "pilot-live",
    "qa-proved",
    "fleet-ready",
    "cutover-ready",
    "deprecation-ready",
)


@dataclass(frozen=True)
class ExitContract:
    completion: str
    durability: str
    proof: str
    doc_impact: str

    def meets(self, other: ExitContract) -> bool:
        """True when every level of ``self`` is at least the same level of ``other``."""
        pairs = (
            (COMPLETION, self.completion, other.completion),
            (DURABILITY, self.durability, other.durability),
            (PROOF, self.proof, other.proof),
            (DOC_IMPACT, self.doc_impact, other.doc_impact),
        )
        return all(order.index(mine) >= order.index(theirs) for order, mine, theirs in pairs)

    def as_dict(self) -> dict[str, str]:
        return {
            "completion": self.completion,
            "durability": self.durability,
            "proof": self.proof,
            "doc_impact": self.doc_impact,
        }


@dataclass(frozen=True)
class RuntimeProfile:
    runtime: str | None = None
    model: str | None = None
    fallbacks: tuple[str, ...] = ()
    wall_clock_minutes: int | None = None
    max_turns: int | None = None
    max_cost_usd: float | None = None


@dataclass(frozen=True)
class Deploy:
    environment: str | None = None
    rollback: str | None = None


@dataclass(frozen=True)
class WaveTask:
    id: str
    title: str
    role: str  # a TaskRole value once lint passed; kept as read so lint can name an unknown one
    owned: tuple[str, ...]
    prompt: str
    deliverables: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    exit_contract: ExitContract | None = None
    capabilities: tuple[str, ...] = ()
    components: tuple[str, ...] = ()
    runtime: RuntimeProfile = field(default_factory=RuntimeProfile)
    validation: tuple[str, ...] = ()
    deploy: Deploy | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DeployEnvironment:
    id: str
    kind: str
    default: bool = False
    notes: str = ""


@dataclass(frozen=True)
class WaveSpec:
    wave: int
    title: str
    mode: Mode
    tasks: tuple[WaveTask, ...]
    commit_message: str = ""
    summary: str = ""
    after_waves: tuple[int, ...] = ()
    needs_artifacts: tuple[str, ...] = ()
    sequencing_note: str = ""
    deploy_environments: tuple[DeployEnvironment, ...] = ()
    component_promotions: tuple[tuple[str, str], ...] = ()
    validation: tuple[str, ...] = ()
    closure: Mapping[str, str] = field(default_factory=dict)
    prose: Mapping[str, str] = field(default_factory=dict)
    adhoc: str | None = None  # an ad-hoc run's id; None: a numbered wave

    @property
    def key(self) -> WaveKey:
        """What names the wave's tasks, scope and state: its number, or ``adhoc-<run id>``."""
        return adhoc_key(self.adhoc) if self.adhoc is not None else self.wave

    def task(self, task_id: str) -> WaveTask:
        for task in self.tasks:
            if task.id == task_id:
                return task
        raise NotFound(f"wave {self.wave} has no task {task_id!r}")


# -- where waves live -------------------------------------------------------------------------


def specs_dir(repo: Path) -> Path:
    return repo / SPECS_DIR


def spec_path(repo: Path, wave: WaveKey) -> Path:
    """A numbered wave's committed spec; an ad-hoc run's, in its run directory."""
    if isinstance(wave, str):
        return adhoc_dir(repo, adhoc_run_id(wave)) / "spec.json"
    return repo / SPECS_DIR / f"wave-{wave}.json"


def markdown_path(repo: Path, wave: int) -> Path:
    return repo / WAVES_DIR / f"wave-{wave}.md"


def scope_of(wave: WaveKey) -> str:
    """The coordination scope of a wave: its records, board and inboxes (coord/)."""
    return key_name(wave)


def key_name(wave: WaveKey) -> str:
    """The name of a wave's scope, tag and state directories: ``wave-<n>``, or an ad-hoc run's key."""
    return f"wave-{wave}" if isinstance(wave, int) else wave


def label(wave: WaveKey, *, capital: bool = False) -> str:
    """A wave as a sentence names it: ``wave 3``, ``ad-hoc run <run id>`` (``Wave 3``, ``Ad-hoc
    run <run id>`` to start one)."""
    kind = "wave" if isinstance(wave, int) else "ad-hoc run"
    name = wave if isinstance(wave, int) else adhoc_run_id(wave)
    return f"{kind.capitalize() if capital else kind} {name}"


def adhoc_key(run_id: str) -> str:
    return ADHOC_PREFIX + run_id


def adhoc_run_id(key: str) -> str:
    """The run id of an ad-hoc key; InvalidValue for anything else."""
    run_id = key.removeprefix(ADHOC_PREFIX)
    if not key.startswith(ADHOC_PREFIX) or not ADHOC_RUN_ID.match(run_id):
        raise InvalidValue(
            f"{key!r} is not a wave: a wave number, or an ad-hoc run's key (adhoc-<run id>)",
            hint="`speedrift adhoc list` lists the ad-hoc runs",
        )
    return run_id


def is_adhoc_key(value: object) -> bool:
    return (
        isinstance(value, str)
        and value.startswith(ADHOC_PREFIX)
        and bool(ADHOC_RUN_ID.match(value.removeprefix(ADHOC_PREFIX)))
    )


def adhoc_dir(repo: Path, run_id: str) -> Path:
    """An ad-hoc run's directory: its spec, its state, its draft records (git-excluded)."""
    return layout.plans_state_dir(repo) / ADHOC_DIR / run_id


def state_dir(repo: Path, wave: WaveKey) -> Path:
    """A wave's runtime state (validation results, closure role runs): ``.speedrift/plans/wave-<n>/``,
    or the ad-hoc run's own directory."""
    if isinstance(wave, str):
        return adhoc_dir(repo, adhoc_run_id(wave))
    return layout.plans_state_dir(repo) / key_name(wave)


def key_of_value(value: Mapping[str, Any]) -> WaveKey | None:
    """The key a raw spec names itself by (``adhoc`` when set, else ``wave``); None when neither
    is usable."""
    adhoc, wave = value.get("adhoc"), value.get("wave")
    if isinstance(adhoc, str):
        return adhoc_key(adhoc)
    return wave if isinstance(wave, int) and not isinstance(wave, bool) else None


def wave_numbers(repo: Path) -> list[int]:
    """The waves that have a spec in ``repo``, in order."""
    folder = specs_dir(repo)
    if not folder.is_dir():
        return []
    found = (SPEC_NAME.match(entry.name) for entry in folder.iterdir())
    return sorted(int(match.group(1)) for match in found if match)


# -- the schema and the canonical form --------------------------------------------------------


@cache
def schema() -> dict[str, Any]:
    text = resources.files("speedrift.plans").joinpath("data/wave.schema.json").read_text(encoding="utf-8")
    value: dict[str, Any] = json.loads(text)
    return value


@cache
def _validator() -> Checked:
    from speedrift.jsonvalid import checked_schema

    return checked_schema(schema(), "plans/data/wave.schema.json")


def schema_problems(value: Any) -> list[str]:
    """Every way ``value`` fails the wave schema, as ``"$.path: message"`` lines."""
    from speedrift.jsonvalid import problems

    return problems(_validator(), value)


def canonical(value: Mapping[str, Any]) -> bytes:
    """The one byte form of a spec: sorted keys, two-space indent, UTF-8, a final newline. Written
    to disk, hashed into traces and compared by compile, so equal specs are equal bytes. orjson
    writes exactly what ``json.dumps(indent=2, sort_keys=True, ensure_ascii=False)`` writes for a
    spec's values, 30x faster; an integer past 64 bits (which no schema-valid spec holds) falls
    back to json."""
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    except TypeError:
        return (json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def spec_hash(value: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(value)).hexdigest()


def read(path: Path) -> dict[str, Any]:
    """The raw JSON object in ``path`` (not yet checked against the schema). NotFound when the
    file is missing; InvalidValue naming the file (and line) when it is not a JSON object."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"{path}: no such wave spec", hint="list waves with `speedrift plan status`") from None
    try:
        value = safejson.loads(raw)
    except ValueError as error:
        raise InvalidValue(f"{path}: not valid JSON: {error}", hint="fix the file, or re-render it") from None
    if not isinstance(value, dict):
        raise InvalidValue(f"{path}: a wave spec is a JSON object, not {type(value).__name__}")
    return value


# -- the typed view ---------------------------------------------------------------------------


def parse(value: Mapping[str, Any]) -> WaveSpec:
    """The typed view of a schema-valid spec (see the module invariant)."""
    try:
        return _parse(value)
    except (KeyError, TypeError, ValueError) as error:
        raise InvalidValue(
            f"wave spec does not match {SCHEMA_ID}: {error!r}", hint="run `speedrift plan lint` on it"
        ) from None


def _parse(value: Mapping[str, Any]) -> WaveSpec:
    if value.get("schema") != SCHEMA_ID:
        raise ValueError(f"schema is {value.get('schema')!r}, not {SCHEMA_ID!r}")
    sequencing = value.get("sequencing", {})
    return WaveSpec(
        wave=int(value["wave"]),
        title=str(value["title"]),
        mode=Mode(value["mode"]),
        tasks=tuple(_task(item) for item in value["tasks"]),
        commit_message=str(value.get("commit_message", "")),
        summary=str(value.get("summary", "")),
        after_waves=tuple(int(n) for n in sequencing.get("after_waves", ())),
        needs_artifacts=tuple(sequencing.get("needs_artifacts", ())),
        sequencing_note=str(sequencing.get("note", "")),
        deploy_environments=tuple(
            DeployEnvironment(
                id=env["id"],
                kind=env["kind"],
                default=bool(env.get("default", False)),
                notes=env.get("notes", ""),
            )
            for env in value.get("deploy_environments", ())
        ),
        component_promotions=tuple(
            (item["component"], item["level"]) for item in value.get("component_promotions", ())
        ),
        validation=tuple(value.get("validation", ())),
        closure=dict(value.get("closure", {})),
        prose=dict(value.get("prose", {})),
        adhoc=str(value["adhoc"]) if "adhoc" in value else None,
    )


def _task(item: Mapping[str, Any]) -> WaveTask:
    contract = item.get("exit_contract")
    runtime = item.get("runtime", {})
    deploy = item.get("deploy")
    return WaveTask(
        id=item["id"],
        title=item["title"],
        role=item["role"],
        owned=tuple(item["owned"]),
        prompt=item["prompt"],
        deliverables=tuple(item.get("deliverables", ())),
        after=tuple(item.get("after", ())),
        exit_contract=ExitContract(**contract) if contract is not None else None,
        capabilities=tuple(item.get("capabilities", ())),
        components=tuple(item.get("components", ())),
        runtime=RuntimeProfile(
            runtime=runtime.get("runtime"),
            model=runtime.get("model"),
            fallbacks=tuple(runtime.get("fallbacks", ())),
            wall_clock_minutes=runtime.get("wall_clock_minutes"),
            max_turns=runtime.get("max_turns"),
            max_cost_usd=runtime.get("max_cost_usd"),
        ),
        validation=tuple(item.get("validation", ())),
        deploy=Deploy(environment=deploy.get("environment"), rollback=deploy.get("rollback"))
        if deploy
        else None,
        extra=dict(item.get("extra", {})),
    )


def task_ids(tasks: Sequence[WaveTask]) -> list[str]:
    return [task.id for task in tasks]
