"""The gate suite: runs the gates cheap first, stops early on a hard failure, aggregates.

Order: syntax, secrets, scope, contract, lint, types, tests, sast, sca. A ``secret_leak`` or
``scope_violation`` stops the run (the rest are recorded as skipped, with why). Each gate has a
timeout (``[gates] timeout_seconds`` / ``[gates.timeouts]``) inside the suite's own
(``total_timeout_seconds``); a gate past it fails with the reason. A gate that crashes fails too:
a gate never passes by accident.

:class:`GateSuite` is the pipeline's :class:`~speedrift.gates.verdict.GateRunner`. When the
merge queue has rebased an attempt onto a newer target, the comparison base moves to that target
commit, so other work that landed meanwhile is not counted as this attempt's diff.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from speedrift import gitcmd, layout, redact, secret_patterns
from speedrift.failure_class import FailureClass
from speedrift.gates import bundle as bundles
from speedrift.gates import changes as changes_mod
from speedrift.gates.config import GatesConfig
from speedrift.gates.context import Gate, GateContext, result
from speedrift.gates.contract import ContractGate
from speedrift.gates.diffaware import Cache
from speedrift.gates.lint import LintGate
from speedrift.gates.model import EvidenceBundle, GateResult
from speedrift.gates.sast import SastGate
from speedrift.gates.sca import ScaGate
from speedrift.gates.scope import ScopeGate
from speedrift.gates.secrets import SecretsGate
from speedrift.gates.syntax import SyntaxGate
from speedrift.gates.testrun import TestsGate
from speedrift.gates.tools import GateTimeout, ToolFinder, ToolNotRunnable
from speedrift.gates.typecheck import TypesGate
from speedrift.gates.verdict import GateVerdict
from speedrift.graph.model import Task, speedrift_data
from speedrift.graph.store import GraphStore
from speedrift.repo import git
from speedrift.textclip import clip
from speedrift.times import format_time, now_utc

HARD_FAILURES = frozenset({FailureClass.SECRET_LEAK, FailureClass.SCOPE_VIOLATION})
# a hanging suite is most likely the change
TIMEOUT_CLASS: dict[str, FailureClass] = {"tests": FailureClass.IMPLEMENTATION_ERROR}


def default_gates() -> tuple[Gate, ...]:
    return (
        SyntaxGate(),
        SecretsGate(),
        ScopeGate(),
        ContractGate(),
        LintGate(),
        TypesGate(),
        TestsGate(),
        SastGate(),
        ScaGate(),
    )


def cache_dir(repo: Path) -> Path:
    folder = layout.cache_dir(repo, "gates")
    if not folder.is_dir():
        # caches and bundles live in .speedrift/, which must never show up as the repo's changes
        with contextlib.suppress(gitcmd.GitError, OSError):
            git.exclude_locally(repo, layout.EXCLUDE_PATTERN)
            folder.mkdir(parents=True, exist_ok=True)  # excluded once: the next suite asks git nothing
    return folder


@dataclass
class GateSuite:
    config: GatesConfig = field(default_factory=GatesConfig)
    store: GraphStore | None = None  # the repo's graph (other tasks' scope; the task log)
    target_branch: str | None = None  # default: the repo's default branch
    # compare with the target branch's tip when it moved on between the base and the tip (False:
    # always with the base — a Dask worker's cache repository, which holds no target branch)
    follow_target: bool = True
    env: Mapping[str, str] | None = None  # environment for the gate tools (default: ours)
    gates: Sequence[Gate] = field(default_factory=default_gates)
    log_to_task: bool = True
    # `[env] secrets`: names passed through to agents, whose values the secrets gate searches for
    # whatever they are called (credential-named variables it searches for anyway)
    secret_names: Sequence[str] = ()

    # --- the pipeline's seam -------------------------------------------------------------------
    def check(self, repo: Path, worktree: Path, base: str, tip: str, task: Task) -> GateVerdict:
        base_used = self._comparison_base(repo, worktree, base, tip)
        evidence, leaked = self._evaluate(repo, worktree, base_used, tip, task, working_tree=False)
        if leaked:
            # the values are in redact's memory now; scrub what this attempt already wrote
            run_dir = attempt_run_dir(repo, task)
            if run_dir is not None:
                redact.scrub_tree(run_dir, leaked)
        if base_used != base:
            evidence = replace(evidence, extra={**evidence.extra, "attempt_base": base})
        path = bundles.write(repo, evidence)
        data = redact.redact_value(bundles.to_dict(evidence))
        data["bundle_file"] = str(path)
        text = bundles.summary(evidence)
        blocking = evidence.blocking
        if self.log_to_task:
            self._log(repo, str(task.get("id", "")), text)
        return GateVerdict(
            passed=evidence.passed,
            summary=text,
            evidence=data,
            failure_class=_failure_class(blocking[0]) if blocking else None,
            verified=evidence.verified,
            unverified_reason=evidence.unverified_reason,
        )

    def _comparison_base(self, repo: Path, worktree: Path, base: str, tip: str) -> str:
        if not self.follow_target:
            return base
        target = self.target_branch or git.default_branch(repo)
        target_tip = git.rev_parse(repo, target) if target else None
        if (
            target_tip
            and target_tip != base
            and target_tip != tip
            and changes_mod.is_ancestor(worktree, base, target_tip)
            and changes_mod.is_ancestor(worktree, target_tip, tip)
        ):
            return target_tip
        return base

    # --- the run -------------------------------------------------------------------------------
    def evaluate(
        self,
        repo: Path,
        worktree: Path,
        base: str,
        tip: str,
        task: Task | None,
        *,
        working_tree: bool = False,
    ) -> EvidenceBundle:
        """Run every gate on ``worktree`` (at ``tip``, or its working tree) against ``base``."""
        return self._evaluate(repo, worktree, base, tip, task, working_tree=working_tree)[0]

    def _evaluate(
        self, repo: Path, worktree: Path, base: str, tip: str, task: Task | None, *, working_tree: bool
    ) -> tuple[EvidenceBundle, list[str]]:
        env = dict(os.environ if self.env is None else self.env)
        # the secrets this process holds, known before any gate runs (secrets gate; redaction)
        redact.remember_environment(self.secret_names)
        redact.remember_environment(self.secret_names, env)
        # the gates run the repo's tests and tools: code the agent wrote. They get no credential
        # this process holds (as the agent did not), only the ones the repo gives its agents
        # (``[env] secrets``) — the values are remembered above, so the secrets gate still finds them
        passed = set(self.secret_names)
        env = {k: v for k, v in env.items() if k in passed or not secret_patterns.is_secret_name(k)}
        started_all = time.monotonic()
        suite_deadline = started_all + self.config.total_timeout_seconds
        changed = changes_mod.collect(worktree, base, None if working_tree else tip)
        finder = ToolFinder(repo, worktree, self.config.tools, env)
        ctx = GateContext(
            repo=repo,
            worktree=worktree,
            base=base,
            tip=tip,
            task=task,
            changes=changed,
            config=self.config,
            env=env,
            finder=finder,
            cache=Cache(cache_dir(repo)),
            deadline=suite_deadline,
            working_tree=working_tree,
            other_tasks=lambda: self._tasks(repo),
        )
        results: list[GateResult] = []
        stopped: str | None = None
        for gate in self.gates:
            began = time.monotonic()
            if gate.name in self.config.skip:
                outcome = result(gate.name, "skipped", "disabled in speedrift.toml ([gates] skip)")
            elif stopped is not None:
                outcome = result(gate.name, "skipped", f"{bundles.NOT_RUN}stopped after {stopped} failed")
            else:
                ctx.deadline = min(suite_deadline, began + self.config.timeout_for(gate.name))
                outcome = self._run_one(gate, ctx)
                if outcome.status == "fail" and outcome.failure_class in HARD_FAILURES:
                    stopped = gate.name
            results.append(
                replace(
                    _redacted(outcome),
                    duration_ms=round((time.monotonic() - began) * 1000, 1),
                    required=gate.name in self.config.required,
                )
            )
        extra = {
            "changed_files": str(len(changed)),
            "duration_ms": str(round((time.monotonic() - started_all) * 1000, 1)),
        }
        if working_tree:
            extra["working_tree"] = "uncommitted changes included"
        verified, unverified = verification(results, ctx.notes)
        evidence = EvidenceBundle(
            commit=tip,
            base=base,
            results=tuple(results),
            created_at=format_time(now_utc()),
            task=str(task["id"]) if task and "id" in task else None,
            stopped_early=stopped,
            extra=extra,
            verified=verified,
            unverified_reason=unverified,
        )
        leaked = ctx.notes.get("secret_values")
        return evidence, [v for v in leaked if isinstance(v, str)] if isinstance(leaked, list) else []

    def _run_one(self, gate: Gate, ctx: GateContext) -> GateResult:
        try:
            return gate.run(ctx)
        except GateTimeout as timeout:
            return result(
                gate.name,
                "fail",
                f"timed out: {timeout} "
                f"(raise [gates.timeouts] {gate.name} in speedrift.toml if it needs longer)",
                failure_class=TIMEOUT_CLASS.get(gate.name, FailureClass.ENV_BOOTSTRAP),
            )
        except ToolNotRunnable as error:
            return result(gate.name, "fail", str(error), failure_class=FailureClass.ENV_BOOTSTRAP)
        except Exception as error:  # a gate's own bug must block, never pass
            return result(
                gate.name,
                "fail",
                clip(f"the {gate.name} gate crashed: {type(error).__name__}: {error}", 500),
                failure_class=FailureClass.ENV_BOOTSTRAP,
            )

    def _tasks(self, repo: Path) -> Mapping[str, Task]:
        store = self.store or GraphStore.of_repo(repo)
        if store is None:
            return {}
        try:
            return store.load().tasks
        except Exception:  # a malformed graph must not crash the scope gate; the graph CLI reports it
            return {}

    def _log(self, repo: Path, task_id: str, text: str) -> None:
        from speedrift.graph import ops

        store = self.store or GraphStore.of_repo(repo)
        if store is None or not task_id:
            return
        try:
            store.mutate(
                lambda graph, now: ops.log_message(graph, task_id, text, now=now, actor="speedrift-gates"),
                actor="speedrift-gates",
            )
        except Exception:  # the verdict stands even if the log line cannot be written
            return


def verification(results: Sequence[GateResult], notes: Mapping[str, object]) -> tuple[bool, str | None]:
    """(verified, why not): verified when the tests gate ran the repo's tests and nothing new fails."""
    tests = next((r for r in results if r.gate == "tests"), None)
    if tests is None:
        return False, "the tests gate did not run"
    if tests.status in ("pass", "warn") and notes.get("tests_verified") is True:
        return True, None
    said = notes.get("tests_unverified")
    if isinstance(said, str) and said:
        return False, said
    return False, f"tests {tests.status}: {tests.reason}" if tests.reason else f"tests {tests.status}"


def _failure_class(blocking: GateResult) -> FailureClass:
    """The class a blocking result implies; a required gate that could not run is the environment's."""
    if blocking.failure_class:
        return blocking.failure_class
    return FailureClass.ENV_BOOTSTRAP if blocking.status == "skipped" else FailureClass.IMPLEMENTATION_ERROR


def _redacted(outcome: GateResult) -> GateResult:
    findings = tuple(
        replace(f, message=redact.redact_text(f.message), file=redact.redact_text(f.file))
        for f in outcome.findings
    )
    command = tuple(redact.redact_text(part) for part in outcome.command)
    return replace(outcome, reason=redact.redact_text(outcome.reason), findings=findings, command=command)


def attempt_run_dir(repo: Path, task: Task) -> Path | None:

    attempt = speedrift_data(task).get("attempt")
    if not isinstance(attempt, int):
        return None
    folder = layout.attempt_dir(repo, str(task.get("id", "")), attempt)
    return folder if folder.is_dir() else None


def for_repo(
    gates_config: GatesConfig,
    store: GraphStore | None,
    target_branch: str | None = None,
    secret_names: Sequence[str] = (),
    *,
    log_to_task: bool = True,
) -> GateSuite:
    """The suite a worker pipeline uses: the repo's [gates] config, its graph, its target branch,
    and the names of the secrets its agents are given (``[env] secrets``). Callers get it through
    ``fleet.lanegate.suite_for``, which adds the landing-blocking drift lanes."""
    return GateSuite(
        gates_config,
        store=store,
        target_branch=target_branch,
        secret_names=tuple(secret_names),
        log_to_task=log_to_task,
    )
