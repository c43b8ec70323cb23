"""The agent's optional report: a small JSON file at the path exported as SPEEDRIFT_RESULT.

    {"status": "done" | "blocked", "summary": "…", "files_touched": ["…"],
     "tests_added": ["…"], "concerns": ["…"]}

The file is written by the agent, so it is untrusted: a missing, huge, non-UTF-8 or malformed
file gives no report plus a reason, never an exception. Only `status` is required; list fields
accept a single string too, and items that are not strings are dropped.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from speedrift import layout
from speedrift.agents.protocol import FailureKind, RunOutcome

MAX_REPORT_BYTES = 256 * 1024
_MAX_ITEMS = 1_000
_MAX_TEXT = 8_000


@dataclass(frozen=True)
class AgentReport:
    status: Literal["done", "blocked"]
    summary: str = ""
    files_touched: tuple[str, ...] = ()
    tests_added: tuple[str, ...] = ()
    concerns: tuple[str, ...] = ()


def default_result_file(cwd: Path) -> Path:
    """Inside the worktree, because every CLI's sandbox or permission rules refuse writes outside
    it; under `.speedrift/`, which `speedrift init` excludes from git, so it is never committed."""
    return layout.agent_result_path(cwd)


def read_report(path: Path) -> tuple[AgentReport | None, str]:
    """The report at `path` and "" — or None and why not."""
    try:
        if not path.is_file():
            return None, f"no result file at {path}"
        with path.open("rb") as handle:
            data = handle.read(MAX_REPORT_BYTES + 1)
    except OSError as exc:
        return None, f"cannot read the result file: {exc.strerror or exc}"
    return parse_report(data)


def parse_report(data: bytes) -> tuple[AgentReport | None, str]:
    if len(data) > MAX_REPORT_BYTES:
        return None, f"the result file is larger than {MAX_REPORT_BYTES} bytes"
    try:
        value = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        return None, "the result file is not UTF-8"
    except (ValueError, RecursionError):
        return None, "the result file is not valid JSON"
    if not isinstance(value, dict):
        return None, "the result file is not a JSON object"
    status = value.get("status")
    if status not in ("done", "blocked"):
        return None, f"the result status must be 'done' or 'blocked', not {_show(status)}"
    summary = value.get("summary")
    report = AgentReport(
        status=status,
        summary=summary[:_MAX_TEXT] if isinstance(summary, str) else "",
        files_touched=_strings(value.get("files_touched")),
        tests_added=_strings(value.get("tests_added")),
        concerns=_strings(value.get("concerns")),
    )
    return report, ""


def apply_report(outcome: RunOutcome, report: AgentReport | None) -> RunOutcome:
    """A successful run whose agent reported itself blocked is a failed attempt (BLOCKED), which
    recovery treats differently from an error: blocked is not failed, it needs an answer.
    A run that already failed keeps its own failure: the runtime's verdict is the firmer one."""
    if report is None or report.status != "blocked" or not outcome.success:
        return outcome
    reason = "the agent reported itself blocked" + (f": {report.summary}" if report.summary else "")
    return dataclasses.replace(outcome, success=False, failure=FailureKind.BLOCKED, reason=reason)


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return ()
    return tuple(item[:_MAX_TEXT] for item in value[:_MAX_ITEMS] if isinstance(item, str) and item)


def _show(value: Any) -> str:
    shown = (
        json.dumps(value)
        if isinstance(value, str | int | float | bool | type(None))
        else type(value).__name__
    )
    return shown[:60]
