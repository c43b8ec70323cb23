"""The names of the resilience fleet's roles, model tiers and review modes: a vocabulary with no dependencies,
so the configuration model and the CLI's argument parser name roles without loading them."""

from __future__ import annotations

from enum import StrEnum


class RoleName(StrEnum):
    REVIEWER = "reviewer"
    DEBUGGER = "debugger"
    ARCHITECT = "architect"
    WAVE_ARCHITECT = "wave_architect"  # `speedrift plan draft`: a spec or a request into a wave
    PLAN_VERIFIER = "plan_verifier"
    COHERENCE = "coherence"
    INTEGRATION = "integration"
    DOCUMENTATION = "documentation"
    EVALUATOR = "evaluator"
    TRIAGE = "triage"
    COMPOUND_REVIEWER = "compound_reviewer"  # fleetops/compound.py: summarizes a day's commits


class Tier(StrEnum):
    """Which model tier a role runs on by default: ``planning`` the strongest configured tier of
    its runtime (``[recovery] model_tiers``), ``support`` the runtime's configured model."""

    PLANNING = "planning"
    SUPPORT = "support"


class ReviewMode(StrEnum):
    """``[review] mode`` and a task's own ``speedrift.review`` (fleet/review.py)."""

    OFF = "off"
    ADVISORY = "advisory"
    BLOCKING = "blocking"
