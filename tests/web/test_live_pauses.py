"""Runtime pauses on the dashboard: the overview lists the ones the cycle saw, in words, with the fix."""

from __future__ import annotations

from datetime import timedelta

from speedrift.pausestore import RuntimePause
from speedrift.serialize import to_plain
from speedrift.web.live import DashboardState
from speedrift.web.views import RepoInfo
from tests.conftest import NOW
from tests.web.support import record, report, snapshot


def test_the_overview_lists_each_paused_runtime_with_its_fix_and_how_to_lift_it() -> None:
    state = DashboardState("/eco/ecosystem.toml")
    state.set_repos([RepoInfo(name="shop", path="/repos/shop")], plan_only=True)
    assert state.snapshot()["overview"]["pauses"] == []
    limit = RuntimePause("claude", "usage_limit", "session limit", NOW, NOW + timedelta(hours=2), "", "w")
    missing = RuntimePause(
        "codex", "preflight", "codex is not installed", NOW, None, "npm install -g @openai/codex", "w",
        needs_human=True,
    )  # fmt: skip
    cycle = record([report(snapshot("shop"))]) | {"pauses": to_plain([limit, missing])}
    state.publish_cycle(cycle)
    claude, codex = state.snapshot()["overview"]["pauses"]
    assert claude["text"] == "claude is paused until 14:00 UTC: usage limit: session limit"
    assert (claude["needs_human"], claude["resume"]) == (False, "speedrift resume-runtime claude")
    assert codex["needs_human"] and codex["fix"] == "npm install -g @openai/codex"
    assert codex["text"].startswith("codex is paused until a human lifts it")
