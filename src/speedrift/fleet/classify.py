"""Failure classification: every failed attempt gets exactly one class, first matching rule wins.

Pure: the caller gathers the facts (the runtime's verdict, the agent's report, a summary of its
events, the gate evidence, merge and bootstrap problems, budgets) and :func:`classify` returns
the class, the rule that matched and the evidence behind it. ``docs/failure-classes.md`` is the
human version of :data:`RULES`; the recovery each class gets lives in ``fleet/recovery.py``.
The classes are :class:`~speedrift.failure_class.FailureClass`; :data:`KIND_CLASSES` is the one
table from the runtime's own verdict (``FailureKind``) to a class.

An agent that stopped after its CLI refused tool calls (opencode auto-rejects a permission and
ends) and left nothing in its worktree is ``exploration_death`` (rule ``refused-calls``): like an
agent that only explored, it ended without one change where it works, and the recovery that fits
is the same — one retry whose diagnosis says what was refused and that writes outside the
worktree are refused, then a human. Not ``implementation_error``: no check failed, and "fix what
the checks report" would tell the next attempt nothing. The pipeline (fleet/outside.py) gives such
an attempt the reason :func:`refused_stop_reason` builds; an attempt that did leave changes is
committed and gated like a finished one instead.
"""

from __future__ import annotations

import math
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from speedrift.agents.protocol import FailureKind
from speedrift.failure_class import FailureClass, parse_failure_class
from speedrift.fleet.attempt_facts import CONTEXT_LIMIT, AttemptFacts
from speedrift.textclip import clip

# How the runtime's own verdict decides the class, for the kinds that decide it by themselves (the
# rules auth, usage-limit, transient, env-bootstrap, budget-hit and stall). The other kinds
# (max_turns, blocked, agent_error, incomplete) go through the rules that read the attempt's events,
# report and gates.
KIND_CLASSES: dict[FailureKind, FailureClass] = {
    FailureKind.AUTH: FailureClass.AUTH_FAILURE,
    FailureKind.USAGE_LIMIT: FailureClass.USAGE_LIMIT,
    FailureKind.RATE_LIMIT: FailureClass.TRANSIENT_INFRA,  # retried once the provider's reset passed
    FailureKind.TRANSIENT: FailureClass.TRANSIENT_INFRA,
    FailureKind.CRASHED: FailureClass.TRANSIENT_INFRA,
    FailureKind.NOT_INSTALLED: FailureClass.ENV_BOOTSTRAP,
    FailureKind.CONFIG: FailureClass.ENV_BOOTSTRAP,
    FailureKind.BUDGET: FailureClass.EXCEEDED_CAPACITY,
    FailureKind.STALL: FailureClass.AGENT_STALL,
}

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
_GATE_CLASS: dict[str, FailureClass] = {
    "secrets": FailureClass.SECRET_LEAK,
    "sast": FailureClass.SAST_BLOCK,
    "sca": FailureClass.SAST_BLOCK,
    "syntax": FailureClass.IMPLEMENTATION_ERROR,
    "lint": FailureClass.IMPLEMENTATION_ERROR,
    "types": FailureClass.IMPLEMENTATION_ERROR,
    "typecheck": FailureClass.IMPLEMENTATION_ERROR,
    "test": FailureClass.IMPLEMENTATION_ERROR,
    "tests": FailureClass.IMPLEMENTATION_ERROR,
    "contract": FailureClass.IMPLEMENTATION_ERROR,
    "schema": FailureClass.IMPLEMENTATION_ERROR,
    "criteria": FailureClass.IMPLEMENTATION_ERROR,
}
_OWNERSHIP = re.compile(r"own", re.I)  # scope finding kinds like "owned-by-other-task"


@dataclass(frozen=True)
class Classification:
    cls: FailureClass
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
    failure_class: FailureClass | None  # the class the result names itself (None: none, or unknown)
    findings: tuple[Mapping[str, Any], ...]
    required: bool = False

    @property
    def blocking(self) -> bool:
        return self.status == "fail" or (self.required and self.status in ("warn", "skipped"))

    def implied_class(self) -> FailureClass:
        if self.failure_class is not None:
            return self.failure_class
        if self.status != "fail":  # a required gate that warned or could not run
            return (
                FailureClass.ENV_BOOTSTRAP
                if self.status == "skipped"
                else _GATE_CLASS.get(self.gate, FailureClass.IMPLEMENTATION_ERROR)
            )
        if self.gate == "scope":
            owned = any(_OWNERSHIP.search(str(f.get("kind", ""))) for f in self.findings)
            return FailureClass.SCOPE_VIOLATION if owned else FailureClass.DECOMPOSITION_ERROR
        return _GATE_CLASS.get(self.gate, FailureClass.IMPLEMENTATION_ERROR)


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
        failure_class=parse_failure_class(item.get("failure_class")),
        findings=tuple(f for f in findings if isinstance(f, Mapping)) if isinstance(findings, list) else (),
        required=item.get("required") is True,
    )


def _gate_rule(cls: FailureClass) -> Rule:
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
def _kind(cls: FailureClass) -> Rule:
    """The runtime reported a kind that :data:`KIND_CLASSES` maps to ``cls``."""

    def rule(facts: AttemptFacts) -> _Match | None:
        if _kind_class(facts) == cls:
            return _Match([f"the runtime reported {facts.failure_kind}: {_clip(facts.reason)}"])
        return None

    return rule


def _kind_class(facts: AttemptFacts) -> FailureClass | None:
    return KIND_CLASSES.get(facts.failure_kind) if facts.failure_kind is not None else None


def _transient(facts: AttemptFacts) -> _Match | None:
    if facts.internal_error:
        return _Match([f"speedrift failed during the attempt: {_clip(facts.internal_error)}"])
    return _kind(FailureClass.TRANSIENT_INFRA)(facts)


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
    return _kind(FailureClass.ENV_BOOTSTRAP)(facts)


def _budget_hit(facts: AttemptFacts) -> _Match | None:
    if _kind_class(facts) == FailureClass.EXCEEDED_CAPACITY:
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
    if facts.failure_kind == FailureKind.MAX_TURNS and ev.edit_calls and ev.last_edit_index is not None:
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


# the reason fleet/outside.py gives an attempt whose agent stopped after refused tool calls with
# nothing changed in its worktree
REFUSED_STOP = "the agent stopped after its CLI refused"
REFUSED_ADVICE = (
    "writes outside the attempt's worktree are refused (and so may be other calls needing a permission): "
    "work only inside the worktree, with paths relative to it"
)


def refused_stop_reason(refused: Sequence[str]) -> str:
    """The failure reason of an attempt whose agent stopped after ``refused`` tool calls and left
    no change in its worktree (matched by the ``refused-calls`` rule)."""
    shown = "; ".join(refused[:5]) + (f"; and {len(refused) - 5} more" if len(refused) > 5 else "")
    return f"{REFUSED_STOP} {len(refused)} tool call(s) and left no change in its worktree: {shown}"


def _refused_calls(facts: AttemptFacts) -> _Match | None:
    stopped = facts.failure_kind is FailureKind.INCOMPLETE and bool(facts.refused)
    if stopped and not facts.files_changed:
        return _Match([facts.reason, REFUSED_ADVICE], subclass="refused_calls")
    return None


def _exploration(facts: AttemptFacts) -> _Match | None:
    # an agent that explored and then reported itself blocked reached a conclusion: spec_gap
    if facts.report_status == "blocked" or facts.failure_kind == FailureKind.BLOCKED:
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
    if facts.failure_kind == FailureKind.MAX_TURNS:
        return _Match([f"the turn budget ran out without a clearer cause: {_clip(facts.reason)}"])
    return None


def _spec_gap(facts: AttemptFacts) -> _Match | None:
    if facts.report_status == "blocked" or facts.failure_kind == FailureKind.BLOCKED:
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
    found = _gate_rule(FailureClass.IMPLEMENTATION_ERROR)(facts)
    if found:
        return found
    if facts.failure_kind is not None:
        return _Match([f"the agent's run failed ({facts.failure_kind}): {_clip(facts.reason)}"])
    return None


def _fallback(facts: AttemptFacts) -> _Match | None:
    return _Match([f"no specific signal; the attempt failed: {_clip(facts.reason) or '(no reason given)'}"])


# (rule name, class, test), in precedence order: the first rule that matches decides.
RULES: tuple[tuple[str, FailureClass, Rule], ...] = (
    ("auth", FailureClass.AUTH_FAILURE, _kind(FailureClass.AUTH_FAILURE)),
    ("usage-limit", FailureClass.USAGE_LIMIT, _kind(FailureClass.USAGE_LIMIT)),
    ("transient", FailureClass.TRANSIENT_INFRA, _transient),
    ("secrets-gate", FailureClass.SECRET_LEAK, _gate_rule(FailureClass.SECRET_LEAK)),
    ("scope-ownership", FailureClass.SCOPE_VIOLATION, _gate_rule(FailureClass.SCOPE_VIOLATION)),
    ("shared-paths", FailureClass.SCOPE_VIOLATION, _shared_paths),
    ("scope-undeclared", FailureClass.DECOMPOSITION_ERROR, _gate_rule(FailureClass.DECOMPOSITION_ERROR)),
    ("merge-conflict", FailureClass.MERGE_CONFLICT, _merge_conflict),
    ("env-bootstrap", FailureClass.ENV_BOOTSTRAP, _env_bootstrap),
    ("env-gate", FailureClass.ENV_BOOTSTRAP, _gate_rule(FailureClass.ENV_BOOTSTRAP)),
    ("invalid-output", FailureClass.INVALID_OUTPUT, _gate_rule(FailureClass.INVALID_OUTPUT)),
    ("budget-hit", FailureClass.EXCEEDED_CAPACITY, _budget_hit),
    ("stall", FailureClass.AGENT_STALL, _kind(FailureClass.AGENT_STALL)),
    ("context-cut", FailureClass.CONTEXT_CUT, _context_cut),
    ("refused-calls", FailureClass.EXPLORATION_DEATH, _refused_calls),
    ("exploration", FailureClass.EXPLORATION_DEATH, _exploration),
    ("max-turns", FailureClass.EXCEEDED_CAPACITY, _max_turns),
    ("spec-gap", FailureClass.SPEC_GAP, _spec_gap),
    ("sast-gate", FailureClass.SAST_BLOCK, _gate_rule(FailureClass.SAST_BLOCK)),
    ("regression-gate", FailureClass.REGRESSION, _gate_rule(FailureClass.REGRESSION)),
    ("review-rejected", FailureClass.REVIEW_REJECTED, _gate_rule(FailureClass.REVIEW_REJECTED)),
    ("hook-rejected", FailureClass.HOOK_REJECTED, _gate_rule(FailureClass.HOOK_REJECTED)),
    ("implementation", FailureClass.IMPLEMENTATION_ERROR, _implementation),
    ("fallback", FailureClass.IMPLEMENTATION_ERROR, _fallback),
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
    return clip(text, MAX_EVIDENCE_TEXT)  # a hint at the end of a reason is kept whole
