"""`speedrift why REPO[:TASK]`: why isn't this running? Answered from the ledger's last cycle.

For a repo: its tier and stall in words, and every action the policy held back with the rule
(plan_only, mode, lease, budget, cooldown, ...). For a task: is it ready (else the chain that
blocks it), was it planned, and if planned, what held it or what ran.
"""

from __future__ import annotations

from argparse import Namespace
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from speedrift import hubdir
from speedrift.cli import why_show, why_task
from speedrift.cli.hub_cmds import ecosystem_path
from speedrift.cli.output import emit_json, printable, say
from speedrift.control import agent_holds
from speedrift.control.observe.escalations import escalation_of
from speedrift.errors import NotFound
from speedrift.graph import peers as peer_deps
from speedrift.graph import query
from speedrift.graph.model import OPEN, Task, dispatch_hold, status_of
from speedrift.graph.store import GraphStore
from speedrift.register.ledger import Ledger
from speedrift.serialize import to_plain
from speedrift.times import format_time, now_utc

MAX_LANE_LINES = 5  # drift findings `why` lists (worst first)


def _latest_cycle(hub: Path) -> dict[str, Any]:
    records = [r for r in Ledger(hub).read(last=20) if r.get("cycle_id")]
    if not records:
        raise NotFound("the ledger has no cycle yet", hint="run `speedrift hub once` (or `speedrift hub up`)")
    return records[-1]


def explain(
    record: dict[str, Any],
    repo: str,
    task: str | None,
    repo_path: Path | None,
    repos: Mapping[str, Path] | None = None,
) -> dict[str, Any]:
    """``repos``: the registered repos by name, to resolve ``after`` entries naming their tasks."""
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
        answer["findings"] = why_show.findings(snapshot)
        _add_escalations(answer, snapshot)
        _add_lanes(answer, snapshot)
        _add_pauses(answer, snapshot, None)
        return answer
    answer["task"] = task
    answer.update(_task_answer(task, repo_path, mine, held, ran, record["plan_only"], repos))
    _add_task_escalation(answer, task, repo_path)
    _add_next_step(answer, task, repo_path)
    _add_pauses(answer, snapshot, task)
    return answer


# ---------------------------------------------------------------- runtime pauses


def _add_pauses(answer: dict[str, Any], snapshot: dict[str, Any], task: str | None) -> None:
    """Runtimes paused machine-wide (read now, from the store every supervisor reads) that hold
    this repo's ready work, or this task: "claude is paused until 14:05 UTC: usage limit"."""
    from speedrift import pausestore
    from speedrift.agents.choose import select_runtime
    from speedrift.errors import SpeedriftError
    from speedrift.fleet.config import load_config
    from speedrift.fleet.pauses import provider_of

    answer["paused"] = []
    now = now_utc()
    book = pausestore.read()
    active = book.active(now)
    if not active:
        return
    path = Path(str(snapshot.get("path") or "."))
    try:
        config = load_config(path)
    except (SpeedriftError, OSError):
        return
    wanted: dict[str, str | None] = {}  # runtime -> provider (None: any)
    if task is not None:
        store = GraphStore.of_repo(path)
        found = store.load().tasks.get(task) if store is not None else None
        if found is None:
            return
        runtime, model = select_runtime(found, config.default_runtime)
        wanted[runtime] = provider_of(runtime, model or config.runtime_options(runtime).model)
    else:
        ready = (snapshot.get("graph") or {}).get("ready") or []
        for brief in ready:
            wanted.setdefault(str(brief.get("runtime") or config.default_runtime), None)
        if not ready:
            wanted[config.default_runtime] = None
    holding = [p for p in active if p.runtime in wanted and p.blocks(p.runtime, wanted[p.runtime], now)]
    answer["paused"] = [
        {
            "runtime": p.runtime,
            "provider": p.provider,
            "cause": p.cause,
            "until": format_time(p.until) if p.until else None,
            "needs_human": p.needs_human,
            "fix": p.fix,
            "sentence": p.sentence(now),
            "resume": f"speedrift resume-runtime {p.runtime}",
        }
        for p in holding
    ]
    if not holding:
        return
    words = "; ".join(item["sentence"] for item in answer["paused"])
    if (
        task is not None
        and "blocked_by" not in answer
        and not answer.get("needs_human")
        and (answer.get("status") in (None, "open", "incomplete"))
    ):
        answer["answer"] = f"{task} is ready, but {words}"
    else:
        answer["answer"] += f"; {words}"


# ---------------------------------------------------------------- what happens next


def _add_next_step(answer: dict[str, Any], task: str, repo_path: Path | None) -> None:
    """A failed task's recorded recovery, read from the task now: what happens next, when, and who
    carries it out (the repo's service, the hub at its next cycle, or nobody — then what to run)."""
    from speedrift.control.authority import recovery_executor
    from speedrift.fleet import followup

    store = GraphStore.of_repo(repo_path) if repo_path is not None else None
    found = store.load().tasks.get(task) if store is not None else None
    if found is None or repo_path is None:
        return
    now = now_utc()
    step = followup.next_step(found, now)
    if step is None:
        return
    what, when = step
    decision = followup.recorded_decision(found)
    automatic = decision is not None and decision.automatic and not followup.is_withheld(found)
    by, who = recovery_executor(repo_path, task, now) if automatic else ("human", "")
    answer["next"] = {"step": what, "at": format_time(when) if when else None, "by": by, "who": who}
    if answer.get("needs_human"):
        return  # a person's answer: the sentence above already asks for it
    if not automatic:
        answer["answer"] = f"{task} failed; next: {what}"
        return
    timing = "now" if when is None or when <= now else f"from {format_time(when)}"
    answer["answer"] = f"{task} failed; next: {what}, ready again {timing}; carried out by {who}"


# ---------------------------------------------------------------- waiting on a human


def _add_escalations(answer: dict[str, Any], snapshot: dict[str, Any]) -> None:
    """The repo's tasks tagged needs-human in the last cycle: each question and its answer command."""
    graph = snapshot.get("graph") or {}
    escalations = [e for e in graph.get("escalations") or () if isinstance(e, dict)]
    count = max(int(graph.get("needs_human") or 0), len(escalations))
    answer["needs_human"] = escalations
    if count and "waits on a human" not in (answer.get("stall") or ""):  # the stall may say it already
        names = ", ".join(str(e.get("task")) for e in escalations[:3])
        waits = "task waits" if count == 1 else "tasks wait"
        answer["answer"] += f"; {count} {waits} on a human's answer ({names})"


def _add_lanes(answer: dict[str, Any], snapshot: dict[str, Any]) -> None:
    """What the drift lanes found on the target branch in the last cycle: the worst findings with
    their follow-up tasks, the lanes that could not judge, a drift policy that cannot be read."""
    lanes = snapshot.get("lanes") or {}
    findings = [f for f in lanes.get("findings") or () if isinstance(f, dict)]
    broken = [r for r in lanes.get("runs") or () if isinstance(r, dict) and r.get("error")]
    answer["lanes"] = {
        "checked_at": lanes.get("checked_at"),
        "head": lanes.get("head"),
        "policy_error": lanes.get("policy_error"),
        "findings": findings[:MAX_LANE_LINES],
        "errors": [{"lane": r.get("lane"), "error": r.get("error")} for r in broken],
    }
    if lanes.get("policy_error"):
        answer["answer"] += f"; its drift policy cannot be read: {lanes['policy_error']}"
        return
    counts = [(lanes.get(k) or 0, k) for k in ("critical", "error", "warning")]
    found = ", ".join(f"{n} {k}" for n, k in counts if n)
    if found:
        worst = findings[0] if findings else None
        first = f" (worst: {worst['lane']} {worst['kind']} → follow-up {worst['followup']})" if worst else ""
        answer["answer"] += f"; drift lanes found {found}{first}"
    if broken:
        answer["answer"] += (
            f"; {len(broken)} drift lane(s) could not judge ({', '.join(str(r.get('lane')) for r in broken)})"
        )


def _add_task_escalation(answer: dict[str, Any], task: str, repo_path: Path | None) -> None:
    """A task tagged needs-human, read from its graph now (an answer given since the last cycle
    counts): what it asks and the command that answers it come first."""
    store = GraphStore.of_repo(repo_path) if repo_path is not None else None
    found = store.load().tasks.get(task) if store is not None else None
    escalation = escalation_of(found) if found is not None else None
    if escalation is None:
        answer["needs_human"] = []
        return
    plain = to_plain(escalation)
    answer["needs_human"] = [plain]
    label = f" ({escalation.failure_class})" if escalation.failure_class else ""
    sentence = f"{task} waits on a human's answer{label}: {escalation.question}"
    if escalation.answer not in escalation.question:
        sentence += f" — answer with `{escalation.answer}`"
    answer["answer"] = sentence


def _say_escalations(answer: dict[str, Any], *, with_question: bool) -> None:
    for escalation in answer.get("needs_human") or ():
        if with_question:
            label = f" ({escalation['failure_class']})" if escalation.get("failure_class") else ""
            say(printable(f"  needs a human: {escalation['task']}{label} — {escalation['question']}"))
        if escalation.get("first"):
            say(printable(f"    first: {escalation['first']}"))
        say(printable(f"    answer: {escalation['answer']}"))


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
    repos: Mapping[str, Path] | None = None,
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
        peers = peer_deps.resolve(peer_deps.referenced(graph), repos) if repos is not None else None
        if out["status"] in ("done", "abandoned"):
            out["answer"] = f"{task} is {out['status']}: nothing more will run for it"
            return out
        waits = _waits_for_person_or_plan(found)
        if waits is not None:
            out["answer"] = f"{task} {waits}"
            return out
        if task not in set(query.ready_ids(graph, now, peers)):
            chain = query.why_blocked(graph, task, now, peers)
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


def _waits_for_person_or_plan(task: Task) -> str | None:
    """What holds a task that neither the service nor the hub will move (fleet/approval.py,
    graph/model.py ``dispatch_hold``): a gated attempt or a deploy start waiting for a person's
    approval, or a wave's closure stage that `speedrift plan run` carries out."""
    from speedrift.fleet import approval

    attempt = approval.waiting_attempt(task)
    merge = approval.merge_wait(task, attempt) if attempt is not None else None
    if merge is not None:
        return f"is {merge}"
    if status_of(task) not in (OPEN,):
        return None
    hold = dispatch_hold(task)
    return None if hold is None else f"is held: {hold}"


def why(args: Namespace) -> int:
    path = ecosystem_path(args)
    if not args.target:
        return _say_ecosystem(agent_holds.ecosystem_answer(hubdir.hub_dir(path), now_utc()), args.as_json)
    repo, _, task = args.target.partition(":")
    hub = hubdir.hub_dir(path)
    record = _latest_cycle(hub)
    from speedrift.control.ecosystem.load import load_ecosystem

    ecosystem = load_ecosystem(path)
    entries = {entry.name: entry for entry in ecosystem.repos}
    entry = entries.get(repo)
    repos = {name: known.path for name, known in entries.items()}
    answer = explain(record, repo, task or None, entry.path if entry and task else None, repos)
    if task:  # a run of a paused standing agent: the pause and its lift come first
        agent_holds.add_task_hold(answer, hub, entry.path if entry else None, task, now_utc())
        if entry is not None:
            _add_history(answer, hub, ecosystem.register_url, repo, entry.path, task, bool(args.all))
    if args.as_json:
        emit_json(answer)
        return 0
    say(printable(answer["answer"]))  # each line is one line, whatever a task's text holds
    if task:  # the task's own facts first, then the repo's
        _say_escalations(answer, with_question=False)  # the answer above already asks it
    why_show.say_chain(answer)
    say(printable(f"  as of hub cycle {answer['cycle_id']} ({answer['generated_at']})"))
    why_show.say_repo(answer)
    for held in answer["held"]:
        say(printable(f"  held: {held['action']} — {held['rule']}: {held['reason']}"))
    if not task:
        _say_escalations(answer, with_question=True)
    lanes = answer.get("lanes") or {}
    if lanes.get("findings") and lanes.get("head"):  # where the lanes found them
        say(printable(f"  drift lanes judged {str(lanes['head'])[:12]} at {lanes.get('checked_at')}:"))
    for finding in lanes.get("findings") or ():
        at = f" {finding['file']}:{finding['line']}" if finding.get("file") else ""
        what = f"{finding['severity']} {finding['lane']} {finding['kind']}{at}"
        say(printable(f"  drift: {what} — {finding['message']}"))
        say(
            printable(
                f"    follow-up: {finding['followup']}"
                + (f"; fix: {finding['fix']}" if finding.get("fix") else "")
            )
        )
    for broken in (answer.get("lanes") or {}).get("errors") or ():
        say(printable(f"  lane error: {broken['lane']} — {broken['error']}"))
    for paused in answer.get("paused") or ():
        if paused["fix"]:
            say(f"  fix: {paused['fix']}")
        say(f"  lift it now: {paused['resume']}")
    if answer.get("agent_pause"):
        say(f"  lift it now: {answer['agent_pause']['resume']}")
    why_task.say_history(answer)
    return 0


def _add_history(
    answer: dict[str, Any], hub: Path, url: str | None, repo: str, path: Path, task: str, show_all: bool
) -> None:
    """The task's history across cycles (cli/why_task.py); a runtime that cannot run is named in
    the answer with its fix, unless a person's answer or a hold already comes first."""
    store = GraphStore.of_repo(path)
    found = store.load().tasks.get(task) if store is not None else None
    answer["history"] = why_task.history(hub, url, repo, path, found, task, now_utc(), show_all=show_all)
    _add_pending_step(answer)
    runtime = answer["history"].get("runtime")
    waits = found is not None and _waits_for_person_or_plan(found) is not None
    movable = answer.get("status") in ("open", "failed") and "blocked_by" not in answer
    if runtime and movable and not waits and not answer.get("needs_human"):
        answer["answer"] += f"; its runtime {runtime['runtime']} cannot run here: {runtime['problem']}"


def _say_ecosystem(answer: dict[str, Any], as_json: bool) -> int:
    """`speedrift why` without a target: paused standing agents and what drifts (control/agent_holds.py)."""
    if as_json:
        emit_json(answer)
        return 0
    say(printable(answer["answer"]))
    for paused in answer["paused_agents"]:
        say(printable(f"  paused: {paused['sentence']}"))
        say(f"    lift it now: {paused['resume']}")
    for row in answer["drifting"]:
        say(
            printable(
                f"  drift: {row['subject']} {row['level']} (score {row['score']}, {row['samples']} samples)"
            )
        )
    say(answer["hint"])
    return 0


def _add_pending_step(answer: dict[str, Any]) -> None:
    """What happens next to a task that has not failed: its attempt runs (started by whom), or the
    hub holds it by a rule (the newest hold of the recent cycles)."""
    if answer.get("next"):
        return
    history = answer["history"]
    latest = history["attempts"][-1] if history["attempts"] else None
    if latest is not None and latest["state"] == "running":
        answer["next"] = {
            "step": f"attempt {latest['n']} is running since {latest['started']}",
            "at": None,
            "by": latest["started_by"]["by"],
            "who": latest["started_by"]["sentence"],
        }
    elif history.get("last_hold") and answer.get("status") == "open" and "blocked_by" not in answer:
        hold = history["last_hold"]
        answer["next"] = {
            "step": f"the hub holds it by {hold['rule']} (cycle {hold['cycle_id']}): {hold['reason']}",
            "at": None,
            "by": "nobody",
            "who": "",
        }
