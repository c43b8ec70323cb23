"""Recovery: the per-class policy table, the decisions it gives, and `speedrift retry` on top."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from speedrift.failure_class import FailureClass
from speedrift.fleet import followup
from speedrift.fleet.classify import Classification
from speedrift.fleet.config import ConfigError, RepoConfig, load_config
from speedrift.fleet.recovery import POLICIES, Decision, decide, next_tier, policy_for, split_groups
from speedrift.times import format_time
from tests.cli.support import Cli, graph_tasks
from tests.gitrepo import make_repo


def config(**fields: Any) -> RepoConfig:
    return RepoConfig.model_validate(fields)


def found(
    cls: str, *evidence: str, files: tuple[str, ...] = (), subclass: str | None = None
) -> Classification:
    return Classification(FailureClass(cls), list(evidence) or [f"{cls} happened"], "test", subclass, files)


def decision(
    cls: str, attempt: int = 1, runtime: str = "claude", model: str | None = "sonnet", **kw: Any
) -> Decision:
    task = kw.pop("task", {"id": "t", "title": "T"})
    return decide(
        kw.pop("found", found(cls)),
        task=task,
        attempt=attempt,
        runtime=runtime,
        current_model=model,
        config=kw.pop("config", config()),
        reason=kw.pop("reason", "it failed"),
    )


# --- the table ------------------------------------------------------------------------------------------
def test_every_failure_class_has_a_policy() -> None:
    assert set(POLICIES) == set(FailureClass)


@pytest.mark.parametrize(
    ("cls", "recovery", "automatic"),
    [
        ("auth_failure", "escalate_human", False),
        ("usage_limit", "pause_runtime", True),
        ("transient_infra", "retry", True),
        ("secret_leak", "escalate_human", False),
        ("scope_violation", "replan", False),
        ("merge_conflict", "retry_with_diagnosis", True),
        ("env_bootstrap", "escalate_human", False),
        ("exceeded_capacity", "escalate_model", True),
        ("agent_stall", "retry", True),
        ("context_cut", "escalate_model", True),
        ("exploration_death", "retry_with_diagnosis", True),
        ("spec_gap", "escalate_human", False),
        ("sast_block", "retry_with_diagnosis", True),
        ("regression", "retry_with_diagnosis", True),
        ("implementation_error", "retry_with_diagnosis", True),
    ],
)
def test_a_first_failure_gets_its_classes_recovery(cls: str, recovery: str, automatic: bool) -> None:
    made = decision(cls)
    assert (made.recovery, made.automatic, made.retryable) == (
        recovery,
        automatic,
        POLICIES[FailureClass(cls)].retryable,
    )


def test_a_retry_with_diagnosis_carries_the_evidence_into_the_next_prompt() -> None:
    lint = found("implementation_error", "gate lint: fail — 2 new findings", "  app.py:3 F401")
    made = decision("implementation_error", found=lint)
    assert made.diagnosis is not None
    assert "app.py:3 F401" in made.diagnosis and "implementation_error" in made.diagnosis


def test_backoff_doubles_per_attempt_and_stops_at_its_cap() -> None:
    tuned = config(service={"backoff_seconds": 10, "max_attempts": 10})
    delays = [decision("transient_infra", attempt=n, config=tuned).delay_seconds for n in (1, 2, 3)]
    assert delays == [10, 20, 40]
    capped = config(
        service={"backoff_seconds": 10, "max_attempts": 10},
        recovery={"classes": {"transient_infra": {"backoff_cap_seconds": 25}}},
    )
    assert decision("transient_infra", attempt=3, config=capped).delay_seconds == 25


def test_when_the_attempts_of_a_class_run_out_a_human_is_asked() -> None:
    made = decision("implementation_error", attempt=3)  # [service] max_attempts defaults to 3
    assert (made.recovery, made.automatic) == ("escalate_human", False)
    assert made.question is not None and "speedrift retry t --context" in made.question


def test_a_shell_task_is_rerun_only_after_transient_faults() -> None:
    assert decision("transient_infra", runtime="shell", model=None).automatic
    made = decision("implementation_error", runtime="shell", model=None)
    assert (made.recovery, made.automatic) == ("escalate_human", False)


def test_escalate_model_picks_the_next_tier() -> None:
    assert decision("exceeded_capacity", model="haiku").model == "claude:sonnet"
    assert decision("exceeded_capacity", model="sonnet").model == "claude:opus"
    assert decision("context_cut", model="claude-sonnet-4-5").model == "claude:opus"
    assert decision("exceeded_capacity", model=None).model == "claude:opus"  # unknown: the strongest


def test_on_the_strongest_tier_escalation_falls_back_to_replanning() -> None:
    made = decision("exceeded_capacity", model="opus")
    assert (made.recovery, made.model, made.automatic) == ("replan", None, False)
    assert made.note and "strongest" in made.note


def test_model_tiers_come_from_the_config_per_runtime() -> None:
    tiers = config(recovery={"model_tiers": {"codex": ["gpt-5-mini", "gpt-5.5"]}})
    assert (
        decision("exceeded_capacity", runtime="codex", model="gpt-5-mini", config=tiers).model
        == "codex:gpt-5.5"
    )
    assert decision("exceeded_capacity", runtime="opencode", model="x").recovery == "replan"  # no tiers


def test_next_tier_of_an_unknown_model_is_the_strongest_unless_it_is_that_one() -> None:
    assert next_tier(["a", "b"], "zzz") == "b"
    assert next_tier(["a", "b"], "b") is None
    assert next_tier([], "a") is None


def test_a_decomposition_error_splits_along_directories_of_the_undeclared_files() -> None:
    files = ("src/api/a.py", "src/api/b.py", "web/x.ts", "README.md")
    made = decision("decomposition_error", found=found("decomposition_error", files=files))
    assert made.recovery == "split_task"
    assert made.parts == (
        (".", ("README.md",)),
        ("src/api", ("src/api/a.py", "src/api/b.py")),
        ("web", ("web/x.ts",)),
    )


def test_too_many_directories_are_grouped_by_top_level_directory() -> None:
    files = [f"pkg{i % 2}/sub{i}/f.py" for i in range(10)]
    assert [label for label, _ in split_groups(files)] == ["pkg0", "pkg1"]


def test_a_split_without_files_or_of_a_shell_task_becomes_replanning() -> None:
    assert decision("decomposition_error").recovery == "replan"
    with_files = found("decomposition_error", files=("a/x.py",))
    assert (
        decision("decomposition_error", found=with_files, task={"id": "t", "exec": "make"}).recovery
        == "replan"
    )


def test_a_spec_gap_asks_the_agents_question() -> None:
    gap = found(
        "spec_gap", "the agent reported itself blocked: which date format?", subclass="ambiguous_spec"
    )
    made = decision("spec_gap", found=gap)
    assert made.question is not None
    assert "which date format?" in made.question and "ambiguous_spec" in made.question


def test_class_overrides_in_the_config_replace_the_defaults() -> None:
    tuned = config(
        recovery={"classes": {"spec_gap": {"retryable": True, "recovery": "retry_with_diagnosis"}}}
    )
    made = decision("spec_gap", config=tuned)
    assert (made.recovery, made.automatic) == ("retry_with_diagnosis", True)
    assert policy_for(FailureClass.SPEC_GAP, tuned).retryable


def test_an_unknown_class_in_speedrift_toml_is_an_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "speedrift.toml").write_text("[recovery.classes.flaky_tests]\nretryable = true\n")
    with pytest.raises(ConfigError, match="flaky_tests"):
        load_config(tmp_path)


def test_the_halt_settings_are_validated(tmp_path: Path) -> None:
    (tmp_path / "speedrift.toml").write_text("[recovery]\nhalt_threshold = 1.5\n")
    with pytest.raises(ConfigError, match=r"recovery\.halt_threshold"):
        load_config(tmp_path)


def test_a_decision_survives_its_json_form() -> None:
    made = decision("decomposition_error", found=found("decomposition_error", files=("a/x.py", "b/y.py")))
    assert Decision.from_dict(made.as_dict()) == made
    assert Decision.from_dict({**decision("exceeded_capacity").as_dict(), "withheld": "halted"}).model


# --- `speedrift retry` and `show --json`, end to end --------------------------------------------------------
@pytest.fixture
def cli_repo(tmp_path: Path) -> tuple[Cli, Path]:
    repo = make_repo(tmp_path / "repo")
    return Cli(repo), repo


REPORT = '{"status": "blocked", "summary": "The spec is ambiguous: ISO or US dates?"}'
BLOCKED = f"printf '{REPORT}' > \"$SPEEDRIFT_RESULT\""


def test_an_agent_reporting_itself_blocked_is_a_spec_gap_shown_by_show_json(
    cli_repo: tuple[Cli, Path],
) -> None:
    cli, _repo = cli_repo
    cli.ok("add", "Format dates", "--id", "dates", "--exec", BLOCKED)
    result = cli.fails(1, "run", "dates", "--quiet")
    assert "failure class: spec_gap" in result.stdout
    task = cli.json("show", "dates")
    data = task["speedrift"]
    assert task["status"] == "failed" and "needs-human" in task["tags"]
    assert data["failure_class"] == "spec_gap"
    assert data["classification"]["subclass"] == "ambiguous_spec"
    assert data["recovery"]["recovery"] == "escalate_human"
    assert "ISO or US dates?" in data["recovery"]["question"]
    assert [f["class"] for f in data["failures"]] == ["spec_gap"]
    assert "failure_class" not in task  # wg's enum has no value for a spec gap
    assert "Needs a human" in task["log"][-1]["message"]


def test_a_non_retryable_failure_needs_context_or_force_to_retry(cli_repo: tuple[Cli, Path]) -> None:
    cli, repo = cli_repo
    cli.ok("add", "Format dates", "--id", "dates", "--exec", BLOCKED)
    cli.fails(1, "run", "dates", "--quiet")
    refused = cli.fails(1, "retry", "dates")
    assert "spec_gap" in refused.stderr and "--context" in refused.stderr
    assert graph_tasks(repo)["dates"]["status"] == "failed"
    reopened = cli.json("retry", "dates", "--context", "ISO 8601 everywhere")
    assert reopened["status"] == "open"
    assert reopened["speedrift"]["retry_context"].startswith("ISO 8601 everywhere")
    assert "needs-human" not in reopened.get("tags", [])
    history = reopened["speedrift"]["failures"]
    assert len(history) == 1 and history[0]["class"] == "spec_gap" and history[0]["retried_at"]


def test_force_retries_a_non_retryable_failure_without_context(cli_repo: tuple[Cli, Path]) -> None:
    cli, repo = cli_repo
    cli.ok("add", "Format dates", "--id", "dates", "--exec", BLOCKED)
    cli.fails(1, "run", "dates", "--quiet")
    cli.ok("retry", "dates", "--force")
    assert graph_tasks(repo)["dates"]["status"] == "open"


def test_a_retryable_failure_is_retried_by_hand_without_context(cli_repo: tuple[Cli, Path]) -> None:
    cli, repo = cli_repo
    cli.ok("add", "Crash", "--id", "crash", "--exec", "kill -9 $$")
    result = cli.fails(1, "run", "crash", "--quiet")
    assert "failure class: transient_infra" in result.stdout
    cli.ok("retry", "crash")
    assert graph_tasks(repo)["crash"]["status"] == "open"


def test_a_task_failed_by_wg_without_a_class_retries_as_before(cli_repo: tuple[Cli, Path]) -> None:
    cli, repo = cli_repo
    cli.ok("add", "Plain", "--id", "plain")
    cli.ok("fail", "plain", "--reason", "by hand")
    cli.ok("retry", "plain")
    assert graph_tasks(repo)["plain"]["status"] == "open"


def test_a_retry_never_starts_before_the_reset_the_provider_named_whatever_its_backoff() -> None:
    failed = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    decision = Decision(
        FailureClass.TRANSIENT_INFRA, "retry", True, True, attempt=1, max_attempts=3, delay_seconds=30
    )
    history = [{"attempt": 1, "at": format_time(failed)}]

    def task(reset: timedelta | None) -> dict[str, Any]:
        data: dict[str, Any] = {"failures": history}
        if reset is not None:
            data["reset_at"] = format_time(failed + reset)
        return {"id": "t", "speedrift": data}

    assert followup.ready_at(task(timedelta(minutes=15)), decision, failed) == failed + timedelta(minutes=15)
    # a reset already behind the backoff, or none, changes nothing
    assert followup.ready_at(task(timedelta(seconds=5)), decision, failed) == failed + timedelta(seconds=30)
    assert followup.ready_at(task(None), decision, failed) == failed + timedelta(seconds=30)
