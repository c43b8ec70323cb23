"""The attention queues as the page shows them: the cycle record's queues, shaped for display.

The control cycle decides what waits for attention, in which queue and how urgently
(control/assess/queues.py), and records it in the cycle record. This module only reshapes the
recorded queues into the API's ``{key: {label, total, items}}`` and, for a record read back from
the ledger (which stores no prompts), adds each entry's prompts with the control plane's own
templates (control/plan/prompts.py: entry_prompts).

Invariant: nothing here ranks, filters, scores or ages an entry — order, priority, totals, queue
membership and ``since`` are the record's. A record without queues (an older ledger line) shows
five empty queues.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from speedrift.control.assess.queues import QUEUES
from speedrift.control.plan.entry_prompts import entry_prompts


def display_queues(record: Mapping[str, Any]) -> dict[str, Any]:
    """``{key: {label, total, items}}`` in contract order for one cycle record (the ledger's dict)."""
    recorded = {q.get("key"): q for q in record.get("queues") or () if isinstance(q, dict)}
    paths = {
        r.get("name"): (r.get("snapshot") or {}).get("path") or r.get("name")
        for r in record.get("repos") or ()
        if isinstance(r, dict)
    }
    out: dict[str, Any] = {}
    for key, label in QUEUES:
        queue = recorded.get(key) or {}
        entries = [e for e in queue.get("entries") or () if isinstance(e, dict)]
        out[key] = {
            "label": queue.get("label") or label,
            "total": int(queue.get("total") or len(entries)),
            "items": [_item(entry, paths) for entry in entries],
        }
    return out


def _item(entry: Mapping[str, Any], paths: Mapping[Any, Any]) -> dict[str, Any]:
    prompts = {k: str(v) for k, v in (entry.get("prompts") or {}).items() if v}
    if not (prompts.get("claude") and prompts.get("codex")):  # a ledger line: no prompts stored
        repo = str(entry.get("repo"))
        made = entry_prompts(
            str(entry.get("rule")),
            repo,
            str(paths.get(repo) or repo),
            task=entry.get("task"),
            what=str(entry.get("what") or ""),
            why=str(entry.get("why") or ""),
            detail=entry.get("detail") or {},
            from_action=entry.get("id") == f"action:{entry.get('action_id')}",
        )
        prompts = {**made, **prompts}
    waited = entry.get("waited_seconds")
    item: dict[str, Any] = {
        "id": entry.get("id"),
        "repo": entry.get("repo"),
        "what": entry.get("what"),
        "why": entry.get("why"),
        "priority": entry.get("priority"),
        "waited_seconds": round(waited) if isinstance(waited, int | float) else None,
        "since": entry.get("since"),
        "task": entry.get("task"),
        "action_id": entry.get("action_id"),
        "approvable": bool(entry.get("approvable")),
        "prompts": {"claude": prompts.get("claude", ""), "codex": prompts.get("codex", "")},
    }
    answer = _answer(entry)
    if answer is not None:  # only an item waiting on a person's answer has one
        item["answer"] = answer
    return item


def _answer(entry: Mapping[str, Any]) -> dict[str, Any] | None:
    """A task or a question waiting on a human (rule ``needs_human``): the command that answers it,
    what to do first (rotate a secret, log a CLI in) — the page offers the command to copy — and,
    for a question an agent asked (a human_escalation record), the record the page's answer box
    posts to (``POST /api/repos/{repo}/answer/{record}``); for a task waiting at an approval
    checkpoint (rule ``awaiting_approval``), the task the page's Approve button posts to
    (``POST /api/repos/{repo}/tasks/{task}/approve``) and the checkpoint."""
    detail = entry.get("detail") or {}
    command = detail.get("answer") if isinstance(detail, dict) else None
    if not isinstance(command, str) or not command:
        return None
    first = detail.get("first")
    record = detail.get("record")
    shown = {"command": command, "first": first if isinstance(first, str) and first else None}
    if isinstance(record, str) and record:
        shown["record"] = record
    approve, checkpoint = detail.get("approve"), detail.get("checkpoint")
    if isinstance(approve, str) and approve:
        shown |= {"approve": approve, "checkpoint": checkpoint if isinstance(checkpoint, str) else None}
    return shown
