"""The operator's mutations, shared by the dashboard and the CLI so both leave the same trail.

- :func:`set_mode` writes ``<repo>/.speedrift/control.json`` (mode + lease), records the change
  in the register and appends one ``{"kind": "operator", "op": "set_mode", …}`` ledger entry.
- :func:`approve_action` records an approval for an action of the latest cycle; the hub's next
  cycle runs it on the operator's authority (see control/cycle.py ``_with_approvals``).
- :func:`pause_agent` / :func:`resume_agent` stop and continue a running attempt's agent
  (SIGSTOP/SIGCONT to its process group). The attempt's budgets keep counting while it is
  paused: a long pause ends in the stall or wall-clock limit, as an unattended hang would.

Every function returns a JSON-ready dict describing what it did; ``source`` says who asked
("cli" or "dashboard") and is kept in the ledger entry.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from speedrift import hubdir, layout
from speedrift.control.controlfile import write_control
from speedrift.control.ecosystem.load import Ecosystem, load_ecosystem
from speedrift.errors import NotFound, Refused, UsageError
from speedrift.fleet import attempts
from speedrift.procs import record_alive, signal_group
from speedrift.register.record import CONTROL_MODES
from speedrift.times import iso_utc, now_utc

if TYPE_CHECKING:
    from speedrift.register.store import Register

ACTION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}:[a-z_]+(:[^\x00-\x1f]{1,300})?$")
LEDGER_LOOKBACK = 50  # cycles searched for the action being approved


def _ledger(hub: Path) -> Any:
    from speedrift.register.ledger import Ledger

    return Ledger(hub)


def _register(ecosystem: Ecosystem, hub: Path) -> Register:
    from speedrift.register.store import Register

    return Register.open(hub, url=ecosystem.register_url)


def _entry(op: str, actor: str, source: str, now: datetime, detail: str, **fields: Any) -> dict[str, Any]:
    """One ledger line; ``kind``/``op`` come last so no field can shadow them."""
    return {
        "generated_at": iso_utc(now),
        "actor": actor,
        "source": source,
        "detail": detail,
        **fields,
        "kind": "operator",
        "op": op,
    }


def set_mode(
    ecosystem_path: Path,
    repo: str,
    mode: str,
    *,
    lease_ttl: timedelta | None = None,
    owner: str | None = None,
    actor: str,
    source: str = "cli",
    reason: str | None = None,
    clock: Callable[[], datetime] = now_utc,
) -> dict[str, Any]:
    """Set a repo's control mode and lease; recorded in control.json, the register and the ledger."""
    if mode not in CONTROL_MODES:
        raise UsageError(f"unknown control mode {mode!r}", hint=f"use one of {', '.join(CONTROL_MODES)}")
    ecosystem = load_ecosystem(ecosystem_path)
    entry = ecosystem.repo(repo)
    now = clock()
    state = write_control(
        entry.path, mode, owner=owner, lease_ttl=lease_ttl, actor=actor, reason=reason, now=now
    )
    result = {
        "repo": repo,
        "mode": state.mode,
        "lease_owner": state.lease_owner,
        "lease_expires_at": iso_utc(state.lease_expires_at) if state.lease_expires_at else None,
        "updated_at": iso_utc(now),
        "updated_by": actor,
        "reason": reason,
    }
    hub = hubdir.hub_dir(ecosystem.path)
    with _register(ecosystem, hub) as register:
        register.record_mode_change(
            repo=repo,
            mode=state.mode,
            lease_owner=state.lease_owner,
            lease_expires_at=state.lease_expires_at,
            actor=actor,
            source=source,
            reason=reason,
            at=now,
        )
    lease = (
        f", lease {state.lease_owner} until {result['lease_expires_at'] or 'no expiry'}"
        if state.lease_owner
        else ""
    )
    _ledger(hub).append(_entry("set_mode", actor, source, now, f"{repo}: mode {state.mode}{lease}", **result))
    return result


def _find_action(hub: Path, action_id: str) -> dict[str, Any] | None:
    """The action as the newest cycle that planned or held it back recorded it."""
    for record in reversed(_ledger(hub).read(last=LEDGER_LOOKBACK)):
        if not record.get("cycle_id"):
            continue
        for action in record.get("planned") or []:
            if action.get("id") == action_id:
                return dict(action)
        for held in record.get("skipped") or []:
            if (held.get("action") or {}).get("id") == action_id:
                return dict(held["action"])
    return None


def approve_action(
    ecosystem_path: Path,
    action_id: str,
    actor: str,
    *,
    source: str = "cli",
    action: dict[str, Any] | None = None,
    clock: Callable[[], datetime] = now_utc,
) -> dict[str, Any]:
    """Approve an action of a recent cycle: the next cycle runs it on ``actor``'s authority.

    ``action`` is the action as the caller saw it (the dashboard's current plan, which may be
    its own hub-less view); without it the ledger's recent cycles must hold the action.
    """
    if not ACTION_ID.match(action_id):
        raise UsageError(
            f"{action_id!r} is not an action id", hint="action ids look like <repo>:<kind>[:<subject>]"
        )
    ecosystem = load_ecosystem(ecosystem_path)
    hub = hubdir.hub_dir(ecosystem.path)
    if action is None or action.get("id") != action_id:
        action = _find_action(hub, action_id)
    if action is None:
        raise NotFound(
            f"no recent cycle planned an action {action_id!r}",
            hint="`speedrift hub status` / `speedrift ledger show` list the planned actions",
        )
    now = clock()
    with _register(ecosystem, hub) as register:
        register.record_approval(
            action_id=action_id,
            repo=str(action.get("repo")),
            kind=str(action.get("kind")),
            actor=actor,
            at=now,
        )
    result = {
        "action_id": action_id,
        "repo": action.get("repo"),
        "action_kind": action.get("kind"),
        "approved_by": actor,
        "approved_at": iso_utc(now),
    }
    _ledger(hub).append(
        _entry(
            "approve_action", actor, source, now, f"{action_id} approved; the next cycle runs it", **result
        )
    )
    return result


# ---------------------------------------------------------------- pausing an agent


def _environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in pairs}


def _stat_fields(pid: int) -> list[str]:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    return stat[stat.rfind(")") + 2 :].split()  # state, ppid, pgrp, ...


def agent_groups(repo: Path, task_id: str, attempt: int) -> list[int]:
    """Process groups led by an agent of this attempt (the session starts each in its own group).

    Found by the environment the worker gives its agent (``SPEEDRIFT_TASK_ID``, ``SPEEDRIFT_ATTEMPT``
    and ``WG_DIR`` inside this repo), so the worker process itself — which also runs the landing
    step — is never stopped.
    """
    root = repo.resolve()
    groups: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        fields = _stat_fields(pid)
        if len(fields) < 3 or fields[2] != entry.name or fields[0] in ("Z", "X"):
            continue  # only group leaders; zombies are gone already
        env = _environ(pid)
        if env.get("SPEEDRIFT_TASK_ID") != task_id or env.get("SPEEDRIFT_ATTEMPT") != str(attempt):
            continue
        if Path(env.get("WG_DIR", "/")).resolve().parent == root:
            groups.append(pid)
    return groups


def _running_attempt(repo: Path, task_id: str) -> dict[str, Any]:
    folder = layout.task_runs_dir(repo, task_id)
    rows = [r for r in attempts.running(repo) if Path(r["run_dir"]).parent == folder and record_alive(r)]
    if not rows:
        raise Refused(
            f"no running attempt of {task_id!r} in {repo}",
            hint="`speedrift agents` lists the running attempts",
        )
    return max(rows, key=lambda r: int(r["attempt"]))


def _signal_agent(repo: Path, task_id: str, sig: signal.Signals) -> tuple[dict[str, Any], list[int]]:
    record = _running_attempt(repo, task_id)
    recorded = record.get("agent_pgid")  # if the worker records its agent's group, trust that first
    groups = (
        [recorded]
        if isinstance(recorded, int)
        and not isinstance(recorded, bool)
        and recorded > 1
        and record_alive(record, "agent_pgid", "agent_start")
        else agent_groups(repo, task_id, int(record["attempt"]))
    )
    if not groups:
        raise Refused(
            f"attempt {record['attempt']} of {task_id!r} has no agent process right now",
            hint="it may be between steps (gates, landing); try again in a moment",
        )
    for pgid in groups:
        try:
            signal_group(pgid, sig)  # a group gone meanwhile: nothing to do
        except PermissionError:
            raise Refused(
                f"not permitted to signal process group {pgid}", hint="run as the agent's user"
            ) from None
    return record, groups


def _record_pause(
    op: str,
    repo: Path,
    task_id: str,
    record: dict[str, Any],
    groups: list[int],
    *,
    ecosystem_path: Path | None,
    actor: str,
    source: str,
    now: datetime,
) -> dict[str, Any]:
    result = {
        "repo": str(repo),
        "task": task_id,
        "attempt": record["attempt"],
        "process_groups": groups,
        "paused": op == "pause_agent",
        "at": iso_utc(now),
    }
    if ecosystem_path is not None:
        hub = hubdir.hub_dir(load_ecosystem(ecosystem_path).path)
        verb = "paused" if op == "pause_agent" else "resumed"
        _ledger(hub).append(
            _entry(op, actor, source, now, f"{task_id} attempt {record['attempt']} {verb}", **result)
        )
    return result


def pause_agent(
    repo: Path,
    task_id: str,
    *,
    ecosystem_path: Path | None = None,
    actor: str = "operator",
    source: str = "cli",
    clock: Callable[[], datetime] = now_utc,
) -> dict[str, Any]:
    """SIGSTOP the agent of the task's running attempt; ``paused`` in its run dir says so."""
    record, groups = _signal_agent(repo, task_id, signal.SIGSTOP)
    now = clock()
    layout.paused_path(Path(record["run_dir"])).write_text(iso_utc(now) + "\n")
    return _record_pause(
        "pause_agent",
        repo,
        task_id,
        record,
        groups,
        ecosystem_path=ecosystem_path,
        actor=actor,
        source=source,
        now=now,
    )


def resume_agent(
    repo: Path,
    task_id: str,
    *,
    ecosystem_path: Path | None = None,
    actor: str = "operator",
    source: str = "cli",
    clock: Callable[[], datetime] = now_utc,
) -> dict[str, Any]:
    """SIGCONT the agent of the task's running attempt."""
    record, groups = _signal_agent(repo, task_id, signal.SIGCONT)
    layout.paused_path(Path(record["run_dir"])).unlink(missing_ok=True)
    return _record_pause(
        "resume_agent",
        repo,
        task_id,
        record,
        groups,
        ecosystem_path=ecosystem_path,
        actor=actor,
        source=source,
        now=clock(),
    )
