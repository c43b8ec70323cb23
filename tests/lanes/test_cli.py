"""`speedrift drift check` and `speedrift lanes list` through the real CLI, as a `python -m speedrift`
subprocess (the commands run external lanes as process groups of their own), on real git repos
whose lanes are external executables (``.workgraph/<lane>`` wrappers printing the lane SDK's JSON):
exit codes 0/3/2, the --json shape, policy errors naming file and line, the guard's follow-ups."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from speedrift.lanes.builtin import BUILTIN
from tests.cli.support import Cli
from tests.gitrepo import commit_file, make_repo, sh_git

CLEAN = '#!/bin/sh\necho \'{"lane": "tidy", "findings": [], "exit_code": 0}\'\n'
TODO_FINDING = {
    "message": "TODO left in app.py",
    "severity": "warning",
    "file": "app.py",
    "line": 2,
    "kind": "todo_left",
    "key": "app.py#todo",
    "fix": "resolve the TODO or file it as a task",
}
TODO = (
    f"#!/bin/sh\necho '{json.dumps({'lane': 'todos', 'findings': [TODO_FINDING], 'exit_code': 3})}'\nexit 3\n"
)
CRASH = "#!/bin/sh\necho 'Traceback: boom' >&2\nexit 1\n"


def wrapper(repo: Path, name: str, script: str) -> Path:
    path = repo / ".workgraph" / name
    path.write_text(script)
    path.chmod(0o755)
    return path


def policy(repo: Path, text: str) -> Path:
    path = repo / ".workgraph" / "drift-policy.toml"
    path.write_text(text)
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = make_repo(tmp_path / "repo", {"app.py": "def main():\n    # TODO\n    return 1\n"})
    wrapper(path, "tidy", CLEAN)
    wrapper(path, "todos", TODO)
    wrapper(path, "crashy", CRASH)
    sh_git(path, "add", "-A")
    sh_git(path, "commit", "-q", "-m", "lane wrappers")
    return path


@pytest.fixture
def cli(repo: Path) -> Cli:
    return Cli(repo, process=True)


def test_a_clean_check_exits_0_and_prints_each_lane_and_its_progress(cli: Cli, repo: Path) -> None:
    policy(repo, 'order = ["tidy"]\n')
    result = cli.ok("drift", "check")
    assert result.stdout.splitlines()[0].startswith(f"Drift check of {repo} at ")
    (line,) = [line for line in result.stdout.splitlines() if line.strip().startswith("tidy")]
    assert line.split()[:2] == ["tidy", "clean"] and line.rstrip().endswith("s")
    assert "speedrift: lane tidy" in result.stderr  # the progress line, as the lane finished


def test_findings_exit_3_grouped_by_lane_with_the_fix_below(cli: Cli, repo: Path) -> None:
    policy(repo, 'order = ["tidy", "todos"]\nmode = "observe"\n')
    result = cli.fails(3, "drift", "check")
    lines = result.stdout.splitlines()
    at = lines.index("todos:")
    assert lines[at + 1].split() == ["warning", "app.py:2", "todo_left:", "TODO", "left", "in", "app.py"]
    assert lines[at + 2].strip() == "fix: resolve the TODO or file it as a task"


def test_a_lane_that_crashes_exits_2_and_says_it_could_not_judge(cli: Cli, repo: Path) -> None:
    policy(repo, 'order = ["tidy", "crashy"]\nmode = "observe"\n')
    result = cli.fails(2, "drift", "check")
    (line,) = [line for line in result.stdout.splitlines() if line.strip().startswith("crashy")]
    assert "lane error: LaneError: external lane crashy: exited with code 1" in line
    assert "stderr: Traceback: boom" in line


def test_json_holds_the_report_and_the_guards_outcomes(cli: Cli, repo: Path) -> None:
    policy(repo, 'order = ["tidy", "todos"]\nmode = "observe"\n')
    result = cli.fails(3, "drift", "check", "--json")
    data = result.json()
    assert set(data) == {"report", "guard"}
    report = data["report"]
    assert (report["repo"], report["head"], report["exit_code"]) == (
        str(repo),
        sh_git(repo, "rev-parse", "HEAD"),
        3,
    )
    assert [lane["lane"] for lane in report["lanes"]] == ["tidy", "todos"]
    (finding,) = report["lanes"][1]["findings"]
    assert {k: finding[k] for k in TODO_FINDING} == TODO_FINDING
    assert len(finding["fingerprint"]) == 24
    assert isinstance(data["guard"], list)
    assert all({"lane", "kind", "fingerprint", "status"} <= set(o) for o in data["guard"])
    assert result.stderr == ""  # no progress lines with --json
    saved = json.loads((repo / ".speedrift" / "lanes" / "latest.json").read_text())
    assert [{k: v for k, v in lane.items() if k in report["lanes"][0]} for lane in saved["lanes"]] == report[
        "lanes"
    ]


def test_lane_picks_one_lane_and_an_unknown_lane_is_a_usage_error(cli: Cli, repo: Path) -> None:
    policy(repo, 'order = ["tidy", "todos"]\nmode = "observe"\n')
    only = cli.json("drift", "check", "--lane", "tidy")
    assert [lane["lane"] for lane in only["report"]["lanes"]] == ["tidy"]
    wrong = cli.fails(2, "drift", "check", "--lane", "nope")
    assert "no lane named nope" in wrong.stderr


def test_an_unknown_task_or_revision_is_a_usage_error(cli: Cli, repo: Path) -> None:
    policy(repo, 'order = ["tidy"]\n')
    assert "no task ghost" in cli.fails(2, "drift", "check", "--task", "ghost").stderr
    assert "no-such-rev" in cli.fails(2, "drift", "check", "--base", "no-such-rev").stderr
    assert "--tip needs --base" in cli.fails(2, "drift", "check", "--tip", "HEAD").stderr


def test_a_bad_policy_names_the_file_the_line_the_key_and_the_fix(cli: Cli, repo: Path) -> None:
    path = policy(repo, 'order = ["tidy"]\n\n[guard]\nmax_active_per_lane = -1\n')
    result = cli.fails(2, "drift", "check")
    assert f"error: {path}:4: guard.max_active_per_lane: is -1" in result.stderr
    assert "fix: use a whole number >= 0" in result.stderr
    listed = cli.fails(2, "lanes", "list")
    assert f"{path}:4" in listed.stderr


def test_a_policy_with_broken_toml_names_the_line(cli: Cli, repo: Path) -> None:
    path = policy(repo, 'order = ["tidy"]\nmode = \n')
    result = cli.fails(2, "drift", "check", "--json")
    assert f"{path}:2: (syntax)" in result.stderr and result.stdout == ""


def _graph_ids(repo: Path) -> list[str]:
    lines = (repo / ".workgraph" / "graph.jsonl").read_text().splitlines()
    return [
        json.loads(line)["id"] for line in lines if line.strip() and json.loads(line).get("kind") == "task"
    ]


def test_create_followups_creates_one_task_and_a_rerun_creates_nothing_new(cli: Cli, repo: Path) -> None:
    policy(repo, 'order = ["todos"]\n\n[guard]\nmin_severity = "warning"  # the lane reports warnings\n')
    first = cli.fails(3, "drift", "check", "--create-followups", "--json").json()
    created = [o for o in first["guard"] if o["status"] == "created"]
    assert len(created) == 1, first["guard"]
    task_id = created[0]["task_id"]
    assert (created[0]["lane"], created[0]["kind"]) == ("todos", "todo_left")
    tasks = _graph_ids(repo)
    assert task_id in tasks
    second = cli.fails(3, "drift", "check", "--create-followups", "--json").json()
    assert [o["status"] for o in second["guard"]] == ["existing"]
    assert second["guard"][0]["task_id"] == task_id
    assert _graph_ids(repo) == tasks  # nothing new
    shown = cli.fails(3, "drift", "check", "--create-followups")
    assert f"existing {task_id} (todos todo_left)" in " ".join(shown.stdout.split())


def test_without_create_followups_no_task_is_created(cli: Cli, repo: Path) -> None:
    policy(repo, 'order = ["todos"]\n')
    before = _graph_ids(repo)
    data = cli.fails(3, "drift", "check", "--json").json()
    assert not [o for o in data["guard"] if o["status"] == "created"]
    assert _graph_ids(repo) == before


def _lanes(cli: Cli) -> dict[str, Any]:
    data = cli.json("lanes", "list")
    return {row["name"]: row for row in data["lanes"]} | {"": data}


def test_lanes_list_json_shows_an_external_wrapper_lane_and_its_policy(cli: Cli, repo: Path) -> None:
    path = policy(
        repo,
        'order = ["todos"]\nmode = "advise"\n\n[lanes]\nblocking = ["todos"]\n\n'
        '[todos]\ncron = "0 3 * * *"\ntimeout_s = 30\nseverity_floor = "warning"\n',
    )
    rows = _lanes(cli)
    top = rows.pop("")
    assert (top["policy"], top["order"], top["blocking"], top["mode"]) == (
        str(path),
        ["todos"],
        ["todos"],
        "advise",
    )
    todos = rows["todos"]
    assert todos["enabled"] and todos["external"] and todos["blocking"]
    assert todos["command"] == [str(repo / ".workgraph" / "todos")]
    assert (todos["scope"], todos["mode"], todos["cron"], todos["timeout_s"]) == (
        "diff",
        "advise",
        "0 3 * * *",
        30,
    )
    assert todos["settings"] == {"severity_floor": {"value": "warning", "default": "warning"}}
    for name, lane in BUILTIN.items():  # the built-in lanes the policy does not run are listed too
        assert rows[name]["enabled"] is False and rows[name]["external"] is False
        assert rows[name]["settings"] == {k: {"value": v, "default": v} for k, v in lane.defaults.items()}
    assert set(rows) == {"todos", *BUILTIN}


def test_lanes_list_prints_a_table_with_the_lane_and_its_command(cli: Cli, repo: Path) -> None:
    policy(repo, 'order = ["tidy"]\n')
    out = cli.ok("lanes", "list", env={"COLUMNS": "400"}).stdout
    row = next(line for line in out.splitlines() if "tidy" in line and "external" in line)
    assert str(repo / ".workgraph" / "tidy") in row and "redirect" in row


def test_repo_points_the_commands_at_another_repository(tmp_path: Path, repo: Path) -> None:
    policy(repo, 'order = ["tidy"]\n')
    elsewhere = Cli(tmp_path, process=True)
    data = elsewhere.json("drift", "check", "--repo", str(repo / ".workgraph"))
    assert data["report"]["repo"] == str(repo)
    assert "no such directory" in elsewhere.fails(2, "lanes", "list", "--repo", str(tmp_path / "nope")).stderr


def test_a_built_in_lane_judges_a_range_given_by_base_and_tip(cli: Cli, repo: Path) -> None:
    policy(repo, 'order = ["depsdrift"]\n')
    commit_file(repo, "pyproject.toml", '[project]\nname = "demo"\ndependencies = ["attrs"]\n', "manifest")
    commit_file(repo, "uv.lock", "version = 1\n", "lock")
    base = sh_git(repo, "rev-parse", "HEAD")
    commit_file(
        repo, "pyproject.toml", '[project]\nname = "demo"\ndependencies = ["attrs", "httpx"]\n', "dep"
    )
    data = cli.fails(3, "drift", "check", "--base", base, "--tip", "HEAD", "--json").json()
    (lane,) = data["report"]["lanes"]
    assert data["report"]["base"] == base
    assert [(f["kind"], f["file"]) for f in lane["findings"]] == [("lock_not_updated", "pyproject.toml")]
    without_range = cli.json("drift", "check")["report"]["lanes"][0]
    assert without_range["skipped"].startswith("no diff range")


def test_by_default_a_warning_gets_no_task(cli: Cli, repo: Path) -> None:
    policy(repo, 'order = ["todos"]\n')
    data = cli.fails(3, "drift", "check", "--create-followups", "--json").json()
    assert [(o["status"], o["detail"]) for o in data["guard"]] == [
        ("observed", "logging is off: recorded only")  # advice, and no --write-log
    ]
