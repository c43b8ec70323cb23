"""Commands that change a graph: add, edit, deps, the status lifecycle, log, pause/resume."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

import typer

from speedrift.cli.base import JsonFlag, actor_name, app, parse_duration, parse_moment, store
from speedrift.cli.output import emit_json, say, warn
from speedrift.errors import UsageError
from speedrift.graph import ops
from speedrift.graph.codec import Graph
from speedrift.graph.model import Task, parse_priority


def _priority(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return parse_priority(text)
    except ValueError:
        raise UsageError(
            f"priority {text!r} not understood",
            hint="use critical, high, normal, low, idle or an integer >= 0",
        ) from None


def _split(values: list[str] | None) -> list[str]:
    """`--after a,b --after c` -> [a, b, c] (wg accepts both forms)."""
    out: list[str] = []
    for value in values or []:
        out.extend(part.strip() for part in value.split(",") if part.strip())
    return out


def _run(
    build: Callable[[Graph, datetime], ops.Mutation],
    as_json: bool,
    actor: str | None,
    done_message: str | Callable[[Task], str],
) -> ops.Mutation:
    mutation = store().mutate(build, actor=actor)
    for message in mutation.warnings:
        warn(message)
    if as_json:
        emit_json(mutation.tasks[0], pretty=True)
    else:
        say(done_message if isinstance(done_message, str) else done_message(mutation.tasks[0]))
    return mutation


@app.command()
def add(
    title: Annotated[str, typer.Argument(help="What the task is, in one line.")],
    id: Annotated[str | None, typer.Option("--id", help="Task id (default: slug of the title).")] = None,
    description: Annotated[
        str | None, typer.Option("-d", "--description", help="Longer description.")
    ] = None,
    after: Annotated[
        list[str] | None, typer.Option("--after", "--blocked-by", help="Run after these ids (a,b or repeat).")
    ] = None,
    before: Annotated[
        list[str] | None, typer.Option("--before", help="These tasks run after this one.")
    ] = None,
    tag: Annotated[list[str] | None, typer.Option("-t", "--tag", help="Tag (repeatable).")] = None,
    priority: Annotated[
        str | None, typer.Option("-p", "--priority", help="critical|high|normal|low|idle or N.")
    ] = None,
    assign: Annotated[str | None, typer.Option("--assign", help="Assign to an actor.")] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Model, e.g. claude:sonnet or codex:gpt-5.")
    ] = None,
    exec_command: Annotated[
        str | None, typer.Option("--exec", help="Shell command line that does the task.")
    ] = None,
    paused: Annotated[bool, typer.Option("--paused", help="Create paused.")] = False,
    not_before: Annotated[
        str | None, typer.Option("--not-before", help="Not ready before this RFC 3339 time.")
    ] = None,
    delay: Annotated[
        str | None, typer.Option("--delay", help="Not ready for this long (30m, 2h, 1d).")
    ] = None,
    max_iterations: Annotated[
        int | None, typer.Option("--max-iterations", min=1, help="Declare a deliberate loop.")
    ] = None,
    touch: Annotated[
        list[str] | None, typer.Option("--touch", help="Declared scope: a glob of files it may change.")
    ] = None,
    deliverable: Annotated[
        list[str] | None, typer.Option("--deliverable", help="A file the task must produce.")
    ] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Unknown dependency ids are an error.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Add a task. The id is slugged from the title unless --id is given."""
    if not_before and delay:
        raise UsageError("--not-before and --delay exclude each other")
    spec = ops.NewTask(
        title=title,
        task_id=id,
        description=description,
        after=_split(after),
        before=_split(before),
        tags=tag or [],
        priority=_priority(priority),
        assign=assign,
        model=model,
        exec_command=exec_command,
        paused=paused,
        not_before=parse_moment(not_before) if not_before else None,
        delay=parse_duration(delay) if delay else None,
        max_iterations=max_iterations,
        touch=touch or [],
        deliverables=deliverable or [],
    )
    actor = actor_name()
    _run(
        lambda g, now: ops.add_task(g, spec, now=now, actor=actor, strict=strict),
        as_json,
        actor,
        lambda task: f"Added task: {task['title']} ({task['id']})",
    )


@app.command()
def edit(
    task_id: Annotated[str, typer.Argument(metavar="ID")],
    title: Annotated[str | None, typer.Option("--title")] = None,
    description: Annotated[str | None, typer.Option("-d", "--description")] = None,
    priority: Annotated[str | None, typer.Option("-p", "--priority")] = None,
    add_tag: Annotated[list[str] | None, typer.Option("--add-tag", "-t")] = None,
    remove_tag: Annotated[list[str] | None, typer.Option("--remove-tag")] = None,
    assign: Annotated[str | None, typer.Option("--assign")] = None,
    model: Annotated[str | None, typer.Option("--model")] = None,
    exec_command: Annotated[str | None, typer.Option("--exec")] = None,
    not_before: Annotated[str | None, typer.Option("--not-before")] = None,
    max_iterations: Annotated[int | None, typer.Option("--max-iterations", min=1)] = None,
    touch: Annotated[
        list[str] | None, typer.Option("--touch", help="Replace the declared scope globs.")
    ] = None,
    deliverable: Annotated[list[str] | None, typer.Option("--deliverable")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Change a task's fields; fields not named stay exactly as they are."""
    change = ops.Edit(
        title=title,
        description=description,
        priority=_priority(priority),
        add_tags=add_tag or [],
        remove_tags=remove_tag or [],
        assign=assign,
        model=model,
        exec_command=exec_command,
        not_before=parse_moment(not_before) if not_before else None,
        max_iterations=max_iterations,
        touch=touch,
        deliverables=deliverable,
    )
    actor = actor_name()
    _run(
        lambda g, now: ops.edit_task(g, task_id, change, now=now, actor=actor),
        as_json,
        actor,
        f"Edited {task_id}",
    )


@app.command("add-dep")
def add_dep(
    task_id: Annotated[str, typer.Argument(metavar="ID")],
    blocker: Annotated[str, typer.Argument(metavar="AFTER_ID", help="The task ID must run after.")],
    strict: Annotated[bool, typer.Option("--strict")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Make ID run after AFTER_ID. A cycle is refused unless a member declares a loop."""
    actor = actor_name()
    _run(
        lambda g, now: ops.add_dep(g, task_id, blocker, now=now, actor=actor, strict=strict),
        as_json,
        actor,
        f"{task_id} now runs after {blocker}",
    )


@app.command("rm-dep")
def rm_dep(
    task_id: Annotated[str, typer.Argument(metavar="ID")],
    blocker: Annotated[str, typer.Argument(metavar="AFTER_ID")],
    as_json: JsonFlag = False,
) -> None:
    """Remove the edge that makes ID run after AFTER_ID."""
    actor = actor_name()
    _run(
        lambda g, now: ops.rm_dep(g, task_id, blocker, now=now, actor=actor),
        as_json,
        actor,
        f"{task_id} no longer runs after {blocker}",
    )


@app.command()
def claim(
    task_id: Annotated[str, typer.Argument(metavar="ID")],
    actor: Annotated[
        str | None, typer.Option("--actor", help="Who claims (default: $WG_AGENT_ID or $USER).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Atomically claim a task (open/blocked/incomplete -> in-progress)."""
    who = actor_name(actor)
    _run(
        lambda g, now: ops.claim(g, task_id, now=now, actor=who), as_json, who, f"Claimed {task_id} for {who}"
    )


@app.command()
def unclaim(task_id: Annotated[str, typer.Argument(metavar="ID")], as_json: JsonFlag = False) -> None:
    """Release a claimed task back to open."""
    actor = actor_name()
    _run(lambda g, now: ops.unclaim(g, task_id, now=now, actor=actor), as_json, actor, f"Unclaimed {task_id}")


@app.command()
def done(task_id: Annotated[str, typer.Argument(metavar="ID")], as_json: JsonFlag = False) -> None:
    """Mark an open or in-progress task done."""
    actor = actor_name()
    _run(
        lambda g, now: ops.done(g, task_id, now=now, actor=actor), as_json, actor, f"Marked {task_id} as done"
    )


@app.command()
def fail(
    task_id: Annotated[str, typer.Argument(metavar="ID")],
    reason: Annotated[str | None, typer.Option("--reason", help="Why it failed.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Mark a task failed (dependents stay blocked until it is retried and done)."""
    actor = actor_name()
    _run(
        lambda g, now: ops.fail(g, task_id, reason=reason, now=now, actor=actor),
        as_json,
        actor,
        f"Marked {task_id} as failed",
    )


@app.command()
def abandon(
    task_id: Annotated[str, typer.Argument(metavar="ID")],
    reason: Annotated[str | None, typer.Option("--reason")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Abandon a task (its dependents are unblocked, as in wg)."""
    actor = actor_name()
    _run(
        lambda g, now: ops.abandon(g, task_id, reason=reason, now=now, actor=actor),
        as_json,
        actor,
        f"Abandoned {task_id}",
    )


@app.command()
def retry(
    task_id: Annotated[str, typer.Argument(metavar="ID")],
    context: Annotated[
        str | None, typer.Option("--context", help="Guidance kept for the next attempt.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Reopen a failed task; the failure and --context are kept for the next attempt."""
    actor = actor_name()
    _run(
        lambda g, now: ops.retry(g, task_id, context=context, now=now, actor=actor),
        as_json,
        actor,
        f"Reopened {task_id} for retry",
    )


@app.command("log")
def log_cmd(
    task_id: Annotated[str, typer.Argument(metavar="ID")],
    message: Annotated[str, typer.Argument(help="The note to append to the task's log.")],
    as_json: JsonFlag = False,
) -> None:
    """Append a progress note to a task's log."""
    actor = actor_name()
    _run(
        lambda g, now: ops.log_message(g, task_id, message, now=now, actor=actor),
        as_json,
        actor,
        f"Logged to {task_id}",
    )


@app.command()
def pause(task_id: Annotated[str, typer.Argument(metavar="ID")], as_json: JsonFlag = False) -> None:
    """Pause a task: it is never ready while paused."""
    actor = actor_name()
    _run(
        lambda g, now: ops.set_paused(g, task_id, True, now=now, actor=actor),
        as_json,
        actor,
        f"Paused {task_id}",
    )


@app.command()
def resume(task_id: Annotated[str, typer.Argument(metavar="ID")], as_json: JsonFlag = False) -> None:
    """Resume a paused task."""
    actor = actor_name()
    _run(
        lambda g, now: ops.set_paused(g, task_id, False, now=now, actor=actor),
        as_json,
        actor,
        f"Resumed {task_id}",
    )
