"""`plan lint`'s rules (plans/lint.py): each fires on a plan broken in that one way, none on a good
plan; hostile values never crash it; findings name the JSON path (and the Markdown line)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from speedrift.agents.choose import RUNTIME_NAMES
from speedrift.errors import UsageError
from speedrift.gates.ownership import may_overlap, parallel_overlaps, reachable
from speedrift.plans import spec
from speedrift.plans.lint import RULES, Finding, LintKind, RepoFacts, line_of, lint, lint_file, repo_facts

FACTS = RepoFacts(known_waves=frozenset({1, 3}), tests_gate_blocks=True, runtimes=frozenset(RUNTIME_NAMES))
CONTRACT = {"completion": "integrated", "durability": "durable", "proof": "unit", "doc_impact": "owned"}


def good() -> dict[str, Any]:
    """A dark-factory wave with every rule's subject present and right."""
    return {
        "schema": spec.SCHEMA_ID,
        "wave": 3,
        "title": "Token-bucket rate limiting",
        "mode": "dark-factory",
        "validation": ["python -m pytest -q"],
        "sequencing": {"after_waves": [1], "needs_artifacts": ["docs/api.md"]},
        "deploy_environments": [
            {"id": "staging", "kind": "docker-compose", "default": True},
            {"id": "prod", "kind": "kubernetes"},
        ],
        "component_promotions": [{"component": "api-rate-limiter", "level": "baseline-proved"}],
        "tasks": [
            {
                "id": "api",
                "title": "Limiter middleware",
                "role": "implementation",
                "owned": ["src/api/**"],
                "deliverables": ["src/api/limiter.py"],
                "components": ["api-rate-limiter"],
                "exit_contract": CONTRACT,
                "runtime": {"runtime": "claude", "fallbacks": ["codex"]},
                "prompt": "Add the limiter.",
            },
            {
                "id": "docs",
                "title": "Limiter docs",
                "role": "docs",
                "owned": ["docs/limiter.md"],
                "exit_contract": CONTRACT,
                "prompt": "Document it.",
            },
            {
                "id": "tests",
                "title": "Limiter tests",
                "role": "qa",
                "after": ["api"],
                "owned": ["tests/test_limiter.py", "src/api/limiter.py"],
                "exit_contract": CONTRACT,
                "prompt": "Test it.",
            },
            {
                "id": "ship",
                "title": "Deploy to staging",
                "role": "deploy",
                "after": ["tests"],
                "owned": ["deploy/**"],
                "deploy": {"environment": "staging", "rollback": "redeploy the previous image"},
                "exit_contract": CONTRACT,
                "prompt": "Ship it.",
            },
        ],
    }


def _task(wave: dict[str, Any], task_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(t for t in wave["tasks"] if t["id"] == task_id)
    return found


Break = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Break:
    """Set ``task.key`` (or a top-level ``key``) to ``value``; None deletes it."""

    def apply(wave: dict[str, Any]) -> None:
        owner, _, key = path.rpartition(".")
        target = _task(wave, owner) if owner else wave
        if value is None:
            del target[key]
        else:
            target[key] = value

    return apply


def _both(*breaks: Break) -> Break:
    def apply(wave: dict[str, Any]) -> None:
        for one in breaks:
            one(wave)

    return apply


# (case name, how the plan is broken, the one kind reported, where)
CASES: list[tuple[str, Break, LintKind, str]] = [
    ("schema", _set("title", None), LintKind.SCHEMA, "$"),
    (
        "empty_wave",
        _both(_set("tasks", []), _set("component_promotions", None)),
        LintKind.EMPTY_WAVE,
        "$.tasks",
    ),
    ("duplicate_task", _set("docs.id", "ship"), LintKind.DUPLICATE_TASK, "$.tasks[3].id"),
    (
        "unknown_dependency",
        _set("tests.after", ["api", "nope"]),
        LintKind.UNKNOWN_DEPENDENCY,
        "$.tasks[2].after[1]",
    ),
    ("dependency_cycle", _set("api.after", ["ship"]), LintKind.DEPENDENCY_CYCLE, "$.tasks[0].after"),
    ("self_dependency", _set("docs.after", ["docs"]), LintKind.DEPENDENCY_CYCLE, "$.tasks[1].after[0]"),
    ("no_owned_files", _set("docs.owned", []), LintKind.NO_OWNED_FILES, "$.tasks[1].owned"),
    (
        "ownership_overlap",
        _set("docs.owned", ["docs/limiter.md", "src/api/other.py"]),
        LintKind.OWNERSHIP_OVERLAP,
        "$.tasks[1].owned[1]",
    ),
    (
        "path_outside_repo",
        _set("sequencing", {"needs_artifacts": ["../secrets.txt"], "after_waves": [1]}),
        LintKind.PATH_OUTSIDE_REPO,
        "$.sequencing.needs_artifacts[0]",
    ),
    (
        "deliverable_not_a_file",
        _set("api.deliverables", ["src/api/*.py"]),
        LintKind.DELIVERABLE_NOT_A_FILE,
        "$.tasks[0].deliverables[0]",
    ),
    (
        "deliverable_outside_owned",
        _set("api.deliverables", ["src/other.py"]),
        LintKind.DELIVERABLE_OUTSIDE_OWNED,
        "$.tasks[0].deliverables[0]",
    ),
    ("missing_exit_contract", _set("docs.exit_contract", None), LintKind.MISSING_EXIT_CONTRACT, "$.tasks[1]"),
    ("unknown_role", _set("docs.role", "integration"), LintKind.UNKNOWN_ROLE, "$.tasks[1].role"),
    (
        "unknown_runtime",
        _set("api.runtime", {"runtime": "claude", "fallbacks": ["gemini"]}),
        LintKind.UNKNOWN_RUNTIME,
        "$.tasks[0].runtime.fallbacks[0]",
    ),
    ("missing_validation", _set("validation", None), LintKind.MISSING_VALIDATION, "$.validation"),
    (
        "duplicate_deploy_environment",
        _set("deploy_environments", [{"id": "staging", "kind": "a"}, {"id": "staging", "kind": "b"}]),
        LintKind.DUPLICATE_DEPLOY_ENVIRONMENT,
        "$.deploy_environments[1].id",
    ),
    (
        "two_default_environments",
        _set(
            "deploy_environments",
            [{"id": "staging", "kind": "a", "default": True}, {"id": "prod", "kind": "b", "default": True}],
        ),
        LintKind.DUPLICATE_DEPLOY_ENVIRONMENT,
        "$.deploy_environments[1].default",
    ),
    (
        "missing_deploy_environment",
        _both(
            _set("deploy_environments", [{"id": "staging", "kind": "a"}, {"id": "prod", "kind": "b"}]),
            _set("ship.deploy", {"rollback": "undo"}),
        ),
        LintKind.MISSING_DEPLOY_ENVIRONMENT,
        "$.tasks[3].deploy.environment",
    ),
    (
        "no_environment_declared",
        _both(_set("deploy_environments", None), _set("ship.deploy", {"rollback": "undo"})),
        LintKind.MISSING_DEPLOY_ENVIRONMENT,
        "$.tasks[3].deploy.environment",
    ),
    (
        "unknown_deploy_environment",
        _set("ship.deploy", {"environment": "moon", "rollback": "undo"}),
        LintKind.UNKNOWN_DEPLOY_ENVIRONMENT,
        "$.tasks[3].deploy.environment",
    ),
    (
        "missing_rollback",
        _set("ship.deploy", {"environment": "staging"}),
        LintKind.MISSING_ROLLBACK,
        "$.tasks[3].deploy.rollback",
    ),
    (
        "unknown_wave",
        _set("sequencing", {"after_waves": [2]}),
        LintKind.UNKNOWN_WAVE,
        "$.sequencing.after_waves[0]",
    ),
    (
        "wave_after_itself",
        _set("sequencing", {"after_waves": [3]}),
        LintKind.UNKNOWN_WAVE,
        "$.sequencing.after_waves[0]",
    ),
    (
        "unknown_component",
        _set("tests.components", ["billing"]),
        LintKind.UNKNOWN_COMPONENT,
        "$.tasks[2].components[0]",
    ),
    (
        "duplicate_component",
        _set(
            "component_promotions",
            [
                {"component": "api-rate-limiter", "level": "baseline-proved"},
                {"component": "api-rate-limiter", "level": "qa-proved"},
            ],
        ),
        LintKind.DUPLICATE_COMPONENT,
        "$.component_promotions[1].component",
    ),
    (
        "unclaimed_component",
        _set("api.components", None),
        LintKind.UNCLAIMED_COMPONENT,
        "$.component_promotions[0].component",
    ),
]


def test_the_good_plan_has_no_problem_and_is_schema_valid() -> None:
    assert spec.schema_problems(good()) == []
    assert lint(good(), file="wave-3.json", facts=FACTS) == []


@pytest.mark.parametrize(("name", "breaks", "kind", "path"), CASES, ids=[case[0] for case in CASES])
def test_a_plan_broken_in_one_way_gets_exactly_that_finding_at_its_path(
    name: str, breaks: Break, kind: LintKind, path: str
) -> None:
    wave = good()
    breaks(wave)
    found = lint(wave, file="wave-3.json", facts=FACTS)
    assert [(f.kind, f.path) for f in found] == [(kind, path)], found
    assert found[0].message and found[0].fix and found[0].file == "wave-3.json"
    assert str(found[0]).startswith(f"wave-3.json: {path}: ")


def test_every_rule_but_those_needing_a_file_has_a_case_and_a_documented_line() -> None:
    covered = {case[2] for case in CASES} | {LintKind.TESTS_GATE_OFF}  # facts: its own test
    by_file = {LintKind.WAVE_MISMATCH, LintKind.UNMAPPED_MARKDOWN}  # lint_file: their own tests
    assert covered | by_file == set(LintKind)
    assert set(RULES) == set(LintKind)
    guide = (Path(__file__).parents[2] / "docs" / "plans.md").read_text(encoding="utf-8")
    assert [kind for kind in LintKind if f"`{kind.value}`" not in guide] == []


def test_a_dark_factory_wave_in_a_repo_whose_tests_gate_cannot_block_is_refused() -> None:
    off = RepoFacts(
        frozenset({1, 3}), tests_gate_blocks=False, runtimes=FACTS.runtimes, tests_gate_why="skipped"
    )
    found = lint(good(), file="w.json", facts=off)
    assert [(f.kind, f.path) for f in found] == [(LintKind.TESTS_GATE_OFF, "$.mode")]
    assert "skipped" in found[0].message
    oversight = {**good(), "mode": "oversight"}
    assert lint(oversight, file="w.json", facts=off) == []


def test_an_oversight_wave_needs_no_validation_and_no_rollback() -> None:
    wave = {**good(), "mode": "oversight"}
    del wave["validation"]
    del _task(wave, "ship")["deploy"]["rollback"]
    assert lint(wave, file="w.json", facts=FACTS) == []


def test_a_closure_role_is_named_as_compiled_by_speedrift() -> None:
    wave = good()
    _task(wave, "docs")["role"] = "evaluation"
    (finding,) = lint(wave, file="w.json", facts=FACTS)
    assert "plan compile" in finding.message


def test_without_repo_facts_the_checks_that_need_the_repo_are_skipped() -> None:
    wave = good()
    wave["sequencing"] = {"after_waves": [2]}  # unknown only to a repo
    assert lint(wave, file="w.json") == []
    wave["sequencing"] = {"after_waves": [7]}  # later than wave 3: wrong anywhere
    assert [f.kind for f in lint(wave, file="w.json")] == [LintKind.UNKNOWN_WAVE]


def test_findings_are_in_document_order_and_each_names_its_markdown_line() -> None:
    wave = good()
    for task in wave["tasks"]:
        del task["exit_contract"]
    wave["tasks"] = wave["tasks"] * 3  # 12 tasks: $.tasks[10] sorts after $.tasks[9]
    lines = {"$": 1, "$.tasks[0]": 20, "$.tasks[10]": 90, "$.tasks[10].id": 91}
    found = lint(wave, file="wave-3.md", facts=FACTS, lines=lines)
    missing = [f for f in found if f.kind is LintKind.MISSING_EXIT_CONTRACT]
    assert [f.path for f in missing] == [f"$.tasks[{i}]" for i in range(12)]
    assert [f.line for f in missing][:2] == [20, 1]  # its own line, else the nearest parent's
    assert missing[10].line == 90
    duplicate = next(f for f in found if f.kind is LintKind.DUPLICATE_TASK and f.path == "$.tasks[10].id")
    assert duplicate.line == 91
    assert str(duplicate).startswith("wave-3.md:91: $.tasks[10].id: ")


def test_the_line_of_a_path_is_its_own_or_its_nearest_parents() -> None:
    lines = {"$": 1, "$.tasks[2]": 30, "$.tasks[2].owned": 34}
    assert line_of("$.tasks[2].owned[5]", lines) == 34
    assert line_of("$.tasks[2].deploy.rollback", lines) == 30
    assert line_of("$.title", lines) == 1
    assert line_of("$.title", {}) is None


HOSTILE: list[Any] = [
    None,
    [],
    "wave",
    {"tasks": "not a list"},
    {"tasks": [1, None, "x", []]},
    {
        "tasks": [
            {"id": 7, "owned": 3, "after": "api", "deliverables": {"a": 1}, "runtime": [], "deploy": "x"}
        ]
    },
    {"tasks": [{"id": "a", "after": ["a", 5, None]}, {"id": "a", "owned": [None, "../x", 4]}]},
    {"sequencing": [], "deploy_environments": {"x": 1}, "component_promotions": [5, {"component": 3}]},
    {"sequencing": {"after_waves": ["1", True, 2.5, None, 10**30]}, "wave": "3"},
    {
        "wave": True,
        "mode": "dark-factory",
        "validation": "pytest",
        "deploy_environments": [{"default": True}],
    },
    {"tasks": [{"id": "x" * 100_000, "role": "r" * 100_000, "owned": ["**"] * 3}]},
]


@pytest.mark.parametrize("value", HOSTILE, ids=[f"hostile-{i}" for i in range(len(HOSTILE))])
def test_a_hostile_value_gives_findings_not_a_crash(value: Any) -> None:
    found = lint(value, file="evil.json", facts=FACTS)
    assert found, "a hostile value is never a good plan"
    assert all(isinstance(f, Finding) and len(f.message) < 2000 for f in found)
    assert any(f.kind is LintKind.SCHEMA for f in found)
    json.dumps([f.as_dict() for f in found])


def test_rules_still_run_on_a_value_the_schema_refuses() -> None:
    wave = good()
    wave["title"] = 5  # a schema problem
    _task(wave, "docs")["owned"] = ["src/api/limiter.py"]  # and a rule's
    kinds = {f.kind for f in lint(wave, file="w.json", facts=FACTS)}
    assert kinds == {LintKind.SCHEMA, LintKind.OWNERSHIP_OVERLAP}


def test_a_line_break_in_a_one_line_field_is_said_plainly() -> None:
    wave = good()
    wave["title"] = "two\nlines"
    (finding,) = lint(wave, file="w.json", facts=FACTS)
    assert finding.path == "$.title" and "must be one line" in finding.message


# --- the overlap search -------------------------------------------------------------------------
_GLOB = st.lists(
    st.sampled_from(["src", "a", "b", "*", "**", "x.py", "?.py", "[ab]", "docs"]), min_size=1, max_size=3
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.lists(_GLOB.map("/".join), max_size=3), min_size=1, max_size=6),
    st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), max_size=4),
)
def test_the_indexed_overlap_search_finds_what_comparing_every_pair_finds(
    owned: list[list[str]], edges: list[tuple[int, int]]
) -> None:
    listed = [(f"t{i}", paths) for i, paths in enumerate(owned)]
    deps = {task: [f"t{b}" for a, b in edges if f"t{a}" == task] for task, _ in listed}
    reach = reachable(deps)
    naive = [
        (i, j, a, b)
        for i, (one, one_paths) in enumerate(listed)
        for j, (other, other_paths) in enumerate(listed)
        if i < j and one not in reach[other] and other not in reach[one]
        for a, first in enumerate(one_paths)
        for b, second in enumerate(other_paths)
        if may_overlap(first, second)
    ]
    found = [(o.first, o.second, o.first_path, o.second_path) for o in parallel_overlaps(listed, deps)]
    assert found == naive


# --- the repo's facts and files -------------------------------------------------------------------
def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("config", "tests_file", "blocks"),
    [
        ("", True, True),
        ("", False, False),
        ('[gates]\nrequire_tests = "always"\n', False, True),
        ('[gates]\nrequire_tests = "never"\n', True, False),
        ('[gates]\nskip = ["tests"]\n', True, False),
        ('[gates.tests]\ncommand = ["make", "check"]\n', False, True),
    ],
    ids=["tests-found", "no-tests-auto", "always", "never", "skipped", "configured-command"],
)
def test_the_tests_gate_blocks_only_when_the_repo_config_and_its_tests_let_it(
    tmp_path: Path, config: str, tests_file: bool, blocks: bool
) -> None:
    _write(tmp_path / "speedrift.toml", config)
    if tests_file:
        _write(tmp_path / "tests" / "test_calc.py", "def test_one() -> None:\n    assert True\n")
    facts = repo_facts(tmp_path)
    assert facts.tests_gate_blocks is blocks
    assert bool(facts.tests_gate_why) is not blocks
    assert facts.runtimes == frozenset(RUNTIME_NAMES)


def test_the_known_waves_are_the_specs_in_the_repo(tmp_path: Path) -> None:
    for n in (1, 4):
        _write(spec.spec_path(tmp_path, n), "{}")
    _write(spec.specs_dir(tmp_path) / "notes.json", "{}")
    assert repo_facts(tmp_path).known_waves == frozenset({1, 4})


def test_a_spec_file_numbered_unlike_its_wave_is_reported(tmp_path: Path) -> None:
    _write(spec.spec_path(tmp_path, 1), "{}")
    path = _write(spec.spec_path(tmp_path, 4), json.dumps(good()))
    found = lint_file(tmp_path, path, facts=FACTS)
    assert [(f.kind, f.path) for f in found] == [(LintKind.WAVE_MISMATCH, "$.wave")]
    assert found[0].file == "plans/waves/specs/wave-4.json"


def test_a_spec_that_is_not_json_is_one_finding_naming_the_file(tmp_path: Path) -> None:
    path = _write(spec.spec_path(tmp_path, 3), '{"wave": 3,\n  "title": ')
    (finding,) = lint_file(tmp_path, path, facts=FACTS)
    assert finding.kind is LintKind.SCHEMA and finding.path == "$"
    assert finding.file == "plans/waves/specs/wave-3.json" and "JSON" in finding.message


def test_a_file_that_is_not_a_wave_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        lint_file(tmp_path, _write(tmp_path / "wave-3.yaml", "x"), facts=FACTS)


def test_lint_of_the_good_plan_as_a_file_reads_the_repos_facts(tmp_path: Path) -> None:
    _write(spec.spec_path(tmp_path, 1), "{}")
    path = _write(spec.spec_path(tmp_path, 3), json.dumps(good()))
    found = lint_file(tmp_path, path)  # no tests in this repo: the tests gate cannot block
    assert [f.kind for f in found] == [LintKind.TESTS_GATE_OFF]
    _write(tmp_path / "speedrift.toml", '[gates]\nrequire_tests = "always"\n')
    assert lint_file(tmp_path, path) == []


def test_a_copy_of_the_good_plan_is_unchanged_by_lint() -> None:
    wave = good()
    before = copy.deepcopy(wave)
    lint(wave, file="w.json", facts=FACTS)
    assert wave == before


# --- Markdown ----------------------------------------------------------------------------------------
def _line_number(text: str, line: str) -> int:
    return text.split("\n").index(line) + 1


def test_lint_of_a_waves_markdown_names_the_line_of_each_problem(tmp_path: Path) -> None:
    from speedrift.plans.render import render

    _write(tmp_path / "speedrift.toml", '[gates]\nrequire_tests = "always"\n')
    _write(spec.spec_path(tmp_path, 1), "{}")
    wave = good()
    _task(wave, "docs")["owned"].append("src/api/other.py")
    del wave["validation"]
    text = render(wave)
    path = _write(spec.markdown_path(tmp_path, 3), text)
    found = lint_file(tmp_path, path)
    assert [(f.kind, f.path, f.line) for f in found] == [
        (LintKind.OWNERSHIP_OVERLAP, "$.tasks[1].owned[1]", _line_number(text, "- `src/api/other.py`")),
        (LintKind.MISSING_VALIDATION, "$.validation", 1),  # not in the file: its top
    ]
    assert str(found[0]).startswith(f"plans/waves/wave-3.md:{found[0].line}: $.tasks[1].owned[1]: ")
    _write(path, render(good()))
    assert lint_file(tmp_path, path) == []


def test_lint_of_foreign_markdown_reports_what_is_kept_unused_and_what_cannot_be_read(tmp_path: Path) -> None:
    from speedrift.plans.render import render

    _write(tmp_path / "speedrift.toml", '[gates]\nrequire_tests = "always"\n')
    _write(spec.spec_path(tmp_path, 1), "{}")
    text = render(good()).replace(
        "### Owned files\n\n- `docs/limiter.md`",
        "### Context7\n\n- bundle: none\n\n### Owned files\n\n- `docs/limiter.md`\nstray words",
    )
    path = _write(spec.markdown_path(tmp_path, 3), text)
    found = lint_file(tmp_path, path)
    kept = [f for f in found if f.kind is LintKind.UNMAPPED_MARKDOWN]
    unread = [f for f in found if f.kind is LintKind.SCHEMA]
    assert [f.line for f in kept] == [_line_number(text, "### Context7")]
    assert [f.line for f in unread] == [_line_number(text, "stray words")]
    assert "stray words" in unread[0].message
