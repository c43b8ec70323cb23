"""Setting a repo up and keeping its graph healthy: init, repair."""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path

from speedrift import layout
from speedrift.cli.base import store
from speedrift.cli.output import emit_json, printable, say, warn
from speedrift.graph.repair import repair as repair_graph
from speedrift.graph.store import init_graph_dir
from speedrift.repo import git

COMMIT_ADVICE = (
    "Commit .workgraph/ (`git add .workgraph && git commit`): the task graph is shared like code, "
    "as with wg; its .gitignore keeps agent and service state out. .speedrift/ is this machine's "
    "state: git-excluded, never committed."
)


def init_repo(root: Path) -> tuple[Path, bool]:
    """Create the graph dir and keep ``.speedrift/`` out of git. Returns (graph dir, excluded?)."""
    graph_dir = init_graph_dir(root)
    excluded = False
    if git.toplevel(root) is not None:
        git.exclude_locally(root, layout.STATE_PREFIX)
        excluded = True
    return graph_dir, excluded


def init(args: Namespace) -> None:
    """Create .workgraph/ (graph.jsonl, graph.lock, .gitignore) and git-exclude .speedrift/."""
    root = Path(args.path).resolve()
    graph_dir, excluded = init_repo(root)
    if args.as_json:
        emit_json({"graph_dir": str(graph_dir), "excluded_speedrift_dir": excluded})
        return
    say(f"Initialized {graph_dir}")
    if excluded:
        say(COMMIT_ADVICE)
    else:
        warn(f"{root} is not a git repository; .speedrift/ was not added to .git/info/exclude")


def repair(args: Namespace) -> None:
    """Move malformed graph lines into .speedrift/repair/ with a report, so the graph is writable again."""
    graph_store = store(args)
    dry_run = args.dry_run
    report = repair_graph(graph_store, dry_run=dry_run)
    path = graph_store.graph_path
    if args.as_json:
        emit_json(
            {
                "moved" if not dry_run else "would_move": [
                    {"line": n, "problem": p} for n, p in report.moved
                ],
                "fixed" if not dry_run else "would_fix": [{"line": n, "fix": f} for n, f in report.fixed],
                "warnings": report.warnings,
                "side_file": str(report.side_file) if report.side_file else None,
                "report": str(report.report_file) if report.report_file else None,
            }
        )
        return
    for message in report.warnings:
        warn(f"{path}: {message}")
    if not report.moved and not report.fixed:
        say(f"{path}: no malformed lines.")
        return
    for lineno, problem in report.moved:
        say(f"{path}:{lineno}: {printable(problem)}")
    for lineno, fix in report.fixed:
        say(f"{path}:{lineno}: {printable(fix)}" if lineno else f"{path}: {printable(fix)}")
    if dry_run:
        say(
            f"{len(report.moved)} line(s) would be moved aside and {len(report.fixed)} correction(s) made "
            "(run without --dry-run)."
        )
    elif report.moved:
        say(f"Moved {len(report.moved)} line(s) to {report.side_file}; report: {report.report_file}")
    else:
        say(f"Rewrote {path} with {len(report.fixed)} correction(s); report: {report.report_file}")
