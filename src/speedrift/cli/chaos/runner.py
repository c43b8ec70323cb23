"""One chaos run, phase after phase, within a time budget; the figures it measured.

Job: make a temporary directory (removed afterwards unless kept), plant secrets in the environment
every process of the run inherits, give each phase its share of the budget — concurrent writers,
disk full and read-only, the fuzz suite, then the fleet under kill -9 (whatever time is left, a
part of it kept for the undisturbed settling) — judge what the kills left, and sweep every file
speedrift wrote for the planted secrets.

Invariant: the budget is a budget, not a promise: a phase that needs a minimum to mean anything
(one disk round, a settling hub) gets it, so a run may end somewhat past it on a slow machine. The
run never signals a process it did not start (:mod:`.proctree`) and touches nothing outside its
directory; with the same seed, the same sequence of lives and victims is chosen.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from speedrift.cli.chaos import diskfull, ecosystem, fleet, fuzz, invariants, planted, proctree, writers
from speedrift.cli.chaos.figures import Figures

# variables that would steer speedrift, git or the hub away from the run's directory
SCRUBBED = (
    "WG_DIR",
    "WG_AGENT_ID",
    "GIT_DIR",
    "GIT_WORK_TREE",
    "SPEEDRIFT_HUB_DIR",
    "SPEEDRIFT_ECOSYSTEM",
    "SPEEDRIFT_REGISTER_URL",
    "SPEEDRIFT_TEST_KILL_AT",
    "SPEEDRIFT_TEST_KILL_LOG",
    "SPEEDRIFT_SLOT",
    "SPEEDRIFT_MAX_AGENTS",
)
CHECKS_RESERVE_S = 10.0  # judging and sweeping at the end
MIN_CHAOS_S = 15.0
MIN_SETTLE_S = 15.0


def share(budget: float, fraction: float, low: float, high: float) -> float:
    return max(low, min(high, budget * fraction))


def run(
    minutes: float,
    *,
    seed: int | None = None,
    keep: Path | None = None,
    fuzz_examples: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> Figures:
    """The whole run. ``keep``: run in this (empty) directory and leave it for inspection;
    ``fuzz_examples``: per fuzz property (default: from the budget); ``progress`` is told when each
    phase starts."""
    seed = seed if seed is not None else random.randrange(1 << 30)  # noqa: S311 - chaos, not secrecy
    budget = minutes * 60
    figures = Figures(seed=seed, budget_s=budget)
    started = time.monotonic()
    deadline = started + budget
    if not proctree.become_subreaper():
        figures.notes.append("could not become a child subreaper: orphaned processes may escape the kills")
    workdir = keep or Path(tempfile.mkdtemp(prefix="speedrift-chaos-"))
    workdir.mkdir(parents=True, exist_ok=True)
    secrets = planted.plant()
    state_home = workdir / "state"
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    env.update(secrets)
    env.update(
        SPEEDRIFT_STATE_DIR=str(state_home),
        PYTHONUNBUFFERED="1",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
    )
    saved = dict(os.environ)
    fuzzing: fuzz.FuzzRun | None = None
    os.environ.clear()
    os.environ.update(env)  # this process's own speedrift calls (builds, checks) use the run's state
    try:

        def phase(name: str, body: Callable[[], None]) -> None:
            if progress is not None:
                progress(f"{name} ({time.monotonic() - started:.0f}s of {budget:.0f}s used)")
            began = time.monotonic()
            try:
                body()
            except Exception as error:  # a self-test reports what broke, it does not crash on it
                figures.errors.append(f"{name}: {type(error).__name__}: {error}")
            figures.phases[name] = time.monotonic() - began

        phase("writers", lambda: writers.run(figures, workdir, share(budget, 0.08, 4, 60), env))
        phase("disk", lambda: diskfull.run(figures, workdir, share(budget, 0.1, 3, 300), env))

        def fuzzing_phase() -> None:
            nonlocal fuzzing
            fuzzing = fuzz.start(figures, workdir, share(budget, 0.3, 8, 3600), env, fuzz_examples)
            fuzz.finish(figures, fuzzing, time.monotonic())

        phase("fuzz", fuzzing_phase)
        rng = random.Random(seed)  # noqa: S311 - a reproducible chaos, not a secret
        phase("fleet", lambda: _fleet(figures, workdir, deadline, state_home, env, rng))
        sweep = planted.sweep(
            invariants.speedrift_dirs_of(workdir, state_home), secrets, invariants.agent_dirs_of(workdir)
        )
        figures.files_swept += sweep.files
        figures.secrets_found += len(sweep.hits)
        figures.notes.extend(f"secret found: {hit}" for hit in sweep.hits[:20])
    finally:
        if fuzzing is not None and fuzzing.proc.poll() is None:  # a phase failed before the wait
            fuzzing.proc.kill()
            fuzzing.proc.wait()
        os.environ.clear()
        os.environ.update(saved)
        figures.elapsed_s = time.monotonic() - started
        if keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            figures.notes.append(f"the run's files are kept in {workdir}")
    return figures


def _fleet(
    figures: Figures,
    workdir: Path,
    deadline: float,
    state_home: Path,
    env: dict[str, str],
    rng: random.Random,
) -> None:
    shop = ecosystem.build(workdir)
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    crew = fleet.Fleet(shop, figures, rng, env, logs, logs / "killed-at-steps")
    left = deadline - time.monotonic() - CHECKS_RESERVE_S
    chaos_s = max(MIN_CHAOS_S, left * 0.7)
    settle_s = max(MIN_SETTLE_S, left - chaos_s)
    try:
        began = time.monotonic()
        crew.chaos(chaos_s)
        figures.phases["kill -9"] = time.monotonic() - began
        began = time.monotonic()
        crew.settle(settle_s)
        figures.phases["settling"] = time.monotonic() - began
    finally:
        crew.kill_everything()
    invariants.check(figures, shop, logs, state_home, crew.tips, crew.seen_cycles)
