"""Landing-blocking lanes: the ``lanes`` gate in the real worker pipeline, on real repos, with a
shell agent (an exec task) whose change the lanes judge before it may land.

Test-only lanes (defined here, passed through ``suite_for(builtin=...)``) stand in for the built-in
ones where the test is about the gate, not the lane; the depsdrift test runs the real lane.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from speedrift.failure_class import FailureClass
from speedrift.fleet.attempt import AttemptResult
from speedrift.fleet.config import RepoConfig
from speedrift.fleet.lanegate import GATE_NAME, lanes_gate, suite_for, verdict
from speedrift.fleet.pipeline import Pipeline, RunOptions
from speedrift.gates.suite import default_gates
from speedrift.graph import ops
from speedrift.graph.store import GraphStore
from speedrift.lanes.context import LaneContext
from speedrift.lanes.model import CheckReport, LaneFinding, LaneResult, LaneScope, Severity
from speedrift.lanes.policy import PolicyError
from speedrift.lanes.spec import Lane, LaneOutput
from tests.gitrepo import commit_file, make_repo, sh_git

PYPROJECT = '[project]\nname = "demo"\nversion = "0.1.0"\ndependencies = ["attrs>=23"]\n'
LOCK = 'version = 1\n\n[[package]]\nname = "attrs"\nversion = "23.2.0"\n'
ADD_DEP = (
    'printf \'[project]\\nname = "demo"\\nversion = "0.1.0"\\n'
    'dependencies = ["attrs>=23", "httpx>=0.27"]\\n\' > pyproject.toml'
)
FAST = {"skip": ["sast", "sca", "lint", "types"]}  # the other gates' tools are not what this is about
BLOCKING = 'order = ["{lane}"]\n\n[lanes]\nblocking = ["{lane}"]\n'
NOT_BLOCKING = 'order = ["{lane}"]\n'

NO_FORBIDDEN_RANGE = (  # an external lane: the range must not add forbidden.txt
    "#!/bin/sh\n"
    'cd "$SPEEDRIFT_LANE_REPO"\n'
    'changed=$(git diff --name-only "$SPEEDRIFT_LANE_BASE" "$SPEEDRIFT_LANE_TIP")\n'
    'case "$changed" in\n'
    '  *forbidden.txt*) echo \'{"lane": "nofiles", "findings": [{"message": "forbidden.txt added",'
    ' "severity": "error", "file": "forbidden.txt", "kind": "forbidden_file"}], "exit_code": 3}\'\n'
    "    exit 3;;\n"
    "esac\n"
    'echo \'{"lane": "nofiles", "findings": [], "exit_code": 0}\'\n'
)


def lock_lane(name: str = "lockcheck") -> Lane:
    """A diff lane: pyproject.toml changed while the uv.lock at the tip did not."""

    def run(ctx: LaneContext) -> LaneOutput:
        changed = {c.path for c in ctx.view.changes()}
        if "pyproject.toml" in changed and "uv.lock" not in changed and ctx.view.entry("uv.lock"):
            finding = LaneFinding(
                name,
                "lock_not_updated",
                "pyproject.toml changed without uv.lock",
                Severity.ERROR,
                file="pyproject.toml",
                key="pyproject.toml",
                fix="run `uv lock` and commit uv.lock",
            )
            return LaneOutput((finding,))
        return LaneOutput()

    return Lane(name, LaneScope.DIFF, "pyproject.toml vs uv.lock (test lane)", run)


def marker_lane(name: str = "markers") -> Lane:
    """A tree lane: one warning per file holding the word FIXME at the head."""

    def run(ctx: LaneContext) -> LaneOutput:
        texts = ctx.view.read_many(ctx.view.paths())
        return LaneOutput(
            tuple(
                LaneFinding(name, "fixme", f"{path} holds FIXME", file=path, key=path)
                for path, data in sorted(texts.items())
                if b"FIXME" in data
            )
        )

    return Lane(name, LaneScope.TREE, "FIXME markers (test lane)", run)


def broken_lane(name: str = "broken") -> Lane:
    def run(ctx: LaneContext) -> LaneOutput:
        raise RuntimeError("the lane's own bug")

    return Lane(name, LaneScope.DIFF, "always crashes (test lane)", run)


class Shop:
    """A repo with a graph, a drift policy and a pipeline whose suite comes from ``suite_for``."""

    def __init__(self, path: Path, files: Mapping[str, str], policy: str) -> None:
        self.repo = make_repo(path, {**files, ".workgraph/drift-policy.toml": policy})
        self.store = GraphStore(self.repo / ".workgraph")
        self.config = RepoConfig.model_validate({"gates": FAST})

    def run(self, task_id: str, command: str, builtin: Mapping[str, Lane] | None) -> AttemptResult:
        spec = ops.NewTask(task_id, task_id=task_id, exec_command=command)
        self.store.mutate(lambda g, now: ops.add_task(g, spec, now=now, actor="test"))
        suite = suite_for(self.repo, self.store, self.config, builtin=builtin)
        return Pipeline(self.repo, self.store, self.config, gates=suite).run(task_id, RunOptions())

    def main(self) -> str:
        return sh_git(self.repo, "rev-parse", "main")


def lanes_result(result: AttemptResult) -> dict[str, Any]:
    evidence = json.loads(Path(result.run_dir or "", "evidence.json").read_text())
    return dict(next(r for r in evidence["gates"][-1]["results"] if r["gate"] == GATE_NAME))


def config() -> RepoConfig:
    return RepoConfig.model_validate({"gates": FAST})


# --- which suite -------------------------------------------------------------------------------


def test_a_repo_without_a_policy_file_gets_the_gates_and_no_lanes_gate(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r")
    suite = suite_for(repo, GraphStore(repo / ".workgraph"), config(), builtin={"lockcheck": lock_lane()})
    assert [g.name for g in suite.gates] == [g.name for g in default_gates()]
    assert lanes_gate(repo) is None


def test_a_policy_without_blocking_lanes_adds_no_lanes_gate(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {".workgraph/drift-policy.toml": NOT_BLOCKING.format(lane="lockcheck")})
    suite = suite_for(repo, GraphStore(repo / ".workgraph"), config(), builtin={"lockcheck": lock_lane()})
    assert GATE_NAME not in [g.name for g in suite.gates]


def test_blocking_lanes_add_the_lanes_gate_last_after_the_tests_gate(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {".workgraph/drift-policy.toml": BLOCKING.format(lane="lockcheck")})
    suite = suite_for(
        repo, GraphStore(repo / ".workgraph"), config(), log_to_task=False, builtin={"lockcheck": lock_lane()}
    )
    names = [g.name for g in suite.gates]
    assert names == [*(g.name for g in default_gates()), GATE_NAME]
    assert names.index("tests") < names.index(GATE_NAME)
    assert suite.log_to_task is False


def test_a_bad_policy_refuses_to_build_the_suite_naming_the_file_and_line(tmp_path: Path) -> None:
    policy = 'order = ["lockcheck"]\n\n[lanes]\nblocking = ["depsdrift"]\n'
    repo = make_repo(tmp_path / "r", {".workgraph/drift-policy.toml": policy})
    with pytest.raises(PolicyError) as caught:
        suite_for(repo, GraphStore(repo / ".workgraph"), config(), builtin={"lockcheck": lock_lane()})
    assert f"{repo / '.workgraph' / 'drift-policy.toml'}:4: lanes.blocking" in str(caught.value)


# --- an attempt through the pipeline ------------------------------------------------------------


def test_a_dependency_added_without_its_lock_does_not_land_when_a_lane_blocks(tmp_path: Path) -> None:
    shop = Shop(
        tmp_path / "r", {"pyproject.toml": PYPROJECT, "uv.lock": LOCK}, BLOCKING.format(lane="lockcheck")
    )
    before = shop.main()
    result = shop.run("add-httpx", ADD_DEP, {"lockcheck": lock_lane()})
    assert result.status == "failed", result.reason
    assert result.failure == FailureClass.IMPLEMENTATION_ERROR
    assert shop.main() == before  # nothing landed
    assert (shop.repo / "pyproject.toml").read_text() == PYPROJECT
    gate = lanes_result(result)
    assert (gate["status"], gate["failure_class"]) == ("fail", "implementation_error")
    assert gate["reason"] == "lockcheck: 1 error (lock_not_updated)"
    (finding,) = gate["findings"]
    assert finding["file"] == "pyproject.toml" and finding["kind"] == "lock_not_updated"
    assert finding["message"] == (
        "lockcheck: pyproject.toml changed without uv.lock (fix: run `uv lock` and commit uv.lock)"
    )
    assert finding["severity"] == "high" and finding["new"] is True


def test_the_same_change_lands_when_the_lane_runs_but_does_not_block(tmp_path: Path) -> None:
    shop = Shop(
        tmp_path / "r", {"pyproject.toml": PYPROJECT, "uv.lock": LOCK}, NOT_BLOCKING.format(lane="lockcheck")
    )
    result = shop.run("add-httpx", ADD_DEP, {"lockcheck": lock_lane()})
    assert result.status == "done", result.reason
    assert "httpx" in (shop.repo / "pyproject.toml").read_text()
    assert shop.main() == result.landed_commit


def test_a_change_that_updates_the_lock_too_lands_through_the_blocking_lane(tmp_path: Path) -> None:
    shop = Shop(
        tmp_path / "r", {"pyproject.toml": PYPROJECT, "uv.lock": LOCK}, BLOCKING.format(lane="lockcheck")
    )
    result = shop.run("add-httpx", f"{ADD_DEP} && echo '# relocked' >> uv.lock", {"lockcheck": lock_lane()})
    assert result.status == "done", result.reason
    gate = lanes_result(result)
    assert (gate["status"], gate["reason"], gate["findings"]) == ("pass", "lockcheck: clean", [])


def test_a_blocking_lane_that_crashes_never_lets_the_attempt_land(tmp_path: Path) -> None:
    shop = Shop(tmp_path / "r", {"app.py": "print(1)\n"}, BLOCKING.format(lane="broken"))
    before = shop.main()
    result = shop.run("edit", "echo 'print(2)' > app.py", {"broken": broken_lane()})
    assert result.status == "failed" and shop.main() == before
    gate = lanes_result(result)
    assert (gate["status"], gate["failure_class"]) == ("fail", "env_bootstrap")
    assert gate["reason"] == "broken could not judge: RuntimeError: the lane's own bug"


def test_a_tree_lane_blocks_what_the_attempt_brings_not_what_the_target_already_had(tmp_path: Path) -> None:
    shop = Shop(tmp_path / "r", {"old.py": "# FIXME from long ago\n"}, BLOCKING.format(lane="markers"))
    lanes = {"markers": marker_lane()}
    clean = shop.run("unrelated", "echo 'x = 1' > new.py", lanes)
    assert clean.status == "done", clean.reason
    gate = lanes_result(clean)
    assert gate["status"] == "pass" and gate["reason"] == "markers: clean, 1 pre-existing"
    assert [(f["file"], f["new"]) for f in gate["findings"]] == [("old.py", False)]
    before = shop.main()
    dirty = shop.run("sloppy", "echo '# FIXME later' > sloppy.py", lanes)
    assert dirty.status == "failed" and shop.main() == before
    gate = lanes_result(dirty)
    assert gate["reason"] == "markers: 1 warning (fixme), 1 pre-existing"
    assert sorted((f["file"], f["new"]) for f in gate["findings"]) == [("old.py", False), ("sloppy.py", True)]


def test_an_external_blocking_lane_judges_the_attempts_range(tmp_path: Path) -> None:
    shop = Shop(tmp_path / "r", {"app.py": "print(1)\n"}, BLOCKING.format(lane="nofiles"))
    wrapper = shop.repo / ".workgraph" / "nofiles"
    wrapper.write_text(NO_FORBIDDEN_RANGE)
    wrapper.chmod(0o755)
    sh_git(shop.repo, "add", "-A")
    sh_git(shop.repo, "commit", "-q", "-m", "lane wrapper")
    fine = shop.run("fine", "echo ok > fine.txt", None)
    assert fine.status == "done", fine.reason
    assert lanes_result(fine)["reason"].startswith("nofiles: clean")
    before = shop.main()
    bad = shop.run("bad", "echo no > forbidden.txt", None)
    assert bad.status == "failed" and shop.main() == before
    gate = lanes_result(bad)
    assert gate["reason"] == "nofiles: 1 error (forbidden_file)"
    assert gate["findings"][0]["file"] == "forbidden.txt"


def test_depsdrift_blocking_holds_a_manifest_change_without_its_lock(tmp_path: Path) -> None:
    lanes = None  # the registered built-in lanes: depsdrift is one
    files = {"pyproject.toml": PYPROJECT, "uv.lock": LOCK}
    blocked = Shop(tmp_path / "blocking", files, BLOCKING.format(lane="depsdrift"))
    before = blocked.main()
    result = blocked.run("add-httpx", ADD_DEP, lanes)
    assert result.status == "failed" and blocked.main() == before, result.reason
    gate = lanes_result(result)
    assert gate["status"] == "fail" and gate["failure_class"] == "implementation_error"
    assert "lock_not_updated" in gate["reason"]
    assert any(f["file"] == "pyproject.toml" and f["kind"] == "lock_not_updated" for f in gate["findings"])
    advisory = Shop(tmp_path / "advisory", files, NOT_BLOCKING.format(lane="depsdrift"))
    landed = advisory.run("add-httpx", ADD_DEP, lanes)
    assert landed.status == "done", landed.reason
    assert "httpx" in (advisory.repo / "pyproject.toml").read_text()


# --- the verdict's failure class ---------------------------------------------------------------


def _report(*results: LaneResult) -> CheckReport:
    return CheckReport(repo="r", head="h" * 40, base="b" * 40, task="t", results=results)


def test_a_secret_found_by_secdrift_is_a_secret_leak_and_outranks_other_findings() -> None:
    secret = LaneFinding("secdrift", "secret", "key in app.py", Severity.CRITICAL, file="app.py", key="k")
    scope = LaneFinding("coredrift", "scope_drift", "x.py is outside touch", Severity.ERROR, file="x.py")
    outcome = verdict(
        "lanes", _report(LaneResult("coredrift", (scope,)), LaneResult("secdrift", (secret,))), frozenset()
    )
    assert (outcome.status, outcome.failure_class) == ("fail", FailureClass.SECRET_LEAK)
    assert [f.severity for f in outcome.findings] == ["high", "critical"]


def test_scope_drift_is_a_scope_violation_and_other_coredrift_kinds_are_the_changes_error() -> None:
    scope = LaneFinding("coredrift", "scope_drift", "x.py is outside touch", Severity.ERROR, file="x.py")
    churn = LaneFinding("coredrift", "churn_loc", "too many lines", Severity.WARNING)
    assert verdict("lanes", _report(LaneResult("coredrift", (scope, churn))), frozenset()).failure_class == (
        FailureClass.SCOPE_VIOLATION
    )
    only_churn = verdict("lanes", _report(LaneResult("coredrift", (churn,))), frozenset())
    assert (only_churn.status, only_churn.failure_class) == ("fail", FailureClass.IMPLEMENTATION_ERROR)


def test_info_findings_are_shown_but_never_block() -> None:
    note = LaneFinding("depsdrift", "note", "a lock file is large", Severity.INFO, file="uv.lock")
    outcome = verdict("lanes", _report(LaneResult("depsdrift", (note,))), frozenset())
    assert outcome.status == "pass" and outcome.failure_class is None
    assert [(f.file, f.severity) for f in outcome.findings] == [("uv.lock", "info")]


def test_a_lane_that_did_not_run_fails_the_gate() -> None:
    outcome = verdict("lanes", _report(LaneResult("coredrift", skipped="no diff range")), frozenset())
    assert (outcome.status, outcome.failure_class) == ("fail", FailureClass.ENV_BOOTSTRAP)
    assert outcome.reason == "coredrift did not run: no diff range"


def test_gates_run_by_hand_shows_the_lanes_gate_on_uncommitted_changes(tmp_path: Path) -> None:
    from tests.cli.support import Cli

    policy = 'order = ["nofiles"]\n\n[lanes]\nblocking = ["nofiles"]\n'
    fast = '[gates]\nskip = ["sast", "sca", "lint", "types"]\n'
    files = {".workgraph/drift-policy.toml": policy, "speedrift.toml": fast, "app.py": "print(1)\n"}
    repo = make_repo(tmp_path / "r", files)
    wrapper = repo / ".workgraph" / "nofiles"
    wrapper.write_text(
        "#!/bin/sh\n"
        'if [ -e "$SPEEDRIFT_LANE_REPO/forbidden.txt" ] && [ -z "$SPEEDRIFT_LANE_TIP" ]; then\n'
        '  echo \'{"lane": "nofiles", "findings": [{"message": "forbidden.txt exists", "severity": "error",'
        ' "file": "forbidden.txt", "kind": "forbidden_file"}]}\'; exit 3\n'
        "fi\n"
        'echo \'{"lane": "nofiles", "findings": []}\'\n'
    )
    wrapper.chmod(0o755)
    commit_file(repo, ".workgraph/nofiles", wrapper.read_text(), "lane wrapper")
    (repo / "forbidden.txt").write_text("no\n")
    result = Cli(repo).fails(1, "gates", "run", "--json")
    gate = next(r for r in result.json()["results"] if r["gate"] == GATE_NAME)
    assert gate["status"] == "fail" and gate["findings"][0]["file"] == "forbidden.txt"


def test_speedrift_run_is_held_by_a_blocking_lane_and_prints_the_lanes_gate(tmp_path: Path) -> None:
    from tests.cli.support import Cli

    fast = '[gates]\nskip = ["sast", "sca", "lint", "types"]\n'
    files = {".workgraph/drift-policy.toml": BLOCKING.format(lane="nofiles"), "speedrift.toml": fast}
    repo = make_repo(tmp_path / "r", files)
    wrapper = repo / ".workgraph" / "nofiles"
    wrapper.write_text(NO_FORBIDDEN_RANGE)
    wrapper.chmod(0o755)
    commit_file(repo, ".workgraph/nofiles", NO_FORBIDDEN_RANGE, "lane wrapper")
    cli = Cli(repo)
    cli.ok("add", "Forbid", "--id", "forbid", "--exec", "echo no > forbidden.txt")
    before = sh_git(repo, "rev-parse", "main")
    out = cli.fails(1, "run", "forbid").stdout
    assert "forbid attempt 1: failed" in out
    (line,) = [line.strip() for line in out.splitlines() if line.strip().startswith(f"{GATE_NAME} ")]
    assert line.split()[:2] == [GATE_NAME, "failed"] and "nofiles: 1 error (forbidden_file)" in line
    assert sh_git(repo, "rev-parse", "main") == before
