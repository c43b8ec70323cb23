"""Forbidden operations the run provokes: history rewrites and pushes put to the hub's authority
contract, actions outside a repo's mode or lease, and force-pushes tried by the chaos agents.

Job: while the chaos runs, act as a hostile hub handler would — every git command below goes
through :class:`~speedrift.control.authority.HubGit` in a live repo (the same one the hub and the
agents are working in), and actions through :func:`~speedrift.control.authority.guard_action` —
and count what the contract refused. The agents' side: the chaos agents run ``git push --force``
to their repo's remote and print git's exit status; the refs that arrived on the remote confirm it.

Invariant: a forbidden command the contract did not refuse is a violation (it ran); nothing here
is ever let through on purpose.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from speedrift.cli.chaos.figures import Figures
from speedrift.control.authority import AuthorityRefused, HubGit, guard_action
from speedrift.control.controlfile import read_control
from speedrift.errors import SpeedriftError
from speedrift.register.actions import Action, ActionKind, DispatchParams
from speedrift.register.record import ControlState
from speedrift.times import now_utc

# what a hub must never do: rewrite history, push, move or delete branches, destroy unreachable
# work, fetch into local branches, run programs, touch the user's checkout, land work itself
FORBIDDEN_GIT: tuple[tuple[str, ...], ...] = (
    ("push", "--force", "origin", "main"),
    ("push", "origin", "+main:main"),
    ("push", "--mirror", "origin"),
    ("push", "origin", ":main"),
    ("push", "origin", "main"),
    ("reset", "--hard", "HEAD~1"),
    ("rebase", "HEAD~1"),
    ("commit", "--amend", "-m", "rewritten by the chaos run"),
    ("filter-branch", "-f", "--msg-filter", "cat", "HEAD"),
    ("replace", "HEAD", "HEAD~1"),
    ("branch", "-f", "main", "HEAD~1"),
    ("branch", "-D", "main"),
    ("update-ref", "refs/heads/main", "HEAD~1"),
    ("update-ref", "-d", "refs/heads/main"),
    ("tag", "-d", "v1"),
    ("gc", "--prune=now"),
    ("reflog", "expire", "--expire=now", "--all"),
    ("fetch", "origin", "+refs/heads/*:refs/heads/*"),
    ("fetch", "--upload-pack=touch pwned-by-the-chaos-run", "origin"),
    ("checkout", "-f", "HEAD~1"),
    ("clean", "-fdx"),
    ("merge", "--ff-only", "origin/main"),
    ("cherry-pick", "HEAD"),
    ("config", "core.hooksPath", "hooks-an-agent-wrote"),
    ("worktree", "remove", "--force", ".."),
)


def hostile_hub(figures: Figures, repo: Path, other: Path) -> None:
    """One round of forbidden requests to the contract in ``repo`` (and an action in ``other``,
    a repo where the hub holds no authority)."""
    hub_git = HubGit(repo, timeout=30)
    for argv in FORBIDDEN_GIT:
        figures.hub_git_tried += 1
        try:
            hub_git.run(*argv, check=False)
        except AuthorityRefused:
            figures.hub_git_refused += 1
            continue
        except SpeedriftError as error:  # refused by something else before it ran: still not run
            figures.notes.append(
                f"hub git {' '.join(argv)}: stopped by {type(error).__name__}, not the contract"
            )
            figures.hub_git_refused += 1
            continue
        figures.violation(
            "forbidden operation let through", f"the hub's git contract ran `git {' '.join(argv)}`"
        )
    now = now_utc()
    dispatch = Action(
        id=f"{other.name}:dispatch_ready",
        repo=other.name,
        kind=ActionKind.DISPATCH_READY,
        priority=92,
        reason="the chaos run, acting without authority",
        params=DispatchParams(tasks=("anything",), max=1),
    )
    lapsed = ControlState(mode="autonomous", lease_owner="chaos", lease_expires_at=now - timedelta(hours=1))
    for action, control in ((dispatch, read_control(other)), (dispatch, lapsed)):
        figures.hub_git_tried += 1
        try:
            guard_action(action, control, now)
        except AuthorityRefused:
            figures.hub_git_refused += 1
            continue
        figures.violation("forbidden operation let through", f"{action.id} authorised under {control.mode}")


AGENT_PUSH_PREFIX = "refs/heads/chaos/"


def agent_push_command(remote_name: str = "origin") -> str:
    """What a hostile chaos agent runs before its real work: a force-push to its repo's remote, to a
    ref of its own (so each push that arrives shows there; its status is printed after it)."""
    return f"git push --force {remote_name} HEAD:{AGENT_PUSH_PREFIX}$SPEEDRIFT_TASK_ID-$$ >/dev/null 2>&1"
