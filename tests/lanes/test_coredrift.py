from __future__ import annotations

import json
from pathlib import Path

from speedrift.lanes.builtin.coredrift import LANE
from tests.gitrepo import commit_file, make_repo
from tests.lanes.diffsupport import fenced, head, kinds, only, run, task

CONTRACT = """
schema = 1
mode = "core"
objective = "add a greeting"
touch = ["src/**", "tests/**"]
"""


def _repo(tmp_path: Path) -> tuple[Path, str]:
    repo = make_repo(
        tmp_path / "repo",
        {
            "src/app.py": "def main():\n    return 1\n",
            "docs/guide.md": "# guide\n",
            "pyproject.toml": "[project]\n",
        },
    )
    return repo, head(repo)


def _task(body: str = CONTRACT) -> dict[str, object]:
    return task("t1", fenced("wg-contract", body))


def test_without_a_task_coredrift_judges_nothing_and_says_why(tmp_path: Path) -> None:
    repo, base = _repo(tmp_path)
    tip = commit_file(repo, "elsewhere.py", "x = 1\n")
    out = run(LANE, repo, base=base, tip=tip)
    assert out.findings == []
    assert "no task" in out.summary


def test_without_a_range_only_the_contract_itself_is_judged(tmp_path: Path) -> None:
    repo, _base = _repo(tmp_path)
    out = run(LANE, repo, task=_task())
    assert out.findings == [] and "no diff range" in out.summary
    assert kinds(run(LANE, repo, task=task("t1", "no contract"))) == ["missing_contract"]


def test_a_change_inside_its_contract_has_no_findings(tmp_path: Path) -> None:
    repo, base = _repo(tmp_path)
    tip = commit_file(repo, "src/app.py", "def main():\n    return 'hello'\n")
    out = run(LANE, repo, base=base, tip=tip, task=_task(), state_dir=tmp_path / "state")
    assert out.findings == []


def test_a_task_without_a_contract_is_missing_contract(tmp_path: Path) -> None:
    repo, base = _repo(tmp_path)
    tip = commit_file(repo, "src/app.py", "def main():\n    return 2\n")
    out = run(LANE, repo, base=base, tip=tip, task=task("t1", "just do it"))
    assert kinds(out) == ["missing_contract"]
    assert out.findings[0].subject == "t1" and out.findings[0].severity == "warning"


def test_a_contract_that_is_not_toml_is_invalid_contract(tmp_path: Path) -> None:
    repo, base = _repo(tmp_path)
    tip = commit_file(repo, "docs/guide.md", "# changed\n")
    out = run(LANE, repo, base=base, tip=tip, task=_task('touch = ["src/**"\nmode = '))
    assert kinds(out) == ["invalid_contract"]
    assert out.findings[0].severity == "error"
    assert "wg-contract" in out.findings[0].message


def test_an_unknown_mode_a_wrong_type_an_unknown_key_or_schema_is_invalid_contract(tmp_path: Path) -> None:
    repo, base = _repo(tmp_path)
    tip = commit_file(repo, "docs/guide.md", "# changed\n")
    bodies = {
        'mode = "yolo"\ntouch = ["src/**"]': "mode",
        'touch = "src/**"': "touch",
        "max_files = -1": "max_files",
        'max_loc = "lots"': "max_loc",
        "colour = 3": "colour",
        "schema = 2": "schema",
    }
    for body, key in bodies.items():
        out = run(LANE, repo, base=base, tip=tip, task=_task(body))
        assert kinds(out) == ["invalid_contract"], body
        assert any(key in e for e in out.findings[0].evidence), (body, out.findings[0].evidence)


def test_each_file_outside_touch_is_its_own_scope_drift(tmp_path: Path) -> None:
    repo, base = _repo(tmp_path)
    commit_file(repo, "docs/guide.md", "# changed\n")
    commit_file(repo, "scripts/run.sh", "echo hi\n")
    tip = commit_file(repo, "src/app.py", "def main():\n    return 3\n")
    out = run(LANE, repo, base=base, tip=tip, task=_task())
    drift = only(out, "scope_drift")
    assert sorted(f.file for f in drift) == ["docs/guide.md", "scripts/run.sh"]
    assert all(f.key == f.file and f.subject == "t1" for f in drift)
    again = run(LANE, repo, base=base, tip=tip, task=_task())
    assert {f.fingerprint for f in again.findings} == {f.fingerprint for f in out.findings}


def test_no_touch_globs_means_no_scope_judgement(tmp_path: Path) -> None:
    repo, base = _repo(tmp_path)
    tip = commit_file(repo, "docs/guide.md", "# changed\n")
    out = run(LANE, repo, base=base, tip=tip, task=_task('schema = 1\nmode = "core"'))
    assert out.findings == []


def test_a_manifest_changed_outside_touch_is_dependency_drift_not_scope_drift(tmp_path: Path) -> None:
    repo, base = _repo(tmp_path)
    tip = commit_file(repo, "pyproject.toml", '[project]\ndependencies = ["backoff"]\n')
    out = run(LANE, repo, base=base, tip=tip, task=_task())
    assert kinds(out) == ["dependency_drift"]
    assert out.findings[0].file == "pyproject.toml"
    touched = CONTRACT.replace('"tests/**"', '"tests/**", "pyproject.toml"')
    assert run(LANE, repo, base=base, tip=tip, task=_task(touched)).findings == []


def test_the_dependency_files_setting_decides_what_is_a_dependency_file(tmp_path: Path) -> None:
    repo, base = _repo(tmp_path)
    tip = commit_file(repo, "deps/vendor.lock", "pinned\n")
    plain = run(LANE, repo, base=base, tip=tip, task=_task())
    assert kinds(plain) == ["scope_drift"]
    custom = run(LANE, repo, base=base, tip=tip, task=_task(), policy={"dependency_files": ["*.lock"]})
    assert kinds(custom) == ["dependency_drift"]


def test_more_files_than_max_files_is_churn_files_and_the_contract_overrides_the_policy(
    tmp_path: Path,
) -> None:
    repo, base = _repo(tmp_path)
    for index in range(3):
        commit_file(repo, f"src/mod{index}.py", f"X = {index}\n")
    tip = head(repo)
    assert run(LANE, repo, base=base, tip=tip, task=_task()).findings == []
    out = run(LANE, repo, base=base, tip=tip, task=_task(), policy={"max_files": 2})
    assert kinds(out) == ["churn_files"]
    assert "3 files" in out.findings[0].message
    loose = run(
        LANE, repo, base=base, tip=tip, task=_task(CONTRACT + "max_files = 5\n"), policy={"max_files": 2}
    )
    assert loose.findings == []


def test_more_lines_than_max_loc_is_churn_loc(tmp_path: Path) -> None:
    repo, base = _repo(tmp_path)
    tip = commit_file(repo, "src/big.py", "".join(f"V{i} = {i}\n" for i in range(40)))
    assert run(LANE, repo, base=base, tip=tip, task=_task()).findings == []
    out = run(LANE, repo, base=base, tip=tip, task=_task(CONTRACT + "max_loc = 30\n"))
    assert kinds(out) == ["churn_loc"]
    assert "40 lines" in out.findings[0].message


def test_retries_and_broad_excepts_added_in_core_mode_are_hardening_in_core(tmp_path: Path) -> None:
    repo, base = _repo(tmp_path)
    code = (
        "def main():\n"
        "    for attempt in range(3):  # retry until it works\n"
        "        try:\n"
        "            return 1\n"
        "        except Exception:\n"
        "            pass\n"
    )
    tip = commit_file(repo, "src/app.py", code)
    out = run(LANE, repo, base=base, tip=tip, task=_task())
    assert kinds(out) == ["hardening_in_core"]
    finding = out.findings[0]
    assert finding.file == "src/app.py" and finding.key == "src/app.py" and finding.line == 2
    assert "retry" in finding.message and "broad exception handler" in finding.message
    harden = CONTRACT.replace('mode = "core"', 'mode = "harden"')
    assert run(LANE, repo, base=base, tip=tip, task=_task(harden)).findings == []


def test_the_hardening_keywords_setting_decides_what_is_hardening(tmp_path: Path) -> None:
    repo, base = _repo(tmp_path)
    tip = commit_file(repo, "src/app.py", "def main():\n    return circuit_breaker()\n")
    assert run(LANE, repo, base=base, tip=tip, task=_task()).findings == []
    out = run(
        LANE, repo, base=base, tip=tip, task=_task(), policy={"hardening_keywords": ["circuit_breaker"]}
    )
    assert kinds(out) == ["hardening_in_core"]


def _streaks(state: Path) -> int:
    return int(json.loads((state / "state.json").read_text())["tasks"]["t1"]["streak"])


def test_a_pit_stop_comes_after_pit_stop_after_consecutive_runs_with_warnings(tmp_path: Path) -> None:
    repo, base = _repo(tmp_path)
    state = tmp_path / "state"
    outputs = []
    for index in range(3):
        tip = commit_file(repo, f"docs/page{index}.md", "drift\n")
        outputs.append(run(LANE, repo, base=base, tip=tip, task=_task(), state_dir=state))
        # judging the same range again does not count twice
        rerun = run(LANE, repo, base=base, tip=tip, task=_task(), state_dir=state)
        assert kinds(rerun) == kinds(outputs[-1])
    assert [("pit_stop" in kinds(o)) for o in outputs] == [False, False, True]
    pit = only(outputs[-1], "pit_stop")[0]
    assert pit.severity == "error" and pit.subject == "t1"
    assert _streaks(state) == 3
    # a clean run ends the streak
    clean_base = head(repo)
    tip = commit_file(repo, "src/app.py", "def main():\n    return 9\n")
    assert run(LANE, repo, base=clean_base, tip=tip, task=_task(), state_dir=state).findings == []
    assert _streaks(state) == 0


def test_pit_stop_after_sets_how_many_runs_and_zero_turns_it_off(tmp_path: Path) -> None:
    repo, base = _repo(tmp_path)
    state = tmp_path / "state"
    tip = commit_file(repo, "docs/page.md", "drift\n")
    once = run(LANE, repo, base=base, tip=tip, task=_task(CONTRACT + "pit_stop_after = 1\n"), state_dir=state)
    assert "pit_stop" in kinds(once)
    off = tmp_path / "off"
    for index in range(4):
        tip = commit_file(repo, f"docs/p{index}.md", "drift\n")
        out = run(LANE, repo, base=base, tip=tip, task=_task(), policy={"pit_stop_after": 0}, state_dir=off)
        assert "pit_stop" not in kinds(out)
    assert not (off / "state.json").exists()
