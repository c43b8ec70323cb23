"""Agent runtimes machine-wide: ``pauses``, ``resume-runtime NAME`` and ``doctor``."""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path
from typing import Any

from speedrift import hubdir, pausestore
from speedrift.cli.base import actor_name
from speedrift.cli.output import emit_json, say, table
from speedrift.errors import NotFound
from speedrift.graph.store import GraphStore
from speedrift.pausestore import PauseBook, RuntimePause
from speedrift.times import iso_utc, now_utc


def _pause_row(pause: RuntimePause, book: PauseBook, now: Any) -> dict[str, Any]:
    return pause.to_dict() | {
        "sentence": pause.sentence(now, book.auto_resume),
        "blocking": pause.blocks(pause.runtime, pause.provider, now, book.auto_resume),
        "resume": f"speedrift resume-runtime {pause.runtime}",
    }


def _listing(book: PauseBook, now: Any, *, show_all: bool) -> dict[str, Any]:
    rows = [_pause_row(p, book, now) for p in book.pauses]
    if not show_all:
        rows = [row for row in rows if row["blocking"]]
    out: dict[str, Any] = {
        "auto_resume": book.auto_resume,
        "auto_resume_source": book.auto_resume_source,
        "pauses": rows,
    }
    if show_all:
        out["lifted"] = [entry.to_dict() for entry in reversed(book.lifted)]
    return out


def _say_pauses(listing: dict[str, Any]) -> None:
    rows = listing["pauses"]
    if not rows:
        say("No agent runtime is paused.")
    for row in rows:
        say(row["sentence"])
        where = ", ".join(f"{k} {row[k]}" for k in ("repo", "task") if row.get(k))
        say(f"  since {row['since']}, set by {row['set_by']}" + (f" ({where})" if where else ""))
        if row["fix"]:
            say(f"  fix: {row['fix']}")
        say(f"  lift it now: {row['resume']}")
    if not listing["auto_resume"]:
        source = listing["auto_resume_source"] or "the hub"
        say(f"auto_resume is off (published by {source}): pauses last until `speedrift resume-runtime NAME`.")
    for row in listing.get("lifted", []):
        what = f"{row['runtime']} ({row['cause']}: {row['reason']})"
        say(f"lifted {row['lifted_at']} by {row['lifted_by']}: {what}")


def pauses(args: Namespace) -> None:
    now = now_utc()
    listing = _listing(pausestore.read(), now, show_all=getattr(args, "show_all", False))
    if args.as_json:
        emit_json(listing)
        return
    _say_pauses(listing)


def resume_runtime(args: Namespace) -> None:
    from speedrift.fleet import pauses as runtime_pauses

    now = now_utc()
    if args.list or args.runtime is None:
        pauses(Namespace(as_json=args.as_json, show_all=False))
        return
    by = f"{actor_name()} (speedrift resume-runtime)"
    lifted = runtime_pauses.resume(args.runtime, by=by, now=now)
    if args.as_json:
        emit_json(
            {
                "runtime": args.runtime,
                "lifted": [p.to_dict() for p in lifted],
                "by": by,
                "at": iso_utc(now),
            }
        )
        return
    if not lifted:
        say(f"{args.runtime} was not paused.")
        return
    for pause in lifted:
        what = pausestore.CAUSE_WORDS.get(pause.cause, pause.cause)
        say(f"Lifted the pause of {pause.label} ({what}: {pause.reason}).")
    say(f"{args.runtime} may be dispatched to again; its preflight runs before the next attempt.")


# --- doctor ---------------------------------------------------------------------------------------
def _repos(args: Namespace) -> list[tuple[str, Path]]:
    """The repos the doctor judges: --ecosystem's registered ones; else the repo at hand (--dir,
    $WG_DIR, or walking up); else ./ecosystem.toml's; else none."""
    from speedrift.control.ecosystem.load import load_ecosystem

    explicit = getattr(args, "ecosystem", None)
    if explicit is None:
        try:
            graph = GraphStore.locate(getattr(args, "dir", None))
        except NotFound:
            pass
        else:
            repo = graph.directory.parent.resolve()
            return [(repo.name, repo)]
        if not (Path.cwd() / hubdir.ECOSYSTEM_FILE).is_file():
            return []
    ecosystem = load_ecosystem(hubdir.find_ecosystem(Path(explicit) if explicit else None, Path.cwd()))
    return [(entry.name, entry.path) for entry in ecosystem.repos if entry.lifecycle != "retired"]


def doctor(args: Namespace) -> int:
    from speedrift.fleet.doctor import diagnose

    repos = _repos(args)
    report = diagnose(repos, cwd=Path.cwd())
    if args.as_json:
        emit_json(report.to_dict())
        return 0 if report.ready else 1
    table(
        "Agent runtimes",
        ["runtime", "status", "version", "auth", "needed by", "fix / note"],
        [
            (
                r["runtime"],
                r["status"] + (" (paused)" if r["paused"] else ""),
                r["version"] or "",
                r["auth"],
                ", ".join(r["needed_by"]) or "-",
                r["paused"] or r["fix"] or (r["auth_detail"] if r["auth"] == "unknown" else ""),
            )
            for r in report.runtimes
        ],
    )
    table(
        "Gate tools",
        ["tool", "status", "version", "needed by", "fix / note"],
        [
            (
                t["tool"],
                t["status"],
                t["version"] or "",
                ", ".join(t["needed_by"]) or "-",
                t["fix"] or t["detail"] or (t["path"] or ""),
            )
            for t in report.tools
        ],
    )
    box = report.sandbox
    if box["usable"]:
        say(f"Agent sandbox: bwrap ({box['bwrap']}) works: agents run sandboxed unless a repo turns it off.")
    else:
        say(f"Agent sandbox: NOT available — {box['why']}; agents run unsandboxed. Fix: {box['fix']}")
    if not report.repos:
        say("No repo here (no task graph, no ecosystem.toml): nothing is required; every check is shown.")
    for repo in report.repos:
        contained = repo.get("sandbox") or {}
        if contained and not contained.get("used"):
            say(f"{repo['name']}: agents NOT sandboxed: {contained.get('why')}")
        if repo["ready"]:
            needed = ", ".join(repo["needs"]["runtimes"] + repo["needs"]["tools"])
            say(f"{repo['name']}: ready (needs {needed})")
            continue
        say(f"{repo['name']}: NOT ready")
        for problem in repo["problems"]:
            say(f"  - {problem}")
    say("ready" if report.ready else "not ready: see the fixes above")
    return 0 if report.ready else 1
