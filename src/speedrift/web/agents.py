"""The dashboard's Agents panel: the standing agents (``GET /api/agents``), and the operator's two
actions on them — run one now (``POST /api/agents/{name}/run``) and lift its pause (``POST
/api/agents/{name}/resume``). Both mutations pass the guard first (Host, Origin, bearer token).

A run is started as ``speedrift agents run NAME --detach`` — the CLI's own path, so the run task,
its ledger record and the background ``speedrift run`` are exactly what the command makes — and
answers with what it printed. A resume is fleetops/pausing.py's, recorded in the ledger by the
dashboard's user, as ``speedrift agents resume`` would.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from speedrift import procs
from speedrift.errors import NotFound, Refused, UsageError
from speedrift.web.api import BadRequest, JSONResponse, api_context, parse_body, read_body

REPO_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
RUN_TIMEOUT_S = 60.0  # creating the task and starting the background run; the run itself is not waited for


def _ecosystem(request: Request) -> tuple[Path, Path]:
    ctx = api_context(request)
    if ctx.ecosystem_path is None or ctx.hub is None:
        raise NotFound("no ecosystem: standing agents need a hub")
    return ctx.ecosystem_path, ctx.hub


def agents_view(ecosystem_path: Path, hub: Path) -> dict[str, Any]:
    """Every standing agent as `speedrift agents list --json` shows it."""
    from speedrift.control.ecosystem.load import load_ecosystem
    from speedrift.fleetops.status import agent_rows
    from speedrift.times import now_utc

    eco = load_ecosystem(ecosystem_path)
    rows, problems = agent_rows(eco.ops, {e.name: e.path for e in eco.repos}, hub, now_utc())
    return {"agents": rows, "problems": problems}


async def agents(request: Request) -> Response:
    ecosystem_path, hub = _ecosystem(request)
    return JSONResponse(await run_in_threadpool(agents_view, ecosystem_path, hub))


def run_detached(ecosystem_path: Path, name: str, repo: str | None) -> dict[str, Any]:
    """``speedrift agents run NAME --detach --json`` as a child; its JSON, or its error raised."""
    argv = [sys.executable, "-m", "speedrift", "agents", "run", name, "--detach", "--json"]
    argv += ["--ecosystem", str(ecosystem_path)]
    if repo is not None:
        argv += ["--repo", repo]
    done = procs.run(argv, cwd=ecosystem_path.parent, timeout=RUN_TIMEOUT_S, text=True)
    if done.returncode == 0:
        try:
            result: dict[str, Any] = orjson.loads(done.stdout)
        except orjson.JSONDecodeError:
            result = {"output": done.stdout.strip()}
        return result
    said = (done.stderr or done.stdout).strip()
    message, _, hint = said.partition("\n  fix: ")
    message = message.removeprefix("error: ").strip() or f"`speedrift agents run` exited {done.returncode}"
    if "no standing agent named" in message:
        raise NotFound(message, hint=hint or None)
    if done.returncode == 2:
        raise UsageError(message, hint=hint or None)
    raise Refused(message, hint=hint or None)


async def run_agent(request: Request) -> Response:
    ecosystem_path, _hub = _ecosystem(request)
    name = request.path_params["name"]
    repo = parse_body(await read_body(request)).get("repo")
    if repo is not None and (not isinstance(repo, str) or not REPO_NAME.fullmatch(repo)):
        raise BadRequest("repo must be a registered repo's name", field="repo", hint='send {"repo": "app"}')
    return JSONResponse(await run_in_threadpool(run_detached, ecosystem_path, name, repo))


def resume(ecosystem_path: Path, hub: Path, name: str, actor: str) -> dict[str, Any]:
    from speedrift.control.ecosystem.load import load_ecosystem
    from speedrift.fleetops.declared import declared_agents, find
    from speedrift.fleetops.pausing import resume_agent
    from speedrift.fleetops.state import StateStore
    from speedrift.fleetops.status import unknown_agent
    from speedrift.register.ledger import Ledger
    from speedrift.times import now_utc

    eco = load_ecosystem(ecosystem_path)
    repos = {e.name: e.path for e in eco.repos}
    served, _problems = declared_agents(eco.ops, repos)
    item = find(served, name)
    if item is None and name not in StateStore(hub).read().agents:
        raise unknown_agent(name, served)
    mine = {r: repos[r] for r in item.repos if r in repos} if item is not None else repos
    entry = resume_agent(hub, mine, name, by=f"operator:{actor}", now=now_utc())
    if entry["changed"] or entry["tasks"]:
        Ledger(hub).append(entry)
    return entry


async def resume_agent(request: Request) -> Response:
    ecosystem_path, hub = _ecosystem(request)
    name = request.path_params["name"]
    actor = api_context(request).actor
    return JSONResponse(await run_in_threadpool(resume, ecosystem_path, hub, name, actor))


def routes() -> list[BaseRoute]:
    return [
        Route("/api/agents", agents),
        Route("/api/agents/{name}/run", run_agent, methods=["POST"]),
        Route("/api/agents/{name}/resume", resume_agent, methods=["POST"]),
    ]
