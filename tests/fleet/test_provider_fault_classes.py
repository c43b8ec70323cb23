"""A provider fault is never the agent's doing: whatever else an attempt shows (budgets run out,
exploration without edits, last words about the spec), the runtime's fault verdict decides its
class, and that class's recovery is never a re-plan, a model escalation or a split."""

from __future__ import annotations

import pytest

from speedrift.agents.protocol import FAULT_KINDS, ProviderFault
from speedrift.failure_class import FailureClass
from speedrift.fleet.attempt_facts import AttemptFacts, BudgetFacts, EventStats
from speedrift.fleet.classify import classify
from speedrift.fleet.recovery import POLICIES


@pytest.mark.parametrize("fault", list(ProviderFault))
def test_a_provider_fault_is_never_the_agents_doing_whatever_else_the_attempt_shows(
    fault: ProviderFault,
) -> None:
    """Past its wall clock and turn budget, exploring without an edit, last words about the spec:
    a provider fault still classes as the fault, never implementation_error, exceeded_capacity
    or a re-plan."""
    budget = BudgetFacts(wall_clock_s=60, max_turns=3, duration_s=61, turns=40)
    events = EventStats(tool_calls=30, message_lines=("let me read the file",) * 20)
    found = classify(
        AttemptFacts(
            failure_kind=FAULT_KINDS[fault],
            reason=f"the provider failed ({fault.value}): the spec is unclear",
            final_text="the spec is unclear",
            events=events,
            budget=budget,
        )
    )
    expected = {
        ProviderFault.AUTH: FailureClass.AUTH_FAILURE,
        ProviderFault.USAGE_LIMIT: FailureClass.USAGE_LIMIT,
    }.get(fault, FailureClass.TRANSIENT_INFRA)
    assert found.cls is expected
    assert POLICIES[found.cls].recovery not in ("replan", "escalate_model", "split_task")
