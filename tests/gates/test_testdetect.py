"""The tests gate finds the usual layouts by their files, and runs them when the tool is installed."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from speedrift.gates.testdetect import detect
from speedrift.gates.tools import GATE_PATH_ENV
from tests.gates.conftest import NewRepo, gate, without_tools

NPM_PLACEHOLDER = 'echo "Error: no test specified" && exit 1'


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return root


def layouts(root: Path) -> list[tuple[str, str, str]]:
    return [(d.layout, d.label, d.found) for d in detect(root)]


def test_a_flat_pytest_repo_without_configuration_is_detected(tmp_path: Path) -> None:
    root = write(tmp_path, {"calc.py": "", "test_calc.py": ""})
    assert layouts(root) == [("pytest", "pytest", "test_calc.py")]


def test_test_files_anywhere_and_a_tests_directory_are_pytest(tmp_path: Path) -> None:
    assert layouts(write(tmp_path / "a", {"pkg/sub/calc_test.py": ""})) == [
        ("pytest", "pytest", "pkg/sub/calc_test.py")
    ]
    assert layouts(write(tmp_path / "b", {"tests/helpers.py": ""})) == [
        ("pytest", "pytest", "tests/helpers.py")
    ]
    configured = write(tmp_path / "c", {"pytest.ini": "[pytest]\n", "test/data.txt": ""})
    assert layouts(configured) == [("pytest", "pytest", "test/ with pytest configuration")]


def test_test_files_in_dependencies_environments_and_hidden_folders_do_not_count(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "node_modules/pkg/test_x.py": "",
            ".venv/lib/test_y.py": "",
            "venv/lib/test_z.py": "",
            ".speedrift/worktrees/w/test_w.py": "",
            "build/test_b.py": "",
            "src/app.py": "",
            "tests/fixture.json": "",  # a tests/ folder without Python and without pytest configuration
        },
    )
    assert layouts(root) == []


def test_npm_test_counts_only_when_package_json_has_a_real_test_script(tmp_path: Path) -> None:
    real = write(tmp_path / "a", {"package.json": json.dumps({"scripts": {"test": "node --test"}})})
    assert layouts(real) == [("npm", "npm test", "package.json scripts.test")]
    placeholder = write(tmp_path / "b", {"package.json": json.dumps({"scripts": {"test": NPM_PLACEHOLDER}})})
    assert layouts(placeholder) == []
    assert layouts(write(tmp_path / "c", {"package.json": "{not json"})) == []
    assert layouts(write(tmp_path / "d", {"package.json": json.dumps({"name": "x"})})) == []


def test_go_cargo_and_make_are_detected_by_their_files(tmp_path: Path) -> None:
    assert layouts(write(tmp_path / "go", {"go.mod": "module example.com/x\n"})) == [
        ("go", "go test ./...", "go.mod")
    ]
    assert layouts(write(tmp_path / "rust", {"Cargo.toml": "[package]\nname = 'x'\n"})) == [
        ("cargo", "cargo test", "Cargo.toml")
    ]
    assert layouts(write(tmp_path / "make", {"Makefile": "build:\n\tcc x.c\n\ntest: build\n\t./x\n"})) == [
        ("make", "make test", "Makefile test target")
    ]
    assert layouts(write(tmp_path / "make2", {"Makefile": "check test:\n\ttrue\n"}))[0][0] == "make"
    no_target = write(tmp_path / "make3", {"Makefile": "build:\n\tcc x.c\nTEST := 1\ntest_x: a\n"})
    assert layouts(no_target) == []


def test_a_repo_with_several_layouts_lists_them_in_order_and_the_first_runs(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {"Makefile": "test:\n\tpytest\n", "go.mod": "module x\n", "tests/test_a.py": ""},
    )
    assert [d.layout for d in detect(root)] == ["pytest", "go", "make"]


def test_a_detected_suite_whose_tool_is_missing_fails_naming_the_tool_and_its_install(
    new_repo: NewRepo, tmp_path: Path
) -> None:
    repo = new_repo({"go.mod": "module example.com/x\n", "x.go": "package x\n"})
    repo.change({"x.go": "package x\n\nconst A = 1\n"})
    result = gate(repo.gates(only=("tests",), env=without_tools(tmp_path)), "tests")
    assert (result.status, result.failure_class) == ("fail", "env_bootstrap")
    assert (
        result.reason == "tests found (go.mod) but go not installed (install Go: https://go.dev/doc/install)"
    )


def test_with_require_tests_never_a_missing_tool_only_skips(new_repo: NewRepo, tmp_path: Path) -> None:
    repo = new_repo({"Cargo.toml": "[package]\nname = 'x'\n"})
    repo.change({"Cargo.toml": "[package]\nname = 'x'\nversion = '0.1.0'\n"})
    result = gate(
        repo.gates({"require_tests": "never"}, only=("tests",), env=without_tools(tmp_path)), "tests"
    )
    assert result.status == "skipped" and "cargo not installed (install Rust with rustup" in result.reason


def tools_env(*tools: str) -> dict[str, str]:
    """Gate tools from the directories the named tools are installed in, and this interpreter's."""
    dirs = [str(Path(shutil.which(t) or "").parent) for t in tools]
    return {**os.environ, GATE_PATH_ENV: os.pathsep.join([*dirs, str(Path(sys.executable).parent)])}


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed here")
def test_make_test_runs_and_a_change_that_breaks_it_is_a_regression(new_repo: NewRepo) -> None:
    makefile = "test:\n\t@grep -q 'answer = 42' answer.txt\n"
    repo = new_repo({"Makefile": makefile, "answer.txt": "answer = 42\n"})
    repo.change({"answer.txt": "answer = 41\n"})
    result = gate(repo.gates(only=("tests",), env=tools_env("make")), "tests")
    assert (result.status, result.failure_class) == ("fail", "regression")
    assert Path(result.command[0]).name == "make" and result.command[1:] == ("test",)


@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed here")
def test_npm_test_runs_from_package_json(new_repo: NewRepo) -> None:
    script = "node -e \"process.exit(require('./answer.json').answer === 42 ? 0 : 1)\""
    package = json.dumps({"name": "x", "version": "1.0.0", "scripts": {"test": script}})
    repo = new_repo({"package.json": package, "answer.json": '{"answer": 41}\n'})
    repo.change({"answer.json": '{"answer": 42}\n'})
    result = gate(repo.gates(only=("tests",), env=tools_env("npm", "node")), "tests")
    assert (result.status, result.reason) == ("pass", "the test command passed")
    assert Path(result.command[0]).name == "npm"


@pytest.mark.skipif(shutil.which("cargo") is None, reason="cargo is not installed here")
def test_cargo_test_runs_a_crate_without_dependencies(new_repo: NewRepo) -> None:
    lib = "pub fn add(a: i32, b: i32) -> i32 { a + b }\n\n#[test]\nfn adds() { assert_eq!(add(1, 2), 3); }\n"
    repo = new_repo(
        {"Cargo.toml": '[package]\nname = "calc"\nversion = "0.1.0"\nedition = "2021"\n', "src/lib.rs": lib}
    )
    repo.change({"src/lib.rs": lib.replace("a + b", "a - b")})
    result = gate(repo.gates(only=("tests",), env=tools_env("cargo")), "tests")
    assert (result.status, result.failure_class) == ("fail", "regression")


@pytest.mark.skipif(shutil.which("go") is None, reason="go is not installed here")
def test_go_test_runs_a_module(new_repo: NewRepo) -> None:
    code = "package calc\n\nfunc Add(a, b int) int { return a + b }\n"
    check = (
        'package calc\n\nimport "testing"\n\n'
        'func TestAdd(t *testing.T) {\n\tif Add(1, 2) != 3 {\n\t\tt.Fatal("no")\n\t}\n}\n'
    )
    repo = new_repo(
        {"go.mod": "module example.com/calc\n\ngo 1.20\n", "calc.go": code, "calc_test.go": check}
    )
    repo.change({"calc.go": code.replace("a + b", "a - b")})
    result = gate(repo.gates(only=("tests",), env=tools_env("go")), "tests")
    assert (result.status, result.failure_class) == ("fail", "regression")
