"""`speedrift plan lint`: every problem of a wave spec, each with its file, JSON path (and, for
Markdown, line), what is wrong and how to fix it.

:func:`lint` is pure: a raw value (not yet schema-checked), the repo facts it is judged against
and, for a spec read from Markdown, the map from JSON paths to lines. Schema problems are findings
too; the other rules still run on whatever parts of a malformed value have the right type, so one
run reports everything. :data:`RULES` says what each rule checks, why, and the usual fix (the
user guide lists it). :func:`repo_facts` and :func:`lint_file` are the edges that read a repo.

Invariant: :func:`lint` never raises for the value's sake, whatever it holds, and returns its
findings in a stable order (file, JSON path in document order, kind, message).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from speedrift.errors import SpeedriftError, UsageError
from speedrift.gates.globs import matches_any
from speedrift.gates.ownership import parallel_overlaps, path_problem
from speedrift.graph.cycles import strongly_connected
from speedrift.plans import spec
from speedrift.plans.lint_rules import RULES, LintKind, Rule
from speedrift.plans.spec import CLOSURE_ORDER, Mode, TaskRole
from speedrift.textclip import cut_middle

if TYPE_CHECKING:
    from speedrift.plans.importer import Imported


@dataclass(frozen=True)
class Finding:
    """One problem: ``path`` is a JSON path into the spec (``$.tasks[1].owned[0]``); ``line`` the
    Markdown line it came from, when the spec was read from Markdown."""

    kind: LintKind
    file: str
    path: str
    message: str
    fix: str
    line: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "file": self.file,
            "line": self.line,
            "path": self.path,
            "message": self.message,
            "fix": self.fix,
        }

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.path}: {self.message} — {self.fix}"


@dataclass(frozen=True)
class RepoFacts:
    """What lint judges a wave against beyond the wave itself. ``tests_gate_why``: why the tests
    gate cannot block, in words (when it cannot)."""

    known_waves: frozenset[int]
    tests_gate_blocks: bool
    runtimes: frozenset[str]
    tests_gate_why: str = ""


__all__ = ["RULES", "Finding", "LintKind", "RepoFacts", "Rule", "lint", "lint_file", "repo_facts"]
K = LintKind
CLOSURE_NAMES = frozenset(stage.value for stage in CLOSURE_ORDER)
ROLE_NAMES = frozenset(role.value for role in TaskRole)
_GLOB_CHARS = re.compile(r"[*?\[]")
_MULTILINE_PROBLEM = " should not be valid under {'pattern': '[\\\\r\\\\n]'}"
_SEGMENT = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
Tasks = Sequence[tuple[int, Mapping[str, Any]]]


def lint(
    value: Mapping[str, Any],
    *,
    file: str,
    facts: RepoFacts | None = None,
    lines: Mapping[str, int] | None = None,
) -> list[Finding]:
    """Every problem of the wave ``value`` ([]: none). ``facts``: the repo's (without them the
    checks that need the repo — known waves, the tests gate — are skipped, and the runtimes
    speedrift ships are the known ones)."""
    checker = _Checker(file, facts, lines or {})
    checker.schema(value)
    if isinstance(value, Mapping):
        checker.wave(value)
    return sort(checker.found)


def sort(found: Sequence[Finding]) -> list[Finding]:
    return sorted(found, key=lambda f: (f.file, _path_key(f.path), f.kind.value, f.message))


def line_of(path: str, lines: Mapping[str, int]) -> int | None:
    """The line of ``path``, or of its nearest parent in ``lines``."""
    while lines:
        if path in lines:
            return lines[path]
        if path == "$" or not path.startswith("$"):
            return None
        cut = max(path.rfind("."), path.rfind("[") if path.endswith("]") else -1)
        path = path[:cut] if cut > 0 else "$"
    return None


def _path_key(path: str) -> tuple[tuple[int, int, str], ...]:
    return tuple((0, int(index), "") if index else (1, 0, key) for key, index in _SEGMENT.findall(path))


def _shown(value: object) -> str:
    return cut_middle(repr(value), 120)


def _items(value: object) -> list[tuple[int, Any]]:
    return list(enumerate(value)) if isinstance(value, list) else []


def _strings(value: object) -> list[tuple[int, str]]:
    return [(i, v) for i, v in _items(value) if isinstance(v, str)]


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _integer(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class _Checker:
    def __init__(self, file: str, facts: RepoFacts | None, lines: Mapping[str, int]) -> None:
        self.file, self.facts, self.lines = file, facts, lines
        self.found: list[Finding] = []

    def add(self, kind: LintKind, path: str, message: str, fix: str | None = None) -> None:
        line = line_of(path, self.lines) or (1 if self.lines else None)  # Markdown: at least its top
        self.found.append(Finding(kind, self.file, path, message, fix or RULES[kind].fix, line))

    def schema(self, value: object) -> None:
        for problem in spec.schema_problems(value):
            path, sep, message = problem.partition(": ")
            if not sep or not path.startswith("$"):
                path, message = "$", problem
            if message.endswith(_MULTILINE_PROBLEM):  # the schema's `not: {pattern: "[\\r\\n]"}`
                message = message.removesuffix(_MULTILINE_PROBLEM) + " must be one line (no line breaks)"
            self.add(K.SCHEMA, path, message)

    def wave(self, value: Mapping[str, Any]) -> None:
        tasks = [(i, t) for i, t in _items(value.get("tasks")) if isinstance(t, Mapping)]
        if value.get("tasks") == []:
            self.add(K.EMPTY_WAVE, "$.tasks", "the wave has no tasks")
        ids = self.task_ids(tasks)
        deps = self.dependencies(tasks, ids)
        self.paths(value, tasks)
        self.ownership(tasks, ids, deps)
        self.deliverables(tasks, ids)
        self.tasks(tasks)
        self.dark_factory(value)
        self.deploys(value, tasks)
        self.sequencing(value)
        self.components(value, tasks)

    def task_ids(self, tasks: Tasks) -> dict[int, str]:
        """Each task's label: its id, or its JSON path when it has none."""
        ids: dict[int, str] = {}
        first: dict[str, int] = {}
        for index, task in tasks:
            task_id = task.get("id")
            ids[index] = task_id if isinstance(task_id, str) else f"$.tasks[{index}]"
            if not isinstance(task_id, str):
                continue
            if task_id in first:
                self.add(
                    K.DUPLICATE_TASK,
                    f"$.tasks[{index}].id",
                    f"the task id {_shown(task_id)} is also $.tasks[{first[task_id]}]'s",
                )
            first.setdefault(task_id, index)
        return ids

    def dependencies(self, tasks: Tasks, ids: Mapping[int, str]) -> dict[str, list[str]]:
        deps: dict[str, list[str]] = {label: [] for label in ids.values()}
        for index, task in tasks:
            me = ids[index]
            for place, blocker in _strings(task.get("after")):
                path = f"$.tasks[{index}].after[{place}]"
                if blocker == me:
                    self.add(K.DEPENDENCY_CYCLE, path, f"task {_shown(me)} runs after itself")
                elif blocker not in deps:
                    self.add(
                        K.UNKNOWN_DEPENDENCY,
                        path,
                        f"task {_shown(me)} runs after {_shown(blocker)}, which is not a task of this wave",
                    )
                else:
                    deps[me].append(blocker)
        where = {label: index for index, label in ids.items()}
        for members in strongly_connected(deps):
            if len(members) > 1:
                shown = " -> ".join([*members, members[0]])
                self.add(
                    K.DEPENDENCY_CYCLE,
                    f"$.tasks[{min(where[m] for m in members)}].after",
                    f"the tasks' `after` form a cycle: {cut_middle(shown, 300)}",
                )
        return deps

    def paths(self, value: Mapping[str, Any], tasks: Tasks) -> None:
        artifacts = _mapping(value.get("sequencing")).get("needs_artifacts")
        declared = [(f"$.sequencing.needs_artifacts[{p}]", path) for p, path in _strings(artifacts)]
        for index, task in tasks:
            for key in ("owned", "deliverables"):
                declared += [(f"$.tasks[{index}].{key}[{p}]", path) for p, path in _strings(task.get(key))]
        for where, path in declared:
            problem = path_problem(path)
            if problem:
                self.add(K.PATH_OUTSIDE_REPO, where, f"{_shown(path)}: {problem}")

    def ownership(self, tasks: Tasks, ids: Mapping[int, str], deps: Mapping[str, Sequence[str]]) -> None:
        owned = [(index, _strings(task.get("owned"))) for index, task in tasks]
        for index, task in tasks:
            if task.get("owned") == []:
                self.add(
                    K.NO_OWNED_FILES, f"$.tasks[{index}].owned", f"task {_shown(ids[index])} owns no file"
                )
        listed = [(ids[index], [path for _, path in paths]) for index, paths in owned]
        for found in parallel_overlaps(listed, deps):
            (_, one_paths), (index, other_paths) = owned[found.first], owned[found.second]
            a, (place, b) = one_paths[found.first_path][1], other_paths[found.second_path]
            both = _shown(a) if a == b else f"{_shown(a)} / {_shown(b)}"
            self.add(
                K.OWNERSHIP_OVERLAP,
                f"$.tasks[{index}].owned[{place}]",
                f"tasks {_shown(listed[found.first][0])} and {_shown(ids[index])} may run at the same "
                f"time and both own {both}",
            )

    def deliverables(self, tasks: Tasks, ids: Mapping[int, str]) -> None:
        for index, task in tasks:
            globs = [path for _, path in _strings(task.get("owned"))]
            for place, deliverable in _strings(task.get("deliverables")):
                path = f"$.tasks[{index}].deliverables[{place}]"
                if _GLOB_CHARS.search(deliverable) or deliverable.rstrip().endswith("/"):
                    self.add(
                        K.DELIVERABLE_NOT_A_FILE,
                        path,
                        f"{_shown(deliverable)} is a glob or a directory; a deliverable is one file",
                    )
                elif not matches_any(deliverable.strip().removeprefix("./"), globs):
                    self.add(
                        K.DELIVERABLE_OUTSIDE_OWNED,
                        path,
                        f"task {_shown(ids[index])} must deliver {_shown(deliverable)} but does not own it",
                    )

    def tasks(self, tasks: Tasks) -> None:
        from speedrift.agents.choose import RUNTIME_NAMES

        runtimes = self.facts.runtimes if self.facts is not None else frozenset(RUNTIME_NAMES)
        for index, task in tasks:
            if "exit_contract" not in task:
                self.add(K.MISSING_EXIT_CONTRACT, f"$.tasks[{index}]", "the task has no exit contract")
            role = task.get("role")
            if isinstance(role, str) and role not in ROLE_NAMES:
                closure = (
                    ": closure tasks are added by `speedrift plan compile`" if role in CLOSURE_NAMES else ""
                )
                self.add(K.UNKNOWN_ROLE, f"$.tasks[{index}].role", f"unknown role {_shown(role)}{closure}")
            profile = _mapping(task.get("runtime"))
            named = [(f"$.tasks[{index}].runtime.runtime", profile.get("runtime"))]
            fallbacks = _strings(profile.get("fallbacks"))
            named += [(f"$.tasks[{index}].runtime.fallbacks[{p}]", name) for p, name in fallbacks]
            for path, name in named:
                if isinstance(name, str) and name not in runtimes:
                    self.add(
                        K.UNKNOWN_RUNTIME,
                        path,
                        f"unknown runtime {_shown(name)}",
                        f"use one of: {', '.join(sorted(runtimes))}",
                    )

    def dark_factory(self, value: Mapping[str, Any]) -> None:
        if value.get("mode") != Mode.DARK_FACTORY:
            return
        if not _strings(value.get("validation")):
            self.add(K.MISSING_VALIDATION, "$.validation", "a dark-factory wave has no validation commands")
        if self.facts is not None and not self.facts.tests_gate_blocks:
            why = f": {self.facts.tests_gate_why}" if self.facts.tests_gate_why else ""
            self.add(
                K.TESTS_GATE_OFF,
                "$.mode",
                f"a dark-factory wave needs a tests gate that can block, and this repo's cannot{why}",
            )

    def deploys(self, value: Mapping[str, Any], tasks: Tasks) -> None:
        environments = [(i, e) for i, e in _items(value.get("deploy_environments")) if isinstance(e, Mapping)]
        declared: set[str] = set()
        defaults: list[str] = []
        for index, env in environments:
            env_id = env.get("id")
            if isinstance(env_id, str) and env_id in declared:
                self.add(
                    K.DUPLICATE_DEPLOY_ENVIRONMENT,
                    f"$.deploy_environments[{index}].id",
                    f"the deploy environment {_shown(env_id)} is declared twice",
                )
            if isinstance(env_id, str):
                declared.add(env_id)
            if env.get("default") is True:
                if defaults:
                    self.add(
                        K.DUPLICATE_DEPLOY_ENVIRONMENT,
                        f"$.deploy_environments[{index}].default",
                        f"{_shown(defaults[0])} is already the default deploy environment",
                    )
                defaults.append(str(env_id))
        has_default = bool(defaults) or len(environments) == 1
        dark = value.get("mode") == Mode.DARK_FACTORY
        for index, task in tasks:
            deploy = task.get("deploy")
            if task.get("role") != TaskRole.DEPLOY and not (isinstance(deploy, Mapping) and deploy):
                continue
            deploy, where = _mapping(deploy), f"$.tasks[{index}].deploy"
            environment = deploy.get("environment")
            if isinstance(environment, str) and environment not in declared:
                known = f" ({', '.join(sorted(declared))})" if declared else ""
                self.add(
                    K.UNKNOWN_DEPLOY_ENVIRONMENT,
                    f"{where}.environment",
                    f"the task deploys to {_shown(environment)}, which the wave does not declare{known}",
                )
            elif not isinstance(environment, str) and not has_default:
                self.add(
                    K.MISSING_DEPLOY_ENVIRONMENT,
                    f"{where}.environment",
                    "a deploy task with no environment, and the wave "
                    + ("declares none" if not environments else "marks none of its environments default"),
                )
            rollback = deploy.get("rollback")
            if dark and not (isinstance(rollback, str) and rollback.strip()):
                self.add(
                    K.MISSING_ROLLBACK, f"{where}.rollback", "a dark-factory deploy task has no rollback"
                )

    def sequencing(self, value: Mapping[str, Any]) -> None:
        number = _integer(value.get("wave"))
        adhoc = "adhoc" in value  # an ad-hoc run is outside the numbered roadmap: after no wave
        if adhoc and number is not None and number != spec.ADHOC_WAVE:
            self.add(
                K.WAVE_MISMATCH,
                "$.wave",
                f"an ad-hoc run's spec says wave {number}; every ad-hoc spec is wave {spec.ADHOC_WAVE}",
                f"set wave to {spec.ADHOC_WAVE}",
            )
        for place, item in _items(_mapping(value.get("sequencing")).get("after_waves")):
            earlier, path = _integer(item), f"$.sequencing.after_waves[{place}]"
            if earlier is None:
                continue
            if adhoc:
                self.add(
                    K.UNKNOWN_WAVE,
                    path,
                    f"an ad-hoc run comes after no wave (it is outside the numbered roadmap): not {earlier}",
                    "drop sequencing.after_waves: an ad-hoc run builds on the repository as it is",
                )
            elif number is not None and earlier >= number:
                self.add(
                    K.UNKNOWN_WAVE,
                    path,
                    f"wave {number} cannot come after wave {earlier}: a wave follows earlier waves only",
                )
            elif self.facts is not None and earlier not in self.facts.known_waves:
                self.add(
                    K.UNKNOWN_WAVE, path, f"wave {earlier} has no spec ({spec.SPECS_DIR}/wave-{earlier}.json)"
                )

    def components(self, value: Mapping[str, Any], tasks: Tasks) -> None:
        promoted: dict[str, int] = {}
        for index, item in _items(value.get("component_promotions")):
            component = _mapping(item).get("component")
            if not isinstance(component, str):
                continue
            if component in promoted:
                self.add(
                    K.DUPLICATE_COMPONENT,
                    f"$.component_promotions[{index}].component",
                    f"the component {_shown(component)} is promoted twice",
                )
            promoted.setdefault(component, index)
        claimed: set[str] = set()
        for index, task in tasks:
            for place, component in _strings(task.get("components")):
                claimed.add(component)
                if component not in promoted:
                    self.add(
                        K.UNKNOWN_COMPONENT,
                        f"$.tasks[{index}].components[{place}]",
                        f"the task works on {_shown(component)}, which the wave does not promote",
                    )
        for component, index in promoted.items():
            if component not in claimed:
                self.add(
                    K.UNCLAIMED_COMPONENT,
                    f"$.component_promotions[{index}].component",
                    f"the wave promotes {_shown(component)} but no task works on it",
                )


# --- the edges: the repo's facts, a file ------------------------------------------------------------
def repo_facts(repo: Path) -> RepoFacts:
    """The waves ``repo`` has specs for, whether its tests gate can block (``[gates]`` of its
    speedrift.toml and the suite detected from its files) and the runtimes speedrift knows."""
    from speedrift.agents.choose import RUNTIME_NAMES
    from speedrift.fleet.config import CONFIG_FILE, load_config
    from speedrift.gates import testdetect

    gates = load_config(repo).gates
    why = ""
    if "tests" in gates.skip:
        why = f'{CONFIG_FILE} [gates] skip lists "tests"'
    elif gates.require_tests == "never":
        why = f'{CONFIG_FILE} [gates] require_tests = "never"'
    elif gates.require_tests == "auto" and not gates.tests.command and not testdetect.detect(repo):
        why = f'no test suite found, and {CONFIG_FILE} [gates] require_tests = "auto" lands untested work'
    return RepoFacts(
        known_waves=frozenset(spec.wave_numbers(repo)),
        tests_gate_blocks=not why,
        runtimes=frozenset(RUNTIME_NAMES),
        tests_gate_why=why,
    )


def display_name(repo: Path, path: Path) -> str:
    """``path`` as findings name it: relative to the repo when inside it."""
    try:
        return str(path.resolve().relative_to(repo.resolve()))
    except ValueError:
        return str(path)


def lint_file(repo: Path, path: Path, *, facts: RepoFacts | None = None) -> list[Finding]:
    """Every problem of the wave in ``path``: a JSON spec, or wave Markdown (read by the importer;
    its findings carry lines). ``facts``: the repo's, when the caller has them already."""
    suffix = path.suffix.lower()
    if suffix not in (".json", ".md"):
        raise UsageError(f"{path}: not a wave (a .json spec or .md)", hint="give a wave's .json or .md file")
    facts = facts if facts is not None else repo_facts(repo)
    name = display_name(repo, path)
    lines: Mapping[str, int] = {}
    value: Mapping[str, Any] | None = None
    if suffix == ".json":
        try:
            value = spec.read(path)
        except SpeedriftError as error:
            if not path.is_file():
                raise
            message = error.message.removeprefix(f"{path}: ")
            return [Finding(K.SCHEMA, name, "$", message, "fix the JSON, or render it again")]
        found = lint(value, file=name, facts=facts)
        numbered = spec.SPEC_NAME.match(path.name)
    else:
        value, lines, found = _lint_markdown(repo, path, name, facts)
        numbered = spec.MARKDOWN_NAME.match(path.name)
    number = _integer(value.get("wave")) if value is not None else None
    if numbered and number is not None and int(numbered.group(1)) != number:
        message = f"the file is wave {numbered.group(1)}'s, but the spec says wave {number}"
        fix = RULES[K.WAVE_MISMATCH].fix
        found.append(Finding(K.WAVE_MISMATCH, name, "$.wave", message, fix, line_of("$.wave", lines)))
    return sort(found)


def read_markdown(repo: Path, path: Path, text: str) -> Imported:
    """The wave Markdown ``text`` of ``path`` read by the importer: its wave number from the file
    name (``wave-<n>.md``), its mode, when it names none, the project profile's."""
    from speedrift.plans import importer, project

    numbered = spec.MARKDOWN_NAME.match(path.name)
    return importer.parse_markdown(
        text,
        file=display_name(repo, path),
        wave=int(numbered.group(1)) if numbered else None,
        default_mode=project.load(repo).default_mode.value,
    )


def _lint_markdown(
    repo: Path, path: Path, name: str, facts: RepoFacts
) -> tuple[Mapping[str, Any] | None, Mapping[str, int], list[Finding]]:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        return (
            None,
            {},
            [Finding(K.SCHEMA, name, "$", f"not UTF-8 text ({error.reason})", "save it as UTF-8")],
        )
    try:
        imported = read_markdown(repo, path, text)
    except SpeedriftError as error:
        return None, {}, [Finding(K.SCHEMA, name, "$", error.message, error.hint or "fix the Markdown")]
    found = lint(imported.spec, file=name, facts=facts, lines=imported.lines)
    for problem in imported.problems:  # what could not be read; the schema's own are found above
        if not problem.what.startswith("$"):
            message = f"{cut_middle(problem.what, 120)}: {problem.why}"
            found.append(Finding(K.SCHEMA, name, "$", message, "fix the Markdown there", problem.line))
    for kept in imported.unmapped:
        message = f"{cut_middle(kept.what, 120)}: {kept.why}"
        found.append(
            Finding(K.UNMAPPED_MARKDOWN, name, "$", message, RULES[K.UNMAPPED_MARKDOWN].fix, kept.line)
        )
    return imported.spec, imported.lines, found
