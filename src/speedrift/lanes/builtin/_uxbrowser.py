"""uxdrift's app under test: the ``serve`` command that starts it (:func:`serve`), and the system
Chromium driven by Playwright over its declared pages (:func:`drive`), collecting what a user's
browser would show — console errors, uncaught exceptions, failed requests — and the outcome of each
declared step, with one full-page screenshot per page.

Chromium is the machine's own (Debian's ``chromium`` on PATH, as the dashboard's browser tests use;
never a browser Playwright downloads). :func:`find_chromium` is the one place that looks for it.

Invariant: the browser reaches only ``http``/``https`` URLs on the allowed hosts. Every request
goes through one route that aborts anything else (and the abort is recorded as a blocked request);
service workers, which could answer outside the route, are blocked. Playwright's sync API runs in a
thread of its own, so a caller that already runs an event loop (the hub) can call :func:`drive`.
A served app is always stopped — its whole process group (:mod:`speedrift.procs`) — however the
visit ends.
"""

from __future__ import annotations

import contextlib
import importlib.util
import shlex
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from speedrift import procs, redact
from speedrift.errors import SpeedriftError

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, ConsoleMessage, Page, Request, Response, Route

# the names Chromium goes by on PATH (Debian/Ubuntu, other distributions, Google's build)
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome-stable", "google-chrome")
INSTALL_HINT = "apt-get install chromium (or put a Chromium or Chrome executable on PATH)"
PLAYWRIGHT_HINT = "pip install playwright (not its browsers: uxdrift drives the system Chromium)"
# Chromium logs every failed load as a console error too; the request itself is reported instead
LOAD_FAILURE_PREFIX = "Failed to load resource:"
WEB_SCHEMES = ("http", "https")
SERVE_GRACE_S = 5.0  # SIGTERM to the serve command's group, then SIGKILL
READY_POLL_S = 0.1
TAIL_BYTES = 2000


class StepAction(StrEnum):
    CLICK = "click"  # click the first element matching `selector`
    FILL = "fill"  # type `value` into the first element matching `selector`
    GOTO = "goto"  # open `value` (a path on the base URL, or a URL on an allowed host)
    WAIT_FOR = "wait_for"  # wait until an element matching `selector` is visible
    EXPECT_TEXT = "expect_text"  # wait until `selector` (default: body) contains the text `value`


@dataclass(frozen=True, slots=True)
class Step:
    index: int  # its place in the declared list (0-based): part of a step_failed finding's key
    action: StepAction
    selector: str = ""
    value: str = ""
    url: str = ""  # goto: the resolved URL


@dataclass(frozen=True, slots=True)
class PagePlan:
    path: str  # as declared
    url: str  # resolved against the base URL, on an allowed host
    slug: str  # the screenshot's file name, without .png
    steps: tuple[Step, ...] = ()


@dataclass(frozen=True, slots=True)
class FailedRequest:
    url: str
    method: str
    status: int | None  # the HTTP status (>= 400); None: no response (failed or blocked)
    failure: str = ""  # the network error, when there was no response
    blocked: bool = False  # aborted by the host guard


@dataclass(frozen=True, slots=True)
class StepOutcome:
    index: int
    action: StepAction
    selector: str
    value: str
    ok: bool
    error: str = ""
    skipped: bool = False  # an earlier step on the page failed


@dataclass(slots=True)
class PageVisit:
    plan: PagePlan
    reached: bool = False
    error: str = ""  # why navigation failed
    status: int | None = None
    title: str = ""
    final_url: str = ""
    screenshot: Path | None = None
    network_idle: bool = True
    console_errors: list[tuple[str, str]] = field(default_factory=list)  # (text, location)
    page_errors: list[str] = field(default_factory=list)
    failed_requests: list[FailedRequest] = field(default_factory=list)
    steps: list[StepOutcome] = field(default_factory=list)

    def to_json(self, screenshot: str | None) -> dict[str, Any]:
        return {
            "page": self.plan.path,
            "url": self.plan.url,
            "reached": self.reached,
            "error": self.error,
            "status": self.status,
            "final_url": self.final_url,
            "title": self.title,
            "network_idle": self.network_idle,
            "screenshot": screenshot,
            "console_errors": [{"text": t, "location": loc} for t, loc in self.console_errors],
            "page_errors": self.page_errors,
            "failed_requests": [
                {"url": redact.redact_url(r.url), "method": r.method, "status": r.status}
                | {"failure": r.failure, "blocked": r.blocked}
                for r in self.failed_requests
            ],
            "steps": [
                {"index": s.index, "action": str(s.action), "selector": s.selector, "ok": s.ok}
                | {"skipped": s.skipped, "error": s.error}
                for s in self.steps
            ],
        }


@dataclass(slots=True)
class ServeState:
    command: str
    cwd: str  # what it ran in, in words
    pid: int | None = None
    ready: bool = False
    waited_ms: int = 0
    error: str = ""  # why it is not serving ("" when it answered)
    exit_code: int | None = None  # once stopped (negative: the signal that ended it)
    log_tail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "cwd": self.cwd,
            "pid": self.pid,
            "ready": self.ready,
            "waited_ms": self.waited_ms,
            "error": self.error,
            "exit_code": self.exit_code,
            "log_tail": self.log_tail,
        }


def find_chromium() -> str | None:
    """The system Chromium's executable (the first of :data:`CHROMIUM_NAMES` on PATH), or None."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


@contextlib.contextmanager
def serve(
    argv: Sequence[str], cwd: Path, described: str, url: str, timeout_ms: int, log: Path
) -> Iterator[ServeState]:
    """Run ``argv`` in ``cwd`` (its own process group, output to ``log``) until ``url`` answers or
    ``timeout_ms`` pass; yield what happened; then end its whole group. A command that cannot start
    or never answers is no exception: the state says so, and the pages are then unreachable."""
    state = ServeState(shlex.join(argv), described)
    with open(log, "wb") as out:
        try:
            proc = procs.popen_group(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        except OSError as exc:
            state.error = f"could not start: {exc}"
            yield state
            return
    state.pid = proc.pid
    try:
        started = time.monotonic()
        state.ready = _wait_ready(url, proc, timeout_ms)
        state.waited_ms = int((time.monotonic() - started) * 1000)
        if not state.ready:
            exited = proc.poll()
            state.error = (
                f"exited with code {exited} before {url} answered"
                if exited is not None
                else f"{url} did not answer within {timeout_ms} ms"
            )
        yield state
    finally:
        procs.end_group(proc, SERVE_GRACE_S)
        state.exit_code = proc.returncode
        state.log_tail = _tail(log)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer: it is never followed (it may lead off the allowed hosts)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout_ms: int) -> bool:
    """Whether ``url`` gave any HTTP answer before the deadline (never through a proxy, never
    following a redirect)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())
    deadline = time.monotonic() + timeout_ms / 1000
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with opener.open(url, timeout=max(0.1, min(2.0, deadline - time.monotonic()))):
                return True
        except urllib.error.HTTPError:
            return True  # it answered: an error status is the pages' business
        except (OSError, ValueError):
            time.sleep(READY_POLL_S)
    return False


def _tail(log: Path) -> str:
    try:
        data = log.read_bytes()[-TAIL_BYTES:]
    except OSError:
        return ""
    return redact.recordable(data.decode("utf-8", "replace"))


def require_browser() -> str:
    """The Chromium to drive; :class:`SpeedriftError` (saying how to install it) when Chromium or
    Playwright is missing — asked before anything is started, so a missing browser is a lane error
    and never a pass."""
    chromium = find_chromium()
    if chromium is None:
        raise SpeedriftError(
            "uxdrift: no Chromium found on PATH, so no page can be driven", hint=INSTALL_HINT
        )
    if importlib.util.find_spec("playwright") is None:
        raise SpeedriftError(
            "uxdrift: Playwright is not installed, so no page can be driven", hint=PLAYWRIGHT_HINT
        )
    return chromium


def host_allowed(url: str, allowed_hosts: Sequence[str]) -> bool:
    """Whether ``url`` is an http(s) URL on one of ``allowed_hosts`` (compared case-insensitively)."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname
    except ValueError:
        return False
    allowed = {h.lower() for h in allowed_hosts}
    return parts.scheme in WEB_SCHEMES and host is not None and host.lower() in allowed


def drive(
    plans: Sequence[PagePlan],
    *,
    chromium: str,
    timeout_ms: int,
    viewport: tuple[int, int],
    allowed_hosts: Sequence[str],
    out_dir: Path,
) -> list[PageVisit]:
    """Visit every page in one browser context (so a flow's cookies carry over), run its steps and
    screenshot it into ``out_dir``. Raises :class:`SpeedriftError` when Playwright is missing or
    Chromium does not start; what a page does is never an exception here."""
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["visits"] = _drive(plans, chromium, timeout_ms, viewport, allowed_hosts, out_dir)
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=work, name="uxdrift-browser", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    visits: list[PageVisit] = outcome["visits"]
    return visits


def _drive(
    plans: Sequence[PagePlan],
    chromium: str,
    timeout_ms: int,
    viewport: tuple[int, int],
    allowed_hosts: Sequence[str],
    out_dir: Path,
) -> list[PageVisit]:
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise SpeedriftError(
            "uxdrift: Playwright is not installed, so no page can be driven", hint=PLAYWRIGHT_HINT
        ) from None
    blocked: set[str] = set()
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(
                executable_path=chromium, headless=True, args=["--no-sandbox", "--no-proxy-server"]
            )
        except PlaywrightError as exc:
            raise SpeedriftError(
                f"uxdrift: Chromium at {chromium} did not start: {_first_line(str(exc))}",
                hint=INSTALL_HINT,
            ) from None
        try:
            context = browser.new_context(
                viewport={"width": viewport[0], "height": viewport[1]}, service_workers="block"
            )
            context.set_default_timeout(timeout_ms)
            context.set_default_navigation_timeout(timeout_ms)
            _guard(context, allowed_hosts, blocked)
            return [_visit(context, plan, timeout_ms, out_dir, blocked) for plan in plans]
        finally:
            browser.close()


def _guard(context: BrowserContext, allowed_hosts: Sequence[str], blocked: set[str]) -> None:
    def route(route: Route) -> None:
        url = route.request.url
        if host_allowed(url, allowed_hosts):
            route.continue_()
        else:
            blocked.add(url)
            route.abort("blockedbyclient")

    context.route("**/*", route)


def _visit(
    context: BrowserContext, plan: PagePlan, timeout_ms: int, out_dir: Path, blocked: set[str]
) -> PageVisit:
    from playwright.sync_api import Error as PlaywrightError

    visit = PageVisit(plan)
    page = context.new_page()
    _listen(page, visit, blocked)
    try:
        try:
            response = page.goto(plan.url, wait_until="load")
        except PlaywrightError as exc:
            visit.error = _first_line(str(exc))
            # the document's own failure is the page being unreachable, not a failed request
            visit.failed_requests = [r for r in visit.failed_requests if r.url != plan.url]
            return visit
        visit.reached = True
        visit.status = response.status if response is not None else None
        try:
            page.wait_for_load_state("networkidle", timeout=timeout_ms)
        except PlaywrightError:
            visit.network_idle = False  # a long poll or a stream: judged on what came so far
        _run_steps(page, plan, visit, timeout_ms)
        visit.final_url = page.url
        try:
            visit.title = page.title()
            target = out_dir / f"{plan.slug}.png"
            page.screenshot(path=str(target), full_page=True)
            visit.screenshot = target
        except PlaywrightError:
            pass  # the page went away under a step (a crash is recorded as its page error)
        return visit
    finally:
        page.close()


def _listen(page: Page, visit: PageVisit, blocked: set[str]) -> None:
    def on_console(message: ConsoleMessage) -> None:
        if message.type != "error" or message.text.startswith(LOAD_FAILURE_PREFIX):
            return
        where = message.location
        location = f"{where.get('url', '')}:{where.get('lineNumber', 0)}" if where.get("url") else ""
        visit.console_errors.append((message.text, location))

    def on_page_error(error: Exception) -> None:
        name = getattr(error, "name", "") or "Error"
        message = getattr(error, "message", "") or str(error)
        visit.page_errors.append(f"{name}: {message}")

    def on_failed(request: Request) -> None:
        failure = request.failure or "failed"
        visit.failed_requests.append(
            FailedRequest(request.url, request.method, None, failure, blocked=request.url in blocked)
        )

    def on_response(response: Response) -> None:
        if response.status >= 400:
            visit.failed_requests.append(
                FailedRequest(response.url, response.request.method, response.status)
            )

    page.on("console", on_console)
    page.on("pageerror", on_page_error)
    page.on("requestfailed", on_failed)
    page.on("response", on_response)


def _run_steps(page: Page, plan: PagePlan, visit: PageVisit, timeout_ms: int) -> None:
    failed = False
    for step in plan.steps:
        if failed:
            visit.steps.append(
                StepOutcome(step.index, step.action, step.selector, step.value, False, "", True)
            )
            continue
        error = _run_step(page, step, timeout_ms)
        failed = bool(error)
        visit.steps.append(StepOutcome(step.index, step.action, step.selector, step.value, not failed, error))


def _run_step(page: Page, step: Step, timeout_ms: int) -> str:
    """ "" when the step did what it says; otherwise why not, in one line."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect

    try:
        if step.action is StepAction.CLICK:
            page.locator(step.selector).first.click()
        elif step.action is StepAction.FILL:
            page.locator(step.selector).first.fill(step.value)
        elif step.action is StepAction.GOTO:
            page.goto(step.url, wait_until="load")
        elif step.action is StepAction.WAIT_FOR:
            page.locator(step.selector).first.wait_for(state="visible")
        else:
            where = step.selector or "body"
            expect(page.locator(where).first).to_contain_text(step.value, timeout=timeout_ms)
    except AssertionError:
        return f"text {step.value!r} not found in {step.selector or 'body'} within {timeout_ms} ms"
    except PlaywrightTimeout:
        if step.action is StepAction.GOTO:
            return f"{step.url} did not load within {timeout_ms} ms"
        return f"selector {step.selector!r} not found (or not actionable) within {timeout_ms} ms"
    except PlaywrightError as exc:
        return _first_line(str(exc))
    return ""


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else "unknown error"
