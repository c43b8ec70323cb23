"""`speedrift why` in words, beyond its first sentence: a repo's reasons, mode and lease, what ran,
where its gate findings are (the target branch at a commit, or an attempt the gates blocked that
landed nothing), and a task's blocking chain. Every reason the ``--json`` answer carries is said
here (tests/cli/test_why_complete.py checks it structurally).
"""

from __future__ import annotations

from typing import Any

from speedrift.cli.output import printable, say

MAX_CHAIN_LINES = 20  # blocking-chain links printed (the rest: `speedrift why-blocked TASK`)


def findings(snapshot: dict[str, Any]) -> dict[str, Any]:
    """What the gates found, located: on the target branch (at the commit its newest scan or landed
    attempt judged), and in attempts they blocked — which landed nothing and cost the score nothing."""
    gates = snapshot.get("gates") or {}
    counts = {k: int(gates.get(k) or 0) for k in ("secret_leaks", "critical", "high", "medium", "low")}
    return {
        "target_branch": {
            "where": gates.get("where") or "target_branch",
            "commit": gates.get("commit"),
            "source": gates.get("source"),
            "last_status": gates.get("last_status") or "none",
            **counts,
        },
        "blocked_attempts": [b for b in gates.get("blocked_attempts") or () if isinstance(b, dict)],
    }


def _counted(found: dict[str, Any]) -> str:
    labels = (
        ("secret_leaks", "secret leak(s)"),
        ("critical", "critical"),
        ("high", "high"),
        ("medium", "medium"),
    )
    return ", ".join(f"{found[k]} {label}" for k, label in labels if found.get(k)) + (
        f", {found['low']} low" if found.get("low") else ""
    )


def _say_findings(answer: dict[str, Any]) -> None:
    findings = answer.get("findings")
    if not isinstance(findings, dict):
        return
    target = findings["target_branch"]
    counted = _counted(target).lstrip(", ")
    if counted or target["last_status"] not in ("none", "pass"):
        at = f" at {str(target['commit'])[:12]}" if target.get("commit") else ""
        by = f" (from the {target['source']})" if target.get("source") else ""
        say(
            printable(
                f"  findings on the target branch{at}{by}: {counted or 'none'}; gates {target['last_status']}"
            )
        )
    for blocked in findings["blocked_attempts"]:
        gates = f"; blocked by {', '.join(blocked.get('blocking') or ())}" if blocked.get("blocking") else ""
        say(
            printable(
                f"  findings in {blocked['task']} attempt {blocked['attempt']} "
                f"({blocked.get('state', 'failed')}, not landed): "
                f"{_counted(blocked).lstrip(', ') or 'none'}{gates}"
            )
        )


def say_repo(answer: dict[str, Any]) -> None:
    """The repo's reasons, mode and lease, what ran: every reason its JSON carries, in words."""
    if answer.get("stall") and answer["stall"] not in answer["answer"]:
        say(printable(f"  {answer['repo']} is stalled: {answer['stall']}"))
    if answer.get("reasons"):
        say(printable(f"  why {answer['repo']} is {answer['tier']} (score {answer['score']}):"))
        for reason in answer["reasons"]:
            say(printable(f"    - {reason}"))
    lease = ""
    if answer.get("lease_owner"):
        until = f" until {answer['lease_expires_at']}" if answer.get("lease_expires_at") else ""
        lease = f", lease held by {answer['lease_owner']}{until}"
    say(printable(f"  {answer['repo']}'s mode: {answer['mode']}{lease}"))
    for ran in answer.get("executed") or ():
        say(printable(f"  ran: {ran['action']} — {ran['status']}: {ran['detail']}"))
    _say_findings(answer)


def say_chain(answer: dict[str, Any]) -> None:
    """What blocks a task that is not ready: each link of the chain with its reason, depth-first."""
    root = answer.get("blocked_by")
    if not isinstance(root, dict):
        return
    if root.get("reason") and root["reason"] not in answer.get("answer", ""):
        say(printable(f"  not ready: {root['reason']}"))
    stack = [(child, 1) for child in reversed(root.get("blocked_by") or [])]
    shown = 0
    while stack:
        node, depth = stack.pop()
        if shown == MAX_CHAIN_LINES:
            say(f"  … more links: `speedrift why-blocked {root.get('id')}` lists the whole chain")
            return
        say(printable(f"  {'  ' * depth}blocked by {node['id']} ({node['status']}): {node['reason']}"))
        shown += 1
        stack.extend((child, depth + 1) for child in reversed(node.get("blocked_by") or []))
