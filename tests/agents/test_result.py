"""The agent's report file: typed when well formed, a reason (never an exception) otherwise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from speedrift.agents.protocol import FailureKind, RunOutcome, Usage
from speedrift.agents.result import (
    MAX_REPORT_BYTES,
    AgentReport,
    apply_report,
    default_result_file,
    parse_report,
    read_report,
)


def test_a_full_report(tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    path.write_text(
        json.dumps(
            {
                "status": "done",
                "summary": "Added the endpoint.",
                "files_touched": ["api/x.py", "api/y.py"],
                "tests_added": ["tests/test_x.py"],
                "concerns": ["no docs yet"],
                "extra": "ignored",
            }
        )
    )
    assert read_report(path) == (
        AgentReport(
            "done", "Added the endpoint.", ("api/x.py", "api/y.py"), ("tests/test_x.py",), ("no docs yet",)
        ),
        "",
    )


def test_only_status_is_required_and_lists_are_lenient() -> None:
    report, reason = parse_report(
        b'{"status": "blocked", "files_touched": "a.py", "concerns": [1, "real", null]}'
    )
    assert reason == ""
    assert report == AgentReport("blocked", "", ("a.py",), (), ("real",))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "not valid JSON"),
        (b"{status: done}", "not valid JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"summary": "x"}', "must be 'done' or 'blocked', not null"),
        (b'{"status": "DONE"}', 'not "DONE"'),
        (b'{"status": ["done"]}', "not list"),
        (b"[" * 100_000, "not valid JSON"),
        (b'{"status": "done", "summary": "' + b"x" * MAX_REPORT_BYTES + b'"}', "larger than"),
    ],
)
def test_garbage_gives_no_report_and_a_reason(data: bytes, reason: str) -> None:
    report, why = parse_report(data)
    assert report is None
    assert reason in why


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    assert read_report(tmp_path / "nope.json") == (None, f"no result file at {tmp_path / 'nope.json'}")
    (tmp_path / "dir.json").mkdir()
    assert read_report(tmp_path / "dir.json")[0] is None


def test_a_huge_file_is_not_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    with path.open("wb") as handle:
        handle.truncate(512 * 1024 * 1024)  # sparse: 512 MiB of zero bytes costs no disk
    report, reason = read_report(path)
    assert report is None and "larger than" in reason


def test_the_default_location_is_inside_the_worktree(tmp_path: Path) -> None:
    assert default_result_file(tmp_path) == tmp_path / ".speedrift" / "result.json"


def test_a_blocked_report_fails_a_successful_run() -> None:
    outcome = RunOutcome(success=True, usage=Usage(output_tokens=5), exit_code=0, final_text="Done.")
    applied = apply_report(outcome, AgentReport("blocked", "the spec names no database"))
    assert not applied.success
    assert applied.failure is FailureKind.BLOCKED
    assert applied.reason == "the agent reported itself blocked: the spec names no database"
    assert applied.usage.output_tokens == 5 and applied.final_text == "Done."
    assert outcome.success  # the original is left alone


def test_other_combinations_leave_the_outcome_alone() -> None:
    ok = RunOutcome(success=True)
    failed = RunOutcome(success=False, failure=FailureKind.USAGE_LIMIT, reason="limit")
    assert apply_report(ok, None) is ok
    assert apply_report(ok, AgentReport("done")) is ok
    assert apply_report(failed, AgentReport("blocked")) is failed
