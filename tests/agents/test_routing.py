"""Model routing (agents/routing.py): an explicit choice wins; otherwise tags and role route to a
tier through the rules, the default tier else, one tier higher per retry when escalating; with no
tiers configured, today's choice. Every choice says why."""

from __future__ import annotations

from typing import Any

import pytest

from speedrift.agents import routing
from speedrift.agents.routing import Rule, route
from speedrift.errors import InvalidValue

TIERS = {"cheap": "claude:haiku", "standard": "claude:sonnet", "strong": "codex:gpt-5"}
RULES = (
    Rule("cheap", tags=("docs", "typo")),
    Rule("strong", role="architect"),
    Rule("strong", tags=("hard",)),
)


def routed(task: dict[str, Any], attempt: int = 1, **kwargs: Any) -> routing.Choice:
    options: dict[str, Any] = {
        "default_runtime": "claude",
        "tiers": TIERS,
        "rules": RULES,
        "default_tier": "standard",
        "escalate": True,
        "attempt_number": attempt,
    }
    options.update(kwargs)
    return route({"id": "t", **task}, **options)


def test_a_tag_routes_the_task_to_the_tier_of_the_first_matching_rule() -> None:
    choice = routed({"tags": ["frontend", "docs", "hard"]})
    assert (choice.runtime, choice.model, choice.tier) == ("claude", "haiku", "cheap")
    assert choice.why == "routing rule 1 (tag docs) → cheap: claude:haiku"


def test_a_role_routes_the_task_when_no_tag_rule_matches() -> None:
    choice = routed({"tags": ["frontend"]}, role="architect")
    assert (choice.runtime, choice.model, choice.tier) == ("codex", "gpt-5", "strong")
    assert "routing rule 2 (role architect)" in choice.why


def test_a_task_no_rule_matches_goes_to_the_default_tier() -> None:
    choice = routed({"tags": ["backend"]})
    assert (choice.runtime, choice.model, choice.tier) == ("claude", "sonnet", "standard")
    assert choice.why.startswith("no routing rule matched: the default tier → standard")


def test_each_retry_climbs_one_tier_and_the_strongest_caps_it() -> None:
    climbed = [routed({"tags": ["docs"]}, attempt=n) for n in (1, 2, 3, 4)]
    assert [c.tier for c in climbed] == ["cheap", "standard", "strong", "strong"]
    assert "escalated 1 tier(s) on retry to standard" in climbed[1].why
    assert "(capped: the strongest configured)" in climbed[3].why
    assert "capped" not in climbed[2].why


def test_without_escalation_a_retry_stays_on_its_tier() -> None:
    assert routed({"tags": ["docs"]}, attempt=3, escalate=False).tier == "cheap"


def test_an_explicit_model_wins_over_every_rule_and_retry() -> None:
    choice = routed({"model": "opencode:anthropic/claude-sonnet-4", "tags": ["docs"]}, attempt=3)
    assert (choice.runtime, choice.model, choice.tier) == ("opencode", "anthropic/claude-sonnet-4", None)
    assert choice.why == "explicit: the task's model opencode:anthropic/claude-sonnet-4"


def test_an_exec_task_runs_on_the_shell_whatever_the_routing() -> None:
    choice = routed({"exec": "make test", "model": "strong", "tags": ["hard"]})
    assert (choice.runtime, choice.model, choice.tier) == ("shell", None, None)
    assert "exec command" in choice.why


def test_a_model_the_recovery_escalated_to_is_explicit_and_says_so() -> None:
    choice = routed({"model": "claude:opus", "tried_models": ["claude:sonnet"]})
    assert (choice.runtime, choice.model) == ("claude", "opus")
    assert choice.why == "explicit: the task's model claude:opus (escalated by recovery from claude:sonnet)"


def test_a_task_naming_a_tier_is_routed_to_it_and_still_escalates() -> None:
    assert routed({"model": "cheap"}).tier == "cheap"
    assert routed({"model": "cheap"}, attempt=2).tier == "standard"


def test_a_tier_named_without_tiers_configured_is_a_clear_error() -> None:
    with pytest.raises(InvalidValue) as error:
        routed({"model": "strong"}, tiers={})
    assert "no [routing] tiers are configured" in str(error.value)


def test_with_no_tiers_the_choice_is_todays() -> None:
    choice = routed({"tags": ["docs"]}, tiers={}, attempt=3, default_runtime="codex")
    assert (choice.runtime, choice.model, choice.tier) == ("codex", None, None)
    assert choice.why == "no [routing] tiers: the repo's default runtime codex"
    unprefixed = routed({"model": "gpt-5"}, tiers={}, default_runtime="codex")
    assert (unprefixed.runtime, unprefixed.model) == ("codex", "gpt-5")


def test_a_tier_that_is_not_configured_routes_to_the_nearest_above_it() -> None:
    choice = routed({"tags": ["docs"]}, tiers={"standard": "claude:sonnet", "strong": "claude:opus"})
    assert (choice.tier, choice.model) == ("standard", "sonnet")
    assert "(not configured: standard)" in choice.why
    below = routed({"tags": ["hard"]}, tiers={"cheap": "claude:haiku"})
    assert below.tier == "cheap"


def test_the_fallback_order_starts_after_the_chosen_entry_and_wraps_round() -> None:
    entries = ["claude:sonnet", "codex:gpt-5", "opencode:anthropic/x"]
    assert routing.order("codex:gpt-5", entries) == ["codex:gpt-5", "opencode:anthropic/x", "claude:sonnet"]
    assert routing.order("claude:opus", entries) == [
        "claude:opus",
        "codex:gpt-5",
        "opencode:anthropic/x",
        "claude:sonnet",
    ]
    assert routing.order("shell", entries)[0] == "shell"


def test_recently_failed_entries_go_last_the_oldest_failure_first() -> None:
    entries = ["claude:sonnet", "codex:gpt-5", "opencode:x"]
    assert routing.order("claude:sonnet", entries, skip=["claude:sonnet", "codex:gpt-5"]) == [
        "opencode:x",
        "claude:sonnet",
        "codex:gpt-5",
    ]


def test_a_bad_entry_names_the_runtimes_there_are() -> None:
    with pytest.raises(InvalidValue) as error:
        routing.parse_entry("gemini:pro")
    assert "claude, codex, opencode, shell" in str(error.value)
    assert routing.parse_entry("codex") == ("codex", None)
