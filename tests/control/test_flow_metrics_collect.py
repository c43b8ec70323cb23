"""The flow metrics read from real repos: attempts run through the real pipeline (shell tasks that
land, fail a gate and crash), questions asked and answered through the real coordination writers,
and `speedrift metrics` (JSON and human) over the ecosystem naming them."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from speedrift import layout
from speedrift.control.metrics import collect
from speedrift.control.metrics.collect import metrics_of, read_repo
from speedrift.fleet import answers
from speedrift.fleet.attempt import AttemptResult
from speedrift.fleet.config import RepoConfig
from speedrift.fleet.pipeline import Pipeline, RunOptions
from speedrift.gates.suite import for_repo
from speedrift.gates.tools import GATE_PATH_ENV
from speedrift.times import now_utc
from tests.cli.support import Cli
from tests.control.hubfleet import ecosystem
from tests.fleet.asking import asked
from tests.fleet.conftest import Workshop
from tests.fleet.test_verified import BREAK, EXTEND, FAST, FLAT
from tests.gitrepo import make_repo

WEEK = timedelta(days=7)


def _run(shop: Workshop, task_id: str) -> AttemptResult:
    """One attempt through the real pipeline with the real gate suite (pytest from this interpreter)."""
    config = RepoConfig.model_validate({"gates": FAST})
    suite = for_repo(config.gates, shop.store, config.target_branch)
    return Pipeline(shop.repo, shop.store, config, gates=suite).run(task_id, RunOptions())


@pytest.fixture(scope="module")
def factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Two repos: ``shop`` with real attempts and escalations, ``quiet`` with a graph and no runs."""
    root = tmp_path_factory.mktemp("factory")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(GATE_PATH_ENV, str(Path(sys.executable).parent))
        shop = Workshop(make_repo(root / "shop", FLAT))
        shop.add("first", EXTEND)
        shop.add("second", "echo two > two.txt", after=["first"])
        shop.add("syntax", BREAK)
        shop.add("crash", "echo partial > partial.txt; exit 3")
        results = {task: _run(shop, task) for task in ("first", "second", "syntax", "crash")}
    for task in ("refunds", "currency"):
        shop.add(task)
    _request, answered = asked(shop.repo, shop.store, "refunds", "May a refund exceed the charge?")
    asked(shop.repo, shop.store, "currency", "Which currency for Swiss invoices?")
    answers.answer(shop.repo, shop.store, RepoConfig(), answered.id, "No.", name="alice")
    quiet = make_repo(root / "quiet", {"README.md": "# quiet\n"})
    eco = ecosystem(root / "eco", {"shop": shop.repo, "quiet": quiet})
    yield {"eco": eco, "shop": shop.repo, "quiet": quiet, "results": results, "answered": answered.id}


def test_the_pipelines_attempts_are_read_with_their_state_gates_usage_and_times(
    factory: dict[str, Any],
) -> None:
    results = factory["results"]
    assert [results[t].status for t in ("first", "second", "syntax", "crash")] == [
        "done",
        "done",
        "failed",
        "failed",
    ]
    records = read_repo("shop", factory["shop"])
    runs = {r.task: r for r in records.attempts}
    assert set(runs) == {"first", "second", "syntax", "crash"}
    assert runs["first"].landed_commit == results["first"].landed_commit
    assert (
        runs["syntax"].failure == results["syntax"].failure
        and runs["crash"].failure == results["crash"].failure
    )
    assert all(r.started is not None and r.ended is not None and r.started <= r.ended for r in runs.values())
    assert runs["first"].usage.cost_usd == 0.0  # the shell runtime records usage: a real $0, not unknown
    blocked = [gate for gate, status in runs["syntax"].gates if status == "blocked"]
    assert blocked, runs["syntax"].gates
    times = {t.task: t for t in records.tasks}
    assert times["second"].blockers_completed and times["second"].blockers_completed[0] is not None
    states = {e.id: e.state for e in records.escalations}
    assert states[factory["answered"]] == "answered" and sorted(states.values()) == ["answered", "open"]
    assert records.problems == () and not records.truncated


def test_the_metrics_of_the_repos_match_their_records(factory: dict[str, Any]) -> None:
    result = metrics_of([("shop", factory["shop"]), ("quiet", factory["quiet"])], now_utc(), WEEK)
    shop, quiet, eco = result["repos"]["shop"], result["repos"]["quiet"], result["ecosystem"]
    assert shop["landed"]["value"] == 2 and eco["landed"]["value"] == 2 and quiet["landed"]["value"] == 0
    assert shop["first_attempt_success"]["inputs"] == {"landed": 2, "first_attempts_ended": 4}
    assert shop["first_attempt_success"]["value"] == 50.0
    assert shop["merge_success"]["inputs"]["merged"] == 2
    assert shop["lead_time"]["count"] == 2 and shop["lead_time"]["p50"] is not None
    assert shop["dispatch_latency"]["count"] == 4 and shop["dispatch_latency"]["p95"] >= 0
    classes = shop["failure_classes"]["totals"]
    syntax, crash = factory["results"]["syntax"].failure, factory["results"]["crash"].failure
    assert sum(classes.values()) == 2 and classes.get(syntax, 0) >= 1 and classes.get(crash, 0) >= 1
    blocked = [g for g in shop["gate_failure_rates"]["gates"] if g["inputs"]["blocked"]]
    assert blocked and all(g["value"] is not None and g["inputs"]["ran"] >= 1 for g in blocked)
    esc = shop["escalations"]
    assert (esc["open"], esc["answered"], esc["time_to_answer"]["count"]) == (1, 1, 1)
    cost = shop["cost_per_landed"]
    assert cost["value"] == 0.0 and cost["inputs"]["landed"] == 2 and cost["inputs"]["attempts"] == 2
    # the quiet repo has no data: rates are None over zero denominators
    assert quiet["first_attempt_success"]["value"] is None and quiet["cost_per_landed"]["value"] is None
    assert result["problems"] == []


def test_speedrift_metrics_json_is_the_ecosystems_metrics_and_repo_narrows_it(
    factory: dict[str, Any],
) -> None:
    cli = Cli(factory["eco"].parent)
    out = cli.json("metrics", "--ecosystem", str(factory["eco"]))
    assert set(out["repos"]) == {"shop", "quiet"} and out["since"] == "7d"
    assert out["ecosystem"]["landed"]["value"] == 2
    assert out["ecosystem"]["first_attempt_success"]["inputs"] == {"landed": 2, "first_attempts_ended": 4}
    only = cli.json("metrics", "--ecosystem", str(factory["eco"]), "--repo", "quiet", "--since", "1d")
    assert set(only["repos"]) == {"quiet"} and only["ecosystem"]["landed"]["value"] == 0
    assert only["window"]["seconds"] == 86_400.0 and len(only["ecosystem"]["landed_per_day"]["buckets"]) == 2
    missing = cli.fails(1, "metrics", "--ecosystem", str(factory["eco"]), "--repo", "nope")
    assert "no repo named 'nope'" in missing.stderr
    bad = cli.fails(2, "metrics", "--ecosystem", str(factory["eco"]), "--since", "soon")
    assert "duration 'soon' not understood" in bad.stderr


def test_speedrift_metrics_prints_a_table_per_metric_with_inputs_and_formulas(
    factory: dict[str, Any],
) -> None:
    out = Cli(factory["eco"].parent).ok("metrics", "--ecosystem", str(factory["eco"])).stdout
    assert "Flow" in out and "Gate failure rates" in out and "Failure classes" in out
    lines = out.splitlines()
    eco_row = next(line for line in lines if "ecosystem" in line and "%" in line)
    assert "50.0% (2/4)" in eco_row and "100.0% (2/2)" in eco_row
    quiet_row = next(line for line in lines if "quiet" in line and "(0/0)" in line)
    assert "— (0/0)" in quiet_row  # no data, shown as such
    assert "lead_time: landed − ready" in out and "merge_success: 100 × landing attempts" in out


def test_torn_and_hostile_records_are_skipped_and_a_capped_repo_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "odd", {"README.md": "# odd\n"})
    for task, number, attempt, evidence in (
        ("torn", 1, b'{"state": "do', None),
        (
            "hostile",
            1,
            b'{"state": "done", "started": 7, "updated": "not a time", "landed_commit": ["x"]}',
            b'{"gates": "all", "usage": {"cost_usd": "lots", "input_tokens": true}}',
        ),
        ("foreign", 1, b'{"state": "exploded", "started": "2026-12-01T00:00:00Z"}', b"[1, 2]"),
        (
            "gated",
            1,
            b'{"state": "failed", "failure": "regression", "updated": "2026-12-01T00:00:00Z"}',
            b'{"gates": [{"results": [{"gate": "tests", "status": "fail"}, {"gate": 3}, "x"], '
            b'"blocking": ["tests"]}]}',
        ),
    ):
        folder = layout.attempt_dir(repo, task, number)
        folder.mkdir(parents=True)
        (folder / layout.ATTEMPT_FILE).write_bytes(attempt)
        if evidence is not None:
            (folder / layout.EVIDENCE_FILE).write_bytes(evidence)
    (layout.runs_dir(repo) / "_roles").mkdir()  # role runs are not attempts
    records = read_repo("odd", repo)
    runs = {r.task: r for r in records.attempts}
    assert set(runs) == {"hostile", "foreign", "gated"}  # the torn record is no attempt
    assert runs["hostile"].started is None and runs["hostile"].ended is None
    assert runs["hostile"].landed_commit is None and runs["hostile"].gates == ()
    assert runs["hostile"].usage.cost_usd is None and runs["hostile"].usage.tokens is None
    assert runs["foreign"].state == "unknown"
    assert runs["gated"].gates == (("tests", "blocked"),) and runs["gated"].failure == "regression"
    metrics = metrics_of([("odd", repo)], now_utc(), WEEK)["repos"]["odd"]
    assert metrics["landed"]["value"] == 0  # done without an end time: not counted as landed
    monkeypatch.setattr(collect, "MAX_RUN_DIRS", 2)
    capped = read_repo("odd", repo)
    assert capped.truncated and len(capped.attempts) <= 2
    missing = read_repo("gone", tmp_path / "gone")
    assert missing.attempts == () and "is not a directory" in missing.problems[0]
