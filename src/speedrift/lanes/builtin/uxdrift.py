"""uxdrift: the repo's declared pages driven in the system Chromium (Playwright), as a user would
see them — a console error, an uncaught exception, a failed request, a declared step that no
longer works, a page that does not open — with a screenshot of each page.

What to visit comes from the policy's ``[uxdrift]`` table and a task's ```` ```uxdrift ```` fence
(:mod:`._uxconfig`). A step is ``{action = "click"|"fill"|"goto"|"wait_for"|"expect_text",
selector, value, page}``; a step with ``page`` runs on that page only, one without on every page,
in order; after a failed step the page's later steps are skipped (they depend on it).

``serve`` (a command line, no shell) starts the app before the pages are visited — in a private
checkout of the judged commit (ignored files such as installed dependencies are not there), or in
the repo when the view judges its working tree — waits until ``url`` answers (``timeout_ms``), and
is always stopped afterwards, its whole process group with it (:mod:`._uxbrowser`).

Artifacts: ``<state_dir>/runs/<stamp of ctx.now>/<task or "repo">/``: one ``<nn>-<page>.png`` per
page reached, ``run.json`` (everything seen, and the goals and point of view a critique would
use) and ``serve.log``; only the newest ``keep_runs`` runs are kept.

Invariants: the browser reaches only the allowed hosts; a finding's key holds the page and what
failed, never a port, a line number or a count; without Chromium or Playwright the lane raises (a
lane error, never a pass). A critique by a role agent is not run here (roles belong to the fleet
layer, above the lanes): ``critique = true`` gives an info finding saying so.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from speedrift import fsutil, layout, redact, times
from speedrift.gates import basetree
from speedrift.lanes.builtin._uxbrowser import (
    FailedRequest,
    PageVisit,
    ServeState,
    StepAction,
    drive,
    require_browser,
    serve,
)
from speedrift.lanes.builtin._uxconfig import DEFAULTS, NAME, TAGS, ConfigProblems, UxConfig, read_config
from speedrift.lanes.context import LaneContext
from speedrift.lanes.model import LaneFinding, LaneScope, Severity
from speedrift.lanes.spec import Lane, LaneOutput
from speedrift.textclip import clip

RUN_FILE = "run.json"
SERVE_LOG = "serve.log"
RUN_DIR = re.compile(r"^\d{8}T\d{6}\.\d{6}Z$")  # times.stamp(): what pruning may remove
MESSAGE_LIMIT = 200
# (kind, key, severity, message, evidence, fix): how a problem is noted while the visits are judged
Note = Callable[[str, str, Severity, str, list[str], str], None]


def run(ctx: LaneContext) -> LaneOutput:
    subject = ctx.task_id if ctx.fence is not None or ctx.fence_error else ""
    if ctx.fence_error:
        problems = ConfigProblems(subject, {"fence"})
        problems.add("fence", f"cannot be read: {ctx.fence_error}", "fix the TOML in the ```uxdrift``` block")
        return LaneOutput(problems.findings, "invalid uxdrift configuration")
    config, problems = read_config(ctx, subject)
    if problems.findings:
        return LaneOutput(problems.findings, "invalid uxdrift configuration")
    if config is None or not config.plans:
        return LaneOutput((), "no pages declared")
    chromium = require_browser()
    state_dir = ctx.state_dir or layout.lane_dir(ctx.repo, NAME)
    runs_root = state_dir / "runs"
    out_dir = runs_root / times.stamp(ctx.now) / (layout.safe_name(subject) if subject else "repo")
    out_dir.mkdir(parents=True, exist_ok=True)
    with _serving(ctx, config, out_dir) as served:
        visits = drive(
            config.plans,
            chromium=chromium,
            timeout_ms=config.timeout_ms,
            viewport=config.viewport,
            allowed_hosts=config.allowed_hosts,
            out_dir=out_dir,
        )
    findings = judge(visits, config, subject, served, ctx.repo)
    if config.critique:
        findings.append(_critique_unavailable(subject, config, ctx.repo, out_dir))
    record = _record(ctx, config, visits, served, findings, chromium)
    fsutil.write_atomic(out_dir / RUN_FILE, orjson.dumps(record, option=orjson.OPT_INDENT_2))
    _prune(runs_root, config.keep_runs)
    artifacts = [_relative(v.screenshot, ctx.repo) for v in visits if v.screenshot is not None]
    artifacts.append(_relative(out_dir / RUN_FILE, ctx.repo))
    if served is not None and (out_dir / SERVE_LOG).is_file():
        artifacts.append(_relative(out_dir / SERVE_LOG, ctx.repo))
    reached = sum(1 for v in visits if v.reached)
    actionable = [f for f in findings if f.actionable]
    summary = f"{reached}/{len(visits)} pages opened, " + (
        f"{len(actionable)} problems" if actionable else "no problems seen"
    )
    return LaneOutput(findings, summary, None, artifacts)


# ------------------------------------------------------------------ serving the app


@contextlib.contextmanager
def _serving(ctx: LaneContext, config: UxConfig, out_dir: Path) -> Iterator[ServeState | None]:
    if not config.serve:
        yield None
        return
    with (
        _serve_tree(ctx) as (cwd, described),
        serve(config.serve, cwd, described, config.url, config.timeout_ms, out_dir / SERVE_LOG) as state,
    ):
        yield state


@contextlib.contextmanager
def _serve_tree(ctx: LaneContext) -> Iterator[tuple[Path, str]]:
    if ctx.view.base is not None and ctx.view.tip is None:  # the view judges the working tree
        yield ctx.repo, "the working tree"
        return
    with basetree.full_tree(ctx.repo, ctx.view.head, prefix="speedrift-uxdrift-") as folder:
        yield folder, f"a checkout of {ctx.view.head[:12]}"


# ------------------------------------------------------------------ findings


@dataclass(slots=True)
class _Seen:
    kind: str
    key: str
    severity: Severity
    message: str
    evidence: list[str]
    fix: str
    count: int = 1


def judge(
    visits: Sequence[PageVisit], config: UxConfig, subject: str, served: ServeState | None, repo: Path
) -> list[LaneFinding]:
    """One finding per distinct problem (the same console error twice on a page is one finding,
    seen twice)."""
    origin = _origin(config.url)
    seen: dict[tuple[str, str], _Seen] = {}

    def note(kind: str, key: str, severity: Severity, message: str, evidence: list[str], fix: str) -> None:
        found = seen.get((kind, key))
        if found is None:
            seen[(kind, key)] = _Seen(kind, key, severity, message, evidence, fix)
        else:
            found.count += 1

    for visit in visits:
        page = visit.plan.path
        shot = [f"screenshot: {_relative(visit.screenshot, repo)}"] if visit.screenshot else []
        if not visit.reached:
            evidence = [f"url: {visit.plan.url}", f"error: {visit.error}"]
            if served is not None:
                evidence.append(f"serve: {served.command} in {served.cwd}; {served.error or 'answered'}")
            note(
                "page_unreachable",
                page,
                Severity.ERROR,
                f"{page} could not be opened: {visit.error}",
                evidence,
                "start the app (or set serve in [uxdrift]) and make sure the page loads at its url",
            )
        for text, location in visit.console_errors:
            shown = clip(redact.recordable(text), MESSAGE_LIMIT)
            note(
                "console_error",
                f"{page}|{_normalize(text, origin)}",
                Severity.WARNING,
                f"console error on {page}: {shown}",
                [f"url: {visit.plan.url}", *([f"logged at: {location}"] if location else []), *shot],
                f"fix the code that logs this error when {page} is used",
            )
        for text in visit.page_errors:
            shown = clip(redact.recordable(text), MESSAGE_LIMIT)
            note(
                "page_error",
                f"{page}|{_normalize(text.splitlines()[0] if text else text, origin)}",
                Severity.ERROR,
                f"uncaught exception on {page}: {shown}",
                [f"url: {visit.plan.url}", *shot],
                f"find what throws on {page} and handle it (or fix the cause)",
            )
        for request in visit.failed_requests:
            _request_finding(note, page, request, origin, shot)
        for step in visit.steps:
            if step.ok or step.skipped:
                continue
            target = step.selector or step.value
            note(
                "step_failed",
                f"{page}|{step.index}|{step.action}",
                Severity.ERROR,
                f"step {step.index} ({step.action} {target}) on {page} failed: {step.error}",
                [
                    f"url: {visit.plan.url}",
                    *([f"selector: {step.selector}"] if step.selector else []),
                    *([f"value: {step.value}"] if step.value and step.action is not StepAction.FILL else []),
                    *shot,
                ],
                f"make {page} offer what step {step.index} expects, or update the step in the uxdrift config",
            )
    return [
        LaneFinding(
            NAME,
            s.kind,
            s.message,
            s.severity,
            tags=TAGS,
            subject=subject,
            key=s.key,
            evidence=(*s.evidence, *([f"seen {s.count} times"] if s.count > 1 else [])),
            fix=s.fix,
        )
        for s in seen.values()
    ]


def _request_finding(note: Note, page: str, request: FailedRequest, origin: str, shot: list[str]) -> None:
    parts = urllib.parse.urlsplit(request.url)
    where = parts.path or "/"
    if _origin(request.url) != origin:
        where = f"{parts.hostname or ''}{where}"
    if request.blocked:
        outcome, status = f"blocked: {parts.hostname} is not an allowed host", "blocked"
        fix = f"serve what {page} needs from the app itself, or add the host to allowed_hosts in the policy"
    elif request.status is not None:
        outcome, status = f"answered {request.status}", str(request.status)
        fix = f"make {where} answer (or stop {page} from requesting it)"
    else:
        outcome, status = f"failed: {request.failure}", "failed"
        fix = f"make {where} load (or stop {page} from requesting it)"
    severity = Severity.ERROR if request.status is not None and request.status >= 500 else Severity.WARNING
    note(
        "failed_request",
        f"{page}|{where}|{status}",
        severity,
        f"{request.method} {where} from {page} {outcome}",
        [f"request: {request.method} {redact.redact_url(request.url)}", *shot],
        fix,
    )


def _critique_unavailable(subject: str, config: UxConfig, repo: Path, out_dir: Path) -> LaneFinding:
    return LaneFinding(
        NAME,
        "critique_unavailable",
        "critique requested, but the lane does not run it: a UX critique needs a role agent "
        "(`speedrift roles`), which only the fleet runs",
        Severity.INFO,
        tags=TAGS,
        subject=subject,
        key="critique",
        evidence=(
            f"evidence for a critique: {_relative(out_dir / RUN_FILE, repo)}",
            *(f"{k}: {', '.join(v) if isinstance(v, list) else v}" for k, v in config.brief.items() if v),
        ),
        fix=(
            "run a role over the run's screenshots and run.json with `speedrift roles run`, "
            "or set critique = false"
        ),
    )


def _origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _normalize(text: str, origin: str) -> str:
    """A message as a key: without the app's origin (its port changes), with every number as ``#``
    (line numbers, ids, counters), whitespace collapsed, at most 200 characters."""
    text = text.replace(origin, "")
    text = re.sub(r"\d+", "#", text)
    return " ".join(text.split())[:MESSAGE_LIMIT]


# ------------------------------------------------------------------ artifacts


def _record(
    ctx: LaneContext,
    config: UxConfig,
    visits: Sequence[PageVisit],
    served: ServeState | None,
    findings: Sequence[LaneFinding],
    chromium: str,
) -> dict[str, Any]:
    pages = [v.to_json(_relative(v.screenshot, ctx.repo) if v.screenshot else None) for v in visits]
    record: dict[str, Any] = redact.redact_value(
        {
            "lane": NAME,
            "checked_at": times.iso_utc(ctx.now),
            "task": ctx.task_id or None,
            "head": ctx.view.head,
            "url": config.url,
            "browser": {
                "chromium": chromium,
                "viewport": list(config.viewport),
                "timeout_ms": config.timeout_ms,
            },
            "serve": served.to_json() if served is not None else None,
            "brief": dict(config.brief),
            "pages": pages,
            "findings": [f.to_json() for f in findings],
        }
    )
    return record


def _prune(runs_root: Path, keep: int) -> None:
    """Remove all but the newest ``keep`` run directories (names are sortable stamps)."""
    runs = sorted(p for p in runs_root.iterdir() if p.is_dir() and RUN_DIR.match(p.name))
    for old in runs[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def _relative(path: Path | None, repo: Path) -> str:
    if path is None:
        return ""
    try:
        return path.resolve().relative_to(repo.resolve()).as_posix()
    except ValueError:
        return str(path)


LANE = Lane(
    name=NAME,
    scope=LaneScope.TREE,
    summary="the declared pages in headless Chromium: console errors, exceptions, failed requests, steps",
    run=run,
    defaults=DEFAULTS,
    fence=NAME,
    volatile=True,  # the pages answer from a running app, not from the commit alone
)
