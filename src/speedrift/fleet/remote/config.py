"""Where a repo's attempts develop: ``[executor]`` in ecosystem.toml and the environment the hub
hands the processes it starts, resolved into one :class:`ExecutorConfig`.

``[executor]`` keys: ``backend`` (``"local"``, the default, or ``"dask"``), ``scheduler``
(``"tcp://host:8786"``), ``repo_source`` (``"auto"``, ``"bundle"``, ``"remote"``: how a worker gets
the repository), ``connect_timeout_s``, ``heartbeat_s``. The environment: ``$SPEEDRIFT_EXECUTOR``
(``local`` | ``dask``) and ``$SPEEDRIFT_DASK_SCHEDULER`` (setting the scheduler alone means dask);
both override the file. Invariant: a config that names dask always names a scheduler, and every
value is checked — a bad one is an error naming the key and the fix, never silently local. Pure:
nothing here reads a file or connects anywhere (the environment is a parameter).

What an attempt needs of a worker (:func:`resources_for`) maps to Dask worker resources:
``runtime:<name>`` always, ``gpu`` for a task tagged ``needs:gpu``, ``memory`` (MB) for a task whose
``speedrift.agent.limits.memory_mb`` is set; :class:`Offers` says why no worker offers it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from speedrift.errors import UsageError
from speedrift.fleet import choosing
from speedrift.fleet.remote.spec import ExecutorKind
from speedrift.graph.model import Task

EXECUTOR_ENV = "SPEEDRIFT_EXECUTOR"
SCHEDULER_ENV = "SPEEDRIFT_DASK_SCHEDULER"
KEYS = ("backend", "scheduler", "repo_source", "connect_timeout_s", "heartbeat_s")
SCHEDULER_RE = re.compile(r"^(tcp|tls|ws|wss|inproc)://[^\s/]+$")
SCHEDULER_EXAMPLE = "tcp://host:8786"
GPU_TAG = "needs:gpu"  # a task tagged so runs only on a worker offering the `gpu` resource
RUNTIME_RESOURCE = "runtime:"  # + the runtime's name: a worker where that CLI is installed
GPU_RESOURCE = "gpu"
MEMORY_RESOURCE = "memory"  # MB: a task's speedrift.agent.limits.memory_mb asks for this much


class RepoSourceMode(StrEnum):
    """How a worker obtains the repository: ``auto`` (its shared remote when that holds the base
    commit, else a bundle), always a ``bundle`` shipped with the job, or always its ``remote``."""

    AUTO = "auto"
    BUNDLE = "bundle"
    REMOTE = "remote"


@dataclass(frozen=True)
class ExecutorConfig:
    backend: ExecutorKind = ExecutorKind.LOCAL
    scheduler: str | None = None
    repo_source: RepoSourceMode = RepoSourceMode.AUTO
    connect_timeout_s: float = 10.0
    heartbeat_s: float = 10.0

    @property
    def remote(self) -> bool:
        return self.backend is not ExecutorKind.LOCAL

    def child_env(self) -> dict[str, str]:
        """What the hub hands a process it starts so that it develops where the hub's config says."""
        if self.backend is ExecutorKind.DASK and self.scheduler:
            return {EXECUTOR_ENV: ExecutorKind.DASK.value, SCHEDULER_ENV: self.scheduler}
        return {EXECUTOR_ENV: ExecutorKind.LOCAL.value}

    def describe(self) -> str:
        return f"dask at {self.scheduler}" if self.backend is ExecutorKind.DASK else "local worker processes"


# (key, problem, fix): one problem with an [executor] value
Problem = tuple[str, str, str]


def parse_table(table: object) -> tuple[ExecutorConfig, list[Problem]]:
    """``[executor]`` as written (no environment applied): the config and every problem found
    (``key`` "" for the table itself). A dask backend without a scheduler is not a problem here:
    ``$SPEEDRIFT_DASK_SCHEDULER`` may supply it (:func:`resolve` checks)."""
    if not isinstance(table, Mapping):
        return ExecutorConfig(), [("", "must be a table", "write it as an [executor] section")]
    problems: list[Problem] = []
    for key in table:
        if key not in KEYS:
            problems.append((str(key), "unknown key", f"remove it (known: {', '.join(KEYS)})"))
    config = ExecutorConfig()
    backend = table.get("backend", ExecutorKind.LOCAL.value)
    if isinstance(backend, str) and backend in {k.value for k in ExecutorKind}:
        config = replace(config, backend=ExecutorKind(backend))
    else:
        known = ", ".join(k.value for k in ExecutorKind)
        problems.append(("backend", f"{backend!r} is not one of {known}", 'e.g. backend = "dask"'))
    scheduler = table.get("scheduler")
    if scheduler is not None:
        problem = scheduler_problem(scheduler)
        if problem is None:
            config = replace(config, scheduler=str(scheduler))
        else:
            problems.append(("scheduler", problem, f'e.g. scheduler = "{SCHEDULER_EXAMPLE}"'))
    source = table.get("repo_source", RepoSourceMode.AUTO.value)
    if isinstance(source, str) and source in {m.value for m in RepoSourceMode}:
        config = replace(config, repo_source=RepoSourceMode(source))
    else:
        known = ", ".join(m.value for m in RepoSourceMode)
        problems.append(("repo_source", f"{source!r} is not one of {known}", 'e.g. repo_source = "auto"'))
    connect = _seconds(table, "connect_timeout_s", problems)
    heartbeat = _seconds(table, "heartbeat_s", problems)
    config = replace(
        config,
        connect_timeout_s=connect or config.connect_timeout_s,
        heartbeat_s=heartbeat or config.heartbeat_s,
    )
    return config, problems


def _seconds(table: Mapping[str, Any], key: str, problems: list[Problem]) -> float | None:
    if key not in table:
        return None
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 3600:
        problems.append((key, f"{value!r} is not a number of seconds in (0, 3600]", f"e.g. {key} = 10"))
        return None
    return float(value)


def scheduler_problem(value: object) -> str | None:
    """What is wrong with a scheduler address (None: nothing)."""
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    if not SCHEDULER_RE.match(value.strip()):
        return f"{value!r} is not a Dask scheduler address (scheme://host:port)"
    return None


def resolve(env: Mapping[str, str], base: ExecutorConfig | None = None, *, where: str = "") -> ExecutorConfig:
    """``base`` (the ecosystem's ``[executor]``, default local) with the environment applied:
    ``$SPEEDRIFT_EXECUTOR`` picks the backend, ``$SPEEDRIFT_DASK_SCHEDULER`` the scheduler (alone,
    it means dask). Raises UsageError for a bad value or a dask backend without a scheduler;
    ``where``: the file ``base`` came from, for the message."""
    config = base or ExecutorConfig()
    scheduler = env.get(SCHEDULER_ENV, "").strip()
    chosen = env.get(EXECUTOR_ENV, "").strip()
    if scheduler:
        problem = scheduler_problem(scheduler)
        if problem is not None:
            fix = f"set it to the scheduler's address, e.g. {SCHEDULER_EXAMPLE}"
            raise UsageError(f"${SCHEDULER_ENV}: {problem}", hint=fix)
        config = replace(config, scheduler=scheduler)
        if not chosen:
            config = replace(config, backend=ExecutorKind.DASK)
    if chosen:
        if chosen not in {k.value for k in ExecutorKind}:
            known = ", ".join(k.value for k in ExecutorKind)
            raise UsageError(
                f"${EXECUTOR_ENV}={chosen!r} is not one of {known}", hint=f"unset it, or {known}"
            )
        config = replace(config, backend=ExecutorKind(chosen))
    if config.backend is ExecutorKind.DASK and not config.scheduler:
        source = f"${EXECUTOR_ENV}=dask" if chosen else '[executor] backend = "dask"'
        source += f" in {where}" if where and not chosen else ""
        raise UsageError(
            f"{source} names no scheduler",
            hint=f'set [executor] scheduler = "{SCHEDULER_EXAMPLE}" in ecosystem.toml, or ${SCHEDULER_ENV}',
        )
    return config


# --- what an attempt needs of a worker ----------------------------------------------------------
def resources_for(runtime: str, task: Task) -> dict[str, float]:
    """The Dask worker resources an attempt needs: ``runtime:<name>`` always, ``gpu`` when the task
    is tagged ``needs:gpu``, ``memory`` (MB) when its ``speedrift.agent.limits.memory_mb`` is set."""
    needed: dict[str, float] = {f"{RUNTIME_RESOURCE}{runtime}": 1.0}
    tags = task.get("tags")
    if isinstance(tags, list) and GPU_TAG in tags:
        needed[GPU_RESOURCE] = 1.0
    memory = choosing.limits_of(task).values.get("memory_mb")
    if memory:
        needed[MEMORY_RESOURCE] = float(memory)
    return needed


def _shown(resources: Mapping[str, float]) -> str:
    return ", ".join(f"{name}={value:g}" for name, value in sorted(resources.items())) or "nothing"


@dataclass(frozen=True)
class Offers:
    """What the cluster's workers offer, as one scheduler query saw it: resources by worker."""

    scheduler: str
    workers: dict[str, dict[str, float]]

    def capable(self, needed: Mapping[str, float]) -> list[str]:
        """The workers that offer ``needed`` (each resource at least in that amount)."""
        return [
            address
            for address, offered in self.workers.items()
            if all(offered.get(name, 0.0) >= amount for name, amount in needed.items())
        ]

    def refusal(self, needed: Mapping[str, float]) -> str | None:
        """Why no worker can take a job needing ``needed`` (None: one can)."""
        if not self.workers:
            return f"the Dask scheduler {self.scheduler} has no workers"
        if self.capable(needed):
            return None
        listed = "; ".join(f"{addr}: {_shown(offered)}" for addr, offered in sorted(self.workers.items()))
        return f"no Dask worker at {self.scheduler} offers {_shown(needed)} (the workers offer: {listed})"
