"""Failure classification: every failed attempt gets exactly one class, first matching rule wins.

Pure: the caller gathers the facts (the runtime's verdict, the agent's report, a summary of its
events, the gate evidence, merge and bootstrap problems, budgets) and :func:`classify` returns
the class, the rule that matched and the evidence behind it. ``docs/failure-classes.md`` is the
human version of :data:`RULES`; the recovery each class gets lives in ``fleet/recovery.py``.
"""

from __future__ import annotations

import math
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from speedrift.fleet.attempt_facts import CONTEXT_LIMIT, AttemptFacts

# The classes, in precedence order (the order the rules below test them).
FAILURE_CLASSES: tuple[str, ...] = (
    "auth_failure",
    "usage_limit",
    "transient_infra",
    "secret_leak",
    "scope_violation",
    "decomposition_error",
    "merge_conflict",
    "env_bootstrap",
    "exceeded_capacity",
    "agent_stall",
    "context_cut",
    "exploration_death",
    "spec_gap",
    "sast_block",
    "regression",
    "implementation_error",
)

# exploration_death: this many tool calls (or turns) with no file edited
EXPLORATION_MIN_CALLS = 20
# SPEED's text rule (used only when a runtime reports no tool events): at least this many lines,
# more than this share of them exploring, fewer than this share writing code
EXPLORATION_MIN_LINES = 10
EXPLORATION_SHARE = 0.8
CODE_SHARE = 0.1
# context_cut by turns: an edit among the last quarter of tool calls (at least the last 5)
FLOWING_WINDOW_SHARE = 0.25
FLOWING_WINDOW_MIN = 5

MAX_EVIDENCE = 12
MAX_EVIDENCE_TEXT = 300
# SPEED's exploration and code line patterns (lib/failure_classify.py)
_EXPLORING = re.compile(
    r"read(ing)? file|searching for|let me (read|check|search|look|find)|looking at|^\s*cat |find \."
    r"|grep -|i need to find|i'll look at|i will look at|let me see",
    re.I,
)
_CODING = re.compile(r"```|\bdef |\bclass |\bfunction\b|\bconst |\bimport |write file|edit file", re.I)
# SPEED's spec-gap patterns, by the subclass SPEED emits
_SPEC_GAP: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "ambiguous_spec",
        re.compile(
            r"ambiguous.{0,20}spec|spec.{0,20}(unclear|ambiguous|missing|incomplete)"
            r"|cannot determine.{0,40}requirement|no guidance (for|on)|unclear (requirement|what|which|how)",
            re.I,
        ),
    ),
    (
        "missing_dependency",
        re.compile(r"missing.{0,20}dependenc|blocked.{0,20}(by|on|waiting)|waiting (for|on) ", re.I),
    ),
)
# only a blocked report may use these (they are too broad for free text)
_BLOCKED_ONLY: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("contradictory_requirements", re.compile(r"contradict|conflicting requirement", re.I)),
    ("impossible_as_specified", re.compile(r"impossible|cannot be done as specified", re.I)),
)

# Gate names -> the class a blocking result implies when the gate does not say
_GATE_CLASS = {
    "secrets": "secret_leak",
    "sast": "sast_block",
    "sca": "sast_block",
    "syntax": "implementation_error",
    "lint": "implementation_error",
    "types": "implementation_error",
    "typecheck": "implementation_error",
    "test": "implementation_error",
    "tests": "implementation_error",
    "contract": "implementation_error",
    "schema": "implementation_error",
    "criteria": "implementation_error",
}
_OWNERSHIP = re.compile(r"own", re.I)  # scope finding kinds like "owned-by-other-task"


@dataclass(frozen=True)
class Classification:
    cls: str
    evidence: list[str]
    rule: str
    subclass: str | None = None  # e.g. spec_gap: ambiguous_spec | missing_dependency
    files: tuple[str, ...] = ()  # the files the class is about (undeclared, conflicting, leaked …)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"class": self.cls, "rule": self.rule, "evidence": list(self.evidence)}
        if self.subclass:
            out["subclass"] = self.subclass
        if self.files:
            out["files"] = list(self.files)
        return out


@dataclass(frozen=True)
class _Match:
    evidence: list[str]
    subclass: str | None = None
    files: tuple[str, ...] = ()


Rule = Callable[[AttemptFacts], _Match | None]


# --- gate evidence ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GateView:
    gate: str
    status: str
    reason: str
    failure_class: str | None
    findings: tuple[Mapping[str, Any], ...]
    required: bool = False

    @property
    def blocking(self) -> bool:
        return self.status == "fail" or (self.required and self.status in ("warn", "skipped"))

    def implied_class(self) -> str:
        if self.failure_class in FAILURE_CLASSES:
            return self.failure_class
        if self.status != "fail":  # a required gate that warned or could not run
            return (
                "env_bootstrap"
                if self.status == "skipped"
                else _GATE_CLASS.get(self.gate, "implementation_error")
            )
        if self.gate == "scope":
            owned = any(_OWNERSHIP.search(str(f.get("kind", ""))) for f in self.findings)
            return "scope_violation" if owned else "decomposition_error"
        return _GATE_CLASS.get(self.gate, "implementation_error")


def gate_views(bundles: Iterable[Mapping[str, Any]]) -> list[GateView]:
    """Gate results from evidence bundles (``results[]``), SPEED's ``checks[]``, or flat keys."""
    views: list[GateView] = []
    for bundle in bundles:
        if isinstance(bundle.get("bundle"), Mapping):
            bundle = bundle["bundle"]
        listed = bundle.get("results") if isinstance(bundle.get("results"), list) else bundle.get("checks")
        if isinstance(listed, list):
            views += [_view(item) for item in listed if isinstance(item, Mapping)]
            continue
        for name, value in bundle.items():  # SPEED's flat form: {"tests": "fail"} / {"lint": {...}}
            if name in _GATE_CLASS or name == "scope":
                if isinstance(value, str):
                    views.append(GateView(name, value, "", None, ()))
                elif isinstance(value, Mapping) and isinstance(value.get("status"), str):
                    views.append(_view({"gate": name, **value}))
    return views


def _view(item: Mapping[str, Any]) -> GateView:
    findings = item.get("findings")
    return GateView(
        gate=str(item.get("gate") or item.get("name") or "?"),
        status=str(item.get("status") or ""),
        reason=str(item.get("reason") or ""),
        failure_class=item.get("failure_class") if isinstance(item.get("failure_class"), str) else None,
        findings=tuple(f for f in findings if isinstance(f, Mapping)) if isinstance(findings, list) else (),
        required=item.get("required") is True,
    )


def _gate_rule(cls: str) -> Rule:
    def rule(facts: AttemptFacts) -> _Match | None:
        hits = [v for v in gate_views(facts.gates) if v.blocking and v.implied_class() == cls]
        if not hits:
            if facts.gate_failure_class == cls:
                return _Match([f"the quality gates blocked landing as {cls}: {_clip(facts.reason)}"])
            return None
        evidence: list[str] = []
        files: list[str] = []
        for view in hits:
            evidence.append(
                f"gate {view.gate}: {view.status}" + (f" — {_clip(view.reason)}" if view.reason else "")
            )
            for finding in view.findings:
                if finding.get("severity") == "info" or finding.get("new") is False:
                    continue  # context (a file shared with another task) or pre-existing debt
                where = str(finding.get("file") or "")
                if where and where not in files:
                    files.append(where)
                line = finding.get("line")
                # file, line and kind only: a finding's message could quote what it found
                evidence.append(f"  {where}{f':{line}' if line else ''} {finding.get('kind', '')}".rstrip())
        return _Match(evidence, files=tuple(files))

    return rule


# --- the rules ------------------------------------------------------------------------------------------
def _kind(*kinds: str) -> Rule:
    def rule(facts: AttemptFacts) -> _Match | None:
        if facts.failure_kind in kinds:
            return _Match([f"the runtime reported {facts.failure_kind}: {_clip(facts.reason)}"])
        return None

    return rule


def _transient(facts: AttemptFacts) -> _Match | None:
    if facts.internal_error:
        return _Match([f"speedrift failed during the attempt: {_clip(facts.internal_error)}"])
    return _kind("transient", "crashed")(facts)


def _shared_paths(facts: AttemptFacts) -> _Match | None:
    if not facts.shared_paths_modified:
        return None
    shown = ", ".join(facts.shared_paths_modified[:10])
    return _Match(
        [f"the agent modified shared environment paths: {shown}"], files=facts.shared_paths_modified
    )


def _merge_conflict(facts: AttemptFacts) -> _Match | None:
    if facts.merge_conflict is None:
        return None
    shown = ", ".join(facts.merge_conflict[:10]) or "(files unknown)"
    return _Match([f"rebasing onto the target branch conflicts in: {shown}"], files=facts.merge_conflict)


def _env_bootstrap(facts: AttemptFacts) -> _Match | None:
    if facts.env_bootstrap:
        return _Match([f"the attempt's environment could not be prepared: {_clip(facts.env_bootstrap)}"])
    return _kind("not_installed", "config_error")(facts)


def _budget_hit(facts: AttemptFacts) -> _Match | None:
    if facts.failure_kind == "budget":
        return _Match([f"a hard budget was hit: {_clip(facts.reason)}"])
    b = facts.budget
    over = [
        text
        for hit, text in (
            (b.wall_clock_s is not None and b.duration_s >= b.wall_clock_s, f"ran {b.duration_s:g}s"),
            (b.max_tokens is not None and b.tokens > b.max_tokens, f"used {b.tokens} tokens"),
            (b.max_cost_usd is not None and b.cost_usd > b.max_cost_usd, f"cost ${b.cost_usd:.4f}"),
        )
        if hit
    ]
    if over and facts.failure_kind is not None:
        return _Match([f"the attempt ended past its budget ({', '.join(over)}): {_clip(facts.reason)}"])
    return None


def _context_cut(facts: AttemptFacts) -> _Match | None:
    ev = facts.events
    said = [m for m in ev.context_messages] + (
        [facts.reason] if facts.reason and CONTEXT_LIMIT.search(facts.reason) else []
    )
    if said:
        return _Match([f"the context window ran out: {_clip(said[-1])}"], subclass="context_exhausted")
    if facts.failure_kind == "max_turns" and ev.edit_calls and ev.last_edit_index is not None:
        window = max(FLOWING_WINDOW_MIN, math.ceil(ev.tool_calls * FLOWING_WINDOW_SHARE))
        if ev.last_edit_index >= ev.tool_calls - window:
            return _Match(
                [
                    f"the turn budget cut the agent off while it was still editing "
                    f"({ev.edit_calls} edits in {ev.tool_calls} tool calls, the last at call "
                    f"{ev.last_edit_index + 1})"
                ],
                subclass="turns_cut_mid_edit",
            )
    # SPEED's rule: a prompt builder cut files to fit the budget, and the agent then went looking
    # for one of them (its output names the cut file's path or basename)
    text = "\n".join((facts.final_text, *ev.message_lines))
    for cut in facts.budget.cut_files:
        if cut and (cut in text or posixpath.basename(cut) in text):
            return _Match(
                [f"{cut} was cut from the prompt's context and the agent needed it"], subclass="cut_file"
            )
    return None


def _exploration(facts: AttemptFacts) -> _Match | None:
    # an agent that explored and then reported itself blocked reached a conclusion: spec_gap
    if facts.report_status == "blocked" or facts.failure_kind == "blocked":
        return None
    ev = facts.events
    edited = ev.edit_calls > 0 or (facts.files_changed or 0) > 0
    if edited:
        return None
    calls = max(ev.tool_calls, facts.budget.turns)
    if calls >= EXPLORATION_MIN_CALLS:
        return _Match([f"{calls} tool calls/turns and not one file edited"], subclass="no_edits")
    if ev.tool_calls == 0:  # no structured tool events: SPEED's line-counting rule
        lines = ev.message_lines
        if len(lines) >= EXPLORATION_MIN_LINES:
            exploring = sum(1 for line in lines if _EXPLORING.search(line))
            coding = sum(1 for line in lines if _CODING.search(line))
            if exploring / len(lines) > EXPLORATION_SHARE and coding / len(lines) < CODE_SHARE:
                return _Match(
                    [f"{exploring} of {len(lines)} output lines explore, {coding} write code"],
                    subclass="exploring_output",
                )
    return None


def _max_turns(facts: AttemptFacts) -> _Match | None:
    if facts.failure_kind == "max_turns":
        return _Match([f"the turn budget ran out without a clearer cause: {_clip(facts.reason)}"])
    return None


def _spec_gap(facts: AttemptFacts) -> _Match | None:
    if facts.report_status == "blocked" or facts.failure_kind == "blocked":
        text = "\n".join((facts.report_summary, *facts.report_concerns))
        subclass = _first_subclass(text, (*_SPEC_GAP, *_BLOCKED_ONLY)) or "blocked"
        said = facts.report_summary or facts.reason or "(no question given)"
        return _Match([f"the agent reported itself blocked: {_clip(said)}"], subclass=subclass)
    if facts.failure_kind is None:
        return None  # a finished agent's doubts do not outrank what the gates found
    text = "\n".join((facts.final_text, facts.reason))
    pointed = _first_subclass(text, _SPEC_GAP)
    if pointed:
        return _Match(
            [f"the agent's last words point at the spec: {_clip(facts.final_text or facts.reason)}"],
            subclass=pointed,
        )
    return None


def _first_subclass(text: str, patterns: Sequence[tuple[str, re.Pattern[str]]]) -> str | None:
    return next((name for name, pattern in patterns if pattern.search(text)), None)


def _implementation(facts: AttemptFacts) -> _Match | None:
    found = _gate_rule("implementation_error")(facts)
    if found:
        return found
    if facts.failure_kind is not None:
        return _Match([f"the agent's run failed ({facts.failure_kind}): {_clip(facts.reason)}"])
    return None


def _fallback(facts: AttemptFacts) -> _Match | None:
    return _Match([f"no specific signal; the attempt failed: {_clip(facts.reason) or '(no reason given)'}"])


# (rule name, class, test), in precedence order: the first rule that matches decides.
RULES: tuple[tuple[str, str, Rule], ...] = (
    ("auth", "auth_failure", _kind("auth_failure")),
    ("usage-limit", "usage_limit", _kind("usage_limit")),
    ("transient", "transient_infra", _transient),
    ("secrets-gate", "secret_leak", _gate_rule("secret_leak")),
    ("scope-ownership", "scope_violation", _gate_rule("scope_violation")),
    ("shared-paths", "scope_violation", _shared_paths),
    ("scope-undeclared", "decomposition_error", _gate_rule("decomposition_error")),
    ("merge-conflict", "merge_conflict", _merge_conflict),
    ("env-bootstrap", "env_bootstrap", _env_bootstrap),
    ("env-gate", "env_bootstrap", _gate_rule("env_bootstrap")),
    ("budget-hit", "exceeded_capacity", _budget_hit),
    ("stall", "agent_stall", _kind("stall")),
    ("context-cut", "context_cut", _context_cut),
    ("exploration", "exploration_death", _exploration),
    ("max-turns", "exceeded_capacity", _max_turns),
    ("spec-gap", "spec_gap", _spec_gap),
    ("sast-gate", "sast_block", _gate_rule("sast_block")),
    ("regression-gate", "regression", _gate_rule("regression")),
    ("implementation", "implementation_error", _implementation),
    ("fallback", "implementation_error", _fallback),
)


def classify(facts: AttemptFacts) -> Classification:
    """Exactly one class for a failed attempt: the first rule of :data:`RULES` that matches."""
    for name, cls, rule in RULES:
        found = rule(facts)
        if found is not None:
            evidence = [_clip(e) for e in found.evidence[:MAX_EVIDENCE]]
            return Classification(cls, evidence, name, found.subclass, found.files)
    raise AssertionError("the fallback rule always matches")  # pragma: no cover


def _clip(text: str) -> str:
    text = " ".join(text.split()) if "\n" in text else text
    return text if len(text) <= MAX_EVIDENCE_TEXT else text[: MAX_EVIDENCE_TEXT - 1] + "…"
