"""uxdrift against a real static site (tests/lanes/uxsite) in the system Chromium: one planted
problem per finding kind, a clean site, the host guard, the ``serve`` lifecycle and the artifacts.

The browser tests need Chromium exactly as the dashboard's do (scripts/test installs Debian's);
without it they fail, never skip.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import shlex
import shutil
import socket
import sys
import threading
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from speedrift import layout, procs
from speedrift.errors import SpeedriftError
from speedrift.lanes import fences
from speedrift.lanes.builtin._uxbrowser import find_chromium
from speedrift.lanes.builtin.uxdrift import LANE
from speedrift.lanes.context import LaneContext, RepoView
from speedrift.lanes.model import LaneFinding, Severity
from speedrift.lanes.spec import LaneOutput, check_settings
from tests.conftest import NOW
from tests.gitrepo import make_repo, sh_git

SITE = Path(__file__).parent / "uxsite"
TASK = "t-ux"
FAST = 2000  # ms: a missing selector gives up after this


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def static_site(directory: Path) -> Iterator[str]:
    """The directory served on 127.0.0.1 (a free port) in a thread; its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def site() -> Iterator[str]:
    with static_site(SITE) as url:
        yield url


@pytest.fixture
def chromium() -> str:
    found = find_chromium()
    if found is None:
        pytest.fail("no Chromium on PATH: `apt-get install chromium` (scripts/ set it up)")
    return found


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo", {"README.md": "# shop\n"})


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def check(
    repo: Path,
    settings: Mapping[str, Any] | None = None,
    fence_text: str | None = None,
    now_offset_s: int = 0,
) -> LaneOutput:
    """The lane run as the runner runs it: policy settings checked against the defaults, the task's
    fence parsed (or its error passed on), the lane's own state dir."""
    task: dict[str, Any] | None = None
    fence: dict[str, Any] | None = None
    error: str | None = None
    if fence_text is not None:
        task = {"id": TASK, "description": f"Check the shop's UX.\n\n```uxdrift\n{fence_text}\n```\n"}
        try:
            fence = fences.fence(task["description"], "uxdrift")
        except fences.FenceError as exc:
            error = str(exc)
    ctx = LaneContext(
        lane="uxdrift",
        view=RepoView.at(repo),
        now=NOW + timedelta(seconds=now_offset_s),
        settings=check_settings(LANE, settings or {}),
        task=task,
        fence=fence,
        fence_error=error,
        state_dir=layout.lane_dir(repo, "uxdrift"),
    )
    return LANE.run(ctx)


def of_kind(output: LaneOutput, kind: str) -> list[LaneFinding]:
    return [f for f in output.findings if f.kind == kind]


def run_record(repo: Path, output: LaneOutput) -> dict[str, Any]:
    [path] = [a for a in output.artifacts if a.endswith("run.json")]
    record: dict[str, Any] = orjson.loads((repo / path).read_bytes())
    return record


@pytest.mark.browser
@pytest.mark.usefixtures("chromium")
def test_a_clean_site_whose_steps_all_work_gives_no_findings_and_a_screenshot_per_page(
    repo: Path, site: str
) -> None:
    steps = [
        {"action": "fill", "selector": "#name", "value": "Ada", "page": "/clean.html"},
        {"action": "click", "selector": "#go", "page": "/clean.html"},
        {"action": "wait_for", "selector": "#greeting", "page": "/clean.html"},
        {"action": "expect_text", "selector": "#greeting", "value": "Hello, Ada", "page": "/clean.html"},
        {"action": "goto", "value": "/about.html", "page": "/clean.html"},
        {"action": "expect_text", "value": "About the greeter", "page": "/clean.html"},
    ]
    output = check(repo, {"url": site, "pages": ["/clean.html", "/about.html"], "steps": steps})

    assert list(output.findings) == []
    assert output.summary == "2/2 pages opened, no problems seen"
    shots = [a for a in output.artifacts if a.endswith(".png")]
    assert shots == [
        ".speedrift/lanes/uxdrift/runs/20261120T120000.000000Z/repo/00-clean.html.png",
        ".speedrift/lanes/uxdrift/runs/20261120T120000.000000Z/repo/01-about.html.png",
    ]
    for shot in shots:
        assert (repo / shot).read_bytes().startswith(b"\x89PNG")
    record = run_record(repo, output)
    first = record["pages"][0]
    assert [s["ok"] for s in first["steps"]] == [True] * 6
    assert first["final_url"] == f"{site}/about.html"  # the goto step took the page there
    assert record["pages"][1]["title"] == "About"


@pytest.mark.browser
@pytest.mark.usefixtures("chromium")
def test_a_console_error_is_a_finding_keyed_by_page_and_text_whatever_the_port(repo: Path) -> None:
    fingerprints = []
    for offset in (0, 1):  # two servers, two ports, one finding
        with static_site(SITE) as url:
            output = check(repo, fence_text=f'url = "{url}"\npages = ["/console.html"]', now_offset_s=offset)
        [finding] = output.findings
        fingerprints.append(finding.fingerprint)

    assert finding.kind == "console_error"
    assert finding.severity is Severity.WARNING
    assert finding.subject == TASK  # configured by the task's fence: the task's finding
    assert finding.key == "/console.html|inventory widget failed to render item #"
    assert "inventory widget failed to render item 42" in finding.message
    assert any(e.startswith("screenshot: .speedrift/lanes/uxdrift/runs/") for e in finding.evidence)
    assert fingerprints[0] == fingerprints[1]
    assert f"/{TASK}/" in run_record(repo, output)["pages"][0]["screenshot"]


@pytest.mark.browser
@pytest.mark.usefixtures("chromium")
def test_an_uncaught_exception_is_a_page_error(repo: Path, site: str) -> None:
    output = check(repo, {"url": site, "pages": ["/throws.html"]})

    [finding] = output.findings
    assert finding.kind == "page_error"
    assert finding.severity is Severity.ERROR
    assert finding.key == "/throws.html|TypeError: checkout state lost"
    assert finding.subject == ""  # configured by the policy: a repo-level finding


@pytest.mark.browser
@pytest.mark.usefixtures("chromium")
def test_a_missing_resource_is_a_failed_request_naming_its_path_and_status(repo: Path, site: str) -> None:
    output = check(repo, {"url": site, "pages": ["/missing.html"]})

    # Chromium's own "Failed to load resource" console line is not a second finding
    [finding] = output.findings
    assert finding.kind == "failed_request"
    assert finding.key == "/missing.html|/data/prices.json|404"
    assert "GET /data/prices.json from /missing.html answered 404" in finding.message
    assert finding.severity is Severity.WARNING


@pytest.mark.browser
@pytest.mark.usefixtures("chromium")
def test_a_request_to_another_host_is_blocked_and_reported_never_sent(repo: Path, site: str) -> None:
    output = check(repo, {"url": site, "pages": ["/offsite.html"]})

    [finding] = output.findings
    assert finding.kind == "failed_request"
    assert finding.key == "/offsite.html|assets.example.com/logo.png|blocked"
    assert "blocked: assets.example.com is not an allowed host" in finding.message
    [request] = run_record(repo, output)["pages"][0]["failed_requests"]
    assert request["blocked"] is True


@pytest.mark.browser
@pytest.mark.usefixtures("chromium")
def test_a_step_whose_selector_is_missing_fails_and_the_later_steps_are_skipped(
    repo: Path, site: str
) -> None:
    steps = [
        {"action": "click", "selector": "#go"},
        {"action": "click", "selector": "#checkout-button"},
        {"action": "expect_text", "value": "Thanks"},
    ]
    output = check(repo, {"url": site, "pages": ["/clean.html"], "steps": steps, "timeout_ms": FAST})

    [finding] = output.findings
    assert finding.kind == "step_failed"
    assert finding.key == "/clean.html|1|click"
    assert "selector '#checkout-button' not found" in finding.message
    assert "selector: #checkout-button" in finding.evidence
    outcomes = run_record(repo, output)["pages"][0]["steps"]
    assert [(s["ok"], s["skipped"]) for s in outcomes] == [(True, False), (False, False), (False, True)]


@pytest.mark.browser
@pytest.mark.usefixtures("chromium")
def test_text_a_page_does_not_show_is_a_failed_expect_text_step(repo: Path, site: str) -> None:
    steps = [{"action": "expect_text", "selector": "h1", "value": "Order confirmed"}]
    output = check(repo, {"url": site, "pages": ["/about.html"], "steps": steps, "timeout_ms": FAST})

    [finding] = output.findings
    assert finding.kind == "step_failed"
    assert finding.key == "/about.html|0|expect_text"
    assert "'Order confirmed' not found in h1" in finding.message


@pytest.mark.browser
@pytest.mark.usefixtures("chromium")
def test_a_page_nothing_answers_for_is_unreachable(repo: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    output = check(repo, {"url": url, "pages": ["/", "/settings"]})

    assert [(f.kind, f.key) for f in output.findings] == [
        ("page_unreachable", "/"),
        ("page_unreachable", "/settings"),
    ]
    assert all("ERR_CONNECTION_REFUSED" in f.message for f in output.findings)
    assert not [a for a in output.artifacts if a.endswith(".png")]
    assert output.summary == "0/2 pages opened, 2 problems"


@pytest.mark.browser
@pytest.mark.usefixtures("chromium")
def test_serve_starts_the_app_from_a_checkout_of_head_and_stops_its_whole_group(repo: Path) -> None:
    for name in ("clean.html", "greeter.js"):
        shutil.copy(SITE / name, repo / name)
    sh_git(repo, "add", "-A")
    sh_git(repo, "commit", "-q", "-m", "site")
    (repo / "clean.html").write_text("not committed: never served\n")
    port = free_port()
    command = f"{shlex.quote(sys.executable)} -m http.server {port} --bind 127.0.0.1"
    steps = [{"action": "click", "selector": "#go"}]
    settings = {"url": f"http://127.0.0.1:{port}", "pages": ["/clean.html"], "steps": steps, "serve": command}

    output = check(repo, settings)

    assert list(output.findings) == []
    served = run_record(repo, output)["serve"]
    assert served["ready"] is True
    assert served["cwd"].startswith("a checkout of ")
    assert not procs.group_alive(served["pid"])
    with socket.socket() as again:  # the port is free again
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))
    assert any(a.endswith("serve.log") for a in output.artifacts)


@pytest.mark.browser
@pytest.mark.usefixtures("chromium")
def test_a_serve_command_that_never_answers_leaves_the_pages_unreachable_and_is_stopped(repo: Path) -> None:
    port = free_port()
    command = f"{shlex.quote(sys.executable)} -c 'import time; time.sleep(600)'"
    settings = {"url": f"http://127.0.0.1:{port}", "pages": ["/"], "serve": command, "timeout_ms": 1000}

    output = check(repo, settings)

    [finding] = output.findings
    assert finding.kind == "page_unreachable"
    assert any("did not answer within 1000 ms" in e for e in finding.evidence)
    assert not procs.group_alive(run_record(repo, output)["serve"]["pid"])


@pytest.mark.browser
@pytest.mark.usefixtures("chromium")
def test_a_requested_critique_is_an_info_finding_saying_the_lane_does_not_run_it(
    repo: Path, site: str
) -> None:
    fence = f'url = "{site}"\npages = ["/about.html"]\nllm = true\ngoals = ["No console errors"]'
    output = check(repo, fence_text=fence)

    [finding] = output.findings
    assert finding.kind == "critique_unavailable"
    assert finding.severity is Severity.INFO
    assert "speedrift roles" in finding.message
    assert "goals: No console errors" in finding.evidence
    assert run_record(repo, output)["brief"]["goals"] == ["No console errors"]


@pytest.mark.browser
@pytest.mark.usefixtures("chromium")
def test_only_the_newest_keep_runs_run_directories_are_kept(repo: Path, site: str) -> None:
    runs = layout.lane_dir(repo, "uxdrift") / "runs"
    for older in ("20261120T115800.000000Z", "20261120T115900.000000Z"):
        (runs / older / "repo").mkdir(parents=True)
    (runs / "notes").mkdir()  # not a run: never pruned

    check(repo, {"url": site, "pages": ["/about.html"], "keep_runs": 2})

    assert sorted(p.name for p in runs.iterdir()) == [
        "20261120T115900.000000Z",
        "20261120T120000.000000Z",
        "notes",
    ]


def test_a_url_on_another_host_is_refused_before_any_browser_starts(repo: Path) -> None:
    output = check(repo, {"url": "https://shop.example.com", "pages": ["/"]})

    [finding] = output.findings
    assert (finding.kind, finding.key, finding.severity) == ("invalid_ux_config", "url", Severity.ERROR)
    assert "not an http(s) URL on an allowed host" in finding.message
    assert not (layout.lane_dir(repo, "uxdrift") / "runs").exists()


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"url": "http://127.0.0.1:8000", "pages": ["http://example.org/x"]}, "pages[0]"),
        (
            {
                "url": "http://127.0.0.1:8000",
                "pages": ["/"],
                "steps": [{"action": "goto", "value": "http://evil.test/"}],
            },
            "steps[0].value",
        ),
        (
            {"url": "http://127.0.0.1:8000", "pages": ["/"], "steps": [{"action": "hover", "selector": "a"}]},
            "steps[0].action",
        ),
        (
            {"url": "http://127.0.0.1:8000", "pages": ["/"], "steps": [{"action": "click"}]},
            "steps[0].selector",
        ),
        (
            {
                "url": "http://127.0.0.1:8000",
                "pages": ["/"],
                "steps": [{"action": "click", "selector": "a", "page": "/x"}],
            },
            "steps[0].page",
        ),
        ({"url": "http://127.0.0.1:8000", "pages": ["/"], "viewport": "wide"}, "viewport"),
        ({"url": "http://127.0.0.1:8000", "pages": ["/"], "keep_runs": 0}, "keep_runs"),
        ({"pages": ["/"]}, "url"),
    ],
)
def test_an_unusable_configuration_is_an_invalid_ux_config_naming_the_key(
    repo: Path, settings: dict[str, Any], key: str
) -> None:
    output = check(repo, settings)

    assert [(f.kind, f.key) for f in output.findings] == [("invalid_ux_config", key)]
    assert output.findings[0].fix


def test_a_task_cannot_start_a_command_or_widen_the_allowed_hosts(repo: Path) -> None:
    fence = (
        'url = "http://127.0.0.1:8000"\npages = ["/"]\nserve = "make run"\nallowed_hosts = ["example.com"]'
    )
    output = check(repo, fence_text=fence)

    assert sorted(f.key for f in output.findings) == ["allowed_hosts", "serve"]
    assert all(f.kind == "invalid_ux_config" and f.subject == TASK for f in output.findings)
    assert all("drift-policy.toml" in f.fix for f in output.findings)


def test_a_fence_that_is_not_toml_is_an_invalid_ux_config(repo: Path) -> None:
    output = check(repo, fence_text='url = "http://127.0.0.1:8000\npages = ["/"]')

    [finding] = output.findings
    assert (finding.kind, finding.key, finding.subject) == ("invalid_ux_config", "fence", TASK)


def test_without_declared_pages_the_lane_finds_nothing(repo: Path) -> None:
    output = check(repo, {})

    assert list(output.findings) == []
    assert output.summary == "no pages declared"


def test_without_chromium_the_lane_raises_rather_than_passing(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    view = RepoView.at(repo)
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    ctx = LaneContext(
        lane="uxdrift",
        view=view,
        now=NOW,
        settings=check_settings(LANE, {"url": "http://127.0.0.1:8000", "pages": ["/"]}),
        state_dir=layout.lane_dir(repo, "uxdrift"),
    )

    with pytest.raises(SpeedriftError, match="no Chromium found") as raised:
        LANE.run(ctx)
    assert "apt-get install chromium" in str(raised.value)
