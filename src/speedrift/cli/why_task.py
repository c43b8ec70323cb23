"""A task's whole history for `speedrift why REPO:TASK`: who started each attempt, what each came to,
the recovery decided for each failure, what holds it now and whether its runtime can run at all.

Read-only, from three places and bounded in each: the task's run records
(``<repo>/.speedrift/runs/<task>/<n>/``: attempt.json and evidence.json, at most ``KEEP_ATTEMPTS``
kept by retention), the register's action rows of the repo (the newest :data:`ACTION_ROWS`: the
hub's dispatches and retries, with their cycle) and the ledger's newest :data:`LEDGER_CYCLES`
cycles (what the hub held back, and by which rule). The human output shows the newest
:data:`SHOWN` attempts and actions, with a count and ``--all`` for the rest; ``--json`` carries the
same structure.

Who started an attempt is matched, not guessed: a hub action whose evidence names the attempt's
worker pid for this task started it; the repo's service when its pid is the attempt's; otherwise
``speedrift run`` (or a service since stopped) — said so.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from speedrift import layout, records
from speedrift.cli.output import printable, say
from speedrift.errors import SpeedriftError
from speedrift.register.ledger import Ledger
from speedrift.times import format_time, parse_time

SHOWN = 10  # attempts and hub actions the human output lists without --all
ACTION_ROWS = 2000  # the repo's newest register rows searched for actions about the task
LEDGER_CYCLES = 50  # the newest cycles searched for a hold on the task
ROUTE_FIX = (
    "or route it elsewhere: set `default_runtime` in speedrift.toml, or give the task a `model` "
    "naming another runtime (e.g. `codex:<model>`)"
)


def history(
    hub: Path,
    register_url: str | None,
    repo: str,
    repo_path: Path,
    task: Mapping[str, Any] | None,
    task_id: str,
    now: datetime,
    *,
    show_all: bool = False,
) -> dict[str, Any]:
    """The task's history: ``attempts`` (oldest first), ``actions`` (the hub's, oldest first),
    ``last_hold`` (the newest cycle that held it back), ``runtime`` (its CLI's preflight when not
    ready), each list with its total and how many the output leaves out."""
    actions, register_note = _actions(hub, register_url, repo, task_id)
    service_pid = _service_pid(repo_path)
    attempts = [_attempt(path, actions, service_pid) for path in layout.attempt_dirs(repo_path, task_id)]
    out: dict[str, Any] = {
        "attempts_total": len(attempts),
        "attempts": attempts if show_all else attempts[-SHOWN:],
        "actions_total": len(actions),
        "actions": actions if show_all else actions[-SHOWN:],
        "last_hold": _last_hold(hub, repo, task_id),
    }
    out["attempts_hidden"] = len(attempts) - len(out["attempts"])
    out["actions_hidden"] = len(actions) - len(out["actions"])
    if register_note:
        out["register_note"] = register_note
    if task is not None and task.get("status") not in ("done", "abandoned"):
        runtime = runtime_problem(repo_path, task)
        if runtime is not None:
            out["runtime"] = runtime
    return out


# ---------------------------------------------------------------- the hub's actions (register)


def _about(row: Mapping[str, Any], task_id: str) -> bool:
    evidence = row.get("evidence") or {}
    pids = evidence.get("pids") if isinstance(evidence, dict) else None
    return (
        (isinstance(pids, dict) and task_id in pids)
        or str(row.get("action_id", "")).endswith(f":{task_id}")
        or (isinstance(evidence, dict) and evidence.get("task") == task_id)
    )


def _actions(hub: Path, url: str | None, repo: str, task_id: str) -> tuple[list[dict[str, Any]], str | None]:
    """The register's actions about the task, oldest first (a register that cannot be read: a note)."""
    from speedrift.register.store import Register

    try:
        with Register.open(hub, url=url) as register:
            rows = register.actions(repo=repo, limit=ACTION_ROWS)
    except (SpeedriftError, OSError) as error:
        return [], f"the register could not be read ({error}); the hub's actions are not listed"
    found: list[dict[str, Any]] = []
    for row in reversed(rows):
        if not _about(row, task_id):
            continue
        evidence = row.get("evidence") or {}
        pids = evidence.get("pids") if isinstance(evidence, dict) else None
        pid = pids.get(task_id) if isinstance(pids, dict) else None
        found.append(
            {
                "cycle_id": row.get("cycle_id") or None,
                "action": row.get("action_id"),
                "kind": row.get("kind"),
                "status": row.get("status"),
                "started_at": row.get("started_at"),
                "finished_at": row.get("finished_at"),
                "detail": row.get("detail") or "",
                "pid": pid if isinstance(pid, int) else None,
            }
        )
    return found, None


def _last_hold(hub: Path, repo: str, task_id: str) -> dict[str, Any] | None:
    """The newest of the last :data:`LEDGER_CYCLES` cycles that held an action about the task."""
    try:
        cycles = Ledger(hub).read(last=LEDGER_CYCLES)
    except (SpeedriftError, OSError):
        return None
    for record in reversed(cycles):
        for skipped in record.get("skipped") or ():
            action = skipped.get("action") or {}
            if action.get("repo") != repo:
                continue
            params = action.get("params") or {}
            tasks = params.get("tasks") if isinstance(params, dict) else None
            if action.get("subject") == task_id or (isinstance(tasks, list) and task_id in tasks):
                return {
                    "cycle_id": record.get("cycle_id"),
                    "at": record.get("generated_at"),
                    "action": action.get("id"),
                    "rule": skipped.get("rule"),
                    "reason": skipped.get("reason"),
                }
    return None


# ---------------------------------------------------------------- attempts (run records)


def _service_pid(repo: Path) -> int | None:
    try:
        text = layout.service_pid_path(repo).read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _started_by(pid: int | None, actions: list[dict[str, Any]], service_pid: int | None) -> dict[str, Any]:
    if pid is not None:
        for action in actions:
            if action["pid"] == pid:
                return {
                    "by": "hub",
                    "cycle_id": action["cycle_id"],
                    "action": action["action"],
                    "at": action["started_at"],
                    "sentence": f"the hub: cycle {action['cycle_id']}, action {action['action']} "
                    f"at {_shown_time(action['started_at']) or action['started_at']}",
                }
        if service_pid is not None and pid == service_pid:
            return {"by": "service", "pid": pid, "sentence": f"the repo's service (pid {pid})"}
    return {
        "by": "run",
        "pid": pid,
        "sentence": "`speedrift run` or the repo's service (no hub action started it)",
    }


def _gates_failed(evidence: Mapping[str, Any]) -> list[str]:
    names: list[str] = []
    for gate in records.EvidenceRecord(dict(evidence)).gates:
        if gate.get("passed") is False:
            names += [str(n) for n in gate.get("blocking") or () if str(n) not in names]
    return names


def _recovery(evidence: Mapping[str, Any]) -> dict[str, Any] | None:
    decided = evidence.get("recovery")
    if not isinstance(decided, dict) or not decided.get("recovery"):
        return None
    keys = ("recovery", "automatic", "attempt", "max_attempts", "delay_seconds", "question", "note", "model")
    shown = {k: decided[k] for k in keys if decided.get(k) not in (None, "")}
    words = str(decided["recovery"])
    if decided.get("automatic"):
        words += f" after {float(decided.get('delay_seconds') or 0):g} s"
    if decided.get("question"):
        words += f": {decided['question']}"
    elif decided.get("note"):
        words += f" ({decided['note']})"
    shown["sentence"] = words
    return shown


def _attempt(folder: Path, actions: list[dict[str, Any]], service_pid: int | None) -> dict[str, Any]:
    record = records.read_attempt(folder) or records.AttemptRecord({})
    evidence = (records.read_evidence(folder) or records.EvidenceRecord({})).raw
    state = record.state_text
    finished = state not in ("running", "unknown")
    duration = evidence.get("duration_s")
    return {
        "n": int(folder.name),
        "runtime": record.runtime or evidence.get("runtime"),
        "model": record.raw.get("model"),
        "state": state,
        "started": record.started,
        "ended": record.updated if finished else None,
        "duration_s": duration if isinstance(duration, int | float) else None,
        "failure_class": record.failure or evidence.get("failure"),
        "reason": record.reason or evidence.get("reason"),
        "gates_failed": _gates_failed(evidence),
        "recovery": _recovery(evidence),
        "landed_commit": record.raw.get("landed_commit") or evidence.get("landed_commit"),
        "started_by": _started_by(record.pid, actions, service_pid),
        "run_dir": str(folder),
    }


# ---------------------------------------------------------------- a runtime that cannot run


def runtime_problem(repo_path: Path, task: Mapping[str, Any]) -> dict[str, Any] | None:
    """The task's runtime when its CLI cannot run here (agents/preflight.py, as `speedrift doctor`
    checks it with the agent's environment): what is wrong and both fixes. None when it can."""
    from speedrift.agents import choose, preflight
    from speedrift.agents import env as agent_env
    from speedrift.fleet.config import load_config

    try:
        config = load_config(repo_path)
        runtime, _model = choose.select_runtime(task, config.default_runtime)
        env = agent_env.agent_env({}, allow=config.env.allow, passthrough_secrets=config.env.secrets)
        options = config.runtime_options(runtime).model_dump()
        exec_task = isinstance(task.get("exec"), str) and bool(str(task.get("exec")).strip())
        checked = preflight.cached_check(
            runtime, env=env, options=options, exec_task=exec_task, cwd=repo_path
        )
    except (SpeedriftError, OSError, KeyError, ValueError):
        return None
    if checked.ready:
        return None
    fix = f"{checked.fix}; " if checked.fix else ""
    return {
        "runtime": runtime,
        "status": checked.status,
        "problem": checked.problem,
        "fix": f"{fix}{ROUTE_FIX}",
        "check": "speedrift doctor",
    }


# ---------------------------------------------------------------- in words


def _shown_time(value: object) -> str | None:
    moment = parse_time(value)
    return format_time(moment) if moment else None


def _attempt_lines(attempt: Mapping[str, Any]) -> list[str]:
    took = f", {attempt['duration_s']:.0f} s" if isinstance(attempt.get("duration_s"), int | float) else ""
    started = _shown_time(attempt.get("started")) or "?"
    when = f"{started} → {_shown_time(attempt.get('ended')) or 'still running'}"
    runtime = attempt.get("runtime") or "?"
    head = f"    attempt {attempt['n']} ({runtime}{took}, {when}): {attempt['state']}"
    if attempt.get("failure_class"):
        head += f" as {attempt['failure_class']}"
    if attempt.get("landed_commit"):
        head += f", landed {str(attempt['landed_commit'])[:12]}"
    lines = [head, f"      started by {attempt['started_by']['sentence']}"]
    if attempt.get("gates_failed"):
        lines.append(f"      gates that failed: {', '.join(attempt['gates_failed'])}")
    if attempt.get("reason") and attempt["state"] != "done":
        lines.append(f"      reason: {attempt['reason']}")
    if attempt.get("recovery"):
        lines.append(f"      recovery decided: {attempt['recovery']['sentence']}")
    return lines


def say_history(answer: Mapping[str, Any]) -> None:
    """The history part of `why REPO:TASK` in words: every reason its JSON carries."""
    found = answer.get("history")
    if not isinstance(found, dict):
        return
    runtime = found.get("runtime")
    if runtime:
        say(printable(f"  runtime {runtime['runtime']} cannot run here: {runtime['problem']}"))
        say(printable(f"    fix: {runtime['fix']} (check with `{runtime['check']}`)"))
    hold = found.get("last_hold")
    if hold:
        say(
            printable(
                f"  last held: cycle {hold['cycle_id']} ({hold['at']}): {hold['action']} — "
                f"{hold['rule']}: {hold['reason']}"
            )
        )
    total = found["attempts_total"]
    if total:
        more = (
            f" (the newest {len(found['attempts'])}; `--all` lists every one)"
            if found["attempts_hidden"]
            else ""
        )
        say(f"  {total} attempt(s){more}:")
        for attempt in found["attempts"]:
            for line in _attempt_lines(attempt):
                say(printable(line))
    else:
        say("  no attempt yet")
    if found["actions_total"]:
        more = (
            f" (the newest {len(found['actions'])}; `--all` lists every one)"
            if found["actions_hidden"]
            else ""
        )
        say(f"  the hub's actions about it{more}:")
        for action in found["actions"]:
            cycle = f"cycle {action['cycle_id']}, " if action.get("cycle_id") else ""
            what = f"{action['action']} {action['status']}: {action['detail']}"
            say(printable(f"    {_shown_time(action['started_at']) or action['started_at']}: {cycle}{what}"))
    if found.get("register_note"):
        say(printable(f"  note: {found['register_note']}"))
    step = answer.get("next")
    if isinstance(step, dict):
        at = f" at {step['at']}" if step.get("at") else ""
        who = f"; by {step['who']}" if step.get("who") else ""
        say(printable(f"  next: {step['step']}{at}{who}"))
