"""`speedrift plan lint|show|render` and `speedrift project show|setup` through the real CLI, in
real git repositories: exit codes, text and --json output, and what is left on disk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from speedrift.cli.plan_cmds import ask
from speedrift.plans import project, spec
from speedrift.plans.project import Profile
from speedrift.plans.render import render
from tests.cli.support import Cli, git
from tests.plans.test_lint import good

TESTS_ALWAYS = '[gates]\nrequire_tests = "always"\n'


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository with a graph, whose tests gate blocks, holding wave 1 and the good wave 3."""
    path = tmp_path / "acme"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    Cli(path).ok("init")
    _write(path / "speedrift.toml", TESTS_ALWAYS)
    _write(spec.spec_path(path, 1), json.dumps({**good(), "wave": 1, "mode": "oversight", "sequencing": {}}))
    _write(spec.spec_path(path, 3), json.dumps(good()))
    return path


@pytest.fixture
def cli(repo: Path) -> Cli:
    return Cli(repo)


def _break(repo: Path) -> None:
    wave = good()
    wave["tasks"][1]["owned"].append("src/api/other.py")  # docs and api may run together
    del wave["validation"]
    _write(spec.spec_path(repo, 3), json.dumps(wave))


def test_lint_of_good_waves_says_so_and_exits_0(cli: Cli) -> None:
    done = cli.ok("plan", "lint")
    assert "2 wave file(s): no problems" in done.stdout
    assert cli.json("plan", "lint") == []


def test_lint_names_each_problem_with_file_path_and_fix_and_exits_1(cli: Cli, repo: Path) -> None:
    _break(repo)
    done = cli.fails(1, "plan", "lint")
    lines = done.stdout.splitlines()
    assert lines[0].startswith("plans/waves/specs/wave-3.json: $.tasks[1].owned[1]: tasks 'api' and 'docs' ")
    assert " — make one run after the other" in lines[0]
    assert lines[1].startswith("plans/waves/specs/wave-3.json: $.validation: ")
    assert lines[-1] == "2 problem(s) in 1 of 2 wave file(s)"
    found = cli.fails(1, "plan", "lint", "--json").json()
    assert [(f["kind"], f["path"], f["line"]) for f in found] == [
        ("ownership_overlap", "$.tasks[1].owned[1]", None),
        ("missing_validation", "$.validation", None),
    ]
    assert set(found[0]) == {"kind", "file", "line", "path", "message", "fix"}


def test_lint_of_a_markdown_wave_prints_file_and_line(cli: Cli, repo: Path) -> None:
    cli.ok("plan", "render")
    markdown = spec.markdown_path(repo, 3)
    text = markdown.read_text(encoding="utf-8").replace(
        "- `docs/limiter.md`", "- `docs/limiter.md`\n- `src/api/x.py`"
    )
    markdown.write_text(text, encoding="utf-8")
    line = text.split("\n").index("- `src/api/x.py`") + 1
    done = cli.fails(1, "plan", "lint", "plans/waves/wave-3.md")
    assert done.stdout.splitlines()[0].startswith(
        f"plans/waves/wave-3.md:{line}: $.tasks[1].owned[1]: tasks 'api'"
    )
    assert cli.fails(1, "plan", "lint", "--json", str(markdown)).json()[0]["line"] == line


def test_lint_of_one_named_file_checks_only_that_file(cli: Cli, repo: Path) -> None:
    _break(repo)
    cli.ok("plan", "lint", str(spec.spec_path(repo, 1)))
    cli.fails(1, "plan", "lint", "plans/waves/specs/wave-3.json")


def test_lint_of_a_missing_or_foreign_file_is_a_usage_error(cli: Cli, repo: Path) -> None:
    assert "no such file" in cli.fails(2, "plan", "lint", "plans/waves/specs/wave-9.json").stderr
    _write(repo / "notes.txt", "hello")
    assert "not a wave file" in cli.fails(2, "plan", "lint", "notes.txt").stderr


def test_lint_in_a_real_process_exits_1_on_findings_and_0_once_fixed(repo: Path) -> None:
    # a real `python -m speedrift`: the exit status a CI job sees
    process = Cli(repo, process=True)
    _break(repo)
    assert process("plan", "lint").returncode == 1
    _write(spec.spec_path(repo, 3), json.dumps(good()))
    done = process("plan", "lint", "--json")
    assert done.returncode == 0 and json.loads(done.stdout) == []


def test_lint_works_in_a_git_repository_without_a_graph(tmp_path: Path) -> None:
    path = tmp_path / "plain"
    (path / "src").mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    _write(path / "speedrift.toml", TESTS_ALWAYS)
    _write(spec.spec_path(path, 1), json.dumps({**good(), "wave": 1, "sequencing": {}}))
    assert Cli(path / "src").ok("plan", "lint").stdout.strip() == "1 wave file(s): no problems"


def test_lint_of_a_wave_whose_repo_has_no_waves_says_there_is_nothing(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    assert "No waves to lint" in Cli(path).ok("plan", "lint").stdout


def test_show_lists_the_waves_tasks_and_json_is_the_spec(cli: Cli) -> None:
    done = cli.ok("plan", "show", "3")
    assert "Wave 3 - Token-bucket rate limiting (dark-factory, 4 task(s))" in done.stdout
    for piece in ("api", "implementation", "src/api/**", "integrated/durable/unit/owned", "tests"):
        assert piece in done.stdout
    assert cli.json("plan", "show", "wave-3") == good()
    assert cli.json("plan", "show", "plans/waves/specs/wave-3.json") == good()
    cli.ok("plan", "render", "3")
    assert cli.json("plan", "show", "plans/waves/wave-3.md") == good()


def test_show_of_an_invalid_wave_points_at_lint(cli: Cli, repo: Path) -> None:
    _write(spec.spec_path(repo, 4), json.dumps({**good(), "wave": 4, "mode": "yolo"}))
    done = cli.fails(1, "plan", "show", "4")
    assert "not a valid wave spec" in done.stderr and "speedrift plan lint" in done.stderr
    assert "not a wave number" in cli.fails(2, "plan", "show", "three").stderr


def test_render_writes_each_waves_markdown_and_check_names_the_stale_ones(cli: Cli, repo: Path) -> None:
    markdown = spec.markdown_path(repo, 3)
    assert "is missing" in cli.fails(1, "plan", "render", "--check").stdout
    assert not markdown.exists()
    rows = cli.json("plan", "render")
    assert [(r["wave"], r["status"]) for r in rows] == [(1, "written"), (3, "written")]
    assert markdown.read_text(encoding="utf-8") == render(good())
    assert [r["status"] for r in cli.json("plan", "render", "--check")] == ["unchanged", "unchanged"]
    changed = {**good(), "title": "Renamed"}
    _write(spec.spec_path(repo, 3), json.dumps(changed))
    before = markdown.read_bytes()
    done = cli.fails(1, "plan", "render", "--check")
    assert "plans/waves/wave-3.md is stale" in done.stdout and "wave-1.md is up to date" in done.stdout
    assert markdown.read_bytes() == before
    cli.ok("plan", "render", "3")
    assert markdown.read_text(encoding="utf-8") == render(changed)


def test_render_refuses_an_invalid_spec_and_renders_the_others(cli: Cli, repo: Path) -> None:
    _write(spec.spec_path(repo, 3), json.dumps({**good(), "tasks": "none"}))
    done = cli.fails(1, "plan", "render")
    assert "wave 3: not rendered" in done.stdout and "plan lint" in done.stdout
    assert spec.markdown_path(repo, 1).is_file() and not spec.markdown_path(repo, 3).exists()


def test_project_show_says_where_each_value_comes_from(cli: Cli) -> None:
    shown = cli.json("project", "show")
    assert shown["exists"] is False and shown["file"] == spec.PROJECT_FILE
    assert shown["name"] == "acme" and shown["origins"]["name"] == "detected"
    assert shown["origins"]["default_mode"] == "default"
    assert "not written yet" in cli.ok("project").stdout


def test_project_setup_without_a_terminal_or_yes_refuses_instead_of_waiting(cli: Cli, repo: Path) -> None:
    done = cli.fails(2, "project", "setup", "--name", "Acme")
    assert "no terminal to ask" in done.stderr and "--yes" in done.stderr
    assert not (repo / spec.PROJECT_FILE).exists()


def test_project_setup_with_flags_and_yes_writes_the_profile_show_reads_back(cli: Cli, repo: Path) -> None:
    cli.ok("project", "setup", "--yes", "--mode", "dark-factory", "--runtime", "codex", "--runtime", "claude")
    shown = cli.json("project", "show")
    assert shown["exists"] is True
    assert (shown["default_mode"], shown["runtimes"], shown["name"]) == (
        "dark-factory",
        ["codex", "claude"],
        "acme",
    )
    assert set(shown["origins"].values()) == {"file"}
    again = cli.json(
        "project",
        "setup",
        "--name",
        "Acme API",
        "--new-project",
        "yes",
        "--test",
        "make test",
        "--test",
        "npm test",
    )
    assert (again["name"], again["new_project"], again["tests"]) == (
        "Acme API",
        True,
        ["make test", "npm test"],
    )
    assert again["default_mode"] == "dark-factory"  # kept from the file: nothing asked, no --yes needed


def test_project_setup_refuses_an_unknown_runtime_as_a_usage_error(cli: Cli, repo: Path) -> None:
    assert (
        "unknown runtime 'gemini'" in cli.fails(2, "project", "setup", "--yes", "--runtime", "gemini").stderr
    )
    assert not (repo / spec.PROJECT_FILE).exists()


def test_the_questions_keep_what_is_shown_on_an_empty_answer_and_ask_again_on_a_bad_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    answers = iter(["", "maybe", "yes", "codex, claude", "pytest -q ;; make lint"])
    asked: list[str] = []

    def read(question: str) -> str:
        asked.append(question)
        return next(answers)

    current = Profile(name="acme", runtimes=("claude",))
    got: dict[str, Any] = ask(current, ["name", "new_project", "runtimes", "tests"], read)
    assert got == {"new_project": True, "runtimes": ("codex", "claude"), "tests": ("pytest -q", "make lint")}
    assert asked[0] == "Project name [acme]: " and len(asked) == 5
    assert "true or false" in capsys.readouterr().err
    assert project.check({"new_project": True}, where="x") == {"new_project": True}
