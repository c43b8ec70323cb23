"""What the hub's terminal says happened: attempts dispatched, landed, failed and escalated (from
their own records), the hub's own actions (from the cycle record), history left untold, and one
quiet line after a long silence."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from speedrift import layout, records
from speedrift.cli.hub_news import QUIET_S, Happenings
from speedrift.times import now_utc


def _cycle(repo: Path, executed: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "generated_at": "2026-12-07T12:00:00Z",
        "repos": [{"name": "shop", "snapshot": {"path": str(repo)}}],
        "executed": executed or [],
    }


def _attempt(repo: Path, task: str, number: int, **fields: Any) -> Path:
    folder = layout.runs_dir(repo) / task / str(number)
    folder.mkdir(parents=True, exist_ok=True)
    records.update_attempt(folder, {"runtime": "demo", **fields})
    return folder


def test_an_attempt_is_told_when_dispatched_then_when_it_lands(tmp_path: Path) -> None:
    news = Happenings(since=now_utc() - timedelta(seconds=5))
    _attempt(tmp_path, "sort", 1, state="running")

    first = news.lines(_cycle(tmp_path))
    _attempt(tmp_path, "sort", 1, state="done", landed_commit="abcdef0123456789")
    second = news.lines(_cycle(tmp_path))
    third = news.lines(_cycle(tmp_path))

    assert first == ["dispatched shop:sort (attempt 1) -> demo"]
    assert second == ["landed     shop:sort (attempt 1): commit abcdef0123 on the target branch"]
    assert third == []


def test_attempts_begun_before_the_hub_started_are_history(tmp_path: Path) -> None:
    _attempt(tmp_path, "old", 1, state="done")
    news = Happenings(since=now_utc() + timedelta(seconds=5))

    assert news.lines(_cycle(tmp_path)) == []


def test_a_failure_says_its_class_and_a_question_names_the_command_that_answers_it(tmp_path: Path) -> None:
    news = Happenings(since=now_utc() - timedelta(seconds=5))
    news.lines(_cycle(tmp_path))
    folder = _attempt(
        tmp_path, "ask", 1, state="failed", failure="spec_gap", reason="blocked: keep duplicates?"
    )
    records.write_evidence(folder, {"recovery": {"recovery": "escalate_human", "question": "q"}})

    failed = news.lines(_cycle(tmp_path))
    _attempt(tmp_path, "ask", 1, clarifications=[{"question": "repo-1", "escalation": "repo-3"}])
    escalated = news.lines(_cycle(tmp_path))

    assert failed == [
        "dispatched shop:ask (attempt 1) -> demo",
        "failed     shop:ask (attempt 1): spec_gap — blocked: keep duplicates?",
    ]
    graph = tmp_path / ".workgraph"
    assert escalated == [
        f"escalated  shop:ask: an agent asks a person (repo-3); answer with "
        f'`speedrift answer --dir {graph} repo-3 "…"`'
    ]


def test_a_gate_failure_escalated_to_a_person_tells_the_recorded_question(tmp_path: Path) -> None:
    news = Happenings(since=now_utc() - timedelta(seconds=5))
    news.lines(_cycle(tmp_path))
    folder = _attempt(tmp_path, "pay", 1, state="failed", failure="secret_leak", reason="gates blocked")
    records.write_evidence(
        folder, {"recovery": {"recovery": "escalate_human", "question": "Rotate the key."}}
    )

    lines = news.lines(_cycle(tmp_path))

    assert lines[-1] == "escalated  shop:pay: Rotate the key."


def test_the_hubs_own_actions_are_told_but_held_or_repeated_ones_are_not(tmp_path: Path) -> None:
    news = Happenings()
    executed = [
        {
            "kind": "emit_corrective_task",
            "repo": "shop",
            "status": "succeeded",
            "detail": "created corrective task x",
        },
        {
            "kind": "emit_corrective_task",
            "repo": "shop",
            "status": "succeeded",
            "detail": "existing: x is already in the graph",
        },
        {"kind": "dispatch_ready", "repo": "shop", "status": "succeeded", "detail": "dispatched a"},
        {"kind": "dispatch_ready", "repo": "shop", "status": "skipped", "detail": "limit reached"},
        {
            "kind": "retry_failed",
            "repo": "shop",
            "status": "succeeded",
            "detail": "a: reopened for attempt 2",
        },
    ]

    lines = news.lines(_cycle(tmp_path, executed))

    assert lines == [
        "corrective shop: created corrective task x",
        "retry      shop: a: reopened for attempt 2",
    ]


def test_one_quiet_line_after_a_long_silence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clock = [0.0]
    news = Happenings(clock=lambda: clock[0])

    news.cycle(_cycle(tmp_path))
    clock[0] = QUIET_S + 1
    news.cycle(_cycle(tmp_path))
    news.cycle(_cycle(tmp_path))

    said = capsys.readouterr().out
    assert said.count("nothing new") == 1
