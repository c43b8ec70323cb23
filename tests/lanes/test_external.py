"""External lanes: an executable printing the lane SDK's JSON, run in the agents' sandbox with a
scrubbed environment, a timeout and output caps; every way it can misbehave is a LaneError."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from speedrift.lanes.context import LaneContext, RepoView
from speedrift.lanes.external import Containment, LaneError, argv_for, lane_for, parse_output
from speedrift.lanes.model import LaneScope, Severity
from speedrift.lanes.policy import LaneMode, LanePolicy, parse
from speedrift.lanes.spec import LaneOutput
from tests.conftest import NOW
from tests.gitrepo import make_repo

FIXTURES = Path(__file__).parent / "fixtures"
LANE = "lintdrift"
TOKEN = "ghp_" + "Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4J3i2"  # built, so no literal secret is in this file


def policy_for(
    script: str,
    *,
    name: str = LANE,
    timeout_s: float = 60.0,
    cap: int = 1 << 20,
    settings: Mapping[str, Any] | None = None,
) -> LanePolicy:
    return LanePolicy(
        name, LaneMode.REDIRECT, dict(settings or {}), None, (str(FIXTURES / script),), timeout_s, cap
    )


def run(
    repo: Path,
    policy: LanePolicy,
    *,
    task: str | None = None,
    containment: Containment | None = None,
) -> LaneOutput:
    lane = lane_for(policy, containment=containment)
    ctx = LaneContext(
        policy.name,
        RepoView.at(repo),
        NOW,
        settings=policy.settings,
        task={"kind": "task", "id": task, "title": "a task"} if task else None,
    )
    return lane.run(ctx)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo", {"src/app.py": "def main():\n    # TODO\n    return 1\n"})


def evidence_of(output: LaneOutput, prefix: str) -> str:
    for finding in output.findings:
        for item in finding.evidence:
            if item.startswith(prefix):
                return item[len(prefix) :]
    raise AssertionError(f"no evidence starting {prefix!r} in {output.findings}")


def test_the_lane_is_external_volatile_and_gets_a_range(repo: Path) -> None:
    lane = lane_for(policy_for("good_lane.py", settings={"strict": True}))
    assert (lane.name, lane.scope, lane.external, lane.volatile) == (LANE, LaneScope.DIFF, True, True)
    assert lane.defaults == {"strict": True}


def test_the_command_line_is_the_wrapper_convention_without_follow_up_flags() -> None:
    policy = policy_for("good_lane.py")
    assert argv_for(policy, "t1")[1:] == ["check", "--json", "--task", "t1"]
    assert argv_for(policy, "")[1:] == ["check", "--json"]
    assert not {"--create-followups", "--write-log"} & set(argv_for(policy, "t1"))


def test_a_good_lane_gives_its_findings_with_the_task_as_their_subject(bwrap: str, repo: Path) -> None:
    output = run(repo, policy_for("good_lane.py"), task="t1")
    assert len(output.findings) == 2
    todo, env = output.findings
    assert (todo.lane, todo.kind, todo.severity, todo.file, todo.line) == (
        LANE,
        "todo_left",
        Severity.WARNING,
        "src/app.py",
        3,
    )
    assert todo.subject == "t1" and todo.fix.startswith("Resolve")
    assert env.severity is Severity.INFO and env.kind == "env"  # the first tag, without a kind
    assert json.loads(evidence_of(output, "argv=")) == ["check", "--json", "--task", "t1"]
    assert evidence_of(output, "cwd=") == str(repo.resolve())
    assert output.summary == "1 warning, 1 info"


def test_the_lane_gets_its_context_in_the_environment(bwrap: str, repo: Path) -> None:
    policy = policy_for("good_lane.py", settings={"paths": ["src"], "strict": True})
    output = run(repo, policy, task="t1")
    context = json.loads(evidence_of(output, "context="))
    head = RepoView.at(repo).head
    assert context["SPEEDRIFT_LANE"] == LANE
    assert context["SPEEDRIFT_LANE_REPO"] == str(repo)
    assert context["SPEEDRIFT_LANE_HEAD"] == head
    assert context["SPEEDRIFT_LANE_BASE"] == "" and context["SPEEDRIFT_LANE_TIP"] == ""
    assert context["SPEEDRIFT_LANE_TASK"] == "t1"
    assert json.loads(context["SPEEDRIFT_LANE_SETTINGS"]) == {"paths": ["src"], "strict": True}


def test_a_clean_lane_is_a_pass_with_no_findings(bwrap: str, repo: Path) -> None:
    output = run(repo, policy_for("clean_lane.sh"))
    assert output.findings == () and output.summary == "clean"


def test_the_lane_sees_no_credential_from_our_environment(
    bwrap: str, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    monkeypatch.setenv("MY_TOOL_MODE", "fast")
    monkeypatch.setenv("UNLISTED_VARIABLE", "x")
    containment = Containment(env_allow=("GITHUB_*", "AWS_*", "MY_TOOL_*"))
    output = run(repo, policy_for("good_lane.py"), containment=containment)
    names = set(json.loads(evidence_of(output, "names=")))
    assert "MY_TOOL_MODE" in names  # the allow-list works: the absence below is the scrubbing
    assert not {"GITHUB_TOKEN", "AWS_SECRET_ACCESS_KEY", "UNLISTED_VARIABLE"} & names
    assert TOKEN not in json.dumps([f.to_json() for f in output.findings])


def test_the_sandboxed_lane_cannot_write_into_the_repo(bwrap: str, repo: Path) -> None:
    output = run(repo, policy_for("good_lane.py"))
    assert evidence_of(output, "could not write into the repo: ") == "Read-only file system"
    assert not (repo / "planted-by-lane.txt").exists()


def test_a_lane_that_is_not_sandboxed_says_so(repo: Path) -> None:
    output = run(repo, policy_for("clean_lane.sh"), containment=Containment(mode="off"))
    assert output.findings == ()
    assert output.summary.startswith("clean (unsandboxed: turned off")


def test_a_required_sandbox_that_cannot_run_refuses_the_lane(repo: Path, path_without_bwrap: str) -> None:
    with pytest.raises(LaneError, match=r'not run: .*mode = "required".*bwrap') as caught:
        run(repo, policy_for("clean_lane.sh"), containment=Containment(mode="required"))
    assert caught.value.lane == LANE


def test_without_bwrap_an_auto_sandbox_runs_the_lane_and_says_why(
    repo: Path, path_without_bwrap: str
) -> None:
    output = run(repo, policy_for("clean_lane.sh"), containment=Containment(mode="auto"))
    assert "unsandboxed: bwrap (bubblewrap) is not installed" in output.summary


def test_output_that_is_not_json_is_a_lane_error_quoting_it_redacted(bwrap: str, repo: Path) -> None:
    with pytest.raises(LaneError) as caught:
        run(repo, policy_for("not_json.sh"))
    message = str(caught.value)
    assert message.startswith(f"external lane {LANE}: printed something that is not JSON")
    assert "lint finished OK, token [REDACTED:" in message
    assert "ghp_" not in message


def test_json_for_another_lane_is_a_lane_error(bwrap: str, repo: Path) -> None:
    with pytest.raises(LaneError, match="printed the output of lane 'someotherdrift', not 'lintdrift'"):
        run(repo, policy_for("wrong_lane.sh"))


def test_json_without_a_lane_key_is_a_lane_error(bwrap: str, repo: Path) -> None:
    with pytest.raises(LaneError, match='without a "lane" key'):
        run(repo, policy_for("no_lane_key.sh"))


def test_a_finding_with_an_unknown_severity_names_its_index_and_field(bwrap: str, repo: Path) -> None:
    with pytest.raises(LaneError, match=r"malformed finding: findings\[1\]\.severity is 'catastrophic'"):
        run(repo, policy_for("bad_severity.sh"))


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if marker.encode() in cmdline and state not in ("Z", "X"):
            found.append(int(entry.name))
    return found


@pytest.mark.parametrize("mode", ["auto", "off"])
def test_a_lane_past_its_timeout_is_killed_with_everything_it_started(
    bwrap: str, repo: Path, mode: str
) -> None:
    marker = f"3{uuid.uuid4().int % 10**6}.5"  # a `sleep` argument no other process has
    policy = policy_for("sleeper.py", timeout_s=1.5, settings={"marker": marker})
    with pytest.raises(LaneError, match=r"timed out after 1\.5s") as caught:
        run(repo, policy, containment=Containment(mode="off" if mode == "off" else "auto"))
    assert caught.value.hint is not None and "timeout_s" in caught.value.hint
    assert _processes_with(marker) == []


def test_stdout_past_the_cap_is_a_lane_error(bwrap: str, repo: Path) -> None:
    with pytest.raises(LaneError, match=r"printed more than 1048576 bytes on stdout \(max_output_bytes\)"):
        run(repo, policy_for("huge_output.py"))


def test_stderr_past_the_cap_is_a_lane_error(bwrap: str, repo: Path) -> None:
    with pytest.raises(LaneError, match="bytes on stderr"):
        run(repo, policy_for("stderr_flood.py"))


def test_a_python_traceback_is_a_lane_error_with_its_last_lines(bwrap: str, repo: Path) -> None:
    with pytest.raises(LaneError, match="exited with code 1") as caught:
        run(repo, policy_for("crash_traceback.py"))
    assert "ZeroDivisionError: division by zero" in str(caught.value)


@pytest.mark.parametrize("mode", ["auto", "off"])
def test_a_lane_killed_by_a_signal_is_a_lane_error_naming_it(bwrap: str, repo: Path, mode: str) -> None:
    containment = Containment(mode="off" if mode == "off" else "auto")
    with pytest.raises(LaneError, match="was killed by SIGSEGV") as caught:
        run(repo, policy_for("segfault.sh"), containment=containment)
    assert "about to crash" in str(caught.value)


def test_a_usage_exit_is_a_lane_error(bwrap: str, repo: Path) -> None:
    with pytest.raises(LaneError, match=r"exited with code 2 \(a usage error.*usage: lane check"):
        run(repo, policy_for("usage_error.sh"))


def test_a_missing_executable_is_a_lane_error(repo: Path) -> None:
    with pytest.raises(LaneError, match=r"does-not-exist\.sh does not exist"):
        run(repo, policy_for("does-not-exist.sh"))
    missing = LanePolicy(LANE, LaneMode.REDIRECT, {}, None, ("no-such-lane-binary",))
    with pytest.raises(LaneError, match="no-such-lane-binary is not on the lane's PATH"):
        run(repo, missing)


def test_a_file_that_is_not_executable_is_a_lane_error(repo: Path, tmp_path: Path) -> None:
    script = tmp_path / "lane.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o644)
    policy = LanePolicy(LANE, LaneMode.REDIRECT, {}, None, (str(script),))
    with pytest.raises(LaneError, match="is not executable") as caught:
        run(repo, policy)
    assert caught.value.hint == f"chmod +x {script}"


def test_a_relative_command_is_the_repos_and_the_wrapper_in_the_graph_dir_is_a_lane(
    bwrap: str, repo: Path
) -> None:
    wrapper = repo / ".workgraph" / LANE
    wrapper.write_text((FIXTURES / "clean_lane.sh").read_text())
    wrapper.chmod(0o755)
    policy = parse({"order": [LANE]}, None, "", {}, repo).lane(LANE)
    assert policy.command == (str(wrapper),)
    assert run(repo, policy).summary == "clean"
    (repo / "tools").mkdir()
    relative = repo / "tools" / "lane.sh"
    relative.write_text(wrapper.read_text())
    relative.chmod(0o755)
    table = {"order": [LANE], LANE: {"command": ["./tools/lane.sh"]}}
    assert run(repo, parse(table, None, "", {}, repo).lane(LANE)).summary == "clean"


def test_parse_output_reads_the_sdks_minimal_shape() -> None:
    output = parse_output(LANE, b'{"lane": "lintdrift", "findings": [{"message": "m"}]}')
    assert [(f.kind, f.severity, f.key, f.subject) for f in output.findings] == [
        ("finding", Severity.INFO, "m", "")
    ]
    with pytest.raises(LaneError, match="printed nothing on stdout"):
        parse_output(LANE, b"  \n")
    with pytest.raises(LaneError, match='"findings" is not a list'):
        parse_output(LANE, b'{"lane": "lintdrift", "findings": {}}')
    with pytest.raises(LaneError, match="JSON that is not an object"):
        parse_output(LANE, b"[1, 2]")


def test_a_finding_is_redacted_before_it_is_kept() -> None:
    raw = json.dumps({"lane": LANE, "findings": [{"message": f"token {TOKEN} in config", "key": "k"}]})
    output = parse_output(LANE, raw.encode())
    message = output.findings[0].message
    assert message.startswith("token [REDACTED:") and message.endswith("] in config")
    assert TOKEN not in message
