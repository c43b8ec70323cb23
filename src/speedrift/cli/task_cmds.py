"""Commands that change a graph: add, edit, deps, the status lifecycle, log, pause/resume."""

from __future__ import annotations

from argparse import Namespace
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from speedrift.cli.base import actor_name, priority, split_ids, store
from speedrift.cli.output import emit_json, printable, say, warn
from speedrift.errors import UsageError
from speedrift.graph import ops
from speedrift.graph.codec import Graph
from speedrift.graph.model import Task
from speedrift.times import parse_duration, parse_moment

Build = Callable[[Graph, datetime], ops.Mutation]


def _run(args: Namespace, build: Build, actor: str | None, done_message: str | Callable[[Task], str]) -> None:
    mutation = store(args).mutate(build, actor=actor)
    for message in mutation.warnings:
        warn(message)
    if not mutation.tasks:  # nothing to change (e.g. already done): wg treats it as a no-op
        if args.as_json:
            emit_json(None)
        return
    if args.as_json:
        emit_json(mutation.tasks[0])
    else:
        message = done_message if isinstance(done_message, str) else done_message(mutation.tasks[0])
        say(printable(message))  # one line: a title or id from the graph cannot forge another


MAX_DELAY = timedelta(days=3650)  # `not_before` must stay a date wg (and Python) can hold


def _delay(text: str) -> timedelta:
    delay = parse_duration(text)
    if delay > MAX_DELAY:
        raise UsageError("--delay must be at most 3650 days (10 years)", hint="or give --not-before a date")
    return delay


def _review(value: str | None) -> dict[str, str | None] | None:
    """``--review``: the task's ``speedrift.review`` to set (None in it: removed), or None when not given."""
    if value is None:
        return None
    from speedrift.fleet.review_record import TASK_REVIEW_KEY, ReviewMode

    return {TASK_REVIEW_KEY: None if value == "repo" else ReviewMode(value).value}


def _with_fallback(own: dict[str, Any] | None, args: Namespace) -> dict[str, Any] | None:
    """``--fallback a,b``: the task's runtime order (``speedrift.fallback``, fleet/choosing.py)
    added to the ``speedrift`` fields to set; an empty value removes it. Checked here."""
    value = getattr(args, "fallback", None)
    if value is None:
        return own
    entries = [entry.strip() for entry in value.split(",") if entry.strip()]
    if entries:
        from speedrift.fleet.opsconfig import check_runtime_models

        try:
            check_runtime_models(entries)
        except ValueError as error:
            hint = "e.g. --fallback claude:sonnet,codex:gpt-5"
            raise UsageError(f"--fallback: {error}", hint=hint) from None
    return {**(own or {}), "fallback": entries or None}


def _with_budget(own: dict[str, Any] | None, args: Namespace) -> dict[str, Any] | None:
    """``--budget-usd X`` / ``--budget-tokens N`` / ``--no-budget``: the task's own money budget,
    all its attempts together (``speedrift.budget``, fleet/spend.py), added to the ``speedrift``
    fields to set. Checked here: a budget is a positive number (tokens a whole one)."""
    if getattr(args, "no_budget", False):
        return {**(own or {}), "budget": None}
    usd, tokens = getattr(args, "budget_usd", None), getattr(args, "budget_tokens", None)
    if usd is None and tokens is None:
        return own
    if (usd is not None and usd <= 0) or (tokens is not None and tokens <= 0):
        raise UsageError("a task budget must be above 0", hint="e.g. --budget-usd 2.5 --budget-tokens 200000")
    budget = {key: value for key, value in (("usd", usd), ("tokens", tokens)) if value is not None}
    return {**(own or {}), "budget": budget}


def _cron(args: Namespace) -> Callable[[datetime], dict[str, Any]] | None:
    """``--cron`` / ``--no-cron``: wg's cron fields to set at ``now`` (None in them: removed), or
    None when neither was given. The schedule is checked here, before the graph is touched."""
    if not getattr(args, "no_cron", False) and args.cron is None:
        return None
    from speedrift.graph import cron  # only for recurring tasks: cronsim costs ~9 ms to import

    if getattr(args, "no_cron", False):
        return lambda _now: dict(cron.UNSCHEDULED)
    schedule = cron.task_schedule(args.cron)
    return lambda now: cron.schedule_fields(schedule, now)


def _recurs(task: Task) -> str:
    if task.get("cron_enabled") is not True:
        return ""
    return f"; recurs on {task.get('cron_schedule')} (UTC), next at {task.get('next_cron_fire')}"


def add(args: Namespace) -> None:
    if args.not_before and args.delay:
        raise UsageError("--not-before and --delay exclude each other")
    recurring = _cron(args)
    spec = ops.NewTask(
        title=args.title,
        task_id=args.new_id,
        description=args.description,
        after=split_ids(args.after),
        before=split_ids(args.before),
        tags=args.tag or [],
        priority=priority(args.priority),
        assign=args.assign,
        model=args.model,
        exec_command=args.exec_command,
        paused=args.paused,
        not_before=parse_moment(args.not_before) if args.not_before else None,
        delay=_delay(args.delay) if args.delay else None,
        max_iterations=args.max_iterations,
        touch=args.touch or [],
        deliverables=args.deliverable or [],
    )
    actor = actor_name()
    review = _with_budget(_with_fallback(_review(args.review), args), args)

    def build(graph: Graph, now: datetime) -> ops.Mutation:
        mutation = ops.add_task(graph, spec, now=now, actor=actor, strict=args.strict)
        if review is not None or recurring is not None:  # review: inside the task's "speedrift" object
            added = mutation.tasks[0]["id"]
            fields = recurring(now) if recurring is not None else None
            ops.set_fields(graph, added, fields, speedrift=review, now=now, actor=actor, within=mutation)
        return mutation

    _run(args, build, actor, lambda task: f"Added task: {task['title']} ({task['id']}){_recurs(task)}")


def edit(args: Namespace) -> None:
    change = ops.Edit(
        title=args.title,
        description=args.description,
        priority=priority(args.priority),
        add_tags=args.add_tag or [],
        remove_tags=args.remove_tag or [],
        assign=args.assign,
        model=args.model,
        exec_command=args.exec_command,
        not_before=parse_moment(args.not_before) if args.not_before else None,
        max_iterations=args.max_iterations,
        touch=args.touch,
        deliverables=args.deliverable,
    )
    actor = actor_name()
    task_id = args.task_id
    review = _with_budget(_with_fallback(_review(args.review), args), args)
    recurring = _cron(args)

    def build(graph: Graph, now: datetime) -> ops.Mutation:
        fields = recurring(now) if recurring is not None else None
        if fields is None and review is None:
            return ops.edit_task(graph, task_id, change, now=now, actor=actor)
        if change == ops.Edit():  # --review or --cron alone: set only those fields
            return ops.set_fields(graph, task_id, fields, speedrift=review, now=now, actor=actor)
        mutation = ops.edit_task(graph, task_id, change, now=now, actor=actor)
        return ops.set_fields(graph, task_id, fields, speedrift=review, now=now, actor=actor, within=mutation)

    _run(args, build, actor, lambda task: f"Edited {task_id}{_recurs(task)}")


def add_dep(args: Namespace) -> None:
    actor = actor_name()
    task_id, blocker = args.task_id, args.blocker
    _run(
        args,
        lambda g, now: ops.add_dep(g, task_id, blocker, now=now, actor=actor, strict=args.strict),
        actor,
        f"{task_id} now runs after {blocker}",
    )


def rm_dep(args: Namespace) -> None:
    actor = actor_name()
    task_id, blocker = args.task_id, args.blocker
    _run(
        args,
        lambda g, now: ops.rm_dep(g, task_id, blocker, now=now, actor=actor),
        actor,
        f"{task_id} no longer runs after {blocker}",
    )


def claim(args: Namespace) -> None:
    who = actor_name(args.actor)
    task_id = args.task_id
    _run(args, lambda g, now: ops.claim(g, task_id, now=now, actor=who), who, f"Claimed {task_id} for {who}")


def unclaim(args: Namespace) -> None:
    actor = actor_name()
    task_id = args.task_id
    _run(args, lambda g, now: ops.unclaim(g, task_id, now=now, actor=actor), actor, f"Unclaimed {task_id}")


def done(args: Namespace) -> None:
    actor = actor_name()
    task_id = args.task_id
    _run(
        args,
        lambda g, now: ops.done(g, task_id, now=now, actor=actor, force=args.force),
        actor,
        f"Marked {task_id} as done",
    )


def fail(args: Namespace) -> None:
    actor = actor_name()
    task_id, reason = args.task_id, args.reason
    _run(
        args,
        lambda g, now: ops.fail(g, task_id, reason=reason, now=now, actor=actor),
        actor,
        f"Marked {task_id} as failed",
    )


def abandon(args: Namespace) -> None:
    actor = actor_name()
    task_id, reason = args.task_id, args.reason
    _run(
        args,
        lambda g, now: ops.abandon(g, task_id, reason=reason, now=now, actor=actor),
        actor,
        f"Abandoned {task_id}",
    )


def retry(args: Namespace) -> None:
    """A failure class that is not retryable as it is (spec_gap, secret_leak …) needs --context
    (what to do differently) or --force; see docs/failure-classes.md."""
    from speedrift.fleet import recovery_graph
    from speedrift.fleet.config import load_config

    actor = actor_name()
    task_id, context, force = args.task_id, args.context, args.force
    config = load_config(store(args).directory.parent)
    _run(
        args,
        lambda g, now: recovery_graph.manual_retry_mutation(
            g, task_id, context=context, force=force, config=config, now=now, actor=actor
        ),
        actor,
        f"Reopened {task_id} for retry",
    )


def log_message(args: Namespace) -> None:
    actor = actor_name()
    task_id, message = args.task_id, args.message
    _run(
        args,
        lambda g, now: ops.log_message(g, task_id, message, now=now, actor=actor),
        actor,
        f"Logged to {task_id}",
    )


def pause(args: Namespace) -> None:
    actor = actor_name()
    task_id = args.task_id
    _run(
        args,
        lambda g, now: ops.set_paused(g, task_id, True, now=now, actor=actor),
        actor,
        f"Paused {task_id}",
    )


def resume(args: Namespace) -> None:
    actor = actor_name()
    task_id = args.task_id
    _run(
        args,
        lambda g, now: ops.set_paused(g, task_id, False, now=now, actor=actor),
        actor,
        f"Resumed {task_id}",
    )
