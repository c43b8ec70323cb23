"""The dashboard's layout in a real headless Chromium at phone, tablet and desktop widths: nothing
overflows sideways, every section can be reached, graph labels never overlap, the three graph
views carry their own legend, and queue items open with their whole prompt, Markdown rendered."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from speedrift import hubdir
from speedrift.control.cycle import run_once
from speedrift.graph.store import GraphStore
from speedrift.web.server import DashboardServer, start_in_thread

pytestmark = pytest.mark.browser
TIMEOUT_MS = 30_000
SECTIONS = ["narrative", "operational", "agents", "repos", "graphs", "queues"]
WIDTHS = {"phone": (390, 844), "tablet": (768, 1024), "desktop": (1440, 900)}
LONG = "Rework the invoice numbering scheme so that every legal entity keeps its own gap-free sequence"


@dataclass
class Live:
    eco: Path
    server: DashboardServer
    token: str

    @property
    def url(self) -> str:
        return f"{self.server.url}#token={self.token}"


def _add_tasks(repo: Path, tasks: list[dict[str, Any]]) -> None:
    store = GraphStore(repo / ".workgraph")
    store.replace_all(store.read_bytes() + b"".join(orjson.dumps(t) + b"\n" for t in tasks))


@pytest.fixture
def live(demo_eco: Path) -> Iterator[Live]:
    root = demo_eco.parent
    # a graph with long titles side by side (one rank) and in a chain, and a cross-repo edge
    _add_tasks(
        root / "billing",
        [
            {"kind": "task", "id": f"long-{i}", "title": f"{LONG} (part {i})", "status": "open"}
            for i in range(5)
        ]
        + [
            {"kind": "task", "id": "wrap-up", "title": LONG, "status": "open", "after": ["long-0", "long-1"]},
            {
                "kind": "task",
                "id": "use-api",
                "title": "Use the orders API",
                "status": "open",
                "after": ["shop-api:endpoints"],
            },
        ],
    )
    run_once(demo_eco, execute_actions=False)  # a recorded cycle: metrics, queues, narrative
    server, _state = start_in_thread(demo_eco, "127.0.0.1", 0, watch_interval=0.05)
    try:
        yield Live(demo_eco, server, hubdir.ensure_token(hubdir.hub_dir(demo_eco)))
    finally:
        server.stop()


def _page(browser: Any, size: tuple[int, int]) -> Any:
    context = browser.new_context(viewport={"width": size[0], "height": size[1]})
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    tab.errors = []
    tab.on("pageerror", lambda error: tab.errors.append(str(error)))
    return tab


@pytest.fixture(params=sorted(WIDTHS), ids=sorted(WIDTHS))
def sized_page(request: pytest.FixtureRequest, browser: Any) -> Iterator[Any]:
    tab = _page(browser, WIDTHS[request.param])
    yield tab
    tab.context.close()
    assert tab.errors == [], f"script errors on the page: {tab.errors}"


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    tab = _page(browser, WIDTHS["desktop"])
    yield tab
    tab.context.close()
    assert tab.errors == [], f"script errors on the page: {tab.errors}"


def _open(page: Any, live: Live) -> None:
    page.goto(live.url)
    page.wait_for_selector("body[data-ready='1']")
    page.wait_for_selector("#queue-list li.qitem")


def _no_sideways_overflow(page: Any) -> None:
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth,"
        " document.body.scrollWidth]"
    )
    assert widths[0] <= widths[1] and widths[2] <= widths[1], f"document wider than the viewport: {widths}"


def test_no_section_overflows_sideways_and_every_section_and_badge_can_be_reached(
    sized_page: Any, live: Live, artifacts: Path
) -> None:
    page = sized_page
    _open(page, live)
    page.wait_for_function("() => window.speedrift.cyNodes().length > 0")
    _no_sideways_overflow(page)
    width = page.evaluate("() => document.documentElement.clientWidth")
    for badge in ("#conn", "#auth-state", "#mode-badge"):
        box = page.locator(badge).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, badge
    for section in SECTIONS:
        locator = page.locator(f"#{section}")
        locator.scroll_into_view_if_needed()
        assert locator.is_visible(), section
        box = locator.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width + 0.5, section
    for button in page.locator("#queue-list li.qitem button").all():  # no queue button clipped
        box = button.bounding_box()
        assert box is not None and box["x"] + box["width"] <= width, button.inner_text()
    assert page.locator(".metric .formula").first.is_visible()  # formulas shown, not only on hover
    page.click("#tab-all")
    page.wait_for_function("() => window.speedrift.cyNodes().some(n => n.id.startsWith('r:'))")
    _no_sideways_overflow(page)
    page.screenshot(path=str(artifacts / "layout.png"), full_page=True)


def _overlaps(boxes: list[dict[str, Any]]) -> list[tuple[str, str]]:
    out = []
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            p, q = a["box"], b["box"]
            if p["x1"] < q["x2"] and q["x1"] < p["x2"] and p["y1"] < q["y2"] and q["y1"] < p["y2"]:
                out.append((a["id"], b["id"]))
    return out


def test_a_focused_graph_wraps_long_titles_and_no_two_label_boxes_overlap(page: Any, live: Live) -> None:
    _open(page, live)
    page.click("article.card[data-repo='billing']")
    page.wait_for_function("() => window.speedrift.cyNodes().some(n => n.id === 't:wrap-up')")
    page.wait_for_timeout(300)  # the layout's fit
    boxes = page.evaluate("() => window.speedrift.cyBoxes()")
    assert len(boxes) >= 8
    assert _overlaps(boxes) == []
    long_box = next(b["box"] for b in boxes if b["id"] == "t:wrap-up")
    short_box = next(b["box"] for b in boxes if b["id"] == "t:invoice-numbers")
    assert long_box["h"] > 2 * short_box["h"]  # the long title wraps onto lines of its own
    assert page.evaluate("() => window.speedrift.zoom()") > 0.3  # the graph fills its canvas
    assert not page.locator("#legend-tasks").is_hidden() and page.locator("#legend-tiers").is_hidden()
    assert page.locator("#task-list li[data-task='wrap-up']").is_visible()
    box = page.locator("#cy").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    before = page.evaluate("() => window.speedrift.zoom()")
    page.mouse.wheel(0, -100)  # one notch of a mouse wheel zooms in noticeably
    page.wait_for_function(f"() => window.speedrift.zoom() > {before} * 1.1")


def test_the_all_repos_view_boxes_each_repo_and_draws_cross_repo_edges_with_the_task_legend(
    page: Any, live: Live, artifacts: Path
) -> None:
    _open(page, live)
    page.click("#tab-all")
    page.wait_for_function("() => window.speedrift.cyNodes().some(n => n.id === 'a:billing:use-api')")
    nodes = page.evaluate("() => window.speedrift.cyNodes()")
    repos = {n["id"][2:] for n in nodes if n["id"].startswith("r:")}
    assert {"billing", "shop-api", "search"} <= repos
    tasks_by_repo = {n["id"].split(":")[1] for n in nodes if n["id"].startswith("a:")}
    assert len(tasks_by_repo) >= 2
    edges = page.evaluate("() => window.speedrift.cyEdges()")
    cross = [e for e in edges if "cross" in e["classes"]]
    assert [(e["source"], e["target"]) for e in cross] == [("a:shop-api:endpoints", "a:billing:use-api")]
    boxes = [b for b in page.evaluate("() => window.speedrift.cyBoxes()")]
    assert _overlaps(boxes) == []
    assert not page.locator("#legend-tasks").is_hidden() and page.locator("#legend-tiers").is_hidden()
    assert page.locator("#task-list").is_hidden()
    assert "tasks in" in page.inner_text("#graph-note")
    page.screenshot(path=str(artifacts / "all-repos.png"))


def test_the_inter_repo_view_has_the_tier_legend_and_no_task_list(page: Any, live: Live) -> None:
    _open(page, live)
    page.click("#tab-eco")
    page.wait_for_function("() => window.speedrift.cyNodes().some(n => n.id === 'shop-api')")
    assert page.locator("#legend-tiers").is_visible() and page.locator("#legend-tasks").is_hidden()
    assert page.locator("#tasks-heading").is_hidden() and page.locator("#task-list").is_hidden()
    page.click("#tab-repo")
    assert page.locator("#legend-tasks").is_visible() and page.locator("#tasks-heading").is_visible()


def test_a_queue_item_opens_its_detail_with_the_whole_prompt_and_markdown_renders_as_code(
    page: Any, live: Live, artifacts: Path
) -> None:
    _open(page, live)
    queues = page.locator("#queue-list")
    assert "`" not in queues.inner_text()  # backticks became code, not raw Markdown
    assert queues.locator(".why code").count() >= 1
    item = "dep-missing:search:ranking:tokenizer"
    page.click(f"#queue-list li.qitem[data-item='{item}'] button.open-item")
    dialog = page.locator("#queue-dialog")
    page.wait_for_selector("#queue-body [data-prompt='claude'] .prompt")
    assert dialog.is_visible()
    prompt = page.evaluate(
        "async () => (await (await fetch('/api/queues')).json()).queues.dependency.items"
        f".find(i => i.id === '{item}').prompts.claude"
    )
    shown = page.inner_text("#queue-body [data-prompt='claude'] .prompt")
    last_line = [line for line in prompt.splitlines() if line.strip()][-1]
    assert prompt.splitlines()[0] in shown and last_line in shown  # the whole prompt, readable
    assert page.locator("#queue-body [data-prompt='claude'] .prompt code").count() >= 1
    assert "`" not in shown
    page.screenshot(path=str(artifacts / "queue-detail.png"))
    page.click("#queue-dialog button.close")
    assert not dialog.is_visible()
    page.click(f"#queue-list li.qitem[data-item='{item}'] .why")  # the item's text opens it too
    page.wait_for_selector("#queue-dialog[open] #queue-body [data-prompt='codex']")


def test_the_favicon_is_served_and_the_header_links_the_metrics_page(page: Any, live: Live) -> None:
    response = httpx.get(live.server.url.rstrip("/") + "/favicon.ico", timeout=30)
    assert response.status_code == 200 and response.headers["content-type"].startswith("image/svg+xml")
    assert b"<svg" in response.content
    _open(page, live)
    assert page.get_attribute("header nav a", "href") == "/metrics"
    assert page.inner_text("header nav a") == "Metrics"


def test_queue_markdown_is_built_from_text_nodes_and_links_only_to_http(page: Any, live: Live) -> None:
    _open(page, live)
    item = {
        "id": "hostile",
        "repo": "billing",
        "what": "**bold** `a <b>` <img src=x onerror=window.pwned=1>",
        "why": "[bad](javascript:window.pwned=1) [good](https://example.org/a)\n\n- one\n- two",
        "priority": 10,
        "since": None,
        "task": None,
        "action_id": None,
        "approvable": False,
    }
    page.evaluate(
        "(item) => window.speedrift.inject({type: 'delta', seq: window.speedrift.seq() + 1,"
        " queues: {human: {label: 'Waiting on a human', total: 1, items: [item]}}})",
        item,
    )
    shown = page.locator("#queue-list li.qitem[data-item='hostile']")
    shown.wait_for()
    assert shown.locator("img").count() == 0 and shown.locator("b").count() == 0
    assert shown.locator("strong").inner_text() == "bold"
    assert shown.locator("code").inner_text() == "a <b>"
    assert "<img src=x" in shown.locator(".what").inner_text()  # shown as text
    links = shown.locator("a")
    assert links.count() == 1 and links.get_attribute("href") == "https://example.org/a"
    assert "[bad](javascript:" in shown.inner_text()
    assert shown.locator(".why li").count() == 2
    assert page.evaluate("() => window.pwned === undefined")
