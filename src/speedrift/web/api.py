"""The JSON API: everything the page shows, and the operator's mutations.

Reads come from the live state (``seq``-tagged, so the page can line them up with websocket
deltas) or, for run detail and the ledger, from disk with bounded reads. Mutations reach this
module only after the guard middleware has checked Host, Origin and the bearer token; here the
body is validated and the shared operator functions (control/operator.py) do the work — the
same code path, and the same ledger entry, as the CLI.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from speedrift.errors import NotFound, Refused, SpeedriftError, UsageError
from speedrift.graph.store import current_user
from speedrift.register.record import CONTROL_MODES
from speedrift.web import runs
from speedrift.web.live import DashboardState

MAX_BODY = 16_384
MAX_LEASE_S = 30 * 86_400
LEDGER_DEFAULT = 20
LEDGER_MAX = 200


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


def error(status: int, message: str, hint: str | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, "hint": hint, **extra}, status_code=status)


@dataclass
class ApiContext:
    state: DashboardState
    ecosystem_path: Path | None = None
    hub: Path | None = None
    actor: str = field(default_factory=lambda: f"{current_user()} (dashboard)")


def _speedrift_error(exc: SpeedriftError) -> JSONResponse:
    status = 404 if isinstance(exc, NotFound) else 422 if isinstance(exc, UsageError) else 409
    if not isinstance(exc, NotFound | UsageError | Refused):
        status = 500
    return error(status, exc.message, exc.hint)


async def _json_body(request: Request) -> dict[str, Any] | JSONResponse:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        return error(413, f"request body over {MAX_BODY} bytes")
    try:
        body = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError as exc:
        return error(400, f"request body is not JSON: {exc}", "send a JSON object")
    if not isinstance(body, dict):
        return error(422, "request body must be a JSON object")
    return body


def _lease(value: Any) -> timedelta | str | None:
    """Seconds (number) or a duration like "2h"; None = no expiry. A str return is the problem."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "lease_ttl must be seconds or a duration like 2h"
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        from speedrift.times import parse_duration

        try:
            seconds = parse_duration(value).total_seconds()
        except UsageError:
            return f"lease_ttl {value!r} not understood (use e.g. 45s, 30m, 2h, 1d)"
    else:
        return "lease_ttl must be seconds or a duration like 2h"
    if not 0 < seconds <= MAX_LEASE_S:
        return f"lease_ttl must be between 1 second and {MAX_LEASE_S // 86_400} days"
    return timedelta(seconds=seconds)


def _text(body: dict[str, Any], key: str, limit: int = 500) -> str | None:
    value = body.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > limit or any(ord(c) < 32 for c in value):
        raise UsageError(f"{key} must be one line of text up to {limit} characters")
    return value


def build_routes(ctx: ApiContext) -> list[BaseRoute]:
    state = ctx.state

    def repo_path(name: str) -> Path | None:
        info = state.repo_info(name)
        return Path(info.path) if info else None

    async def status(request: Request) -> Response:
        return JSONResponse(state.status())

    async def repos(request: Request) -> Response:
        return JSONResponse(state.cards())

    async def repo(request: Request) -> Response:
        detail = state.repo_detail(request.path_params["name"])
        return (
            JSONResponse(detail) if detail else error(404, f"no repo named {request.path_params['name']!r}")
        )

    async def repo_graph(request: Request) -> Response:
        graph = state.repo_graph(request.path_params["name"])
        return JSONResponse(graph) if graph else error(404, f"no repo named {request.path_params['name']!r}")

    async def ecosystem_graph(request: Request) -> Response:
        return JSONResponse(state.ecosystem_graph())

    async def queues(request: Request) -> Response:
        return JSONResponse(state.queues(with_prompts=request.query_params.get("prompts") != "0"))

    async def snapshot(request: Request) -> Response:
        _seq, text = state.snapshot_text()
        return Response(text, media_type="application/json")

    async def ledger(request: Request) -> Response:
        if ctx.hub is None:
            return JSONResponse({"entries": []})
        try:
            last = max(1, min(LEDGER_MAX, int(request.query_params.get("last", LEDGER_DEFAULT))))
        except ValueError:
            return error(422, "last must be a whole number")
        full = request.query_params.get("full") == "1"
        entries = await run_in_threadpool(_read_ledger, ctx.hub, last, full)
        return JSONResponse({"entries": entries})

    async def run_list(request: Request) -> Response:
        path = repo_path(request.path_params["name"])
        if path is None:
            return error(404, f"no repo named {request.path_params['name']!r}")
        rows = await run_in_threadpool(runs.list_attempts, path, request.path_params["task"])
        return JSONResponse({"task": request.path_params["task"], "attempts": rows})

    async def run_detail(request: Request) -> Response:
        path = repo_path(request.path_params["name"])
        if path is None:
            return error(404, f"no repo named {request.path_params['name']!r}")
        task, attempt = request.path_params["task"], request.path_params["attempt"]
        detail = await run_in_threadpool(runs.attempt_detail, path, task, attempt)
        if detail is None:
            return error(404, f"no attempt {attempt} of {task!r} in {request.path_params['name']}")
        return JSONResponse(detail)

    async def set_mode(request: Request) -> Response:
        name = request.path_params["name"]
        body = await _json_body(request)
        if isinstance(body, Response):
            return body
        mode = body.get("mode")
        if mode not in CONTROL_MODES:
            return error(422, f"mode must be one of {', '.join(CONTROL_MODES)}", field="mode")
        lease = _lease(body.get("lease_ttl"))
        if isinstance(lease, str):
            return error(422, lease, field="lease_ttl")
        if ctx.ecosystem_path is None or state.repo_info(name) is None:
            return error(404, f"no repo named {name!r}")
        from speedrift.control.operator import set_mode as do_set_mode

        try:
            owner, reason = _text(body, "owner", 200), _text(body, "reason")
            result = await run_in_threadpool(
                lambda: do_set_mode(
                    ctx.ecosystem_path,  # type: ignore[arg-type]
                    name,
                    str(mode),
                    lease_ttl=lease,
                    owner=owner,
                    actor=ctx.actor,
                    source="dashboard",
                    reason=reason,
                )
            )
        except SpeedriftError as exc:
            return _speedrift_error(exc)
        state.update_control(name, result)
        return JSONResponse(result)

    async def approve(request: Request) -> Response:
        action_id = request.path_params["action_id"]
        if ctx.ecosystem_path is None:
            return error(404, "no ecosystem: approvals need a hub")
        from speedrift.control.operator import approve_action

        eco = ctx.ecosystem_path
        known = state.find_action(action_id)
        try:
            result = await run_in_threadpool(
                lambda: approve_action(eco, action_id, ctx.actor, source="dashboard", action=known)
            )
        except SpeedriftError as exc:
            return _speedrift_error(exc)
        return JSONResponse(result)

    def agent_signal(op: str) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            path = repo_path(request.path_params["name"])
            if path is None:
                return error(404, f"no repo named {request.path_params['name']!r}")
            from speedrift.control import operator

            function = operator.pause_agent if op == "pause" else operator.resume_agent
            task = request.path_params["task"]
            try:
                result = await run_in_threadpool(
                    lambda: function(
                        path, task, ecosystem_path=ctx.ecosystem_path, actor=ctx.actor, source="dashboard"
                    )
                )
            except SpeedriftError as exc:
                return _speedrift_error(exc)
            return JSONResponse(result)

        return endpoint

    async def whoami(request: Request) -> Response:
        return JSONResponse({"ok": True})  # reached only with a valid token (see the guard)

    return [
        Route("/api/status", status),
        Route("/api/snapshot", snapshot),
        Route("/api/repos", repos),
        Route("/api/repos/{name}", repo),
        Route("/api/repos/{name}/graph", repo_graph),
        Route("/api/repos/{name}/runs/{task}", run_list),
        Route("/api/repos/{name}/runs/{task}/{attempt:int}", run_detail),
        Route("/api/graph", ecosystem_graph),
        Route("/api/queues", queues),
        Route("/api/ledger", ledger),
        Route("/api/repos/{name}/mode", set_mode, methods=["POST"]),
        Route("/api/actions/{action_id:path}/approve", approve, methods=["POST"]),
        Route("/api/repos/{name}/agents/{task}/pause", agent_signal("pause"), methods=["POST"]),
        Route("/api/repos/{name}/agents/{task}/resume", agent_signal("resume"), methods=["POST"]),
        Route("/api/auth/check", whoami, methods=["POST"]),
    ]


def _read_ledger(hub: Path, last: int, full: bool) -> list[dict[str, Any]]:
    from speedrift.register.ledger import Ledger

    records: list[dict[str, Any]] = Ledger(hub).read(last=last)
    return records if full else [_ledger_line(r) for r in records]


def _ledger_line(record: dict[str, Any]) -> dict[str, Any]:
    """A cycle record shrunk to what a timeline needs; other entries pass through."""
    if not record.get("cycle_id"):
        return record
    return {
        "cycle_id": record["cycle_id"],
        "generated_at": record.get("generated_at"),
        "plan_only": record.get("plan_only"),
        "narrative": record.get("narrative"),
        "planned": len(record.get("planned") or []),
        "skipped": len(record.get("skipped") or []),
        "executed": [
            {k: o.get(k) for k in ("action_id", "repo", "kind", "status", "detail")}
            for o in record.get("executed") or []
        ],
        "inputs": record.get("inputs"),
    }
