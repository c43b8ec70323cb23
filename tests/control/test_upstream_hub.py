"""The hub's ``prepare_upstream_packet`` on a fork: besides the packet, it stores an upstream
proposal's record and draft body (no branch: the hub never makes one, nothing is pushed);
``speedrift upstream list`` shows it, and a person's ``propose`` then makes the branch. A repo
whose packet compares with its own origin (no upstream) gets no proposal."""

from __future__ import annotations

import json
from pathlib import Path

from speedrift.control.handlers.dispatch import execute
from tests.cli.support import Cli
from tests.control.test_authority import repo_state
from tests.control.test_handlers import action, context, grant
from tests.fleetops.forge_support import forked
from tests.gitrepo import commit_file, make_repo, sh_git


def test_the_hub_stores_a_proposal_record_for_a_fork_and_makes_no_branch(tmp_path: Path) -> None:
    clone, parent, fork = forked(tmp_path)
    refs_before = repo_state(clone)["refs"]
    parent_refs, fork_refs = sh_git(parent, "for-each-ref"), sh_git(fork, "for-each-ref")
    grant(clone, mode="supervise")
    outcome = execute(action("prepare_upstream_packet"), context(clone, tmp_path))
    assert outcome.status == "succeeded", outcome.detail
    proposal = outcome.evidence["proposal"]
    assert proposal["state"] == "drafted" and proposal["branch"] == f"speedrift/upstream/{proposal['id']}"
    assert f"upstream proposal {proposal['id']} (drafted)" in outcome.detail
    assert outcome.evidence["ahead"] == 2  # the packet compares with the fork (origin/main) …
    stored = json.loads((clone / ".speedrift" / "upstream" / proposal["id"] / "proposal.json").read_text())
    assert (
        stored["upstream_slug"] == "acme/demo" and len(stored["commits"]) == 3
    )  # … the proposal with the parent
    assert stored["upstream_ref"] == "upstream/main"
    assert repo_state(clone)["refs"] == refs_before  # no branch was made
    assert sh_git(parent, "for-each-ref") == parent_refs and sh_git(fork, "for-each-ref") == fork_refs
    listed = Cli(clone).json("upstream", "list")
    assert [(p["id"], p["state"]) for p in listed] == [(proposal["id"], "drafted")]


def test_a_repo_without_an_upstream_gets_a_packet_and_no_proposal(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "shop")
    origin = tmp_path / "origin.git"
    sh_git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    sh_git(repo, "remote", "add", "origin", str(origin))
    sh_git(repo, "push", "-q", "-u", "origin", "main")
    commit_file(repo, "src/a.py", "A = 1\n", "Fix a")
    grant(repo, mode="supervise")
    outcome = execute(action("prepare_upstream_packet"), context(repo, tmp_path))
    assert outcome.status == "succeeded" and "proposal" not in outcome.evidence
    assert not list((repo / ".speedrift" / "upstream").glob("up-*"))
