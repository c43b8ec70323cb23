"""``speedrift doctor``: the preflight of every agent runtime and every gate tool, and whether the
repos at hand have what they need.

For each runtime (claude, codex, opencode, shell) the executor preflight
(:mod:`speedrift.agents.preflight`: installed, runnable, logged in where the CLI can say so
offline) run afresh with the environment the repo's agents get, plus any machine-wide pause
(:mod:`speedrift.pausestore`). For each gate tool (ruff, mypy, pytest, semgrep, detect-secrets,
pip-audit, eslint, tsc, npm, node, go, cargo, make) where the gates would find it
(:class:`speedrift.gates.tools.ToolFinder`), its version and the install hint.

What a repo *needs*: the runtimes its unfinished tasks run on (its ``default_runtime`` when it has
none), and the tools of the gates that block when they cannot run — the ``[gates] required`` ones
and the tests gate while ``require_tests`` is not ``never``, as ``speedrift gates list`` reports
them. The report is ready when every need of every repo is met: a runtime ready and not paused
until a human lifts it, a tool found and runnable, and the agent sandbox where a repo sets
``[sandbox] mode = "required"``. Whether bwrap works here (:mod:`speedrift.agents.sandbox`) is
always reported, and each repo's agents are said to run sandboxed or not, and why not.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from speedrift import pausestore, procs
from speedrift.agents import choose, preflight, sandbox
from speedrift.agents import env as agent_env
from speedrift.errors import SpeedriftError
from speedrift.fleet.config import RepoConfig, load_config
from speedrift.gates import inventory
from speedrift.gates.tools import INSTALL_HINTS, ToolFinder
from speedrift.graph.model import TERMINAL, status_of
from speedrift.graph.store import GraphStore
from speedrift.times import iso_utc, now_utc

RUNTIMES = choose.RUNTIME_NAMES
TOOLS = (
    "ruff",
    "mypy",
    "pytest",
    "semgrep",
    "detect-secrets",
    "pip-audit",
    "eslint",
    "tsc",
    "npm",
    "node",
    "go",
    "cargo",
    "make",
)
# the others answer --version; semgrep would otherwise look for a newer release online first
VERSION_ARGS: dict[str, tuple[str, ...]] = {
    "go": ("version",),
    "semgrep": ("--version", "--disable-version-check"),
}
QUIET_ENV = {"SEMGREP_ENABLE_VERSION_CHECK": "0", "SEMGREP_SEND_METRICS": "off"}
TOOL_TIMEOUT_S = 30.0  # semgrep takes seconds to start on a loaded machine
INSTALL_HINTS_EXTRA = {"detect-secrets": "pip install detect-secrets (or speedrift[gates])"}


@dataclass(frozen=True)
class RepoNeeds:
    name: str
    path: Path
    config: RepoConfig
    runtimes: tuple[str, ...]
    tools: dict[str, tuple[str, ...]]  # tool -> the gates that need it


@dataclass(frozen=True)
class ToolReport:
    tool: str
    path: str | None
    version: str | None
    status: str  # ok | missing | not_runnable | unknown
    detail: str
    fix: str
    gates: tuple[str, ...]  # the gates that use it where it is used at all

    @property
    def ready(self) -> bool:
        return self.status in ("ok", "unknown")

    def to_dict(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "path": self.path,
            "version": self.version,
            "status": self.status,
            "ready": self.ready,
            "detail": self.detail,
            "fix": self.fix,
            "gates": list(self.gates),
        }


@dataclass
class DoctorReport:
    checked_at: datetime
    runtimes: list[dict[str, Any]] = field(default_factory=list)
    tools: list[dict[str, Any]] = field(default_factory=list)
    repos: list[dict[str, Any]] = field(default_factory=list)
    pauses: list[dict[str, Any]] = field(default_factory=list)
    sandbox: dict[str, Any] = field(default_factory=dict)  # can bwrap run here, and the fix

    @property
    def ready(self) -> bool:
        return all(repo["ready"] for repo in self.repos)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "checked_at": iso_utc(self.checked_at),
            "runtimes": self.runtimes,
            "tools": self.tools,
            "repos": self.repos,
            "pauses": self.pauses,
            "sandbox": self.sandbox,
        }


# --- what a repo needs ----------------------------------------------------------------------------
def repo_needs(name: str, path: Path) -> RepoNeeds:
    """The runtimes and gate tools ``path`` needs (its config unreadable: a SpeedriftError)."""
    config = load_config(path)
    runtimes: set[str] = set()
    store = GraphStore.of_repo(path)
    if store is not None:
        for task in store.load().tasks.values():
            if status_of(task) in TERMINAL or task.get("id", "").startswith("."):
                continue
            runtime, _model = choose.select_runtime(task, config.default_runtime)
            runtimes.add(runtime)
    if not runtimes:
        runtimes.add(config.default_runtime)
    tools: dict[str, list[str]] = {}
    blocking = set(config.gates.required)
    if config.gates.require_tests != "never":
        blocking.add("tests")
    for row in inventory.describe(path, path, config.gates):
        if row["gate"] not in blocking or row["gate"] in config.gates.skip:
            continue
        for tool in row["tools"]:
            if tool["used"]:
                tools.setdefault(tool["tool"], []).append(row["gate"])
    return RepoNeeds(
        name,
        path,
        config,
        tuple(r for r in RUNTIMES if r in runtimes),
        {tool: tuple(gates) for tool, gates in tools.items()},
    )


def _agent_env(config: RepoConfig | None, source: Mapping[str, str] | None) -> dict[str, str]:
    allow = config.env.allow if config else []
    secrets = config.env.secrets if config else []
    return agent_env.agent_env({}, allow=allow, passthrough_secrets=secrets, source=source)


# --- tools ----------------------------------------------------------------------------------------
def check_tool(tool: str, finder: ToolFinder, env: Mapping[str, str], cwd: Path) -> ToolReport:
    """Found where the gates look, and answering ``--version`` (``go version``)."""
    hint = INSTALL_HINTS.get(tool) or INSTALL_HINTS_EXTRA.get(tool) or f"install {tool}"
    if tool == "detect-secrets":  # the secrets gate uses the library, not the command
        if importlib.util.find_spec("detect_secrets") is None:
            return ToolReport(
                tool, None, None, "missing", "the detect_secrets library is not importable", hint, ()
            )
        try:
            version: str | None = importlib.metadata.version("detect-secrets")
        except importlib.metadata.PackageNotFoundError:
            version = None
        return ToolReport(tool, "python library", version, "ok", "importable by speedrift", "", ())
    path = finder.find(tool)
    if path is None:
        return ToolReport(tool, None, None, "missing", finder.missing_reason(tool), hint, ())
    argv = [str(path), *VERSION_ARGS.get(tool, ("--version",))]
    try:
        done = procs.run(
            argv, env={**env, **QUIET_ENV}, cwd=cwd, timeout=TOOL_TIMEOUT_S, end_group=True, text=True
        )
    except procs.ProcessTimeout:
        return ToolReport(tool, str(path), None, "unknown", f"no answer within {TOOL_TIMEOUT_S:g}s", "", ())
    except OSError as error:
        return ToolReport(tool, str(path), None, "not_runnable", f"could not start: {error}", hint, ())
    said = next((line.strip() for line in (done.stdout or done.stderr).splitlines() if line.strip()), "")
    if done.returncode != 0:
        detail = f"`{' '.join(argv[1:])}` exited {done.returncode}: {said[:200]}"
        return ToolReport(tool, str(path), None, "not_runnable", detail, hint, ())
    return ToolReport(tool, str(path), said[:120] or None, "ok", "", "", ())


# --- the report -----------------------------------------------------------------------------------
def diagnose(
    repos: Sequence[tuple[str, Path]],
    *,
    cwd: Path,
    now: datetime | None = None,
    source_env: Mapping[str, str] | None = None,
    check_runtime: Callable[..., preflight.Preflight] = preflight.check,
) -> DoctorReport:
    """The doctor's report for ``repos`` ((name, path); none: every check, nothing required).
    A repo whose configuration cannot be read is itself not ready, with the error."""
    now = now or now_utc()
    source = dict(os.environ if source_env is None else source_env)
    report = DoctorReport(checked_at=now)
    needs: list[RepoNeeds] = []
    for name, path in repos:
        try:
            needs.append(repo_needs(name, path))
        except (SpeedriftError, OSError) as error:
            problem = str(error) if isinstance(error, SpeedriftError) else f"{path}: {error}"
            report.repos.append(
                {"name": name, "path": str(path), "ready": False, "needs": {}, "problems": [problem]}
            )
    first = needs[0] if needs else None
    base_root = first.path if first else cwd
    book = pausestore.read()
    active = book.active(now)
    report.pauses = [p.to_dict() | {"sentence": p.sentence(now)} for p in active]
    bwrap = sandbox.probe()
    report.sandbox = {
        "usable": bwrap.usable,
        "bwrap": bwrap.bwrap,
        "why": bwrap.why,
        "fix": "" if bwrap.usable else sandbox.FIX,
    }

    # one preflight per runtime and distinct agent environment; all of them (and the tools) at once
    envs: dict[tuple[str, tuple[str, ...], tuple[str, ...]], dict[str, str]] = {}

    def env_key(runtime: str, config: RepoConfig | None) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
        allow = tuple(config.env.allow) if config else ()
        secrets = tuple(config.env.secrets) if config else ()
        envs.setdefault((runtime, allow, secrets), _agent_env(config, source))
        return runtime, allow, secrets

    shown = {runtime: env_key(runtime, first.config if first else None) for runtime in RUNTIMES}
    wanted = {env_key(runtime, n.config) for n in needs for runtime in n.runtimes}
    finders = {n.name: ToolFinder(n.path, n.path, n.config.gates.tools, env=source) for n in needs}
    base_finder = finders[first.name] if first else ToolFinder(cwd, cwd, {}, env=source)
    tool_jobs = {(n.name, tool) for n in needs for tool in n.tools}
    with ThreadPoolExecutor(max_workers=4) as pool:
        runtime_futures = {
            key: pool.submit(
                check_runtime,
                key[0],
                env=envs[key],
                options=(first.config if first else RepoConfig()).runtime_options(key[0]).model_dump(),
                exec_task=key[0] == "shell",
                cwd=base_root,
                now=now,
            )
            for key in {*shown.values(), *wanted}
        }
        shown_tools = {tool: pool.submit(check_tool, tool, base_finder, source, base_root) for tool in TOOLS}
        repo_tools = {
            job: pool.submit(check_tool, job[1], finders[job[0]], source, base_root) for job in tool_jobs
        }
        runtime_results = {key: future.result() for key, future in runtime_futures.items()}
        tool_results = {tool: future.result() for tool, future in shown_tools.items()}
        needed_tools = {job: future.result() for job, future in repo_tools.items()}

    for runtime in RUNTIMES:
        result = runtime_results[shown[runtime]]
        pause = book.blocking(runtime, None, now)
        needed_by = [n.name for n in needs if runtime in n.runtimes]
        row = result.to_dict() | {
            "needed": bool(needed_by),
            "needed_by": needed_by,
            "paused": pause.sentence(now, book.auto_resume) if pause else None,
            "paused_needs_human": bool(pause and pause.ends(book.auto_resume) is None),
        }
        report.runtimes.append(row)
    gates_of: dict[str, set[str]] = {}
    for n in needs:
        for tool, gates in n.tools.items():
            gates_of.setdefault(tool, set()).update(gates)
    for tool in TOOLS:
        row = tool_results[tool].to_dict()
        needed_by = [n.name for n in needs if tool in n.tools]
        row |= {"needed": bool(needed_by), "needed_by": needed_by, "gates": sorted(gates_of.get(tool, ()))}
        report.tools.append(row)

    for n in needs:
        problems: list[str] = []
        for runtime in n.runtimes:
            checked = runtime_results[env_key(runtime, n.config)]
            if not checked.ready:
                problems.append(f"{runtime}: {checked.problem}; fix: {checked.fix}")
            pause = book.blocking(runtime, None, now)
            if pause is not None and pause.ends(book.auto_resume) is None:
                problems.append(f"{pause.sentence(now, book.auto_resume)}")
        contained = sandbox.decide(n.config.sandbox.mode, network=n.config.sandbox.network)
        if n.config.sandbox.mode == "required" and not contained.used:
            problems.append(f'agents must be sandboxed ([sandbox] mode = "required"): {contained.why}')
        for tool, gates in sorted(n.tools.items()):
            checked_tool = needed_tools[(n.name, tool)]
            if not checked_tool.ready:
                fix = f"; fix: {checked_tool.fix}" if checked_tool.fix else ""
                problems.append(f"{tool} (for the {', '.join(gates)} gate): {checked_tool.detail}{fix}")
        report.repos.append(
            {
                "name": n.name,
                "path": str(n.path),
                "ready": not problems,
                "needs": {"runtimes": list(n.runtimes), "tools": sorted(n.tools)},
                "sandbox": {"mode": n.config.sandbox.mode, **contained.evidence()},
                "problems": problems,
            }
        )
    return report
