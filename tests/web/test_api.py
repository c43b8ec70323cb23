"""The JSON API over a real demo ecosystem: reads, guarded mutations and their trail."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from speedrift import hubdir
from speedrift.control.controlfile import read_control
from speedrift.control.cycle import run_once
from speedrift.errors import NotFound, Refused, SpeedriftError, UsageError
from speedrift.fleet import attempts
from speedrift.register.ledger import Ledger
from speedrift.register.store import Register
from speedrift.web.api import BadRequest
from speedrift.web.live import DashboardState
from speedrift.web.server import wire
from tests.web.support import BASE_URL, ORIGIN, app_for, bearer


class Dash:
    def __init__(self, eco: Path, state: DashboardState, client: TestClient) -> None:
        self.eco = eco
        self.root = eco.parent
        self.hub = hubdir.hub_dir(eco)
        self.state = state
        self.client = client

    def operator_entries(self) -> list[dict[str, Any]]:
        return [r for r in Ledger(self.hub).read(last=None) if r.get("kind") == "operator"]


def _dash(eco: Path, *, reads_need_token: bool = False) -> Iterator[Dash]:
    wiring = wire(eco, "127.0.0.1", 8777, state=None, standalone=False)
    app = app_for(wiring.state, ecosystem_path=eco, hub=wiring.hub, reads_need_token=reads_need_token)
    with TestClient(app, base_url=BASE_URL) as client:
        yield Dash(eco, wiring.state, client)


@pytest.fixture
def dash(demo_eco: Path) -> Iterator[Dash]:
    yield from _dash(demo_eco)


def test_the_page_is_served_with_a_strict_content_security_policy(dash: Dash) -> None:
    response = dash.client.get("/")
    assert response.status_code == 200
    assert "<title>speedrift" in response.text
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert dash.client.get("/static/vendor/cytoscape.min.js").status_code == 200
    assert dash.client.get("/static/vendor/cytoscape-dagre.min.js").status_code == 200


def test_reads_cover_overview_repos_graphs_queues_and_the_ledger(dash: Dash) -> None:
    run_once(dash.eco, execute_actions=False)
    dash.state.publish_cycle(Ledger(dash.hub).read(last=1)[-1])
    status = dash.client.get("/api/status").json()
    assert status["overview"]["cycle_id"].startswith("c-")
    assert set(status["metrics"]) >= {"reporting_coverage", "flow_health"}
    repos = dash.client.get("/api/repos").json()
    assert {c["name"] for c in repos["cards"]} == {"shop-api", "billing", "web-ui", "search", "factory"}
    billing = dash.client.get("/api/repos/billing").json()
    assert billing["card"]["name"] == "billing" and billing["snapshot"]["name"] == "billing"
    graph = dash.client.get("/api/repos/search/graph").json()
    assert graph["seq"] == status["seq"] and any(n["id"] == "ranking" for n in graph["nodes"])
    eco_graph = dash.client.get("/api/graph").json()
    assert {"source": "billing", "target": "shop-api"} in [
        {"source": e["source"], "target": e["target"]} for e in eco_graph["edges"]
    ]
    queues = dash.client.get("/api/queues").json()["queues"]
    [missing] = [i for i in queues["dependency"]["items"] if i["task"] == "ranking"]
    assert missing["prompts"]["claude"] and missing["prompts"]["codex"]
    light = dash.client.get("/api/queues?prompts=0").json()["queues"]
    assert all("prompts" not in i for q in light.values() for i in q["items"])
    ledger = dash.client.get("/api/ledger?last=5").json()["entries"]
    assert ledger[-1]["cycle_id"] == status["overview"]["cycle_id"]
    assert isinstance(ledger[-1]["planned"], int)  # summarized unless ?full=1
    assert dash.client.get("/api/ledger?last=5&full=1").json()["entries"][-1]["repos"]


def test_unknown_repos_are_404_with_a_message(dash: Dash) -> None:
    for path in (
        "/api/repos/nope",
        "/api/repos/nope/graph",
        "/api/repos/nope/runs/t",
        "/api/repos/nope/runs/t/1",
    ):
        response = dash.client.get(path)
        assert response.status_code == 404, path
        assert "nope" in response.json()["error"]


def test_a_foreign_host_header_is_refused_everywhere(dash: Dash) -> None:
    for path in ("/", "/api/status", "/static/app.js"):
        response = dash.client.get(path, headers={"host": "evil.example:8777"})
        assert response.status_code == 403, path
        assert response.json()["error"] == "host not allowed"
    assert dash.client.get("/api/status", headers={"host": "localhost:8777"}).status_code == 200


def test_a_mutation_without_a_token_is_401_before_the_body_is_looked_at(dash: Dash) -> None:
    response = dash.client.post("/api/repos/billing/mode", content=b"{not json")
    assert response.status_code == 401
    assert response.json()["error"] == "token required"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert dash.client.post("/api/repos/billing/mode", json={"mode": "bogus"}).status_code == 401


def test_a_wrong_token_is_403(dash: Dash) -> None:
    response = dash.client.post(
        "/api/repos/billing/mode", json={"mode": "supervise"}, headers=bearer("not-the-token")
    )
    assert response.status_code == 403
    assert read_control(dash.root / "billing").mode == "observe"


def test_a_foreign_origin_is_refused_even_with_the_token(dash: Dash) -> None:
    response = dash.client.post(
        "/api/repos/billing/mode",
        json={"mode": "supervise"},
        headers={**bearer(), "origin": "http://evil.example"},
    )
    assert response.status_code == 403
    assert response.json()["error"] == "origin not allowed"
    assert read_control(dash.root / "billing").mode == "observe"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"mode": "bogus"}, "mode must be one of"),
        ({}, "mode must be one of"),
        ({"mode": "supervise", "lease_ttl": "soon"}, "not understood"),
        ({"mode": "supervise", "lease_ttl": True}, "lease_ttl must be seconds"),
        ({"mode": "supervise", "owner": "a\nb"}, "one line"),
    ],
)
def test_an_authorized_but_invalid_body_is_422(dash: Dash, body: dict[str, Any], problem: str) -> None:
    response = dash.client.post("/api/repos/billing/mode", json=body, headers={**bearer(), "origin": ORIGIN})
    assert response.status_code == 422
    assert problem in response.json()["error"]


def test_a_body_that_is_not_json_is_400(dash: Dash) -> None:
    response = dash.client.post("/api/repos/billing/mode", content=b"{oops", headers=bearer())
    assert response.status_code == 400


def test_a_mode_change_with_the_token_is_applied_and_recorded_like_the_cli(dash: Dash) -> None:
    response = dash.client.post(
        "/api/repos/billing/mode",
        json={"mode": "supervise", "lease_ttl": "2h", "reason": "night shift"},
        headers={**bearer(), "origin": ORIGIN},
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["mode"] == "supervise" and result["lease_expires_at"]
    control = read_control(dash.root / "billing")
    assert control.mode == "supervise" and control.reason == "night shift"
    card = next(c for c in dash.client.get("/api/repos").json()["cards"] if c["name"] == "billing")
    assert card["mode"] == "supervise"
    with Register.open(dash.hub) as register:
        [change] = register.mode_changes("billing")
    assert change["source"] == "dashboard" and change["mode"] == "supervise"

    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "speedrift",
            "mode",
            "web-ui",
            "supervise",
            "--lease-ttl",
            "2h",
            "--reason",
            "night shift",
            "--ecosystem",
            str(dash.eco),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert cli.returncode == 0, cli.stderr
    dashboard_entry, cli_entry = dash.operator_entries()
    assert dashboard_entry["op"] == cli_entry["op"] == "set_mode"
    assert set(dashboard_entry) == set(cli_entry)
    assert (dashboard_entry["source"], cli_entry["source"]) == ("dashboard", "cli")


def test_approving_a_held_back_action_records_it_for_the_next_cycle(dash: Dash) -> None:
    record = run_once(dash.eco, execute_actions=False)
    dash.state.publish_cycle(record)
    held = [s["action"]["id"] for s in record["skipped"]]
    assert "billing:dispatch_ready" in held
    response = dash.client.post(
        "/api/actions/billing:dispatch_ready/approve", headers={**bearer(), "origin": ORIGIN}
    )
    assert response.status_code == 200, response.text
    assert response.json()["approved_by"].endswith("(dashboard)")
    with Register.open(dash.hub) as register:
        assert register.pending_approvals() == ["billing:dispatch_ready"]
    [entry] = dash.operator_entries()
    assert entry["op"] == "approve_action" and entry["action_id"] == "billing:dispatch_ready"


def test_approving_an_unknown_action_is_404_and_leaves_no_trail(dash: Dash) -> None:
    response = dash.client.post("/api/actions/billing:dispatch_ready/approve", headers=bearer())
    assert response.status_code == 404
    assert dash.operator_entries() == []


def test_pausing_a_task_with_no_running_attempt_is_refused(dash: Dash) -> None:
    response = dash.client.post("/api/repos/billing/agents/refunds/pause", headers=bearer())
    assert response.status_code == 409
    assert "no running attempt" in response.json()["error"]


def test_run_detail_reads_the_attempt_record_bounded(dash: Dash) -> None:
    repo = dash.root / "billing"
    folder = attempts.run_dir(repo, "refunds", 1)
    attempts.write_attempt(folder, {"state": "done", "runtime": "shell", "landed_commit": "abc123"})
    attempts.write_evidence(
        folder,
        {
            "diff": {"files": 2, "insertions": 10, "deletions": 1},
            "usage": {"input_tokens": 5, "output_tokens": 7, "cost_usd": 0.25},
            "gates": [{"gate": "tests", "passed": True, "summary": "12 passed"}],
            "duration_s": 3.5,
        },
    )
    events = b"".join(
        orjson.dumps({"at": f"t{i}", "kind": "message", "text": "x" * 5000 if i == 0 else f"step {i}"})
        + b"\n"
        for i in range(400)
    )
    (folder / "events.jsonl").write_bytes(events + b"{torn")
    (folder / "stderr.log").write_text("warning: something\n")
    listing = dash.client.get("/api/repos/billing/runs/refunds").json()
    assert listing["attempts"][0]["attempt"] == 1 and listing["attempts"][0]["state"] == "done"
    detail = dash.client.get("/api/repos/billing/runs/refunds/1").json()
    assert detail["diff"] == {"files": 2, "insertions": 10, "deletions": 1}
    assert detail["cost_usd"] == 0.25
    assert detail["gates"][0]["summary"] == "12 passed"
    assert detail["record"]["landed_commit"] == "abc123"
    assert len(detail["events"]) == 300 and detail["events_truncated"] is True
    assert detail["events"][-1]["text"] == "step 399"
    assert "something" in detail["stderr_tail"]
    assert dash.client.get("/api/repos/billing/runs/refunds/2").status_code == 404
    assert dash.client.get("/api/repos/billing/runs/..%2F..%2Fetc/1").status_code == 404


def test_the_runs_api_names_the_machine_each_attempt_ran_on(dash: Dash) -> None:
    repo = dash.root / "billing"
    remote = {"executor": "dask", "worker": "tcp://10.1.2.3:40111", "host": "gpu-box"}
    attempts.write_attempt(attempts.run_dir(repo, "refunds", 1), {"state": "failed", "machine": remote})
    local = {"executor": "local", "worker": None, "host": "hub-box"}
    attempts.write_attempt(attempts.run_dir(repo, "refunds", 2), {"state": "done", "machine": local})
    attempts.write_attempt(attempts.run_dir(repo, "refunds", 3), {"state": "running"})  # before the field
    attempts.write_evidence(attempts.run_dir(repo, "refunds", 3), {"machine": local})
    listing = dash.client.get("/api/repos/billing/runs/refunds").json()["attempts"]
    assert [(a["attempt"], a["machine"]) for a in listing] == [
        (3, None),
        (2, "hub-box"),
        (1, "tcp://10.1.2.3:40111"),
    ]
    assert dash.client.get("/api/repos/billing/runs/refunds/1").json()["machine"] == "tcp://10.1.2.3:40111"
    assert dash.client.get("/api/repos/billing/runs/refunds/3").json()["machine"] == "hub-box"  # evidence's


def test_beyond_loopback_reads_need_the_token_too_but_the_page_loads(demo_eco: Path) -> None:
    for dash in _dash(demo_eco, reads_need_token=True):
        assert dash.client.get("/").status_code == 200
        assert dash.client.get("/static/app.js").status_code == 200
        assert dash.client.get("/api/status").status_code == 401
        assert dash.client.get("/api/status", headers=bearer("wrong")).status_code == 403
        assert dash.client.get("/api/status", headers=bearer()).status_code == 200


def test_error_bodies_are_error_and_hint_with_the_field_to_blame_and_the_security_headers(dash: Dash) -> None:
    missing = dash.client.get("/api/repos/nope")
    assert missing.json() == {"error": "no repo named 'nope'", "hint": None}
    assert "frame-ancestors 'none'" in missing.headers["content-security-policy"]
    invalid = dash.client.post("/api/repos/billing/mode", json={"mode": "bogus"}, headers=bearer())
    assert invalid.status_code == 422
    assert invalid.json()["field"] == "mode" and invalid.json()["hint"] is None
    not_json = dash.client.post("/api/repos/billing/mode", content=b"{oops", headers=bearer())
    assert not_json.json()["hint"] == "send a JSON object" and "field" not in not_json.json()
    huge = dash.client.post("/api/repos/billing/mode", content=b" " * 20_000, headers=bearer())
    assert huge.status_code == 413
    unknown = dash.client.post("/api/repos/nope/mode", json={"mode": "observe"}, headers=bearer())
    assert unknown.status_code == 404
    assert dash.client.post("/api/repos/nope/agents/t/pause", headers=bearer()).status_code == 404
    assert dash.client.get("/api/ledger?last=many").status_code == 422


@pytest.mark.parametrize(
    ("raised", "code"),
    [
        (NotFound("gone"), 404),
        (UsageError("bad"), 422),
        (Refused("no"), 409),
        (SpeedriftError("broke", hint="look"), 500),
        (BadRequest("not JSON", status=400), 400),
    ],
)
def test_every_speedrift_error_an_endpoint_raises_is_mapped_once(
    dash: Dash, monkeypatch: pytest.MonkeyPatch, raised: SpeedriftError, code: int
) -> None:
    def fail() -> None:
        raise raised

    monkeypatch.setattr(dash.state, "status", fail)
    response = dash.client.get("/api/status")
    assert response.status_code == code
    assert response.json() == {"error": raised.message, "hint": raised.hint}
