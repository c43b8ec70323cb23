"""The observer's view of the drift lanes: the last check's findings, each with its follow-up id,
the lanes' schedule and the target's tip — read from files only, read again when a check or the
policy changes, and an unreadable policy reported, not raised."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from speedrift.control.ecosystem.load import Ecosystem, parse_ecosystem
from speedrift.control.observe.observer import Observer
from speedrift.lanes.guard import followup_id
from speedrift.lanes.runner import CheckRequest, check
from tests.gitrepo import commit_file, make_repo, sh_git

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
KEY = "ghp_" + "abcdefghijklmnopqrstuvwxyzABCDEF0123"
POLICY = 'schema = 1\norder = ["secdrift", "plandrift"]\n\n[secdrift]\ncron = "0 3 * * *"\n'


def ecosystem(root: Path) -> Ecosystem:
    text = '[repos.app]\npath = "app"\n'
    (root / "ecosystem.toml").write_text(text)
    return parse_ecosystem(text, root / "ecosystem.toml")


def test_a_check_is_seen_at_the_next_observation_with_each_finding_and_its_follow_up(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "app", {"cfg.py": f'TOKEN = "{KEY}"\n'})
    commit_file(repo, ".workgraph/drift-policy.toml", POLICY, "lanes")
    observer = Observer(ecosystem(tmp_path))
    before = observer.observe(NOW)["app"].lanes
    assert before.enabled == ("secdrift", "plandrift") and before.head is None
    assert before.target == "main" and before.target_tip == sh_git(repo, "rev-parse", "HEAD")
    assert [(r.lane, r.cron, r.checked_at) for r in before.runs] == [
        ("secdrift", "0 3 * * *", None),
        ("plandrift", None, None),
    ]
    report = check(repo, now=NOW, request=CheckRequest())
    [secret] = [f for f in report.findings if f.lane == "secdrift"]
    after = observer.observe(NOW + timedelta(seconds=30))["app"]
    assert not after.reused
    lanes = after.lanes
    assert lanes.head == report.head and lanes.error == 1 and lanes.critical == 0
    [brief] = lanes.findings
    assert (brief.lane, brief.kind, brief.file, brief.line) == ("secdrift", "secret", "cfg.py", 1)
    assert brief.followup == followup_id(secret)
    assert KEY not in brief.message
    assert {r.lane: r.head for r in lanes.runs} == {"secdrift": report.head, "plandrift": report.head}
    # nothing changed since: the next observation reuses what it read
    assert observer.observe(NOW + timedelta(seconds=60))["app"].reused


def test_an_unreadable_drift_policy_is_reported_with_its_line(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "app")
    commit_file(repo, ".workgraph/drift-policy.toml", 'schema = 1\nmode = "loud"\n', "lanes")
    lanes = Observer(ecosystem(tmp_path)).observe(NOW)["app"].lanes
    assert lanes.policy_error is not None
    assert "drift-policy.toml:2: mode: is 'loud'" in lanes.policy_error
    assert lanes.enabled == () and lanes.findings == ()
