"""The JSON API: everything the page shows, and the operator's mutations.

Reads come from the live state (``seq``-tagged, so the page can line them up with websocket
deltas) or, for run detail and the ledger, from disk with bounded reads. Mutations reach this
module only after the guard middleware has checked Host, Origin and the bearer token; here the
body is validated and the shared operator functions (control/operator.py) do the work — the
same code path, and the same ledger entry, as the CLI.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from speedrift.control.controlfile import MAX_LEASE
from speedrift.errors import NotFound, Refused, SpeedriftError, UsageError
from speedrift.graph.store import current_user
from speedrift.register.record import CONTROL_MODES
from speedrift.web import runs
from speedrift.web.live import DashboardState
from speedrift.web.views import ALL_GRAPHS_DEFAULT, ALL_GRAPHS_MAX, all_task_graphs

MAX_BODY = 16_384  # a mutation's body; enforced while it is read, never after
MAX_LEASE_S = int(MAX_LEASE.total_seconds())
LEDGER_DEFAULT = 20
LEDGER_MAX = 200


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)
        except TypeError:  # a lone surrogate or a value nested past 254 levels: an answer, not a 500
            try:
                return json.dumps(content, ensure_ascii=True, default=str).encode("ascii")
            except (TypeError, ValueError, RecursionError):
                return orjson.dumps({"error": "the answer could not be encoded as JSON", "hint": None})


def error(status: int, message: str, hint: str | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, "hint": hint, **extra}, status_code=status)


@dataclass
class ApiContext:
    """What the endpoints share; web/app.py puts it on ``app.state.api``."""

    state: DashboardState
    ecosystem_path: Path | None = None
    hub: Path | None = None
    actor: str = field(default_factory=lambda: f"{current_user()} (dashboard)")


def api_context(request: Request) -> ApiContext:
    return cast(ApiContext, request.app.state.api)


# --- errors: endpoints raise, one handler answers ---------------------------------------------------
class BadRequest(UsageError):
    """A request turned down before any work: 422 unless ``status`` says otherwise (400 not JSON,
    413 too large); ``field`` names the body key to blame."""

    def __init__(
        self, message: str, *, status: int = 422, hint: str | None = None, field: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.field = field


def status_for(exc: SpeedriftError) -> int:
    """NotFound 404, UsageError 422 (BadRequest: its own), Refused 409, any other SpeedriftError 500."""
    if isinstance(exc, BadRequest):
        return exc.status
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, UsageError):
        return 422
    if isinstance(exc, Refused):
        return 409
    return 500


async def speedrift_error(request: Request, exc: Exception) -> Response:
    """The app's handler for every :class:`SpeedriftError` (registered once, in web/app.py)."""
    if not isinstance(exc, SpeedriftError):  # registered for SpeedriftError only
        raise exc
    extra = {"field": exc.field} if isinstance(exc, BadRequest) and exc.field else {}
    return error(status_for(exc), exc.message, exc.hint, **extra)


# --- request bodies ------------------------------------------------------------------------------
def _too_large() -> BadRequest:
    return BadRequest(
        f"request body over {MAX_BODY:,} bytes",
        status=413,
        hint=f"send a JSON object of at most {MAX_BODY:,} bytes (a mode change needs a few hundred)",
    )


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The body, read while it arrives and refused (413) as soon as it passes ``limit``: a declared
    Content-Length over it is refused before any of it is read, and a chunked body is never held
    past the chunk that crosses the limit."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit() or len(declared) > 18:
            raise BadRequest("Content-Length is not a byte count", status=400, hint="send a valid request")
        if int(declared) > limit:
            raise _too_large()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large()
        chunks.append(chunk)
    return b"".join(chunks)


def parse_body(raw: bytes) -> dict[str, Any]:
    """A request body as a JSON object, or a :class:`BadRequest` saying what is wrong with it."""
    from speedrift.safejson import MalformedJson, loads

    try:
        body = loads(raw or b"{}")
    except MalformedJson as bad:
        raise BadRequest(
            f"request body is not JSON: {bad.problem}", status=400, hint="send a JSON object"
        ) from None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    return body


async def _json_body(request: Request) -> dict[str, Any]:
    return parse_body(await read_body(request))


def _lease(value: Any) -> timedelta | None:
    """Seconds (number) or a duration like "2h"; None = no expiry."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise BadRequest("lease_ttl must be seconds or a duration like 2h", field="lease_ttl")
    if isinstance(value, int | float):
        seconds = float(value)  # orjson reads integers past 64 bits as floats: still a number here
    elif isinstance(value, str):
        from speedrift.times import DurationTooLong, parse_duration

        try:
            seconds = parse_duration(value).total_seconds()
        except DurationTooLong:
            seconds = math.inf  # well formed, past any lease: the range check below answers
        except UsageError:
            shown = repr(value) if len(value) <= 40 else repr(value[:40]) + "…"
            raise BadRequest(
                f"lease_ttl {shown} not understood (use e.g. 45s, 30m, 2h, 1d)", field="lease_ttl"
            ) from None
    else:
        raise BadRequest("lease_ttl must be seconds or a duration like 2h", field="lease_ttl")
    if not 1 <= seconds <= MAX_LEASE_S:  # NaN fails this too
        raise BadRequest(
            f"lease_ttl must be between 1 second and {MAX_LEASE_S // 86_400} days ({MAX_LEASE_S:,} seconds)",
            status=400,
            field="lease_ttl",
            hint='e.g. 7200 or "2h"; leave it out for no expiry',
        )
    return timedelta(seconds=seconds)


def _text(body: dict[str, Any], key: str, limit: int = 500) -> str | None:
    value = body.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > limit or any(ord(c) < 32 for c in value):
        raise UsageError(f"{key} must be one line of text up to {limit} characters")
    return value


# --- endpoints: reads ----------------------------------------------------------------------------
def _state(request: Request) -> DashboardState:
    return api_context(request).state


def _repo_path(request: Request) -> Path:
    """The path of the repo named in the URL; NotFound when the registry has none of that name."""
    name = request.path_params["name"]
    info = _state(request).repo_info(name)
    if info is None:
        raise NotFound(f"no repo named {name!r}")
    return Path(info.path)


async def status(request: Request) -> Response:
    return JSONResponse(_state(request).status())


async def snapshot(request: Request) -> Response:
    _seq, text = _state(request).snapshot_text()
    return Response(text, media_type="application/json")


async def repos(request: Request) -> Response:
    return JSONResponse(_state(request).cards())


async def repo(request: Request) -> Response:
    name = request.path_params["name"]
    detail = _state(request).repo_detail(name)
    if not detail:
        raise NotFound(f"no repo named {name!r}")
    return JSONResponse(detail)


async def repo_graph(request: Request) -> Response:
    name = request.path_params["name"]
    graph = _state(request).repo_graph(name)
    if not graph:
        raise NotFound(f"no repo named {name!r}")
    return JSONResponse(graph)


async def ecosystem_graph(request: Request) -> Response:
    return JSONResponse(_state(request).ecosystem_graph())


async def all_graphs(request: Request) -> Response:
    """Every repo's task graph in one answer, capped (``?limit=N``, at most ALL_GRAPHS_MAX nodes):
    the page's "All repos" view. ``shown`` < ``total`` when the cap left tasks out."""
    raw = request.query_params.get("limit", str(ALL_GRAPHS_DEFAULT))
    if not raw.isdigit() or not 1 <= int(raw) <= ALL_GRAPHS_MAX:
        raise BadRequest(
            f"limit must be a whole number from 1 to {ALL_GRAPHS_MAX}, not {raw[:20]!r}", field="limit"
        )
    state = _state(request)
    graphs = {name: state.repo_graph(name) for name in state.repo_names()}
    seq = max((int(g["seq"]) for g in graphs.values() if g), default=None)
    return JSONResponse({"seq": seq, **all_task_graphs(graphs, int(raw))})


async def queues(request: Request) -> Response:
    return JSONResponse(_state(request).queues(with_prompts=request.query_params.get("prompts") != "0"))


async def ledger(request: Request) -> Response:
    hub = api_context(request).hub
    if hub is None:
        return JSONResponse({"entries": []})
    try:
        last = max(1, min(LEDGER_MAX, int(request.query_params.get("last", LEDGER_DEFAULT))))
    except ValueError:
        raise BadRequest("last must be a whole number") from None
    full = request.query_params.get("full") == "1"
    entries = await run_in_threadpool(_read_ledger, hub, last, full)
    return JSONResponse({"entries": entries})


async def spend(request: Request) -> Response:
    """The Spend panel (web/spendview.py): ``?days=N`` (default 1: today), by repo, agent and
    runtime, with today's daily budgets and what remains."""
    from speedrift.times import now_utc
    from speedrift.web.spendview import MAX_DAYS, spend_view

    try:
        days = int(request.query_params.get("days", "1"))
    except ValueError:
        raise BadRequest("days must be a whole number") from None
    if not 1 <= days <= MAX_DAYS:
        raise BadRequest(f"days must be from 1 to {MAX_DAYS}")
    ctx = api_context(request)
    repos = {name: Path(info.path) for name in ctx.state.repo_names() if (info := ctx.state.repo_info(name))}
    view = await run_in_threadpool(spend_view, repos, ctx.ecosystem_path, days=days, now=now_utc())
    return JSONResponse(view)


async def run_list(request: Request) -> Response:
    path, task = _repo_path(request), request.path_params["task"]
    rows = await run_in_threadpool(runs.list_attempts, path, task)
    return JSONResponse({"task": task, "attempts": rows})


async def run_detail(request: Request) -> Response:
    path = _repo_path(request)
    task, attempt = request.path_params["task"], request.path_params["attempt"]
    detail = await run_in_threadpool(runs.attempt_detail, path, task, attempt)
    if detail is None:
        raise NotFound(f"no attempt {attempt} of {task!r} in {request.path_params['name']}")
    return JSONResponse(detail)


# --- endpoints: mutations (the guard has checked Host, Origin and the token) ---------------------
async def set_mode(request: Request) -> Response:
    ctx, name = api_context(request), request.path_params["name"]
    body = await _json_body(request)
    mode = body.get("mode")
    if mode not in CONTROL_MODES:
        raise BadRequest(f"mode must be one of {', '.join(CONTROL_MODES)}", field="mode")
    lease = _lease(body.get("lease_ttl"))
    eco = ctx.ecosystem_path
    if eco is None or ctx.state.repo_info(name) is None:
        raise NotFound(f"no repo named {name!r}")
    from speedrift.control.operator import set_mode as do_set_mode

    owner, reason = _text(body, "owner", 200), _text(body, "reason")
    result = await run_in_threadpool(
        lambda: do_set_mode(
            eco,
            name,
            str(mode),
            lease_ttl=lease,
            owner=owner,
            actor=ctx.actor,
            source="dashboard",
            reason=reason,
        )
    )
    ctx.state.update_control(name, result)
    return JSONResponse(result)


async def approve(request: Request) -> Response:
    ctx, action_id = api_context(request), request.path_params["action_id"]
    eco = ctx.ecosystem_path
    if eco is None:
        raise NotFound("no ecosystem: approvals need a hub")
    from speedrift.control.operator import approve_action

    known = ctx.state.find_action(action_id)
    result = await run_in_threadpool(
        lambda: approve_action(eco, action_id, ctx.actor, source="dashboard", action=known)
    )
    return JSONResponse(result)


async def upstream_list(request: Request) -> Response:
    """The repo's upstream proposals (fleetops/upstream.py), newest first."""
    path = _repo_path(request)
    from speedrift.fleetops import upstream

    found = await run_in_threadpool(lambda: upstream.listing(path))
    keys = ("id", "state", "title", "branch", "upstream_ref", "upstream_slug", "said", "url", "stats")
    return JSONResponse({"proposals": [{k: p.as_dict()[k] for k in keys} for p in found]})


async def upstream_propose(request: Request) -> Response:
    """The dashboard user's approval to propose upstream (as `speedrift upstream propose ID`): the
    repo's opt-in and the forge's checks still apply; refused or not, it is in the ledger."""
    ctx, path, proposal_id = api_context(request), _repo_path(request), request.path_params["proposal_id"]
    from speedrift.control import upstream_ops

    result = await run_in_threadpool(
        lambda: upstream_ops.propose(
            path, proposal_id, actor=ctx.actor, source="dashboard", ecosystem_path=ctx.ecosystem_path
        )
    )
    if result["ok"]:
        return JSONResponse(result)
    return JSONResponse({**result, "error": result["said"], "hint": result["fix"]}, status_code=409)


async def _signal_agent(request: Request, op: str) -> Response:
    ctx, path, task = api_context(request), _repo_path(request), request.path_params["task"]
    from speedrift.control import operator

    function = operator.pause_agent if op == "pause" else operator.resume_agent
    result = await run_in_threadpool(
        lambda: function(path, task, ecosystem_path=ctx.ecosystem_path, actor=ctx.actor, source="dashboard")
    )
    return JSONResponse(result)


async def agent_pause(request: Request) -> Response:
    return await _signal_agent(request, "pause")


async def agent_resume(request: Request) -> Response:
    return await _signal_agent(request, "resume")


async def answer(request: Request) -> Response:
    """A person's answer to a question an agent asked (fleet/answers.py, as `speedrift answer`):
    body ``{"answer": "…"}``; the answer is recorded as human_feedback by the dashboard's user."""
    ctx, path, record_id = api_context(request), _repo_path(request), request.path_params["record_id"]
    body = await _json_body(request)
    text = body.get("answer")
    if not isinstance(text, str) or not text.strip():
        raise BadRequest("answer must be the answer's text", field="answer", hint='send {"answer": "…"}')
    from speedrift.coord.records import split_id
    from speedrift.errors import InvalidValue
    from speedrift.fleet import answers
    from speedrift.fleet.config import load_config
    from speedrift.graph.store import GraphStore

    try:
        split_id(record_id)
    except InvalidValue as bad:
        raise NotFound(bad.message, hint=bad.hint) from None

    def work() -> dict[str, Any]:
        store = GraphStore.of_repo(path)
        return answers.answer(path, store, load_config(path), record_id, text, name=ctx.actor).as_dict()

    return JSONResponse(await run_in_threadpool(work))


async def approve_task(request: Request) -> Response:
    """A person's approval at the checkpoint a task waits at (fleet/approval.py, as `speedrift plan
    approve TASK --no-land`): its gated attempt's merge, or a deploy task's start, recorded by the
    dashboard's user in one graph change. The landing is left to the repo's service (or the next
    `speedrift plan run`), which resumes it on its next tick. A task that waits for no approval is
    refused (409) with the reason; one the graph does not have too."""
    ctx, path, task = api_context(request), _repo_path(request), request.path_params["task"]
    from speedrift.fleet import approval
    from speedrift.graph.store import GraphStore

    def work() -> dict[str, Any]:
        store = GraphStore.of_repo(path)
        if store is None:
            raise NotFound(f"{request.path_params['name']} has no task graph")
        return approval.record(store, task, by=ctx.actor).as_dict()

    return JSONResponse(await run_in_threadpool(work))


async def auth_check(request: Request) -> Response:
    return JSONResponse({"ok": True})  # reached only with a valid token (see the guard)


def build_routes() -> list[BaseRoute]:
    """The API's routes; endpoints read :class:`ApiContext` from ``app.state.api`` and raise
    :class:`SpeedriftError` for the app's one handler (:func:`speedrift_error`) to answer."""
    return [
        Route("/api/status", status),
        Route("/api/snapshot", snapshot),
        Route("/api/repos", repos),
        Route("/api/repos/{name}", repo),
        Route("/api/repos/{name}/graph", repo_graph),
        Route("/api/repos/{name}/runs/{task}", run_list),
        Route("/api/repos/{name}/runs/{task}/{attempt:int}", run_detail),
        Route("/api/graph", ecosystem_graph),
        Route("/api/graph/tasks", all_graphs),
        Route("/api/queues", queues),
        Route("/api/ledger", ledger),
        Route("/api/spend", spend),
        Route("/api/repos/{name}/mode", set_mode, methods=["POST"]),
        Route("/api/actions/{action_id:path}/approve", approve, methods=["POST"]),
        Route("/api/repos/{name}/agents/{task}/pause", agent_pause, methods=["POST"]),
        Route("/api/repos/{name}/agents/{task}/resume", agent_resume, methods=["POST"]),
        Route("/api/repos/{name}/answer/{record_id}", answer, methods=["POST"]),
        Route("/api/repos/{name}/tasks/{task}/approve", approve_task, methods=["POST"]),
        Route("/api/repos/{name}/upstream", upstream_list),
        Route("/api/repos/{name}/upstream/{proposal_id}/propose", upstream_propose, methods=["POST"]),
        Route("/api/auth/check", auth_check, methods=["POST"]),
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
