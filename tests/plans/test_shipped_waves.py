"""The real waves wave-orchestration ships (its npm package, pinned by scripts/install-test-packages
into the test cache, beside the agent CLIs): every one imports (or its one real defect is named
with its line), gives a schema-valid spec, lints with its real problems named by line, round-trips
through render → import, and imports through the CLI.

The package is looked for in ``$SPEEDRIFT_TEST_CACHE`` (default ``~/.cache/speedrift-tests``)
``/test-packages``; when it is missing the fixture runs the install script (npm must be there),
and when that fails the tests skip with the command — except under CI, where a missing package is
a broken setup and fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from speedrift import fsutil
from speedrift.coord.records import Actor, Author
from speedrift.graph.store import GraphStore, init_graph_dir
from speedrift.plans import spec
from speedrift.plans.compile import compile_wave
from speedrift.plans.compiler import LintFindings, compile_plan
from speedrift.plans.importer import Imported, parse_markdown
from speedrift.plans.lint import lint
from speedrift.plans.render import render
from tests.cli.support import Cli, git
from tests.gitrepo import make_repo

REPO = Path(__file__).resolve().parents[2]
INSTALL = REPO / "scripts" / "install-test-packages"
PACKAGE = ("@chllming", "wave-orchestration")
WAVES = [f"waves/wave-{n}.md" for n in range(7)]
EXAMPLES = [
    "examples/wave-benchmark-improvement.md",
    "examples/wave-example-design-handoff.md",
    "examples/wave-example-live-proof.md",
    "examples/wave-example-rollout-fidelity.md",
]
# The one shipped wave that cannot be read: a prose line in D1's `### Skills` list, which
# wave-orchestration's own parser refuses too ("Malformed skill entry").
DEFECT = "examples/wave-example-design-handoff.md"
DEFECT_PROBLEM = (135, "not a `- item` line of `### Skills`")
# The wave numbers of the examples come from their titles (`# Wave 99 - …`).
NUMBERS = {
    **{name: n for n, name in enumerate(WAVES)},
    "examples/wave-benchmark-improvement.md": 99,
    "examples/wave-example-live-proof.md": 14,
    "examples/wave-example-rollout-fidelity.md": 9,
}
# What lint finds in each shipped wave, as (kind, JSON path, Markdown line): tasks that may run
# together owning the same files (waves 4-6: the shared proof directories and schema modules), and
# implementation agents written without an exit contract (two examples). The rest are clean.
FINDINGS: dict[str, list[tuple[str, str, int]]] = {
    "waves/wave-4.md": [
        ("ownership_overlap", "$.tasks[1].owned[5]", 297),  # a1, a2: .tmp/wave-4-state-proof/**
        ("ownership_overlap", "$.tasks[2].owned[1]", 387),  # a2, a3: wave-control-schema.mjs
        ("ownership_overlap", "$.tasks[2].owned[2]", 388),  # a2, a3: control-plane.mjs
        ("ownership_overlap", "$.tasks[2].owned[4]", 390),  # a1, a3: .tmp/wave-4-state-proof/**
        ("ownership_overlap", "$.tasks[2].owned[4]", 390),  # a2, a3: the same
    ],
    "waves/wave-5.md": [
        ("ownership_overlap", "$.tasks[1].owned[3]", 315),
        ("ownership_overlap", "$.tasks[2].owned[2]", 381),
        ("ownership_overlap", "$.tasks[2].owned[2]", 381),
    ],
    "waves/wave-6.md": [("ownership_overlap", "$.tasks[1].owned[3]", 320)],
    "examples/wave-benchmark-improvement.md": [
        ("missing_exit_contract", "$.tasks[0]", 60),
        ("missing_exit_contract", "$.tasks[1]", 83),
    ],
    "examples/wave-example-live-proof.md": [
        ("missing_exit_contract", "$.tasks[2]", 359),
        ("missing_exit_contract", "$.tasks[3]", 400),
    ],
}
READABLE = [name for name in WAVES + EXAMPLES if name != DEFECT]


def _docs_dir() -> Path:
    cache = os.environ.get("SPEEDRIFT_TEST_CACHE") or str(Path.home() / ".cache" / "speedrift-tests")
    return Path(cache).joinpath("test-packages", "node_modules", *PACKAGE, "docs", "plans")


@pytest.fixture(scope="session")
def shipped() -> Path:
    """The package's docs/plans/ (see the module docstring)."""
    docs = _docs_dir()
    if not docs.is_dir() and shutil.which("npm"):
        lock = docs.parents[4] / "install.lock"  # xdist workers: one installs, the others wait
        with fsutil.flocked(lock):
            if not docs.is_dir():
                subprocess.run([str(INSTALL)], capture_output=True, check=False, timeout=600)
    if docs.is_dir():
        return docs
    why = f"wave-orchestration's waves missing from {docs}; install them with {INSTALL}"
    if os.environ.get("CI"):
        pytest.fail(f"{why} — CI must run that setup step first", pytrace=False)
    pytest.skip(why)


def _read(shipped: Path, name: str) -> Imported:
    return parse_markdown((shipped / name).read_text(encoding="utf-8"), file=name)


def test_the_package_ships_exactly_the_waves_these_tests_name(shipped: Path) -> None:
    found = sorted(
        str(path.relative_to(shipped))
        for folder in ("waves", "examples")
        for path in (shipped / folder).glob("*.md")
    )
    assert found == sorted(WAVES + EXAMPLES)


@pytest.mark.parametrize("name", READABLE)
def test_a_shipped_wave_imports_with_no_problem_into_a_schema_valid_spec(shipped: Path, name: str) -> None:
    imported = _read(shipped, name)
    assert imported.problems == []
    assert spec.schema_problems(imported.spec) == []
    wave = spec.parse(imported.spec)
    assert wave.wave == NUMBERS[name]
    assert wave.tasks, "every shipped wave has implementation agents"
    assert set(wave.closure) <= {"integration", "documentation", "evaluation"} and wave.closure
    for index, task in enumerate(wave.tasks):
        assert task.owned, f"{task.id}: its prompt's File ownership list is its owned files"
        assert imported.lines[f"$.tasks[{index}].owned[0]"] > imported.lines[f"$.tasks[{index}]"]
        assert task.prompt.strip()
    # nothing about a closure agent became a task: they are closure guidance
    assert not {"a0", "a8", "a9", "e0"} & {task.id for task in wave.tasks}
    assert imported.unmapped, "wave-orchestration's executor keys, Context7 and closure agents are reported"
    assert all(item.line >= 1 for item in imported.unmapped)


def test_the_shipped_example_with_a_prose_line_in_a_skills_list_is_refused_at_that_line(
    shipped: Path,
) -> None:
    imported = _read(shipped, DEFECT)
    assert [(item.line, item.why) for item in imported.problems] == [DEFECT_PROBLEM]
    line = (shipped / DEFECT).read_text(encoding="utf-8").split("\n")[DEFECT_PROBLEM[0] - 1]
    assert line.startswith("Add `tui-design` here too")
    assert imported.problems[0].what.startswith("Add `tui-design` here too")


@pytest.mark.parametrize("name", READABLE)
def test_lint_names_the_real_problems_of_a_shipped_wave_with_their_lines(shipped: Path, name: str) -> None:
    imported = _read(shipped, name)
    found = lint(imported.spec, file=name, lines=imported.lines)
    assert sorted((f.kind.value, f.path, f.line) for f in found) == sorted(FINDINGS.get(name, []))
    assert all(f.file == name for f in found)


def test_an_ownership_overlap_of_wave_4_names_both_tasks_and_the_shared_file(shipped: Path) -> None:
    imported = _read(shipped, "waves/wave-4.md")
    found = lint(imported.spec, file="wave-4.md", lines=imported.lines)
    messages = [f.message for f in found if f.path == "$.tasks[2].owned[1]"]
    assert messages and "'a2' and 'a3'" in messages[0]
    assert "scripts/wave-orchestrator/wave-control-schema.mjs" in messages[0]
    text = (shipped / "waves/wave-4.md").read_text(encoding="utf-8").split("\n")
    assert text[387 - 1] == "- scripts/wave-orchestrator/wave-control-schema.mjs"


@pytest.mark.parametrize("name", READABLE)
def test_a_shipped_wave_round_trips_through_render_and_import(shipped: Path, name: str) -> None:
    value = _read(shipped, name).spec
    again = parse_markdown(render(value), file=f"plans/waves/wave-{value['wave']}.md")
    assert again.problems == [] and again.unmapped == []
    assert spec.canonical(again.spec) == spec.canonical(value)


def _repo(tmp_path: Path) -> Path:
    path = tmp_path / "acme"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    return path


def test_plan_import_writes_a_shipped_wave_and_exits_1_on_its_lint_findings(
    shipped: Path, tmp_path: Path
) -> None:
    repo = _repo(tmp_path)
    source = shipped / "waves/wave-4.md"
    done = Cli(repo).fails(1, "plan", "import", str(source))
    assert "written: plans/waves/specs/wave-4.json, plans/waves/wave-4.md" in done.stdout
    assert "Lint: 5 problem(s) in the wave" in done.stdout
    assert f"{source}:297: $.tasks[1].owned[5]" in done.stdout
    assert f"{source}:141: Agent A1: ### Context7 — speedrift has no Context7 bundles" in done.stdout
    written = json.loads(spec.spec_path(repo, 4).read_text(encoding="utf-8"))
    assert spec.spec_path(repo, 4).read_bytes() == spec.canonical(written)
    assert spec.canonical(written) == spec.canonical(_read(shipped, "waves/wave-4.md").spec)
    assert spec.markdown_path(repo, 4).read_text(encoding="utf-8") == render(written)


def test_plan_import_of_the_defective_example_writes_nothing_and_names_the_line(
    shipped: Path, tmp_path: Path
) -> None:
    repo = _repo(tmp_path)
    report = Cli(repo).fails(1, "plan", "import", str(shipped / DEFECT), "--json").json()
    assert report["written"] == [] and report["wave"] == 12
    assert [(item["line"], item["why"]) for item in report["problems"]] == [DEFECT_PROBLEM]
    assert not (repo / spec.PLANS_DIR).exists()


@pytest.mark.parametrize("name", READABLE)
def test_a_shipped_wave_compiles_into_the_graph_or_is_refused_for_exactly_its_lint_findings(
    shipped: Path, tmp_path: Path, name: str
) -> None:
    value = _read(shipped, name).spec
    repo = make_repo(
        tmp_path / "repo", {"README.md": "# acme\n", "tests/test_acme.py": "def test_ok(): pass\n"}
    )
    store = GraphStore(init_graph_dir(repo))
    path = spec.spec_path(repo, int(value["wave"]))
    path.parent.mkdir(parents=True)
    path.write_bytes(spec.canonical(value))
    number, tasks = int(value["wave"]), len(value["tasks"])
    if name in FINDINGS:
        with pytest.raises(LintFindings) as refused:
            compile_plan(repo, store, number, author=Author(Actor.HUMAN, name="tester"))
        assert len(refused.value.findings) == len(FINDINGS[name])
        assert store.load().tasks == {}  # nothing written
        # the spec itself compiles: lint, not the compiler, holds it back
        built = compile_wave(store.load(), value, now=datetime(2026, 12, 1, tzinfo=UTC), actor="t")
        assert len(built.changes) == tasks + 3
        return
    compile_plan(repo, store, number, author=Author(Actor.HUMAN, name="tester"))
    graph = store.load()
    assert len(graph.tasks) == tasks + 3
    assert {f"w{number}.{stage}" for stage in ("integration", "documentation", "evaluation")} <= set(
        graph.tasks
    )
    before = store.graph_path.read_bytes()
    compile_plan(repo, store, number, author=Author(Actor.HUMAN, name="tester"))
    assert store.graph_path.read_bytes() == before  # compiling twice changes nothing
