"""What the hub hands each fleet-operations step once per cycle (control/cycle.py builds it).

The steps (the standing agents' scheduler, the nightwatch, compound review) are called from the
hub loop with this context and answer the ledger records of what they decided; the hub appends
them. ``authority`` is each repo's control state as the hub read it this cycle: a step writes to
a repo's graph only where it grants automation (supervise or autonomous with a live lease).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from speedrift.fleet.opsconfig import FleetOps
from speedrift.register.record import ControlState


@dataclass(frozen=True)
class HubContext:
    hub: Path  # the hub's state directory (hubdir.hub_dir)
    ecosystem_path: Path
    repos: Mapping[str, Path]  # registered repo name → its path
    authority: Mapping[str, ControlState]  # repo name → its control state this cycle
    ops: FleetOps
    now: datetime
    speedrift_argv: tuple[str, ...]  # how to start a speedrift child (a role agent, a run)

    def may_write(self, repo: str) -> tuple[bool, str]:
        """Whether the hub may change ``repo``'s graph now, and why (fail-closed: unknown is no)."""
        control = self.authority.get(repo)
        if control is None:
            return False, f"no control state read for {repo}"
        return control.authority(self.now)
