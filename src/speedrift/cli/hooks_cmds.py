"""`speedrift hooks list|test`: the repo's own hooks (fleet/repohooks.py) — what is declared, from
where, and a dry run of one event with the JSON it is sent."""

from __future__ import annotations

from argparse import Namespace

from speedrift.cli.base import store
from speedrift.cli.output import emit_json, printable, say, table
from speedrift.errors import NotFound
from speedrift.fleet import repohooks
from speedrift.fleet.config import load_config


def list_hooks(args: Namespace) -> int:
    graph = store(args)
    repo = graph.directory.parent
    config = load_config(repo)
    found = repohooks.declared(repo, config)
    if args.as_json:
        emit_json(
            {
                "repo": str(repo),
                "timeout_s": config.hooks.timeout_s,
                "output_tail": config.hooks.output_tail,
                "hooks": [hook.to_dict() for hook in found],
            }
        )
        return 0
    if not found:
        say(
            "No hooks declared. Declare them in speedrift.toml ([hooks] task-completing = "
            '["./scripts/check"]) or as executables in .speedrift/hooks/<event> or <event>.d/.'
        )
        return 0
    rows = [(str(h.event), printable(h.to_dict()["command"]), h.source) for h in found]
    table(
        f"Hooks of {repo.name} (timeout {config.hooks.timeout_s:g}s each)", ["event", "command", "from"], rows
    )
    return 0


def test_hooks(args: Namespace) -> int:
    graph = store(args)
    repo = graph.directory.parent
    config = load_config(repo)
    if args.task and graph.load().get(args.task) is None:
        raise NotFound(f"no task {args.task!r} in {graph.directory}", hint="speedrift list")
    tried = repohooks.dry_run(repo, graph, config, repohooks.HookEvent(args.event), args.task)
    failed = any(not run.ok for run in tried.runs)
    if args.as_json:
        emit_json(tried.to_dict())
        return 1 if failed else 0
    say(f"{args.event}: sent on stdin")
    emit_json(tried.sent, pretty=True)
    if not tried.runs:
        say(f"No hooks declared for {args.event} (speedrift hooks list).")
        return 0
    for run in tried.runs:
        say(f"{run.command} ({run.source}): {run.describe()} in {run.duration_s:.2f}s")
        if run.output:
            say(printable(run.output.rstrip(), newlines=True))
    return 1 if failed else 0
