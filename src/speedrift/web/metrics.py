"""The dashboard's metrics page: ``GET /metrics`` (static/metrics.html) and ``GET /api/metrics``.

``/api/metrics`` answers exactly what ``speedrift metrics --json`` prints for the ecosystem the
dashboard serves (``?since=7d`` and ``?repo=NAME`` as the command's options), computed off the
event loop and kept :data:`CACHE_S` seconds per (since, repo): the page polls, and reading many
repos' run records on every poll would be waste. Reads pass the guard like every ``/api/`` read
(the bearer token when the server listens beyond loopback).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Route

from speedrift.web.api import BadRequest, JSONResponse, api_context

CACHE_S = 5.0
DEFAULT_SINCE = "7d"
MAX_CACHED = 32


class MetricsCache:
    """Results by (since, repo), each kept ``ttl`` seconds; one computation at a time."""

    def __init__(self, ttl: float = CACHE_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._kept: dict[tuple[str, str | None], tuple[float, dict[str, Any]]] = {}

    def get(self, key: tuple[str, str | None], compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        with self._lock:  # held while computing: concurrent polls wait for one result
            kept = self._kept.get(key)
            if kept is not None and self.clock() - kept[0] < self.ttl:
                return kept[1]
            value = compute()
            if len(self._kept) >= MAX_CACHED:
                self._kept.clear()
            self._kept[key] = (self.clock(), value)
            return value


def metrics_view(request: Request, since: str, repo: str | None) -> dict[str, Any]:
    """The metrics of the dashboard's ecosystem (or of the repos it shows, without one)."""
    from speedrift.control.metrics.collect import metrics_of
    from speedrift.times import now_utc, parse_duration

    window = parse_duration(since)
    ctx = api_context(request)
    repos: list[tuple[str, Path]]
    if ctx.ecosystem_path is not None:
        from speedrift.control.ecosystem.load import load_ecosystem

        eco = load_ecosystem(ctx.ecosystem_path)
        entries = [eco.repo(repo)] if repo else list(eco.repos)
        repos = [(e.name, e.path) for e in entries]
    else:
        infos = [ctx.state.repo_info(name) for name in ctx.state.repo_names()]
        repos = [(i.name, Path(i.path)) for i in infos if i is not None and (repo is None or i.name == repo)]
    result = metrics_of(repos, now_utc(), window)
    result["since"] = since
    return result


def routes(static_dir: Path, cache_s: float = CACHE_S) -> list[BaseRoute]:
    """The page and its API; the cache lives with the routes (one per app)."""
    cache = MetricsCache(cache_s)

    async def page(request: Request) -> Response:
        return FileResponse(static_dir / "metrics.html", media_type="text/html")

    async def metrics_api(request: Request) -> Response:
        since = request.query_params.get("since", DEFAULT_SINCE)
        repo = request.query_params.get("repo") or None
        if len(since) > 20 or (repo is not None and len(repo) > 100):
            raise BadRequest("since or repo is too long", hint="e.g. /api/metrics?since=7d&repo=app")
        result = await run_in_threadpool(cache.get, (since, repo), lambda: metrics_view(request, since, repo))
        return JSONResponse(result)

    return [Route("/metrics", page), Route("/api/metrics", metrics_api)]
