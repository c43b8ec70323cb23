"""`speedrift why REPO[:TASK]`: why isn't this running? Answered from the ledger's last cycle.

For a repo: its tier and stall in words, and every action the policy held back with the rule
(plan_only, mode, lease, budget, cooldown, ...). For a task: is it ready (else the chain that
blocks it), was it planned, and if planned, what held it or what ran.
"""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path
from typing import Any

from speedrift import hubdir
from speedrift.cli.hub_cmds import ecosystem_path
from speedrift.cli.output import emit_json, say
from speedrift.errors import NotFound
from speedrift.graph import query
from speedrift.graph.store import GraphStore
from speedrift.register.ledger import Ledger
from speedrift.times import now_utc


def _latest_cycle(hub: Path) -> dict[str, Any]:
    records = [r for r in Ledger(hub).read(last=20) if r.get("cycle_id")]
    if not records:
        raise NotFound("the ledger has no cycle yet", hint="run `speedrift hub once` (or `speedrift hub up`)")
    return records[-1]


def explain(record: dict[str, Any], repo: str, task: str | None, repo_path: Path | None) -> dict[str, Any]:
    report = next((r for r in record["repos"] if r["name"] == repo), None)
    if report is None:
        raise NotFound(f"repo {repo!r} is not in the last cycle", hint="see `speedrift repos list`")
    snapshot = report["snapshot"]
    control = snapshot.get("control") or {}
    mine = [a for a in record.get("planned", []) if a["repo"] == repo]
    held = [s for s in record.get("skipped", []) if s["action"]["repo"] == repo]
    ran = [o for o in record.get("executed", []) if o["repo"] == repo]
    answer: dict[str, Any] = {
        "cycle_id": record["cycle_id"],
        "generated_at": record["generated_at"],
        "plan_only": record["plan_only"],
        "repo": repo,
        "tier": report["tier"],
        "score": report["score"],
        "stall": report.get("stall"),
        "reasons": [r["text"] for r in report.get("reasons", [])][:5],
        "mode": control.get("mode", "observe"),
        "lease_owner": control.get("lease_owner"),
        "lease_expires_at": control.get("lease_expires_at"),
        "held": [{"action": s["action"]["id"], "rule": s["rule"], "reason": s["reason"]} for s in held],
        "executed": [{"action": o["action_id"], "status": o["status"], "detail": o["detail"]} for o in ran],
    }
    if task is None:
        answer["answer"] = _repo_sentence(answer)
        return answer
    answer["task"] = task
    answer.update(_task_answer(task, repo_path, mine, held, ran, record["plan_only"]))
    return answer


def _repo_sentence(answer: dict[str, Any]) -> str:
    parts = [f"{answer['repo']} is {answer['tier']} ({answer['score']})"]
    if answer["stall"]:
        parts.append(f"stalled: {answer['stall']}")
    if answer["held"]:
        first = answer["held"][0]
        parts.append(f"held back by {first['rule']}: {first['reason']}")
    elif not answer["executed"]:
        parts.append("the hub planned nothing for it")
    return "; ".join(parts)


def _task_answer(
    task: str,
    repo_path: Path | None,
    planned: list[dict[str, Any]],
    held: list[dict[str, Any]],
    ran: list[dict[str, Any]],
    plan_only: bool,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    # what the last cycle did about it comes first: a task the hub dispatched is in progress (or
    # done) by the time anyone asks, and "not ready: in flight" would hide who started it
    for outcome in ran:
        dispatched = (outcome.get("evidence") or {}).get("pids") or {}
        if task in dispatched or outcome["action_id"].endswith(f":{task}"):
            out["answer"] = f"{task}: {outcome['action_id']} {outcome['status']}: {outcome['detail']}"
            break
    store = GraphStore.of_repo(repo_path) if repo_path is not None else None
    if repo_path is not None:
        if store is None:
            raise NotFound(
                f"{repo_path} has no .wg/ or .workgraph/ task graph", hint="run `speedrift init` there"
            )
        graph = store.load()
        found = graph.tasks.get(task)
        if found is None:
            raise NotFound(f"no task {task!r} in {repo_path}", hint="check the id with `speedrift list`")
        now = now_utc()
        out["status"] = found.get("status", "open")
        if "answer" in out:
            out["answer"] += f" (now {out['status']})"
            return out
        if task not in set(query.ready_ids(graph, now)):
            chain = query.why_blocked(graph, task, now)
            out["blocked_by"] = chain.to_dict()
            out["answer"] = f"{task} is not ready: {chain.reason}" + (
                " (" + ", ".join(c.id for c in chain.children) + ")" if chain.children else ""
            )
            return out
    if "answer" in out:
        return out

    def about(action: dict[str, Any]) -> bool:
        return action.get("subject") == task or task in (action.get("params") or {}).get("tasks", [])

    for skipped in held:
        if about(skipped["action"]):
            held_id, rule = skipped["action"]["id"], skipped["rule"]
            out["answer"] = f"{task} is ready; the hub held {held_id} back by {rule}: {skipped['reason']}"
            return out
    if any(about(a) for a in planned):
        out["answer"] = f"{task} is ready and planned" + (" (plan_only holds execution)" if plan_only else "")
    else:
        out["answer"] = (
            f"{task} is ready but the last cycle planned nothing for it (a running service picks it up)"
        )
    return out


def why(args: Namespace) -> int:
    path = ecosystem_path(args)
    repo, _, task = args.target.partition(":")
    record = _latest_cycle(hubdir.hub_dir(path))
    from speedrift.control.ecosystem.load import load_ecosystem

    entries = {entry.name: entry for entry in load_ecosystem(path).repos}
    entry = entries.get(repo)
    answer = explain(record, repo, task or None, entry.path if entry and task else None)
    if args.as_json:
        emit_json(answer)
        return 0
    say(answer["answer"])
    for held in answer["held"]:
        say(f"  held: {held['action']} — {held['rule']}: {held['reason']}")
    return 0
