"""The dashboard's upstream proposals: ``GET /api/repos/NAME/upstream`` lists them, and ``POST
…/upstream/ID/propose`` — a guarded mutation needing the token — does what `speedrift upstream
propose ID` does (the repo's opt-in and the forge's checks still apply), recorded in the ledger
with source "dashboard". The forge is a fake ``gh`` on PATH; pushes go to a local bare fork."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from speedrift import hubdir
from speedrift.register.ledger import Ledger
from speedrift.web.server import wire
from tests.fleetops.forge_support import PR_URL, proposed_ecosystem
from tests.gitrepo import sh_git
from tests.web.support import BASE_URL, ORIGIN, app_for, bearer


def test_the_dashboard_lists_proposals_and_proposes_one_with_the_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clone, parent, fork, pid, eco = proposed_ecosystem(tmp_path, monkeypatch)
    wiring = wire(eco, "127.0.0.1", 8777, state=None, standalone=False)
    app = app_for(wiring.state, ecosystem_path=eco, hub=wiring.hub)
    with TestClient(app, base_url=BASE_URL) as client:
        listed = client.get("/api/repos/demo/upstream").json()["proposals"]
        assert [(p["id"], p["state"]) for p in listed] == [(pid, "branch_ready")]
        url = f"/api/repos/demo/upstream/{pid}/propose"
        refused = client.post(url, headers={"origin": ORIGIN})
        assert refused.status_code == 401
        assert sh_git(fork, "branch", "--list", "speedrift/*") == ""
        done = client.post(url, headers={**bearer(), "origin": ORIGIN})
        assert done.status_code == 200, done.text
        assert done.json()["url"] == PR_URL and done.json()["state"] == "proposed"
        again = client.get("/api/repos/demo/upstream").json()["proposals"]
        assert again[0]["state"] == "proposed"
    assert sh_git(fork, "rev-parse", f"speedrift/upstream/{pid}") == sh_git(
        clone, "rev-parse", f"speedrift/upstream/{pid}"
    )
    assert sh_git(parent, "branch", "--list", "speedrift/*") == ""
    entries = [e for e in Ledger(hubdir.hub_dir(eco)).read(last=5) if e.get("op") == "upstream_propose"]
    assert len(entries) == 1 and entries[0]["source"] == "dashboard" and entries[0]["id"] == pid


def test_a_refused_dashboard_propose_says_why_and_what_it_would_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = '[upstream]\nforge = "github"\n'  # no opt-in
    _clone, _, fork, pid, eco = proposed_ecosystem(tmp_path, monkeypatch, config, upstream=None)
    wiring = wire(eco, "127.0.0.1", 8777, state=None, standalone=False)
    app = app_for(wiring.state, ecosystem_path=eco, hub=wiring.hub)
    with TestClient(app, base_url=BASE_URL) as client:
        done = client.post(f"/api/repos/demo/upstream/{pid}/propose", headers={**bearer(), "origin": ORIGIN})
    assert done.status_code == 409
    body = done.json()
    assert "has not opted in" in body["error"] and "[upstream] propose = true" in body["hint"]
    assert body["would_run"][0].startswith("git push --quiet origin refs/heads/speedrift/upstream/")
    assert sh_git(fork, "branch", "--list", "speedrift/*") == ""
