"""`speedrift repos list|add|remove`: the registry in ecosystem.toml, edited with its comments kept."""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path
from typing import Any

from speedrift.cli.hub_cmds import ecosystem_path
from speedrift.cli.output import emit_json, say, table
from speedrift.control.ecosystem import edit as ecosystem_edit
from speedrift.control.ecosystem.load import load_ecosystem


def list_repos(args: Namespace) -> int:
    ecosystem = load_ecosystem(ecosystem_path(args))
    rows: list[dict[str, Any]] = [
        {
            "name": e.name,
            "path": str(e.path),
            "role": e.role,
            "tags": list(e.tags),
            "lifecycle": e.lifecycle,
            "daemon_posture": e.daemon_posture,
            "depends_on": list(e.depends_on),
            "source": e.source,
            "exists": e.path.exists(),
        }
        for e in ecosystem.repos
    ]
    if getattr(args, "as_json", False):
        emit_json(rows)
        return 0
    table(
        f"{len(rows)} repos in {ecosystem.path}",
        ["name", "path", "role", "lifecycle", "tags", "source"],
        [(r["name"], r["path"], r["role"], r["lifecycle"], ",".join(r["tags"]), r["source"]) for r in rows],
    )
    return 0


def add(args: Namespace) -> int:
    path = ecosystem_path(args)
    fields: dict[str, Any] = {
        key: value
        for key, value in (
            ("role", args.role),
            ("tags", args.tags or None),
            ("lifecycle", args.lifecycle),
            ("daemon_posture", args.daemon_posture),
            ("upstream_remote", args.upstream_remote),
            ("upstream_branch", args.upstream_branch),
            ("depends_on", args.depends_on or None),
        )
        if value is not None
    }
    ecosystem_edit.add_repo(path, args.name, Path(args.path), **fields)
    load_ecosystem(path)  # the edited file must still load; add_repo validated before writing
    if args.as_json:
        emit_json({"added": args.name, "ecosystem": str(path)})
    else:
        say(f"Registered {args.name} in {path}.")
    return 0


def remove(args: Namespace) -> int:
    path = ecosystem_path(args)
    ecosystem_edit.remove_repo(path, args.name, force=args.force)
    if args.as_json:
        emit_json({"removed": args.name, "ecosystem": str(path)})
    else:
        say(f"Removed {args.name} from {path} (the repository itself is untouched).")
    return 0
