"""A run task's ``speedrift.agent.limits`` are applied to its agent as rlimits (agents/rlimits.py),
inherited inside the sandbox, recorded in the evidence (what was applied, what could not be, and
that cgroups are not used), and a run that ends at one fails naming the limit."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from speedrift.agents import rlimits
from speedrift.fleet import choosing
from speedrift.fleet.pipeline import RunOptions
from speedrift.graph import ops
from tests.fleet.conftest import Workshop

BURN = "while :; do :; done"


def agent_task(workshop: Workshop, task_id: str, command: str, limits: dict[str, Any]) -> None:
    workshop.add(task_id, exec_command=command)
    agent = {"name": "burner", "layer": "growth", "limits": limits}
    workshop.store.mutate(
        lambda g, now: ops.set_fields(g, task_id, speedrift={"agent": agent}, now=now, actor="test")
    )


@pytest.mark.parametrize("mode", ["off", "auto"])
def test_a_command_burning_cpu_past_its_limit_is_stopped_and_the_failure_names_the_limit(
    workshop: Workshop, mode: str
) -> None:
    """``auto``: inside bwrap where it works here — the limit set on bwrap is inherited by the
    command, and bwrap's 128+N exit is read back as the signal."""
    agent_task(workshop, "burn", BURN, {"cpu_seconds": 1})
    result = workshop.pipeline(sandbox={"mode": mode}).run("burn", RunOptions())
    assert (result.status, result.failure) == ("failed", "exceeded_capacity"), result.reason
    assert result.evidence["failure_kind"] == "budget"
    assert "the CPU-time limit of 1s (speedrift.agent.limits.cpu_seconds, RLIMIT_CPU) was reached" in (
        result.reason
    )
    assert "killed by SIGXCPU" in result.reason
    limits = result.evidence["limits"]
    assert limits["applied"] == {"cpu_seconds": 1} and limits["unavailable"] == {}
    assert limits["cgroups"] == "not used: rlimits only"
    written = json.loads((Path(str(result.run_dir)) / "attempt.json").read_text())
    assert written["limits"]["applied"] == {"cpu_seconds": 1}


def test_an_allocation_past_the_memory_limit_fails_naming_it(workshop: Workshop) -> None:
    grab = f"{sys.executable} -c 'bytearray(600 * 1024 * 1024)'"
    agent_task(workshop, "grab", grab, {"memory_mb": 256})
    result = workshop.pipeline(sandbox={"mode": "off"}).run("grab", RunOptions())
    assert (result.status, result.failure) == ("failed", "exceeded_capacity"), result.reason
    assert result.reason.startswith(
        "the memory limit of 256 MB (speedrift.agent.limits.memory_mb, RLIMIT_AS) was reached: MemoryError"
    )
    assert result.evidence["limits"]["applied"] == {"memory_mb": 256}


def test_the_same_command_within_its_limits_lands(workshop: Workshop) -> None:
    agent_task(workshop, "calm", "echo ok > calm.txt", {"memory_mb": 512, "cpu_seconds": 30})
    result = workshop.pipeline(sandbox={"mode": "off"}).run("calm", RunOptions())
    assert result.status == "done", result.reason
    assert result.evidence["limits"]["applied"] == {"memory_mb": 512, "cpu_seconds": 30}


def test_a_command_that_ignores_sigxcpu_is_killed_at_the_hard_limit(workshop: Workshop) -> None:
    agent_task(workshop, "stubborn", f"trap '' XCPU; {BURN}", {"cpu_seconds": 1})
    result = workshop.pipeline(sandbox={"mode": "off"}).run("stubborn", RunOptions())
    assert result.failure == "exceeded_capacity", result.reason
    assert f"killed by SIGKILL at the hard limit of {1 + rlimits.CPU_GRACE_S}s" in result.reason


def test_a_limit_the_platform_lacks_is_recorded_as_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(resource, "RLIMIT_AS")
    plan = rlimits.plan_rlimits({"memory_mb": 256, "cpu_seconds": 5})
    assert plan.applied == {"cpu_seconds": 5}
    assert plan.unavailable == {"memory_mb": "RLIMIT_AS is not available on this platform"}
    assert [name for name, *_ in plan.settings] == ["cpu_seconds"]
    assert plan.record()["unavailable"] == plan.unavailable


def test_a_limit_above_this_processs_own_hard_limit_is_lowered_to_it_and_said() -> None:
    code = (
        "import json, resource; resource.setrlimit(resource.RLIMIT_CPU, (50, 50));"
        "from speedrift.agents import rlimits; p = rlimits.plan_rlimits({'cpu_seconds': 100});"
        "print(json.dumps([p.applied, list(p.notes), [s[2:] for s in p.settings]]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    applied, notes, settings = json.loads(done.stdout)
    assert applied == {"cpu_seconds": 50} and settings == [[50, 50]]
    assert notes == ["cpu_seconds lowered to this process's own hard limit (RLIMIT_CPU = 50)"]


def test_mistyped_limits_are_ignored_and_said(workshop: Workshop) -> None:
    agent_task(workshop, "odd", "true", {"memory_mb": "lots", "cpu_seconds": 2, "disk_mb": 5})
    read = choosing.limits_of(workshop.task("odd"))
    assert read.values == {"cpu_seconds": 2}
    assert read.ignored == (
        "speedrift.agent.limits.memory_mb = 'lots': not an integer ≥ 16",
        "speedrift.agent.limits.disk_mb: not a limit speedrift applies (memory_mb, cpu_seconds)",
    )
    result = workshop.pipeline(sandbox={"mode": "off"}).run("odd", RunOptions())
    assert result.evidence["limits"]["ignored"] == list(read.ignored)


def test_a_task_without_limits_records_none_and_sets_none(workshop: Workshop) -> None:
    workshop.add("free", exec_command="ulimit -t > limits.txt")
    result = workshop.pipeline(sandbox={"mode": "off"}).run("free", RunOptions())
    assert result.status == "done" and "limits" not in result.evidence
    assert (workshop.repo / "limits.txt").read_text().strip() == "unlimited"
