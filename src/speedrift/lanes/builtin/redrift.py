"""redrift: a rewrite task (one with a ```` ```redrift ```` block) keeps its artifacts, its
verification and its follow-ups in order.

- ``missing_redrift_artifacts``: a file of ``required_artifacts`` is absent from
  ``<artifact_root>/<task>/`` (the original's layout: analyze → respec → design → build).
- ``verification_failed``: a ``verify_commands`` entry exits non-zero or runs past
  ``verify_timeout_s`` (each runs with ``sh -c`` in a private checkout of the head commit, never in
  the user's checkout, with no credential in its environment; a command only the task's block
  names runs only when the policy sets ``allow_task_commands``), or a ``verify_assertions`` entry
  fails: ``{kind = "max_lines", path or glob, max}`` or ``{kind = "forbid_pattern", pattern,
  include = [globs] or glob or path}``, judged on the head commit's files; or the original's
  verify record says it failed.
- ``verification_missing``: ``verify_required`` while nothing verifies the task — no command, no
  assertion and no record at ``<artifact_root>/verify/<task>.json``.
- ``unresolved_redrift_followups``: tasks ``redrift-<task>-…`` in the graph that are not finished.

Where artifacts are read: the working tree *or* the head commit (either one holding the file
counts). The original's tools write them under ``.workgraph/.redrift/``, which the repo view leaves
out and which is often untracked, so the working tree is where they usually are; a committed
artifact counts too. A block that cannot be read, or an assertion that cannot be checked:
``invalid_redrift_config``; a ``schema`` other than 1: ``unsupported_schema``.

Invariant: without a task holding a redrift block nothing is judged and nothing is run.
"""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath
from typing import Any

from speedrift import layout, procs
from speedrift.agents.env import without_credentials
from speedrift.gates.basetree import full_tree, tree_blobs
from speedrift.gates.changes import read_blobs
from speedrift.gates.globs import matches, matches_any
from speedrift.graph.model import TERMINAL, status_of
from speedrift.lanes.builtin._diffcommon import Config, config, config_findings, shown
from speedrift.lanes.context import LaneContext
from speedrift.lanes.model import LaneFinding, LaneScope, Severity
from speedrift.lanes.spec import Lane, LaneOutput

NAME = "redrift"
DEFAULTS: dict[str, Any] = {
    "artifact_root": ".workgraph/.redrift",
    "required_artifacts": [
        "analyze/inventory.md",
        "respec/spec.md",
        "design/design.md",
        "build/migration-plan.md",
    ],
    "verify_required": False,
    "verify_commands": [],
    "verify_assertions": [],
    "verify_timeout_s": 600,
    # a task's block may name commands the policy does not: they run only when the policy says so
    # (a task description can be written by an agent; the policy is a committed, reviewed file)
    "allow_task_commands": False,
}
POLICY_ONLY = frozenset({"allow_task_commands"})
DEFAULT_INCLUDE = ["**/*.py", "**/*.ts", "**/*.tsx", "**/*.js", "**/*.jsx", "**/*.md", "**/*.toml"]
MAX_SCAN_BYTES = 1 << 20


def run(ctx: LaneContext) -> LaneOutput:
    if ctx.task is None:
        return LaneOutput([], "no task: redrift judges a rewrite task")
    cfg = config(ctx, LANE)
    if not cfg.fenced:
        return LaneOutput([], "no redrift fence")
    settings = cfg.settings
    root = PurePosixPath(settings["artifact_root"])
    assertions, problems = _assertions(settings["verify_assertions"])
    if root.is_absolute() or ".." in root.parts:
        problems.append(f"artifact_root: {root} must be a path inside the repo")
    problems += [
        f"{key}: only the drift policy may set it" for key in sorted(POLICY_ONLY & set(ctx.fence or {}))
    ]
    allowed = {str(c) for c in ctx.settings.get("verify_commands", [])}
    foreign = [c for c in settings["verify_commands"] if c.strip() and c not in allowed]
    if foreign and not ctx.settings.get("allow_task_commands", False):
        problems.append(
            f"verify_commands: {shown(foreign, 3)} not in the policy's [redrift] verify_commands; list them"
            " there (or set allow_task_commands = true in drift-policy.toml) to let the task run them"
        )
    if problems:
        cfg = Config(settings, True, (*cfg.problems, *problems), cfg.schema)
    if not cfg.usable:
        return LaneOutput(config_findings(ctx, LANE, cfg, "invalid_redrift_config"))
    task = ctx.task_id
    folder = root / layout.safe_name(task)
    findings: list[LaneFinding] = []
    wanted = [str(folder / r.strip().lstrip("/")) for r in settings["required_artifacts"] if r.strip()]
    missing = _absent(ctx, wanted)
    if missing:
        findings.append(
            _finding(
                ctx,
                "missing_redrift_artifacts",
                f"task {task} lacks {len(missing)} required redrift artifact(s): {shown(missing, 4)}",
                Severity.WARNING,
                (f"missing: {shown(missing)}", f"looked in {folder}/ (working tree and head)"),
                "write the missing phase artifacts (analyze, respec, design, build) before building more",
            )
        )
    record_path = str(root / "verify" / f"{layout.safe_name(task)}.json")
    record = _record(ctx, record_path)
    commands = [c for c in settings["verify_commands"] if c.strip()]
    if settings["verify_required"] and not commands and not assertions and record is None:
        findings.append(
            _finding(
                ctx,
                "verification_missing",
                f"task {task} requires verification but nothing verifies it",
                Severity.ERROR,
                (
                    "verify_required = true",
                    "no verify_commands, no verify_assertions",
                    f"no record at {record_path}",
                ),
                "add verify_commands (e.g. the test suite) or verify_assertions to the ```redrift``` block",
            )
        )
    score = record.get("score") if record is not None else None
    if score not in (None, "green"):
        findings.append(_failed(ctx, "record", f"the verify record {record_path} says {score}"))
    for command, problem in _run_commands(ctx, commands, float(settings["verify_timeout_s"])):
        findings.append(_failed(ctx, f"command:{command}", problem))
    for assertion in assertions:
        failure = _check(ctx, assertion)
        if failure:
            findings.append(_failed(ctx, f"assertion:{assertion['kind']}:{assertion['target']}", failure))
    open_followups = _followups(ctx)
    if open_followups:
        findings.append(
            _finding(
                ctx,
                "unresolved_redrift_followups",
                f"task {task} has {len(open_followups)} unfinished redrift follow-up(s)",
                Severity.WARNING,
                (f"open: {shown(open_followups)}",),
                "finish or re-scope the open redrift phase tasks before adding scope",
            )
        )
    return LaneOutput(findings)


def _finding(
    ctx: LaneContext,
    kind: str,
    message: str,
    severity: Severity,
    evidence: tuple[str, ...],
    fix: str,
    key: str = "",
) -> LaneFinding:
    return LaneFinding(
        lane=NAME,
        kind=kind,
        message=message,
        severity=severity,
        subject=ctx.task_id,
        key=key,
        evidence=evidence,
        fix=fix,
    )


def _failed(ctx: LaneContext, key: str, problem: str) -> LaneFinding:
    return _finding(
        ctx,
        "verification_failed",
        f"task {ctx.task_id}: verification failed: {problem}",
        Severity.ERROR,
        (problem,),
        "fix what the verification reports (or correct the check if it is wrong), then run drift check again",
        key,
    )


def _absent(ctx: LaneContext, paths: list[str]) -> list[str]:
    committed = tree_blobs(ctx.repo, ctx.view.head, paths) if paths else {}
    return [p for p in paths if p not in committed and not (ctx.repo / p).is_file()]


def _record(ctx: LaneContext, path: str) -> dict[str, Any] | None:
    data: bytes | None = None
    try:
        data = (ctx.repo / path).read_bytes()
    except OSError:
        blobs = tree_blobs(ctx.repo, ctx.view.head, [path])
        if path in blobs:
            data = read_blobs(ctx.repo, [blobs[path]]).get(blobs[path])
    if data is None:
        return None
    try:
        loaded = json.loads(data)
    except ValueError:
        return {"score": "unreadable"}
    return loaded if isinstance(loaded, dict) else {"score": "unreadable"}


def _assertions(raw: list[Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """The assertions as {kind, target, …}, and the problems of those that cannot be checked."""
    found: list[dict[str, Any]] = []
    problems: list[str] = []
    for index, item in enumerate(raw):
        where = f"verify_assertions[{index}]"
        if not isinstance(item, dict):
            problems.append(f"{where}: must be a table")
            continue
        kind = item.get("kind", item.get("type"))
        if kind == "max_lines":
            target = item.get("path", item.get("glob"))
            limit = item.get("max", item.get("value"))
            if (
                not isinstance(target, str)
                or not isinstance(limit, int)
                or isinstance(limit, bool)
                or limit <= 0
            ):
                problems.append(f"{where}: max_lines needs path (or glob) and max > 0")
                continue
            found.append({"kind": kind, "target": target, "max": limit})
        elif kind == "forbid_pattern":
            pattern = item.get("pattern", item.get("value"))
            include = item.get("include", item.get("glob", item.get("path", DEFAULT_INCLUDE)))
            include = [include] if isinstance(include, str) else include
            try:
                compiled = re.compile(pattern, re.MULTILINE) if isinstance(pattern, str) and pattern else None
            except re.error as exc:
                problems.append(f"{where}: pattern {pattern!r} is not a regular expression ({exc})")
                continue
            if (
                compiled is None
                or not isinstance(include, list)
                or not all(isinstance(g, str) for g in include)
            ):
                problems.append(f"{where}: forbid_pattern needs pattern and include globs")
                continue
            found.append({"kind": kind, "target": pattern, "regex": compiled, "include": include})
        else:
            problems.append(f"{where}: kind {kind!r} is not max_lines or forbid_pattern")
    return found, problems


def _check(ctx: LaneContext, assertion: dict[str, Any]) -> str | None:
    view = ctx.view
    if assertion["kind"] == "max_lines":
        target = assertion["target"]
        paths = [p for p in view.paths() if p == target or matches(p, target)]
        if not paths:
            return f"max_lines: nothing at {target} in the head commit"
        for path, data in sorted(view.read_many(paths).items()):
            lines = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
            if lines > assertion["max"]:
                return f"max_lines: {path} has {lines} lines (max {assertion['max']})"
        return None
    paths = [
        e.path for e in view.tree() if e.size <= MAX_SCAN_BYTES and matches_any(e.path, assertion["include"])
    ]
    for path, data in sorted(view.read_many(paths).items()):
        text = data.decode("utf-8", "replace")
        hit = assertion["regex"].search(text)
        if hit:
            line = text.count("\n", 0, hit.start()) + 1
            return f"forbid_pattern: {assertion['target']!r} found in {path}:{line}"
    return None


def _run_commands(ctx: LaneContext, commands: list[str], timeout: float) -> list[tuple[str, str]]:
    """(command, what went wrong) for each command that failed, all run in one private checkout."""
    if not commands:
        return []
    failed: list[tuple[str, str]] = []
    with full_tree(ctx.repo, ctx.view.head, prefix="speedrift-redrift-") as folder:
        for command in commands:
            try:
                done = procs.run(
                    ["sh", "-c", command],
                    cwd=Path(folder),
                    env=without_credentials(),
                    timeout=timeout,
                    end_group=True,
                )
            except procs.ProcessTimeout:
                failed.append((command, f"`{command}` ran past verify_timeout_s = {timeout:g}"))
                continue
            except OSError as exc:
                failed.append((command, f"`{command}` could not start: {exc}"))
                continue
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).decode("utf-8", "replace").strip().splitlines()[-3:]
                said = f": {' / '.join(tail)[:300]}" if tail else ""
                failed.append((command, f"`{command}` exited {done.returncode}{said}"))
    return failed


def _followups(ctx: LaneContext) -> list[str]:
    if ctx.graph is None:
        return []
    prefix = f"redrift-{ctx.task_id}-"
    return sorted(
        t["id"] for t in ctx.graph.iter_tasks() if t["id"].startswith(prefix) and status_of(t) not in TERMINAL
    )


LANE = Lane(
    name=NAME,
    scope=LaneScope.TASK,
    summary="a rewrite task's required artifacts, verification commands and assertions, open phase tasks",
    run=run,
    defaults=DEFAULTS,
    fence=NAME,
    volatile=True,
)
