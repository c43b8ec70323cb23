"""The hub's authority contract: every git call it may not make is refused before it runs, and
the refusal leaves refs, reflogs, the index and the working tree exactly as they were."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from speedrift.control.authority import (
    AuthorityRefused,
    HubGit,
    guard_action,
    hub_admission,
    refuse_gate_bypass,
)
from speedrift.control.controlfile import write_control
from speedrift.layout import control_path
from speedrift.register.actions import Action
from speedrift.register.record import ControlState
from tests.gitrepo import commit_file, make_repo, sh_git

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def repo_state(repo: Path) -> dict[str, Any]:
    """What a refused call must not change: every ref and reflog, HEAD, the index, worktree
    registrations and every byte of the working tree."""
    common = Path(sh_git(repo, "rev-parse", "--git-common-dir"))
    common = common if common.is_absolute() else repo / common
    files = {
        str(p.relative_to(repo)): p.read_bytes()
        for p in repo.rglob("*")
        if p.is_file() and ".git" not in p.relative_to(repo).parts
    }
    logs = common / "logs"
    return {
        "refs": sh_git(repo, "for-each-ref", "--format=%(refname) %(objectname)"),
        "head": (common / "HEAD").read_bytes() if (common / "HEAD").exists() else b"",
        "reflogs": {str(p.relative_to(logs)): p.read_bytes() for p in logs.rglob("*") if p.is_file()}
        if logs.exists()
        else {},
        "index": (common / "index").read_bytes() if (common / "index").exists() else b"",
        "worktrees": sorted(p.name for p in (common / "worktrees").iterdir())
        if (common / "worktrees").exists()
        else [],
        "files": files,
    }


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    bare = tmp_path / "origin.git"
    bare.mkdir()
    sh_git(bare, "init", "-q", "--bare", "-b", "main")
    return bare


@pytest.fixture
def repo(tmp_path: Path, origin: Path) -> Path:
    """main (pushed to origin, plus one local commit), a user's `feature` branch, the hub's own
    merged `speedrift/done-a1` and unmerged `speedrift/wip-a1`, and a tag."""
    repo = make_repo(tmp_path / "repo", {"README.md": "# demo\n", "app.py": "print(1)\n"})
    sh_git(repo, "remote", "add", "origin", str(origin))
    sh_git(repo, "push", "-q", "origin", "main")
    sh_git(repo, "branch", "speedrift/done-a1")
    sh_git(repo, "checkout", "-q", "-b", "feature")
    commit_file(repo, "feature.py", "x = 1\n", "user's feature")
    sh_git(repo, "checkout", "-q", "-b", "speedrift/wip-a1", "main")
    commit_file(repo, "wip.py", "y = 2\n", "unlanded attempt")
    sh_git(repo, "checkout", "-q", "main")
    commit_file(repo, "app.py", "print(2)\n", "local work")
    sh_git(repo, "tag", "v1")
    (repo / "change.patch").write_text(sh_git(repo, "format-patch", "-1", "--stdout", "feature") + "\n")
    sh_git(repo, "add", "change.patch")
    sh_git(repo, "commit", "-q", "-m", "a patch file")
    return repo


def make_dirty(repo: Path) -> None:
    (repo / "README.md").write_text("# demo\nuncommitted edit\n")
    (repo / "notes.txt").write_text("an untracked file\n")


def refused(repo: Path, argv: list[str]) -> AuthorityRefused:
    with pytest.raises(AuthorityRefused) as caught:
        HubGit(repo).run(*argv)
    return caught.value


def assert_refused_and_untouched(repo: Path, argv: list[str], rule: str, *also: Path) -> AuthorityRefused:
    before = [repo_state(repo), *(repo_state(p) if (p / ".git").exists() else _bare(p) for p in also)]
    refusal = refused(repo, argv)
    assert refusal.rule == rule, str(refusal)
    after = [repo_state(repo), *(repo_state(p) if (p / ".git").exists() else _bare(p) for p in also)]
    assert after == before
    return refusal


def _bare(path: Path) -> dict[str, Any]:
    return {"refs": sh_git(path, "for-each-ref", "--format=%(refname) %(objectname)")}


# ---------------------------------------------------------------- what the hub may do


def test_read_only_queries_run(repo: Path) -> None:
    hub = HubGit(repo)
    assert hub.out("rev-parse", "HEAD") == sh_git(repo, "rev-parse", "HEAD")
    assert "local work" in hub.out("log", "--format=%s", "-3")
    assert hub.ok("merge-base", "--is-ancestor", "speedrift/done-a1", "main")
    assert "refs/heads/feature" in hub.out("for-each-ref", "--format=%(refname)")
    assert hub.out("branch", "--list", "speedrift/*").count("speedrift/") == 2
    assert hub.out("status", "--porcelain") == ""


def test_fetch_updates_remote_tracking_refs_and_nothing_else(
    repo: Path, origin: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    sh_git(tmp_path, "clone", "-q", str(origin), str(other))
    commit_file(other, "upstream.txt", "new upstream work\n", "upstream work")
    sh_git(other, "push", "-q", "origin", "main")
    before = repo_state(repo)
    HubGit(repo).fetch("origin", prune=True)
    after = repo_state(repo)
    assert sh_git(repo, "rev-parse", "origin/main") == sh_git(other, "rev-parse", "HEAD")
    assert after["files"] == before["files"] and after["index"] == before["index"]
    assert [line for line in after["refs"].splitlines() if "refs/remotes/" not in line] == [
        line for line in before["refs"].splitlines() if "refs/remotes/" not in line
    ]


def test_a_detached_scratch_worktree_under_speedrift_can_be_added_and_removed(repo: Path) -> None:
    scratch = repo / ".speedrift" / "hub-worktrees" / "scan-1"
    hub = HubGit(repo)
    hub.run("worktree", "add", "--detach", "--quiet", str(scratch), "main")
    assert (scratch / "app.py").read_text() == "print(2)\n"
    assert sh_git(scratch, "rev-parse", "--abbrev-ref", "HEAD") == "HEAD"  # detached: no branch moves
    hub.run("worktree", "remove", "--force", str(scratch))
    assert not scratch.exists()


def test_the_hub_may_delete_its_own_branch_once_it_is_merged(repo: Path) -> None:
    HubGit(repo).run("branch", "-d", "speedrift/done-a1")
    assert "speedrift/done-a1" not in sh_git(repo, "branch", "--list")


# ---------------------------------------------------------------- what it may never do


@pytest.mark.parametrize(
    "argv",
    [
        ["push", "--force", "origin", "main"],
        ["push", "-f", "origin", "main"],
        ["push", "--force-with-lease", "origin", "main"],
        ["push", "--force-with-lease=main:abc", "origin", "main"],
        ["push", "origin", "+main"],
        ["push", "origin", "+main:main"],
        ["push", "--mirror", "origin"],
        ["push", "--delete", "origin", "main"],
        ["push", "origin", ":main"],
        ["push", "origin", "main"],
    ],
    ids=lambda argv: " ".join(argv),
)
def test_force_push_and_any_push_are_refused(repo: Path, origin: Path, argv: list[str]) -> None:
    refusal = assert_refused_and_untouched(repo, argv, "push", origin)
    assert "never pushes" in str(refusal)


@pytest.mark.parametrize(
    "argv",
    [
        ["reset", "--hard", "HEAD~1"],
        ["reset", "--soft", "HEAD~1"],
        ["rebase", "feature"],
        ["rebase", "-i", "HEAD~2"],
        ["commit", "--amend", "-m", "rewritten"],
        ["filter-branch", "-f", "HEAD"],
        ["filter-repo", "--force"],
        ["replace", "HEAD", "HEAD~1"],
        ["branch", "-f", "feature", "main"],
        ["update-ref", "refs/heads/speedrift/wip-a1", "main~1"],  # own ref, but not a fast-forward
    ],
    ids=lambda argv: " ".join(argv),
)
def test_history_rewrites_are_refused(repo: Path, argv: list[str]) -> None:
    assert_refused_and_untouched(repo, argv, "history_rewrite")


@pytest.mark.parametrize(
    "argv",
    [
        ["branch", "-D", "feature"],
        ["branch", "-d", "feature"],
        ["branch", "--delete", "feature"],
        ["branch", "-m", "feature", "renamed"],
        ["branch", "-M", "feature", "speedrift/taken-over"],
        ["update-ref", "-d", "refs/heads/feature"],
        ["tag", "-d", "v1"],
    ],
    ids=lambda argv: " ".join(argv),
)
def test_deleting_or_renaming_a_branch_it_does_not_own_is_refused(repo: Path, argv: list[str]) -> None:
    assert_refused_and_untouched(repo, argv, "ref_not_owned")


@pytest.mark.parametrize(
    "argv",
    [["branch", "-D", "speedrift/wip-a1"], ["update-ref", "-d", "refs/heads/speedrift/wip-a1"]],
    ids=lambda argv: " ".join(argv),
)
def test_its_own_branch_holding_unmerged_work_is_not_deleted(repo: Path, argv: list[str]) -> None:
    refusal = assert_refused_and_untouched(repo, argv, "unmerged_branch")
    assert "not on main" in str(refusal)


@pytest.mark.parametrize(
    "argv",
    [
        ["checkout", "feature"],
        ["checkout", "--", "README.md"],
        ["switch", "feature"],
        ["restore", "README.md"],
        ["clean", "-fdx"],
        ["stash"],
        ["stash", "push", "--include-untracked"],
        ["merge", "feature"],
        ["cherry-pick", "feature"],
        ["revert", "--no-edit", "HEAD"],
        ["am", "change.patch"],
        ["apply", "change.patch"],
        ["pull", "origin", "main"],
        ["rm", "app.py"],
    ],
    ids=lambda argv: " ".join(argv),
)
def test_touching_a_checkout_with_uncommitted_changes_is_refused(repo: Path, argv: list[str]) -> None:
    make_dirty(repo)
    refusal = assert_refused_and_untouched(repo, argv, "dirty_checkout")
    assert "2 uncommitted change(s)" in str(refusal) and "README.md" in str(refusal)
    assert (repo / "README.md").read_text() == "# demo\nuncommitted edit\n"


@pytest.mark.parametrize(
    "argv",
    [
        ["checkout", "feature"],
        ["switch", "-c", "elsewhere"],
        ["stash"],
        ["clean", "-fd"],
        ["apply", "change.patch"],
    ],
    ids=lambda argv: " ".join(argv),
)
def test_a_clean_users_checkout_is_not_operated_on_either(repo: Path, argv: list[str]) -> None:
    assert_refused_and_untouched(repo, argv, "user_checkout")


@pytest.mark.parametrize(
    "argv",
    [
        ["merge", "--ff-only", "speedrift/wip-a1"],
        ["cherry-pick", "speedrift/wip-a1"],
        ["commit", "--allow-empty", "-m", "landed by the hub"],
        ["update-ref", "refs/heads/main", "speedrift/wip-a1"],
        ["update-ref", "-m", "land", "refs/heads/main", "speedrift/wip-a1"],
        ["pull", "origin", "main"],
    ],
    ids=lambda argv: " ".join(argv),
)
def test_landing_work_past_the_gates_is_refused(repo: Path, argv: list[str]) -> None:
    refusal = assert_refused_and_untouched(repo, argv, "gate_bypass")
    assert "gate" in str(refusal) or "pipeline" in str(refusal)


@pytest.mark.parametrize(
    ("argv", "rule"),
    [
        (["gc", "--prune=now"], "destroy_unreachable"),
        (["reflog", "expire", "--expire=now", "--all"], "destroy_unreachable"),
        (["reflog", "delete", "HEAD@{0}"], "destroy_unreachable"),
        (["commit", "--no-verify", "-m", "x"], "no_verify"),
        (["push", "--no-verify", "origin", "main"], "no_verify"),
        (["-c", "core.hooksPath=/dev/null", "status"], "git_option"),
        (["-C", "/tmp", "status"], "git_option"),
        (["--git-dir=/tmp/x", "status"], "git_option"),
        (["fetch", "origin", "main:main"], "fetch_refspec"),
        (["fetch", "origin", "+refs/heads/*:refs/heads/*"], "fetch_refspec"),
        (["fetch", "origin", "refs/heads/main:refs/tags/main"], "fetch_refspec"),
        (["fetch", "--prune-tags", "origin"], "fetch_option"),
        (["fetch", "--update-head-ok", "origin", "main:main"], "fetch_option"),
        (["fetch", "--upload-pack=touch /tmp/x", "origin"], "fetch_option"),
        (["fetch", "origin"], "fetch_refspec"),  # the repo's configured refspec may write anywhere
        (["fetch", "--all"], "fetch_option"),
        (
            ["fetch", "--no-tags", "--refmap=", "origin", "+refs/heads/*:refs/remotes/other/*"],
            "fetch_refspec",
        ),
        (["fetch", "--refmap=", "origin", "+refs/heads/*:refs/remotes/origin/*"], "fetch_refspec"),  # tags
        (["fetch", "--no-tags", "origin", "+refs/heads/*:refs/remotes/origin/*"], "fetch_refspec"),  # refmap
        (
            ["fetch", "--no-tags", "--refmap=", "origin", "+refs/heads/*:refs/remotes/origin/*"],
            "fetch_option",
        ),
        (
            ["fetch", "--no-tags", "--refmap=", "/tmp/elsewhere", "+refs/heads/*:refs/remotes/x/*"],
            "fetch_refspec",
        ),
        (["worktree", "add", ".speedrift/x", "main"], "not_allowed"),  # not --detach
        (["worktree", "add", "--detach", "-b", "x", ".speedrift/x"], "not_allowed"),
        (["worktree", "add", "--detach", "../elsewhere", "main"], "worktree_outside"),
        (["worktree", "remove", "--force", "."], "worktree_outside"),
        (["worktree", "prune"], "not_allowed"),
        (["log", "--output=/tmp/hub-log"], "not_allowed"),
        (["config", "user.name", "someone else"], "not_allowed"),
        (["config", "--unset", "user.name"], "not_allowed"),
        (["symbolic-ref", "HEAD", "refs/heads/feature"], "not_allowed"),
        (["branch", "new-branch"], "not_allowed"),
        (["branch", "--set-upstream-to=origin/main", "feature"], "not_allowed"),
        (["tag", "v2"], "not_allowed"),
        (["remote", "add", "evil", "/tmp/evil"], "not_allowed"),
        (["update-ref", "--stdin"], "not_allowed"),
        (["notes", "add", "-m", "x"], "user_checkout"),
        (["clone", ".", "/tmp/x"], "not_allowed"),
        (["init"], "not_allowed"),
        ([], "not_allowed"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else value,
)
def test_everything_else_outside_the_allowlist_is_refused(repo: Path, argv: list[str], rule: str) -> None:
    assert_refused_and_untouched(repo, argv, rule)


# ---------------------------------------------------------------- actions and leases


def action(kind: str = "verify_in_progress", **params: Any) -> Action:
    return Action(id=f"shop:{kind}", repo="shop", kind=kind, priority=50, reason="test", params=params)  # type: ignore[arg-type]


LEASED = dict(lease_owner="hub", lease_expires_at=NOW + timedelta(hours=1))


@pytest.mark.parametrize(
    ("control", "kind", "rule"),
    [
        (ControlState(mode="observe"), "verify_in_progress", "mode"),
        (ControlState(mode="manual", **LEASED), "verify_in_progress", "mode"),  # type: ignore[arg-type]
        (ControlState(mode="supervise", **LEASED), "dispatch_ready", "mode"),  # type: ignore[arg-type]
        (ControlState(mode="supervise"), "restart_service", "lease"),
        (ControlState(mode="autonomous", lease_owner="hub", lease_expires_at=NOW), "dispatch_ready", "lease"),
        (
            ControlState(mode="autonomous", lease_owner="hub", lease_expires_at=NOW - timedelta(seconds=1)),
            "emit_corrective_task",
            "lease",
        ),
    ],
)
def test_an_action_without_mode_and_live_lease_is_refused(
    control: ControlState, kind: str, rule: str
) -> None:
    with pytest.raises(AuthorityRefused) as caught:
        guard_action(action(kind), control, NOW)
    assert caught.value.rule == rule


@pytest.mark.parametrize(
    ("mode", "kind"),
    [
        ("supervise", "restart_service"),
        ("supervise", "emit_corrective_task"),
        ("autonomous", "dispatch_ready"),
    ],
)
def test_a_live_lease_in_a_permitting_mode_authorises_the_action(mode: str, kind: str) -> None:
    control = ControlState(mode=mode, **LEASED)  # type: ignore[arg-type]
    assert "lease held by hub" in guard_action(action(kind), control, NOW)


@pytest.mark.parametrize(
    "params",
    [{"land": True}, {"merge": "speedrift/x-a1"}, {"skip_gates": True}, {"force": True, "tasks": ["a"]}],
)
def test_an_action_asking_to_land_or_merge_directly_is_refused(params: dict[str, Any]) -> None:
    with pytest.raises(AuthorityRefused) as caught:
        refuse_gate_bypass(action("dispatch_ready", **params))
    assert caught.value.rule == "gate_bypass"


def test_an_action_kind_without_a_handler_is_refused() -> None:
    with pytest.raises(AuthorityRefused) as caught:
        refuse_gate_bypass(action("merge_branch"))
    assert caught.value.rule == "gate_bypass"


def test_hub_admission_rereads_the_control_file_on_every_call(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    clock = [NOW]
    admission = hub_admission(repo, clock=lambda: clock[0])
    assert admission() == (False, "control mode observe does not permit automation")
    write_control(
        repo, "autonomous", owner="hub", lease_ttl=timedelta(minutes=10), actor="t", reason=None, now=NOW
    )
    assert admission()[0] is True
    clock[0] = NOW + timedelta(minutes=10)
    allowed, reason = admission()
    assert not allowed and "expired" in reason


def test_a_corrupt_control_file_grants_no_authority(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    write_control(repo, "autonomous", owner="hub", lease_ttl=None, actor="t", reason=None, now=NOW)
    assert hub_admission(repo)()[0] is True
    control_path(repo).write_text('{"mode": "autonomous", "lease_owner": ')
    assert hub_admission(repo)()[0] is False
