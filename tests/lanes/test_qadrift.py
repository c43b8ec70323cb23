"""qadrift: the target branch's suite run on its tip (a red main is a finding even when no attempt
touched it), untested modules, tests that assert nothing or only mocks, stalled work, missing
integration tests — each planted in a real repo."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import pytest

from speedrift.lanes.builtin import qadrift
from speedrift.lanes.builtin._blobcache import read_stats
from speedrift.lanes.builtin.qadrift import LANE
from speedrift.lanes.model import LaneFinding, Severity
from tests.builders import graph_of, task
from tests.gitrepo import commit_file, make_repo
from tests.lanes.treesupport import NOW, kinds, run_lane

CALC = "def add(a, b):\n    return a + b\n"
BROKEN_CALC = "def add(a, b):\n    return a - b\n"
TEST_CALC = "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
STATIC = {"run_tests": False}


def _of(kind: str, findings: Sequence[LaneFinding]) -> list[LaneFinding]:
    return [f for f in findings if f.kind == kind]


def test_a_red_main_is_a_critical_finding_naming_the_failing_test(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"calc.py": BROKEN_CALC, "test_calc.py": TEST_CALC})
    out = run_lane(LANE, repo)
    [finding] = _of("tests_failing", out.findings)
    assert finding.severity == Severity.CRITICAL and finding.key == "suite"
    assert "test_calc::test_add" in finding.message
    assert any(e.startswith("failing: test_calc::test_add") for e in finding.evidence)
    assert out.score == 100 - 25


def test_a_green_main_has_no_failing_tests_finding(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"calc.py": CALC, "test_calc.py": TEST_CALC})
    out = run_lane(LANE, repo)
    assert out.findings == [] and out.score == 100


def test_the_suite_runs_on_the_commit_not_on_the_checkout(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"calc.py": BROKEN_CALC, "test_calc.py": TEST_CALC})
    (repo / "calc.py").write_text(CALC)  # fixed in the working tree only: main is still red
    assert kinds(run_lane(LANE, repo)) == ["tests_failing"]


def test_a_rerun_at_the_same_head_reuses_the_suite_outcome(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = tmp_path / "runs.log"
    monkeypatch.setenv("QADRIFT_RUNS", str(runs))
    counting = (
        "import os\nfrom calc import add\n\n\ndef test_add():\n"
        "    with open(os.environ['QADRIFT_RUNS'], 'a') as log:\n        log.write('run\\n')\n"
        "    assert add(2, 3) == 5\n"
    )
    repo = make_repo(tmp_path / "r", {"calc.py": BROKEN_CALC, "test_calc.py": counting})
    first = run_lane(LANE, repo)
    second = run_lane(LANE, repo)
    assert first.findings == second.findings and len(first.findings) == 1
    assert runs.read_text().count("run") == 1 and "reused" in second.summary
    commit_file(repo, "calc.py", CALC, "fix")
    assert run_lane(LANE, repo).findings == []
    assert runs.read_text().count("run") == 2


def test_run_tests_off_skips_the_suite(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"calc.py": BROKEN_CALC, "test_calc.py": TEST_CALC})
    assert _of("tests_failing", run_lane(LANE, repo, settings=STATIC).findings) == []


def test_a_suite_past_its_timeout_is_reported_as_not_finishing(tmp_path: Path) -> None:
    slow = "import time\n\n\ndef test_slow():\n    time.sleep(60)\n    assert True\n"
    repo = make_repo(tmp_path / "r", {"test_slow.py": slow})
    [finding] = _of("tests_failing", run_lane(LANE, repo, settings={"test_timeout_s": 3}).findings)
    assert finding.severity == Severity.ERROR and "did not finish within 3s" in finding.message


def test_the_configured_test_command_is_the_one_that_runs(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "r",
        {"calc.py": CALC, "test_calc.py": TEST_CALC, "check.sh": "#!/bin/sh\necho broken >&2\nexit 7\n"},
    )
    (repo / "speedrift.toml").write_text('[gates.tests]\ncommand = ["sh", "check.sh"]\n')
    [finding] = _of("tests_failing", run_lane(LANE, repo).findings)
    assert "exit 7" in finding.message and "command: sh" in finding.evidence


def test_a_module_no_test_mentions_is_missing_tests(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "r",
        {
            "pkg/__init__.py": "",
            "pkg/billing.py": "def charge():\n    return 1\n",
            "pkg/tested.py": "def ok():\n    return 1\n",
            "pkg/constants.py": "RATE = 3\n",
            "tests/test_tested.py": "from pkg.tested import ok\n\n\ndef test_ok():\n    assert ok() == 1\n",
        },
    )
    [finding] = _of("tests_missing", run_lane(LANE, repo, settings=STATIC).findings)
    assert (finding.file, finding.key, finding.severity) == (
        "pkg/billing.py",
        "pkg/billing.py",
        Severity.WARNING,
    )


def test_missing_test_findings_are_capped_and_limited_to_the_range(tmp_path: Path) -> None:
    files = {f"app/m{i}.py": f"def f{i}():\n    return {i}\n" for i in range(4)}
    repo = make_repo(tmp_path / "r", files)
    out = run_lane(LANE, repo, settings={**STATIC, "max_missing_findings": 2})
    assert len(_of("tests_missing", out.findings)) == 2 and "2 more module(s)" in out.summary
    base = commit_file(repo, "README.md", "# r\n")
    commit_file(repo, "app/m3.py", "def f3():\n    return 33\n")
    ranged = run_lane(LANE, repo, settings=STATIC, base=base)
    assert [f.file for f in _of("tests_missing", ranged.findings)] == ["app/m3.py"]


def test_a_test_without_assertions_is_found_and_one_asserting_through_a_helper_is_not(tmp_path: Path) -> None:
    text = (
        "from calc import add\n\n\n"
        "def check_sum(a, b, want):\n    assert add(a, b) == want\n\n\n"
        "def test_calls_only():\n    add(1, 2)\n\n\n"
        "def test_through_helper():\n    check_sum(1, 2, 3)\n\n\n"
        "def test_raises():\n    import pytest\n    with pytest.raises(TypeError):\n        add(1)\n\n\n"
        "class TestMore:\n    def test_empty(self):\n        pass\n"
    )
    repo = make_repo(tmp_path / "r", {"calc.py": CALC, "tests/test_calc.py": text})
    found = _of("test_without_assertions", run_lane(LANE, repo, settings=STATIC).findings)
    assert sorted(f.key for f in found) == [
        "tests/test_calc.py::TestMore::test_empty",
        "tests/test_calc.py::test_calls_only",
    ]
    assert {f.line for f in found} == {8, 23}


def test_a_test_asserting_only_on_mocks_is_found(tmp_path: Path) -> None:
    text = (
        "from unittest.mock import MagicMock, patch\n\nimport calc\n\n\n"
        "def test_mock_only():\n    sender = MagicMock()\n    sender.send('x')\n"
        "    sender.send.assert_called_once_with('x')\n    assert sender.send.call_count == 1\n\n\n"
        "@patch('calc.add')\ndef test_patched(fake):\n    calc.add(1, 2)\n    assert fake.called\n\n\n"
        "def test_mock_and_result():\n    sender = MagicMock()\n    assert calc.add(1, 2) == 3\n"
        "    sender.assert_not_called()\n"
    )
    repo = make_repo(tmp_path / "r", {"calc.py": CALC, "test_calc.py": text})
    found = _of("mock_only_test", run_lane(LANE, repo, settings=STATIC).findings)
    assert sorted(f.key for f in found) == ["test_calc.py::test_mock_only", "test_calc.py::test_patched"]


def test_a_task_in_progress_past_stall_hours_is_stalled_work(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"calc.py": CALC, "test_calc.py": TEST_CALC})
    old = (NOW - timedelta(hours=100)).isoformat()
    recent = (NOW - timedelta(hours=10)).isoformat()
    graph = graph_of(
        task("stuck", "in-progress", started_at=old),
        task("moving", "in-progress", started_at=recent),
        task("finished", "done", started_at=old),
    )
    [finding] = _of("work_stalled", run_lane(LANE, repo, settings=STATIC, graph=graph).findings)
    assert (finding.subject, finding.severity) == ("stuck", Severity.WARNING)
    assert "100 h" in finding.message
    relaxed = run_lane(LANE, repo, settings={**STATIC, "stall_hours": 200}, graph=graph)
    assert _of("work_stalled", relaxed.findings) == []


def test_many_modules_without_integration_tests_is_reported(tmp_path: Path) -> None:
    files = {f"app/m{i}.py": f"def f{i}():\n    return {i}\n" for i in range(3)}
    files["tests/test_all.py"] = "from app import m0, m1, m2\n\n\ndef test_all():\n    assert m0.f0() == 0\n"
    repo = make_repo(tmp_path / "r", files)
    settings = {**STATIC, "integration_min_modules": 3}
    [info] = _of("missing_integration_tests", run_lane(LANE, repo, settings=settings).findings)
    assert info.severity == Severity.INFO
    required = run_lane(LANE, repo, settings={**settings, "require_integration_tests": True})
    assert [f.severity for f in _of("missing_integration_tests", required.findings)] == [Severity.WARNING]
    assert _of("missing_integration_tests", run_lane(LANE, repo, settings=STATIC).findings) == []
    commit_file(repo, "tests/integration/test_flow.py", "def test_flow():\n    assert True\n")
    assert _of("missing_integration_tests", run_lane(LANE, repo, settings=settings).findings) == []


def test_test_files_are_read_again_only_when_their_blob_changes(tmp_path: Path) -> None:
    files = {f"tests/test_m{i}.py": f"def test_m{i}():\n    assert {i} == {i}\n" for i in range(5)}
    repo = make_repo(tmp_path / "r", files)
    state = repo / ".speedrift" / "lanes" / "qadrift" / qadrift.BLOBS_FILE
    run_lane(LANE, repo, settings=STATIC)
    assert read_stats(state)["analysed"] == 5
    commit_file(repo, "tests/test_m0.py", "def test_m0():\n    pass\n")
    out = run_lane(LANE, repo, settings=STATIC)
    assert read_stats(state) == {"files": 5, "analysed": 1, "cached": 4}
    assert [f.key for f in out.findings] == ["tests/test_m0.py::test_m0"]


def test_the_quality_score_weighs_each_severity_and_floors_at_five() -> None:
    def of(severity: Severity, n: int) -> list[LaneFinding]:
        return [LaneFinding("qadrift", "k", "m", severity, key=str(i)) for i in range(n)]

    assert qadrift.quality_score([]) == 100
    assert (
        qadrift.quality_score(of(Severity.ERROR, 1) + of(Severity.WARNING, 2) + of(Severity.INFO, 1))
        == 100 - 34
    )
    assert qadrift.quality_score(of(Severity.CRITICAL, 5)) == 5


def test_a_clean_repo_has_no_findings(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "r",
        {
            "calc.py": CALC,
            "test_calc.py": TEST_CALC,
            "tests/integration/test_end_to_end.py": TEST_CALC.replace("test_add", "test_e2e"),
        },
    )
    graph = graph_of(
        task("a", "in-progress", started_at=(NOW - timedelta(hours=1)).isoformat()), task("b", "done")
    )
    out = run_lane(LANE, repo, graph=graph, settings={"require_integration_tests": True})
    assert out.findings == [] and out.score == 100
