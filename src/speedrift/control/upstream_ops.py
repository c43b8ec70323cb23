"""Upstream proposals as operator actions, shared by the CLI and the dashboard so both leave the
same trail: every ``propose`` (proposed or refused) appends one ``{"kind": "operator", "op":
"upstream_propose", …}`` entry to the hub's decision ledger, as control/operator.py does for the
mode changes and approvals. The request itself is the human approval (a person ran the command,
or the dashboard's token holder pressed the button); the per-repo opt-in is checked downstream
(fleetops/upstream_propose.py) and the push by repo/forge.py's one authority check.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from speedrift import hubdir
from speedrift.control.ecosystem.load import load_ecosystem
from speedrift.fleetops import upstream_propose
from speedrift.register.ledger import Ledger
from speedrift.times import iso_utc, now_utc


def propose(
    repo: Path, proposal_id: str, *, actor: str, source: str, ecosystem_path: Path | None
) -> dict[str, Any]:
    """Propose (fleetops/upstream_propose.py) and record it in the ledger when there is a hub."""
    now = now_utc()
    outcome = upstream_propose.propose(repo, proposal_id, now, actor)
    result = {"repo": str(repo), **outcome.as_dict()}
    if ecosystem_path is not None:
        hub = hubdir.hub_dir(load_ecosystem(ecosystem_path).path)
        verb = "proposed" if outcome.ok else "refused"
        Ledger(hub).append(
            {
                "generated_at": iso_utc(now),
                "actor": actor,
                "source": source,
                "detail": f"{outcome.proposal.repo}: upstream proposal {proposal_id} {verb}: {outcome.said}",
                **result,
                "kind": "operator",
                "op": "upstream_propose",
            }
        )
    return result
