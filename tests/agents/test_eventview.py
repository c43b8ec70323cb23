"""speedrift/eventview.py on the real event streams of every runtime (tests/agents/fixtures/streams):
what a person reads of each event, written and read back through the event log as in a run."""

from __future__ import annotations

import io
import json

from speedrift import eventview, records
from speedrift.agents.claude import ClaudeRuntime
from speedrift.agents.codex import CodexRuntime
from speedrift.agents.opencode import OpenCodeRuntime
from speedrift.agents.protocol import ParseState, Runtime
from speedrift.agents.shell import ShellRuntime
from speedrift.eventview import Style
from tests.agents.conftest import stream
from tests.agents.support import feed

FAKE_KEY = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"  # a GitHub token's shape (tests/gates)


def _shown(runtime: Runtime, lines: list[str], name: str | None = None) -> list[eventview.EventLine]:
    """Parse as the session does, write each event to a log as the session does, read it back, render."""
    events, _ = feed(runtime, lines)
    log = io.StringIO()
    for event in events:
        records.append_event(log, records.Event(event.kind.value, event.text, data=event.data))
    back = [records.parse_event(line) for line in log.getvalue().splitlines()]
    return [eventview.render(e, name) for e in back if e is not None]


def _pairs(shown: list[eventview.EventLine]) -> list[tuple[str, str]]:
    return [(s.label, s.line) for s in shown]


def test_a_claude_run_reads_as_its_start_file_write_result_words_and_outcome() -> None:
    shown = _shown(ClaudeRuntime(), stream("claude_success.jsonl"))
    assert _pairs(shown) == [
        ("start", "claude started (model claude-opus-4-8[1m])"),
        ("edit", "Write hello.txt (+1 −0)"),
        (
            "result",
            "Write → File created successfully at: hello.txt (file state is current in your context — "
            "no need to Read it back)",
        ),
        ("said", "Done."),
        ("finished", "finished · $0.0097 — Done."),
    ]
    assert all(s.ts and s.ts.endswith("Z") for s in shown)


def test_claude_edits_show_the_lines_they_add_and_remove_and_bash_its_command() -> None:
    edit = {"file_path": "src/app.py", "old_string": "a\nb\nc\n", "new_string": "a\nB\nc\nd\ne\n"}
    blocks = [
        {"type": "thinking", "thinking": "Let me look."},
        {"type": "tool_use", "id": "1", "name": "Edit", "input": edit},
        {"type": "tool_use", "id": "2", "name": "Bash", "input": {"command": "pytest -q"}},
        {"type": "tool_use", "id": "3", "name": "Read", "input": {"file_path": "README.md"}},
        {"type": "tool_use", "id": "4", "name": "Write", "input": {"file_path": "t/x.py", "content": "x\n"}},
        {"type": "tool_use", "id": "5", "name": "Grep", "input": {"pattern": "TODO"}},
    ]  # fmt: skip
    line = {"type": "assistant", "message": {"id": "m1", "content": blocks}, "parent_tool_use_id": None}
    failed = {
        "type": "tool_result",
        "tool_use_id": "2",
        "content": "2 failed\nE assert 1 == 2",
        "is_error": True,
    }
    answer = {"type": "user", "message": {"content": [failed]}}
    shown = _shown(ClaudeRuntime(), [json.dumps(line), json.dumps(answer)])
    assert _pairs(shown) == [
        ("thinking", "Let me look."),
        ("edit", "Edit src/app.py (+3 −1)"),
        ("tool", "Bash: pytest -q"),
        ("tool", "Read README.md"),
        ("edit", "Write t/x.py (+1 −0)"),
        ("tool", "Grep: TODO"),
        ("failed", "Bash failed: 2 failed … E assert 1 == 2"),
    ]
    assert shown[-1].detail == "2 failed\nE assert 1 == 2"  # the whole answer, lines kept


def test_a_refused_claude_write_is_marked_failed() -> None:
    shown = _shown(ClaudeRuntime(), stream("claude_permission_denied.jsonl"))
    refused = [s for s in shown if s.style is Style.FAILED]
    assert len(refused) == 1 and refused[0].line.startswith("Write failed: Claude requested permissions")


def test_claude_retries_and_an_error_result_read_as_retries_then_a_failed_finish() -> None:
    shown = _shown(ClaudeRuntime(), stream("claude_server_error_retries.jsonl"))
    styles = [s.style for s in shown]
    assert styles.count(Style.RETRY) == 2 and styles[-1] is Style.ERROR
    assert shown[-1].line.startswith("failed — API Error: 500")


def test_a_codex_edit_names_the_file_it_changes_and_how_the_change_ended() -> None:
    shown = _shown(CodexRuntime(), stream("codex_edit.jsonl"))
    edits = [s for s in shown if s.style in (Style.EDIT, Style.RESULT)]
    assert [s.line for s in edits] == [
        "Edit /tmp/tmpexf7dlfg/repo/greet.txt",
        "✓ Edit /tmp/tmpexf7dlfg/repo/greet.txt — completed",
    ]
    assert shown[-1].style is Style.FINISHED and shown[-1].line == "finished · 1,660 tokens — Done."


def test_a_codex_command_that_exits_non_zero_is_marked_failed() -> None:
    item = {
        "id": "i0",
        "type": "command_execution",
        "command": "bash -lc 'pytest -q'",
        "aggregated_output": "",
    }
    lines = [
        json.dumps({"type": "item.started", "item": item | {"status": "in_progress", "exit_code": None}}),
        json.dumps({"type": "item.completed", "item": item | {"status": "failed", "exit_code": 1}}),
    ]
    assert _pairs(_shown(CodexRuntime(), lines)) == [
        ("tool", "Bash: bash -lc 'pytest -q'"),
        ("failed", "✗ Bash: bash -lc 'pytest -q' — exit 1"),
    ]


def test_opencode_tool_calls_and_step_usage_read_plainly() -> None:
    assert _pairs(_shown(OpenCodeRuntime(), stream("opencode_success.jsonl"))) == [
        ("start", "step 1"),
        ("edit", "Write hello.txt (+1 −0)"),
        ("usage", "step finished: tool-calls · 830 tokens"),
        ("start", "step 2"),
        ("said", "Done."),
        ("usage", "step finished: stop · 1,660 tokens"),
    ]
    rejected = _shown(OpenCodeRuntime(), stream("opencode_permission_rejected.jsonl"))[1]
    assert rejected.style is Style.FAILED
    assert rejected.line == (
        "Write ../outside.txt (+1 −0) — failed: The user rejected permission to use this specific tool call."
    )


def test_shell_output_reads_as_output_and_stderr_as_stderr() -> None:
    shell = ShellRuntime()
    state = ParseState()
    events = shell.parse_line("compiling\n", state) + shell.parse_stderr_line("warning: cold\n", state)
    shown = [eventview.render(records.Event(e.kind.value, e.text, data=e.data), "shell") for e in events]
    assert _pairs(shown) == [("output", "compiling"), ("stderr", "warning: cold")]


def test_hostile_text_is_shown_escaped_and_secrets_stay_redacted() -> None:
    shown = _shown(ClaudeRuntime(), stream("claude_hostile.jsonl"))
    assert all("\x1b" not in s.line + s.detail and "\x00" not in s.line for s in shown)
    assert any("\\x1b[31m" in s.line for s in shown)
    said = {
        "type": "assistant",
        "message": {"id": "m", "content": [{"type": "text", "text": f"key {FAKE_KEY}"}]},
    }
    leak = _shown(ClaudeRuntime(), [json.dumps(said)])
    assert FAKE_KEY not in leak[0].line and "key " in leak[0].line  # redacted when written


def test_every_line_is_one_bounded_line() -> None:
    long = {
        "type": "assistant",
        "message": {"id": "m", "content": [{"type": "text", "text": "word\n" * 5000}]},
    }
    shown = _shown(ClaudeRuntime(), [json.dumps(long)])[0]
    assert "\n" not in shown.line and len(shown.line) <= eventview.LINE_LIMIT
    assert len(shown.detail) <= eventview.DETAIL_LIMIT + 1


def test_a_file_named_by_its_absolute_path_in_the_worktree_is_shown_from_the_worktrees_root() -> None:
    path = "/home/me/shop/.speedrift/worktrees/add-refunds-2/src/app.py"
    event = records.Event("tool_use", path, data={"tool": "Write", "path": path, "added": 4, "removed": 0})
    assert eventview.render(event).line == "Write src/app.py (+4 −0)"
