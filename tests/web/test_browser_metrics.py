"""The flow metrics page in a real headless Chromium against a real server over the demo ecosystem:
its charts and figures show the numbers `speedrift metrics --json` prints for the same ecosystem."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from speedrift import hubdir
from speedrift.fleet import answers
from speedrift.fleet.config import RepoConfig
from speedrift.fleet.pipeline import Pipeline, RunOptions
from speedrift.gates.suite import for_repo
from speedrift.graph import ops
from speedrift.graph.store import GraphStore
from speedrift.web.server import start_in_thread
from tests.cli.support import Cli
from tests.fleet.asking import asked
from tests.web.conftest import browser_tab

pytestmark = pytest.mark.browser


def _attempts(repo: Path) -> None:
    """Real shell-task attempts in ``repo`` through the real gates: two land, one fails, one is
    blocked by a gate; a question asked and answered."""
    store = GraphStore.of_repo(repo)
    assert store is not None
    tasks = {
        "metrics-one": "echo one > one.txt",
        "metrics-two": "echo two > two.txt",
        "metrics-bad": "exit 3",
        "metrics-syntax": "printf 'def broken(:\\n' > broken_metrics.py",
    }
    config = RepoConfig.model_validate({"gates": {"skip": ["sast", "sca"]}})
    suite = for_repo(config.gates, store, config.target_branch)
    for task_id, command in tasks.items():
        spec = ops.NewTask(task_id, task_id=task_id, exec_command=command)
        store.mutate(lambda g, now, spec=spec: ops.add_task(g, spec, now=now, actor="test"))  # type: ignore[misc]
    for task_id in tasks:
        Pipeline(repo, store, config, gates=suite).run(task_id, RunOptions(force=True))
    store.mutate(
        lambda g, now: ops.add_task(g, ops.NewTask("Ask", task_id="metrics-ask"), now=now, actor="t")
    )
    _request, question = asked(repo, store, "metrics-ask", "Which currency?")
    answers.answer(repo, store, RepoConfig(), question.id, "EUR.", name="alice")


@pytest.fixture
def served(demo_eco: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    repos = sorted(p.parent.name for p in demo_eco.parent.glob("*/.git"))
    _attempts(demo_eco.parent / repos[0])
    server, _state = start_in_thread(demo_eco, "127.0.0.1", 0, watch_interval=0.05)
    token = hubdir.ensure_token(hubdir.hub_dir(demo_eco))
    expected = Cli(demo_eco.parent).json("metrics", "--ecosystem", str(demo_eco))
    try:
        yield f"{server.url.rstrip('/')}/metrics#token={token}", expected
    finally:
        server.stop()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    with browser_tab(browser) as tab:
        yield tab


def rate(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}%"


def _texts(page: Any, selector: str, attribute: str) -> dict[str, str]:
    found: dict[str, str] = page.evaluate(
        """([selector, attribute]) => Object.fromEntries(Array.from(document.querySelectorAll(selector))
             .map((node) => [node.getAttribute(attribute), node.textContent]))""",
        [selector, attribute],
    )
    return found


def _check_scope(page: Any, expected: dict[str, Any]) -> None:
    figure = _texts(page, "[data-figure] [data-role=value]", "data-role")  # one value per key below
    assert figure  # the figures rendered
    values = page.evaluate(
        """() => Object.fromEntries(Array.from(document.querySelectorAll('[data-figure]'))
             .map((node) => [node.dataset.figure, node.querySelector('[data-role=value]').textContent]))"""
    )
    assert values["landed"] == str(expected["landed"]["value"])
    assert values["first_attempt_success"] == rate(expected["first_attempt_success"]["value"])
    assert values["merge_success"] == rate(expected["merge_success"]["value"])
    esc = expected["escalations"]
    assert values["escalations"] == f"{esc['open']} open · {esc['answered']} answered"
    for chart, key in (("chart-hour", "landed_per_hour"), ("chart-day", "landed_per_day")):
        shown = _texts(page, f"#{chart} g[data-bucket]", "data-bucket")
        counts = {b["start"]: str(b["count"]) for b in expected[key]["buckets"]}
        common = set(shown) & set(counts)
        assert len(common) >= len(counts) - 1  # the CLI ran a moment before the page: an hour may turn
        assert {
            k: page.evaluate(
                "(k) => document.querySelector(`#"
                + chart
                + " g[data-bucket='${k}'] text.count`).textContent",
                k,
            )
            for k in common
        } == {k: counts[k] for k in common}
    legend = page.evaluate(
        "() => Object.fromEntries(Array.from(document.querySelectorAll('#legend-classes li[data-class]'))"
        ".map((n) => [n.dataset.class, Number(n.dataset.count)]))"
    )
    assert legend == expected["failure_classes"]["totals"]
    gates = page.evaluate(
        "() => Object.fromEntries(Array.from(document.querySelectorAll('#chart-gates g[data-gate]'))"
        ".map((n) => [n.dataset.gate, n.querySelector('text.rate').textContent]))"
    )
    assert gates == {
        g["gate"]: f"{rate(g['value'])} ({g['inputs']['blocked']}/{g['inputs']['ran']})"
        for g in expected["gate_failure_rates"]["gates"]
    }


def test_the_metrics_pages_charts_show_the_numbers_of_speedrift_metrics_json(
    page: Any, served: tuple[str, dict[str, Any]], artifacts: Path
) -> None:
    url, expected = served
    assert expected["ecosystem"]["landed"]["value"] >= 2  # the attempts above are in it
    assert any(g["inputs"]["blocked"] for g in expected["ecosystem"]["gate_failure_rates"]["gates"])
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']")
    page.screenshot(path=str(artifacts / "metrics.png"), full_page=True)
    _check_scope(page, expected["ecosystem"])
    # every chart says its formula
    for box in ("f-hour", "f-day", "f-classes", "f-gates"):
        assert page.text_content(f"#{box}").startswith(expected["formulas"][box_key(box)])
    # the per-repo table: the ecosystem first, then each repo with its own first-attempt success
    rows = page.evaluate(
        "() => Array.from(document.querySelectorAll('#repo-rows tr')).map((r) => "
        "Array.from(r.cells).map((c) => c.textContent))"
    )
    assert [r[0] for r in rows] == ["ecosystem", *sorted(expected["repos"])]
    for row in rows:
        scope = expected["ecosystem"] if row[0] == "ecosystem" else expected["repos"][row[0]]
        first = scope["first_attempt_success"]
        assert row[1] == str(scope["landed"]["value"])
        counts = f"({first['inputs']['landed']}/{first['inputs']['first_attempts_ended']})"
        assert row[4] == f"{rate(first['value'])} {counts}"
    # one repo's scope: its own numbers
    busiest = max(expected["repos"], key=lambda name: expected["repos"][name]["landed"]["value"])
    page.select_option("#scope", busiest)
    page.wait_for_selector(f"body[data-scope='{busiest}']")
    _check_scope(page, expected["repos"][busiest])
    assert page.get_attribute("#back", "href") == "/"


def box_key(box: str) -> str:
    return {"f-hour": "landed_per_hour", "f-day": "landed_per_day", "f-classes": "failure_classes"}.get(
        box, "gate_failure_rates"
    )


def test_the_metrics_page_fits_a_phone_without_sideways_scrolling(
    page: Any, served: tuple[str, dict[str, Any]]
) -> None:
    url, _expected = served
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']")
    widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], widths
