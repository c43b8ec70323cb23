"""``speedrift review compound [REPO…] [--ecosystem PATH] [--repo PATH] [--since REV] [--json]``.

Runs a compound review now (fleetops/compound.py) of each repo named — ecosystem repos by name,
or repositories by path, default the one here (or the one whose graph ``--dir`` names); with only
``--ecosystem``, every repo in it — and prints the summary, the flags, the review tasks and the
pull request (prepared, created, or why not). A person running it may write: review tasks are
made, and a repo that opted in (``create_prs = true``) gets its draft pull request. ``--json``:
the report's JSON (a list of them for more than one repo, a failed one as ``{"repo", "error"}``).
Exit 1 when a review failed.
"""

from __future__ import annotations

import threading
from argparse import Namespace
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from speedrift import hubdir
from speedrift.cli.base import actor_name
from speedrift.cli.output import emit_json, printable, say, warn
from speedrift.cli.worker_cmds import cancel_on_signals
from speedrift.errors import NotFound, SpeedriftError
from speedrift.fleet.opsconfig import CompoundReviewConfig
from speedrift.fleetops import compound as reviewing
from speedrift.fleetops.compound_report import Review, SummaryState
from speedrift.graph.store import GraphStore
from speedrift.procs import make_non_dumpable
from speedrift.repo import git
from speedrift.times import now_utc

PERSON = (True, "run by a person (speedrift review compound)")
MAX_SHOWN = 30  # flags and tasks printed per repo (the report has all)


@dataclass(frozen=True)
class Target:
    name: str
    path: Path
    base: CompoundReviewConfig | None
    remote: str | None = None


def targets(args: Namespace) -> list[Target]:
    """The repos to review, as the arguments name them."""
    from speedrift.control.ecosystem.load import load_ecosystem

    names: list[str] = args.repos or []
    paths: list[str] = args.repo_paths or []
    ecosystem = None
    if names or args.ecosystem:
        explicit = Path(args.ecosystem) if args.ecosystem else None
        ecosystem = load_ecosystem(hubdir.find_ecosystem(explicit, Path.cwd()))
    base = ecosystem.ops.compound_review if ecosystem is not None else None
    found: list[Target] = []
    if ecosystem is not None:
        entries = [ecosystem.repo(n) for n in names] if names or paths else list(ecosystem.repos)
        found += [Target(e.name, e.path, base, e.upstream_remote) for e in entries]
    for text in paths:
        found.append(_by_path(Path(text), base))
    if not found and ecosystem is None:
        graph_dir = getattr(args, "dir", None)  # --dir: the repo whose graph that is
        here = GraphStore.locate(graph_dir).directory.parent if graph_dir else Path.cwd()
        found.append(_by_path(here, None))
    if not found:
        raise NotFound("the ecosystem has no repos to review", hint="register one with `speedrift repos add`")
    return found


def _by_path(path: Path, base: CompoundReviewConfig | None) -> Target:
    top = git.toplevel(path.expanduser().resolve()) if path.exists() else None
    if top is None:
        raise NotFound(f"{path} is not inside a git repository", hint="pass --repo PATH or a REPO name")
    return Target(top.name, top, base)


def compound(args: Namespace) -> int:
    make_non_dumpable()  # it may hold the secrets it hands to the summarizing agent
    chosen = targets(args)
    now = now_utc()
    cancel = threading.Event()
    done: list[Review] = []
    failed: list[dict[str, Any]] = []
    with cancel_on_signals(cancel):
        for target in chosen:
            options = reviewing.Options(
                may_write=PERSON,
                base=target.base,
                name=target.name,
                since=args.since,
                remote=target.remote,
                actor=actor_name(),
                cancel=cancel,
            )
            try:
                done.append(reviewing.review(target.path, now=now, options=options))
            except SpeedriftError as error:
                if len(chosen) == 1:
                    raise
                failed.append({"repo": target.name, "error": str(error)})
    if args.as_json:
        reports: list[dict[str, Any]] = [r.as_dict() for r in done] + failed
        emit_json(reports[0] if len(chosen) == 1 else reports)
    else:
        for review in done:
            show(review)
        for failure in failed:
            warn(f"the review of {failure['repo']} failed: {failure['error']}")
    return 1 if failed else 0


def show(review: Review) -> None:
    scan, summary = review.scan, review.summary
    counts = f"{len(scan.commits)} commit(s), {len(scan.flags)} flag(s)"
    say(f"Compound review of {printable(review.repo)} ({review.stem}): {counts}")
    say(f"  range: {printable(scan.window)}; target {printable(scan.target)} at {scan.tip[:12]}")
    say(f"  report: {review.markdown_path}")
    if summary.state is SummaryState.WRITTEN:
        say(f"Summary (risk {printable(summary.risk or '?')}):")
        say("  " + printable(summary.text, newlines=True).replace("\n", "\n  "))
    else:
        say(f"Summary: none — {printable(summary.why, newlines=True)}")
    if scan.flags:
        say("Flags:")
        for flag in scan.flags[:MAX_SHOWN]:
            files = ", ".join(flag.files)
            shown = f" {files}" if files else ""
            what = f"{flag.commit[:7]} {flag.reason.value} ({flag.by.value})"
            say(f"  {what}{printable(shown)} — {printable(flag.detail)}")
        if len(scan.flags) > MAX_SHOWN:
            say(f"  … {len(scan.flags) - MAX_SHOWN} more in the report")
    else:
        say("Flags: none")
    if review.tasks:
        say("Review tasks:")
        for task in review.tasks[:MAX_SHOWN]:
            why = f" ({printable(task.why)})" if task.why else ""
            say(f"  {task.state.value}: {printable(task.task_id)} {printable(task.title)}{why}")
        if len(review.tasks) > MAX_SHOWN:
            say(f"  … {len(review.tasks) - MAX_SHOWN} more in the report")
    else:
        say("Review tasks: none needed")
    pr = review.pr
    if pr is not None:
        head = {"dry_run": "dry run", "created": "draft created", "not_created": "not created"}[
            pr.state.value
        ]
        say(f"Pull request ({head}): {printable(pr.title)}")
        say(f"  branch {printable(pr.branch)} onto {printable(pr.base)}; body {pr.body_file}")
        if pr.url:
            say(f"  {printable(pr.url)}")
        say(f"  {printable(pr.said)}")
