"""qadrift's incremental suite on real repos and real pytest runs: at a new head only the test files
a change reaches (directly, transitively, through relative imports, a src/ layout or a conftest)
run, the other files' outcomes are carried from the earlier head — and whatever static reading
cannot vouch for runs the full suite. What ran is read from the lane's suite.json, and from a
marker line each test appends to a file outside the checkout."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from speedrift.lanes.builtin import qadrift
from speedrift.lanes.builtin.qadrift import LANE
from speedrift.lanes.spec import LaneOutput
from tests.gitrepo import commit_file, make_repo, sh_git
from tests.lanes.treesupport import run_lane


def _test(name: str, imports: str, check: str) -> str:
    return (
        f"import os\n{imports}\n\n\ndef test_{name}():\n"
        f"    with open(os.environ.get('QA_RAN', os.devnull), 'a') as log:\n"
        f"        log.write('{name}\\n')\n"
        f"    assert {check}\n"
    )


FILES = {
    "app/__init__.py": "",
    "app/core.py": "def double(x):\n    return 2 * x\n",
    "app/service.py": "from app.core import double\n\n\ndef quad(x):\n    return double(double(x))\n",
    "app/rel.py": "from .core import double\n\n\ndef six():\n    return double(3)\n",
    "app/other.py": "def one():\n    return 1\n",
    "app/lonely.py": "def alone():\n    return 0\n",
    "src/pkg/__init__.py": "",
    "src/pkg/mod.py": "def name():\n    return 'pkg'\n",
    "tests/test_core.py": _test("core", "from app.core import double", "double(2) == 4"),
    "tests/test_service.py": _test("service", "from app.service import quad", "quad(1) == 4"),
    "tests/test_rel.py": _test("rel", "from app import rel", "rel.six() == 6"),
    "tests/test_other.py": _test("other", "from app.other import one", "one() == 1"),
    "tests/test_pkg.py": _test("pkg", "from pkg.mod import name", "name() == 'pkg'"),
}
ALL = sorted(p for p in FILES if p.startswith("tests/"))


@pytest.fixture
def ran(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    marker = tmp_path / "ran.log"
    monkeypatch.setenv("QA_RAN", str(marker))
    return marker


def _ran(marker: Path) -> list[str]:
    """The tests that ran since the last look (and forget them)."""
    names = sorted(marker.read_text().split()) if marker.exists() else []
    marker.unlink(missing_ok=True)
    return names


def _entry(repo: Path) -> dict[str, Any]:
    """suite.json's record for the repo's HEAD."""
    head = sh_git(repo, "rev-parse", "HEAD")
    document = orjson.loads((repo / ".speedrift" / "lanes" / "qadrift" / qadrift.SUITE_FILE).read_bytes())
    [entry] = [e for e in document["entries"].values() if e.get("head") == head]
    return dict(entry)


def _failing(out: LaneOutput) -> list[str]:
    return [
        e for f in out.findings if f.kind == "tests_failing" for e in f.evidence if e.startswith("failing:")
    ]


def _started(tmp_path: Path, ran: Path, files: dict[str, str] | None = None) -> Path:
    repo = make_repo(tmp_path / "r", files or FILES)
    run_lane(LANE, repo)
    assert _entry(repo)["mode"] == "full" and _ran(ran)
    return repo


def test_a_changed_module_runs_only_the_tests_that_import_it_and_carries_the_rest(
    tmp_path: Path, ran: Path
) -> None:
    repo = _started(tmp_path, ran)
    first = sh_git(repo, "rev-parse", "HEAD")
    commit_file(repo, "app/core.py", "def double(x):\n    return x + x\n")
    out = run_lane(LANE, repo)
    entry = _entry(repo)
    assert (entry["mode"], entry["carried_from"]) == ("selected", first)
    # directly, transitively (service -> core), and through a relative import (rel -> .core)
    assert entry["ran_files"] == ["tests/test_core.py", "tests/test_rel.py", "tests/test_service.py"]
    assert _ran(ran) == ["core", "rel", "service"]
    assert sorted(entry["tests"]) == ALL and entry["returncode"] == 0
    assert f"3 of 5 test files run (selected from changes since {first[:12]}; 2 carried)" in out.summary
    assert [f for f in out.findings if f.kind == "tests_failing"] == []


def test_a_change_in_a_src_layout_package_runs_its_tests_only(tmp_path: Path, ran: Path) -> None:
    repo = _started(tmp_path, ran)
    commit_file(repo, "src/pkg/mod.py", "def name():\n    return 'pkg!'\n")
    out = run_lane(LANE, repo)
    assert _entry(repo)["ran_files"] == ["tests/test_pkg.py"] and _ran(ran) == ["pkg"]
    [line] = _failing(out)  # a test that ran at this head and failed: not marked as carried
    assert line.startswith("failing: tests.test_pkg::test_pkg") and "carried" not in line


def test_a_module_a_conftest_imports_reaches_every_test_under_it(tmp_path: Path, ran: Path) -> None:
    conftest = "import pytest\n\nfrom app.lonely import alone\n\n\n@pytest.fixture\n" + (
        "def zero():\n    return alone()\n"
    )
    repo = _started(tmp_path, ran, {**FILES, "tests/conftest.py": conftest})
    commit_file(repo, "app/lonely.py", "def alone():\n    return 00\n")
    run_lane(LANE, repo)
    assert _entry(repo)["ran_files"] == ALL and _ran(ran) == ["core", "other", "pkg", "rel", "service"]


def test_a_new_and_a_modified_test_file_run_themselves(tmp_path: Path, ran: Path) -> None:
    repo = _started(tmp_path, ran)
    (repo / "tests" / "test_new.py").write_text(_test("new", "from app.other import one", "one() == 1"))
    (repo / "tests" / "test_other.py").write_text(_test("other", "from app.other import one", "one() > 0"))
    sh_git(repo, "add", "-A")
    sh_git(repo, "commit", "-q", "-m", "tests")
    run_lane(LANE, repo)
    assert _entry(repo)["ran_files"] == ["tests/test_new.py", "tests/test_other.py"]
    assert _ran(ran) == ["new", "other"] and len(_entry(repo)["tests"]) == 6


def test_a_module_importing_by_a_computed_name_is_reached_by_every_change(tmp_path: Path, ran: Path) -> None:
    registry = "import importlib\n\n\ndef load(name):\n    return importlib.import_module(name)\n"
    uses = _test("registry", "from app.registry import load", "load('app.other').one() == 1")
    repo = _started(tmp_path, ran, {**FILES, "app/registry.py": registry, "tests/test_registry.py": uses})
    commit_file(repo, "app/lonely.py", "def alone():\n    return 7\n")
    run_lane(LANE, repo)
    assert _entry(repo)["ran_files"] == ["tests/test_registry.py"] and _ran(ran) == ["registry"]


def test_a_test_that_reads_the_source_tree_is_reached_by_every_change(tmp_path: Path, ran: Path) -> None:
    scan = _test("scan", "from pathlib import Path", "len(list(Path('app').rglob('*.py'))) >= 5")
    repo = _started(tmp_path, ran, {**FILES, "tests/test_scan.py": scan})
    commit_file(repo, "app/lonely.py", "def alone():\n    return 3\n")
    run_lane(LANE, repo)
    assert _entry(repo)["ran_files"] == ["tests/test_scan.py"] and _ran(ran) == ["scan"]


def test_a_change_no_test_reaches_runs_nothing_and_carries_everything(tmp_path: Path, ran: Path) -> None:
    repo = _started(tmp_path, ran)
    commit_file(repo, "app/lonely.py", "def alone():\n    return -0\n")
    out = run_lane(LANE, repo)
    entry = _entry(repo)
    assert (entry["mode"], entry["ran_files"], sorted(entry["tests"])) == ("selected", [], ALL)
    assert _ran(ran) == [] and "0 of 5 test files run" in out.summary


def test_a_test_failing_at_the_earlier_head_and_not_selected_stays_a_finding(
    tmp_path: Path, ran: Path
) -> None:
    repo = _started(tmp_path, ran, {**FILES, "app/other.py": "def one():\n    return 2\n"})
    commit_file(repo, "app/core.py", "def double(x):\n    return x * 2\n")
    out = run_lane(LANE, repo)
    assert "other" not in _ran(ran) and _entry(repo)["mode"] == "selected"
    [line] = _failing(out)
    first = _entry(repo)["carried_from"]
    assert (
        line.startswith("failing: tests.test_other::test_other")
        and f"carried: last run at {first[:12]}" in line
    )
    commit_file(repo, "app/other.py", "def one():\n    return 1\n")  # fixed: its test is selected, passes
    fixed = run_lane(LANE, repo)
    assert _ran(ran) == ["other"] and [f for f in fixed.findings if f.kind == "tests_failing"] == []


def test_a_deleted_test_files_tests_disappear_from_the_outcome(tmp_path: Path, ran: Path) -> None:
    repo = _started(tmp_path, ran, {**FILES, "app/other.py": "def one():\n    return 2\n"})
    sh_git(repo, "rm", "-q", "tests/test_other.py")
    sh_git(repo, "commit", "-q", "-m", "drop a test")
    out = run_lane(LANE, repo)
    entry = _entry(repo)
    assert entry["mode"] == "selected" and "tests/test_other.py" not in entry["tests"]
    assert not any("test_other" in t for group in entry["tests"].values() for t in group)
    assert [f for f in out.findings if f.kind == "tests_failing"] == [] and _ran(ran) == []


@pytest.mark.parametrize(
    ("path", "text", "why"),
    [
        ("tests/conftest.py", "import pytest\n", "tests/conftest.py changed (conftest.py)"),
        ("pyproject.toml", "[tool.pytest.ini_options]\n", "pyproject.toml changed (not a Python module)"),
        ("tests/expected.json", "{}\n", "tests/expected.json changed (not a Python module)"),
        ("tests/fixtures/sample.py", "X = 1\n", "tests/fixtures/sample.py changed (in a fixture folder)"),
        ("app/core.py", "def double(x:\n", "app/core.py does not parse"),
    ],
)
def test_what_static_reading_cannot_vouch_for_runs_the_full_suite(
    tmp_path: Path, ran: Path, path: str, text: str, why: str
) -> None:
    repo = _started(tmp_path, ran)
    commit_file(repo, path, text)
    run_lane(LANE, repo)
    entry = _entry(repo)
    assert entry["mode"] == "full" and why in entry["why"] and entry["carried_from"] is None
    assert len(_ran(ran)) == (0 if path == "app/core.py" else 5)  # a broken module stops collection


def test_a_test_importing_by_a_computed_name_runs_the_full_suite(tmp_path: Path, ran: Path) -> None:
    dynamic = _test("dyn", "import importlib", "importlib.import_module('app.' + 'other').one() == 1")
    repo = _started(tmp_path, ran, {**FILES, "tests/test_dyn.py": dynamic})
    commit_file(repo, "app/other.py", "def one():\n    return 1  # same\n")
    run_lane(LANE, repo)
    assert _entry(repo)["mode"] == "full" and "tests/test_dyn.py imports modules" in _entry(repo)["why"]
    assert "dyn" in _ran(ran)


@pytest.mark.parametrize(("flags", "mode"), [("-q", "selected"), ("-xq", "full"), ("--maxfail=2", "full")])
def test_a_configured_command_that_stops_at_a_failure_always_runs_in_full(
    tmp_path: Path, ran: Path, flags: str, mode: str
) -> None:
    command = orjson.dumps([sys.executable, "-m", "pytest", flags]).decode()
    repo = _started(tmp_path, ran, {**FILES, "speedrift.toml": f"[gates.tests]\ncommand = {command}\n"})
    commit_file(repo, "app/other.py", "def one():\n    return 3 - 2\n")
    run_lane(LANE, repo)
    assert _entry(repo)["mode"] == mode and len(_ran(ran)) == (1 if mode == "selected" else 5)


def test_full_suite_every_forces_a_full_run_after_that_many_selected_runs(tmp_path: Path, ran: Path) -> None:
    repo = _started(tmp_path, ran)
    settings = {"full_suite_every": 2}
    modes = []
    for n in range(3):
        commit_file(repo, "app/lonely.py", f"def alone():\n    return {n + 1}\n")
        run_lane(LANE, repo, settings=settings)
        modes.append((_entry(repo)["mode"], _entry(repo)["streak"]))
    assert modes == [("selected", 1), ("selected", 2), ("full", 0)]
    assert "full_suite_every 2" in _entry(repo)["why"] and len(_ran(ran)) == 5
    commit_file(repo, "app/lonely.py", "def alone():\n    return 9\n")
    run_lane(LANE, repo)  # the default (10): selected again after the full run
    assert _entry(repo)["mode"] == "selected"


def test_incremental_tests_off_always_runs_the_full_suite(tmp_path: Path, ran: Path) -> None:
    repo = _started(tmp_path, ran)
    commit_file(repo, "app/lonely.py", "def alone():\n    return 5\n")
    run_lane(LANE, repo, settings={"incremental_tests": False})
    entry = _entry(repo)
    assert (entry["mode"], entry["why"]) == ("full", "incremental_tests is off") and len(_ran(ran)) == 5


def test_a_selected_outcome_is_not_reused_at_the_same_head_when_incremental_tests_is_off(
    tmp_path: Path, ran: Path
) -> None:
    repo = _started(tmp_path, ran)
    commit_file(repo, "app/other.py", "def one():\n    return 1 * 1\n")
    run_lane(LANE, repo)
    assert _entry(repo)["mode"] == "selected" and _ran(ran) == ["other"]
    assert "reused" in run_lane(LANE, repo).summary and _ran(ran) == []
    run_lane(LANE, repo, settings={"incremental_tests": False})
    assert _entry(repo)["mode"] == "full" and len(_ran(ran)) == 5


def test_an_earlier_head_that_is_not_an_ancestor_runs_the_full_suite(tmp_path: Path, ran: Path) -> None:
    repo = make_repo(tmp_path / "r", FILES)
    commit_file(repo, "app/lonely.py", "def alone():\n    return 1\n")
    run_lane(LANE, repo)
    _ran(ran)
    sh_git(repo, "reset", "-q", "--hard", "HEAD~1")  # the branch is rewritten
    commit_file(repo, "app/lonely.py", "def alone():\n    return 2\n")
    out = run_lane(LANE, repo)
    entry = _entry(repo)
    assert entry["mode"] == "full" and "rewritten" in entry["why"] and len(_ran(ran)) == 5
    assert "full suite run" in out.summary
