"""The dashboard in a real headless Chromium against a real server over the demo ecosystem."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from speedrift import hubdir
from speedrift.control.controlfile import read_control
from speedrift.control.cycle import run_once
from speedrift.fleet import attempts
from speedrift.graph import ops
from speedrift.graph.store import GraphStore
from speedrift.web.live import DashboardState
from speedrift.web.server import DashboardServer, start_in_thread
from tests.web.conftest import browser_tab

pytestmark = pytest.mark.browser
SECTIONS = ["narrative", "operational", "repos", "graphs", "queues"]


@dataclass
class Live:
    eco: Path
    server: DashboardServer
    token: str
    cycle: dict[str, Any]
    state: DashboardState

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def url_with_token(self) -> str:
        return f"{self.server.url}#token={self.token}"


@pytest.fixture
def live(demo_eco: Path) -> Iterator[Live]:
    cycle = run_once(demo_eco, execute_actions=False)  # a recorded cycle: metrics, queues, narrative
    server, state = start_in_thread(demo_eco, "127.0.0.1", 0, watch_interval=0.05)
    token = hubdir.ensure_token(hubdir.hub_dir(demo_eco))
    try:
        yield Live(demo_eco, server, token, cycle, state)
    finally:
        server.stop()


@pytest.fixture
def page(browser: Any, live: Live) -> Iterator[Any]:
    with browser_tab(browser, permissions=["clipboard-read", "clipboard-write"]) as tab:
        yield tab


def _open(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']")


def test_the_five_sections_come_in_contract_order_and_a_card_focuses_its_graph(
    page: Any, live: Live, artifacts: Path
) -> None:
    _open(page, live.url_with_token)
    order = page.evaluate(
        "() => [...document.querySelectorAll('section[data-section]')]"
        ".map(s => [s.id, s.getBoundingClientRect().top, s.offsetHeight])"
    )
    assert [section_id for section_id, _top, _height in order] == SECTIONS
    tops = [top for _id, top, _height in order]
    assert tops == sorted(tops) and all(height > 0 for *_rest, height in order)
    observe, execute = "OBSERVE · plan only", "EXECUTE"
    assert page.locator("#mode-badge").inner_text() == (observe if live.cycle["plan_only"] else execute)
    flipped = {
        **live.cycle,
        "cycle_id": live.cycle["cycle_id"] + "-next",
        "plan_only": not live.cycle["plan_only"],
    }
    live.state.publish_cycle(flipped)  # the next cycle arrives: the badge follows without a reload
    page.wait_for_selector(f"#mode-badge >> text={execute if live.cycle['plan_only'] else observe}")
    assert page.locator("#narrative-text").inner_text().strip()
    assert page.locator(".metric").count() == 4
    assert page.locator("#auth-state").inner_text() == "token ok"
    page.screenshot(path=str(artifacts / "overview.png"), full_page=True)

    page.click("article.card[data-repo='search']")
    page.wait_for_function("() => window.speedrift.focused() === 'search'")
    page.wait_for_selector("#task-list li[data-task='ranking']")
    assert page.locator("#focused-name").inner_text() == "search"
    page.wait_for_function("() => window.speedrift.cyNodes().some(n => n.id === 't:tokenizer')")
    missing = page.evaluate("() => window.speedrift.cyNodes().find(n => n.id === 't:tokenizer').classes")
    assert "missing" in missing

    # a gap in seq (a delta was missed): the page asks for a resync and is whole again
    server_seq = live.state.seq
    page.evaluate("() => window.speedrift.inject({type: 'delta', seq: window.speedrift.seq() + 5})")
    page.wait_for_function(
        f"() => window.speedrift.resyncs() === 1 && window.speedrift.seq() === {server_seq}"
    )

    page.focus("article.card[data-repo='billing']")  # the keyboard path: focus a card, press Enter
    page.keyboard.press("Enter")
    page.wait_for_selector("#task-list li[data-task='statements']")
    assert page.locator("#focused-name").inner_text() == "billing"
    page.click("#tab-eco")
    page.wait_for_function("() => window.speedrift.cyNodes().length === 5")
    page.screenshot(path=str(artifacts / "graphs.png"), full_page=True)


def test_a_done_on_disk_shows_on_the_open_page_without_reload(page: Any, live: Live, artifacts: Path) -> None:
    billing = live.eco.parent / "billing"
    folder = attempts.run_dir(billing, "refunds", 1)
    machine = {"executor": "dask", "worker": "tcp://127.0.0.1:40111", "host": "worker-box"}
    attempts.write_attempt(
        folder, {"state": "failed", "runtime": "shell", "failure": "regression", "machine": machine}
    )
    attempts.write_evidence(folder, {"gates": [{"gate": "tests", "passed": False, "summary": "3 failed"}]})
    _open(page, live.url_with_token)
    page.evaluate("() => { window.__noReload = true; }")
    page.click("article.card[data-repo='billing']")
    page.focus("article.card[data-repo='billing']")
    page.wait_for_selector("#task-list li[data-task='invoice-numbers'][data-status='ready']")
    page.wait_for_selector(
        "#task-list li[data-task='statements'][data-status='blocked'], "
        "#task-list li[data-task='statements'][data-status='open']"
    )
    page.evaluate(
        "() => { window.__oldCard = document.querySelector(\"article.card[data-repo='billing']\"); }"
    )
    done = subprocess.run(
        [sys.executable, "-m", "speedrift", "--dir", str(billing / ".workgraph"), "done", "invoice-numbers"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    page.wait_for_selector("#task-list li[data-task='invoice-numbers'][data-status='done']")
    page.wait_for_selector("#task-list li[data-task='statements'][data-status='ready']")
    assert page.evaluate("() => window.__noReload") is True
    # the same delta re-rendered the card (new counts); keyboard focus moved to the new one
    assert page.evaluate(
        "() => document.querySelector(\"article.card[data-repo='billing']\") !== window.__oldCard"
    )
    assert page.evaluate("() => document.activeElement.dataset.repo") == "billing"
    page.screenshot(path=str(artifacts / "after-done.png"), full_page=True)

    page.click("#task-list li[data-task='refunds'] button")  # run detail: one click from the task
    page.wait_for_selector("#run-dialog[open] >> text=3 failed")
    assert "regression" in page.locator("#run-body").inner_text()
    assert "tcp://127.0.0.1:40111" in page.locator("#run-body button[data-machine]").first.inner_text()
    assert "machine\ntcp://127.0.0.1:40111" in page.locator("#run-body dl.kv").last.inner_text()
    page.screenshot(path=str(artifacts / "run-detail.png"))


def test_the_copy_button_puts_the_prompt_on_the_clipboard(page: Any, live: Live) -> None:
    _open(page, live.url_with_token)
    item = page.locator("#queue-list li.qitem[data-item='dep-missing:search:ranking:tokenizer']")
    button = item.locator("button[data-copy='claude']")
    button.wait_for()
    page.wait_for_function(
        "() => !document.querySelector(\"li[data-item='dep-missing:search:ranking:tokenizer'] "
        "button[data-copy='claude']\").disabled"
    )
    expected = page.evaluate(
        "async () => (await (await fetch('/api/queues')).json()).queues.dependency.items"
        ".find(i => i.id === 'dep-missing:search:ranking:tokenizer').prompts.claude"
    )
    button.click()
    page.wait_for_selector("#toast.show >> text=claude prompt copied")
    assert page.evaluate("() => navigator.clipboard.readText()") == expected
    item.locator("button[data-copy='codex']").click()
    copied = page.evaluate("() => navigator.clipboard.readText()")
    assert copied.startswith("TASK: ") and copied != expected


def test_a_mode_change_is_refused_without_the_token_and_applied_with_it(
    page: Any, live: Live, artifacts: Path
) -> None:
    _open(page, live.url)  # no token in this tab
    assert page.locator("#auth-state").inner_text() == "read-only: no token"
    page.click("article.card[data-repo='billing'] button.mode-btn")
    page.select_option("#mode-select", "supervise")
    page.fill("#mode-ttl", "2h")
    page.click("#mode-submit")
    page.wait_for_selector("#mode-error >> text=token required (401)")
    assert read_control(live.eco.parent / "billing").mode == "observe"
    page.screenshot(path=str(artifacts / "mode-refused.png"))

    page.goto(live.url_with_token)
    page.reload()  # the token now lives in this tab's sessionStorage, the URL is clean again
    page.wait_for_selector("body[data-ready='1']")
    assert "token" not in page.url
    page.click("article.card[data-repo='billing'] button.mode-btn")
    page.select_option("#mode-select", "supervise")
    page.fill("#mode-ttl", "2h")
    page.click("#mode-submit")
    page.wait_for_selector("article.card[data-repo='billing'] button.mode-btn >> text=mode: supervise")
    control = read_control(live.eco.parent / "billing")
    assert control.mode == "supervise" and control.lease_expires_at is not None
    page.screenshot(path=str(artifacts / "mode-applied.png"))


def test_a_big_graph_shows_its_active_neighbourhood_until_show_all(page: Any, live: Live) -> None:
    store = GraphStore(live.eco.parent / "shop-api" / ".workgraph")
    lines = [
        orjson.dumps({"kind": "task", "id": f"old-{i}", "title": f"old {i}", "status": "done"})
        for i in range(340)
    ]
    lines.append(
        orjson.dumps(
            {"kind": "task", "id": "next-step", "title": "next", "status": "open", "after": ["old-7"]}
        )
    )
    lines.append(
        orjson.dumps(
            {"kind": "task", "id": "later", "title": "later", "status": "open", "after": ["next-step"]}
        )
    )
    before = len(store.load().tasks)  # the demo's own shop-api tasks
    store.replace_all(store.read_bytes() + b"\n".join(lines) + b"\n")
    _open(page, live.url_with_token)
    page.click("article.card[data-repo='shop-api']")
    page.wait_for_selector("#graph-note >> text=the active neighbourhood")
    total = before + len(lines)
    shown = {n["id"] for n in page.evaluate("() => window.speedrift.cyNodes()")}
    assert {"t:next-step", "t:old-7", "t:later"} <= shown  # ready, its blocker, its dependent
    assert "t:old-200" not in shown and len(shown) < 20
    page.check("#show-all")
    page.wait_for_selector(f"#graph-note >> text={total} tasks")
    assert len(page.evaluate("() => window.speedrift.cyNodes()")) == total


def test_a_task_in_another_repo_is_drawn_with_its_status_there_not_as_missing(
    page: Any, live: Live, artifacts: Path
) -> None:
    search = GraphStore(live.eco.parent / "search" / ".workgraph")
    after = ["shop-api:design-api", "shop-api:dep-review", "billing:nope"]
    feed = {"kind": "task", "id": "feed", "title": "feed", "status": "open", "after": after}
    search.replace_all(search.read_bytes() + orjson.dumps(feed) + b"\n")
    _open(page, live.url_with_token)
    page.click("article.card[data-repo='search']")
    page.wait_for_function("() => window.speedrift.cyNodes().some(n => n.id === 't:billing:nope')")
    classes = {n["id"]: n["classes"] for n in page.evaluate("() => window.speedrift.cyNodes()")}
    assert "peer-done" in classes["t:shop-api:design-api"]
    assert "missing" not in classes["t:shop-api:design-api"]
    assert "peer-pending" in classes["t:shop-api:dep-review"]
    assert "missing" in classes["t:billing:nope"]  # no such task there: a real break
    page.screenshot(path=str(artifacts / "peer-dependencies.png"))

    shop_api = GraphStore(live.eco.parent / "shop-api" / ".workgraph")
    shop_api.mutate(lambda g, now: ops.done(g, "dep-review", now=now, actor="me"))
    page.wait_for_function(  # the peer's graph changed: the dependent repo's view follows
        "() => window.speedrift.cyNodes()"
        ".find(n => n.id === 't:shop-api:dep-review').classes.includes('peer-done')"
    )
