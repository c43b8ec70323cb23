"""A task that landed without its tests having run shows as "done (unverified)" on the dashboard:
on its node, in the task list, and in its run detail (with the reason), in a real headless Chromium.
The run detail also says when the agent ran unsandboxed, and why."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from speedrift import hubdir
from speedrift.fleet import attempts
from speedrift.graph import ops
from speedrift.graph.store import GraphStore
from speedrift.web.server import start_in_thread
from speedrift.web.views import task_nodes
from tests.builders import graph_of, task
from tests.conftest import NOW

TIMEOUT_MS = 30_000
WHY = "tests skipped: no tests found (add tests, or set [gates.tests] command in speedrift.toml)"
TASK = "invoice-numbers"


def test_a_done_task_without_verification_is_marked_on_its_node_with_the_reason() -> None:
    graph = graph_of(
        task("checked", "done", speedrift={"verified": True}),
        task("unchecked", "done", speedrift={"verified": False, "unverified_reason": WHY}),
        task("older", "done"),  # landed before verification was recorded: nothing is claimed
        task("open-one", "open", speedrift={"verified": False}),
    )
    nodes = task_nodes(graph, NOW)
    assert nodes["unchecked"]["unverified"] == WHY
    assert all("unverified" not in nodes[t] for t in ("checked", "older", "open-one"))


@pytest.fixture
def url(demo_eco: Path) -> Iterator[str]:
    billing = demo_eco.parent / "billing"
    store = GraphStore.of_repo(billing)
    assert store is not None
    data = {"verified": False, "unverified_reason": WHY, "landed_commit": "a" * 40}

    def land(graph: Any, now: Any) -> ops.Mutation:
        mutation = ops.done(graph, TASK, now=now, actor="test", force=True, message="Landed")
        ops.set_fields(graph, TASK, speedrift=data, now=now, actor="test", within=mutation)
        return mutation

    store.mutate(land, actor="test")
    folder = attempts.run_dir(billing, TASK, 1)
    attempts.write_attempt(folder, {"state": "done", "runtime": "shell", "landed_commit": "a" * 40})
    results = [{"gate": "tests", "status": "skipped", "reason": WHY.removeprefix("tests skipped: ")}]
    gates = [{"passed": True, "summary": "gates on aaaa: 1 skipped — unverified", "results": results}]
    unsandboxed = {"used": False, "why": "bwrap (bubblewrap) is not installed"}
    attempts.write_evidence(
        folder, {"verified": False, "unverified_reason": WHY, "gates": gates, "sandbox": unsandboxed}
    )
    server, _state = start_in_thread(demo_eco, "127.0.0.1", 0, watch_interval=0.05)
    token = hubdir.ensure_token(hubdir.hub_dir(demo_eco))
    try:
        yield f"{server.url}#token={token}"
    finally:
        server.stop()


@pytest.mark.browser
def test_the_dashboard_shows_done_unverified_on_the_task_and_why_in_its_run_detail(
    browser: Any, url: str, artifacts: Path
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(url)
        page.wait_for_selector("body[data-ready='1']")
        page.click("article.card[data-repo='billing']")
        item = page.wait_for_selector(f"#task-list li[data-task='{TASK}'][data-unverified='true']")
        assert item is not None and "done (unverified)" in item.inner_text()
        classes = page.evaluate(f"() => window.speedrift.cyNodes().find(n => n.id === 't:{TASK}').classes")
        assert "unverified" in classes
        page.click(f"#task-list li[data-task='{TASK}'] button")
        page.wait_for_selector("#run-dialog[open] >> text=no — tests skipped")
        body = page.locator("#run-body").inner_text()
        assert "done (unverified)" in body and "[gates.tests] command in speedrift.toml" in body
        assert "tests     skipped" in body  # one line per gate, as `speedrift run` prints them
        assert "not sandboxed: bwrap (bubblewrap) is not installed" in body  # the attempt's evidence
        page.screenshot(path=str(artifacts / "run-detail-unverified.png"))
    finally:
        context.close()
    assert errors == [], f"script errors on the page: {errors}"
