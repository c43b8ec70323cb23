"""Landing-blocking drift lanes: the ``lanes`` gate, and the one function that builds a worker's gate suite.

``[lanes] blocking = ["depsdrift"]`` in ``.workgraph/drift-policy.toml`` makes those lanes judge
every attempt before it lands: :class:`LanesGate` runs them through the lane runner on the
attempt's diff (``base..tip``, tree lanes at ``tip``, the attempt's task for fences) without
saving a report, and fails when one reports an actionable finding the attempt brought — or when
one could not judge (a lane error, a lane that did not run): a lane that cannot judge never passes.
A tree lane (which judges the whole tree at a commit) is also run at ``base``; what it found there
already is shown as pre-existing (``new: false``) and does not block, as the diff-aware gates treat
findings the target already had — a key committed to ``main`` long ago does not hold every attempt.
A graph or task lane judges the graph or the task's record, which the attempt's diff does not
change: every actionable finding it reports blocks.

:func:`suite_for` is the only way a worker, the service, a plan run, an ad-hoc run or
``speedrift gates run`` gets its :class:`~speedrift.gates.suite.GateSuite`: the repo's gates
(:func:`speedrift.gates.suite.for_repo`) and, when the policy names blocking lanes, the ``lanes``
gate after them. Without a policy file, or with no blocking lanes, the gate is not added at all.

Cost: without a policy file, building the suite reads one path's status (the built-in lanes are
imported only to read a policy that exists, the lane runner only when the gate runs).

Layering: fleet may import lanes and gates; gates never import lanes or fleet, which is why the
gate lives here and plugs into the suite through the :class:`~speedrift.gates.context.Gate`
protocol.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from speedrift.errors import SpeedriftError
from speedrift.failure_class import FailureClass
from speedrift.fleet.config import RepoConfig
from speedrift.gates.context import GateContext, result
from speedrift.gates.model import Finding, GateResult
from speedrift.gates.model import Severity as GateSeverity
from speedrift.gates.suite import GateSuite, for_repo
from speedrift.graph.store import GraphStore
from speedrift.lanes.external import Containment
from speedrift.lanes.model import CheckReport, LaneFinding, LaneResult, LaneScope, Severity, summary_of
from speedrift.lanes.policy import DriftPolicy, load, policy_path
from speedrift.lanes.spec import Lane
from speedrift.times import now_utc

GATE_NAME = "lanes"
SEVERITY: dict[Severity, GateSeverity] = {
    Severity.CRITICAL: "critical",
    Severity.ERROR: "high",
    Severity.WARNING: "medium",
    Severity.INFO: "info",
}
# the class an actionable finding implies, by lane (and kind); anything else is the change's own error
CLASS_BY_LANE: dict[str, FailureClass] = {"secdrift": FailureClass.SECRET_LEAK}
CLASS_BY_KIND: dict[tuple[str, str], FailureClass] = {
    ("coredrift", "scope_drift"): FailureClass.SCOPE_VIOLATION
}
CLASS_ORDER = (FailureClass.SECRET_LEAK, FailureClass.SCOPE_VIOLATION, FailureClass.IMPLEMENTATION_ERROR)


def failure_class_of(finding: LaneFinding) -> FailureClass:
    return CLASS_BY_KIND.get(
        (finding.lane, finding.kind), CLASS_BY_LANE.get(finding.lane, FailureClass.IMPLEMENTATION_ERROR)
    )


@dataclass
class LanesGate:
    """The policy's blocking lanes as a gate (see the module docstring)."""

    policy: DriftPolicy
    builtin: Mapping[str, Lane] = field(default_factory=lambda: _builtin())
    name: str = GATE_NAME
    containment: Containment | None = None  # how external lanes run (the repo's [sandbox], [env])

    def run(self, ctx: GateContext) -> GateResult:
        from speedrift.lanes import runner

        lanes = self.policy.blocking
        task_id = ctx.task.get("id") if ctx.task is not None else None
        task = task_id if isinstance(task_id, str) and task_id else None
        tip: str | None = ctx.tip
        note = ""
        if ctx.working_tree:
            if ctx.worktree.resolve() == ctx.repo.resolve():
                tip = None  # the lanes judge the uncommitted changes too, as the other gates do
            else:
                note = f" (uncommitted changes in {ctx.worktree} not judged: commit them)"
        now = now_utc()
        try:
            report = runner.check(
                ctx.repo,
                now=now,
                request=runner.CheckRequest(task, lanes, base=ctx.base, tip=tip, head=ctx.tip),
                policy=self.policy,
                builtin=self.builtin,
                save=False,
                containment=self.containment,
            )
            before = self._found_at_base(ctx, task, now)
        except SpeedriftError as exc:
            return result(
                self.name,
                "fail",
                f"the blocking lanes could not run: {exc.message}",
                failure_class=FailureClass.ENV_BOOTSTRAP,
            )
        return verdict(self.name, report, before, note)

    def _found_at_base(self, ctx: GateContext, task: str | None, now: datetime) -> frozenset[str]:
        """Fingerprints the blocking tree lanes already report at the base commit."""
        from speedrift.lanes import runner

        scopes = runner.scopes(ctx.repo, self.policy, self.builtin)
        standing = tuple(name for name in self.policy.blocking if scopes[name] is LaneScope.TREE)
        if not standing:
            return frozenset()
        report = runner.check(
            ctx.repo,
            now=now,
            request=runner.CheckRequest(task, standing, base=ctx.base, tip=ctx.base, head=ctx.base),
            policy=self.policy,
            builtin=self.builtin,
            save=False,
            containment=self.containment,
        )
        return frozenset(f.fingerprint for r in report.results if r.error is None for f in r.findings)


def verdict(name: str, report: CheckReport, before: frozenset[str], note: str = "") -> GateResult:
    """The gate's result: fail on an actionable finding not in ``before``, or on a lane that could
    not judge; the failure class is the gravest any blocking finding implies."""
    unable = [r for r in report.results if r.error is not None or r.skipped is not None]
    blocking = [f for r in report.results for f in r.actionable if f.fingerprint not in before]
    findings = tuple(gate_finding(f, new=f.fingerprint not in before) for f in report.findings)
    reason = "; ".join(_lane_reason(r, before) for r in report.results) + note
    if blocking:
        classes = {failure_class_of(f) for f in blocking}
        worst = next(c for c in CLASS_ORDER if c in classes)
        return result(name, "fail", reason, findings, failure_class=worst)
    if unable:
        return result(name, "fail", reason, findings, failure_class=FailureClass.ENV_BOOTSTRAP)
    return result(name, "pass", reason or "no blocking lanes ran", findings)


def _lane_reason(lane: LaneResult, before: frozenset[str]) -> str:
    if lane.error is not None:
        return f"{lane.lane} could not judge: {lane.error}"
    if lane.skipped is not None:
        return f"{lane.lane} did not run: {lane.skipped}"
    new = [f for f in lane.findings if f.fingerprint not in before]
    old = len(lane.findings) - len(new)
    text = f"{lane.lane}: {summary_of(new)}"
    kinds = sorted({f.kind for f in new if f.actionable})
    if kinds:
        text += f" ({', '.join(kinds)})"
    return text + (f", {old} pre-existing" if old else "")


def gate_finding(finding: LaneFinding, *, new: bool = True) -> Finding:
    """A lane's finding in the gates' model (the lane's name leads the message; the fix follows)."""
    message = f"{finding.lane}: {finding.message}"
    if finding.fix:
        message += f" (fix: {finding.fix})"
    return Finding(
        file=finding.file,
        line=finding.line or None,
        kind=finding.kind,
        message=message,
        severity=SEVERITY[finding.severity],
        rule=finding.lane,
        new=new,
    )


def _builtin() -> Mapping[str, Lane]:
    from speedrift.lanes.builtin import BUILTIN

    return BUILTIN


def containment_of(config: RepoConfig) -> Containment:
    """How the repo's external lanes run: in the sandbox its agents get (``[sandbox]`` mode and
    hidden paths), with the environment variables its ``[env] allow`` passes — never a secret."""
    return Containment(
        mode=config.sandbox.mode, hide=config.sandbox.hidden(), env_allow=tuple(config.env.allow)
    )


def lanes_gate(
    repo: Path, builtin: Mapping[str, Lane] | None = None, containment: Containment | None = None
) -> LanesGate | None:
    """The ``lanes`` gate for ``repo``'s policy, or None when it names no blocking lanes (or there
    is no policy file). A policy that does not load raises its PolicyError (file, line, key, fix):
    an attempt is never judged under a policy nobody can read."""
    path = policy_path(repo)
    if path is None or not path.is_file():
        return None
    lanes = _builtin() if builtin is None else builtin
    policy = load(repo, lanes)
    return LanesGate(policy, lanes, containment=containment) if policy.blocking else None


def suite_for(
    repo: Path,
    store: GraphStore | None,
    config: RepoConfig,
    *,
    log_to_task: bool = True,
    builtin: Mapping[str, Lane] | None = None,
) -> GateSuite:
    """The gate suite every attempt (and ``gates run``) uses: the repo's ``[gates]`` config, its
    graph, target branch and agents' secret names, plus the ``lanes`` gate last when the policy
    has blocking lanes."""
    suite = for_repo(config.gates, store, config.target_branch, config.env.secrets, log_to_task=log_to_task)
    gate = lanes_gate(repo, builtin, containment_of(config))
    if gate is not None:
        suite = replace(suite, gates=(*suite.gates, gate))
    return suite
