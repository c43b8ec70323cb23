"""Compound review's scan on real repositories: planted risky commits are each flagged with the right
reason, a commit that landed through a real ``speedrift run --exec`` attempt is gated and by an
agent, an agent's commit that bypassed the merge queue is not, and a clean range flags nothing.

The helpers here (a repo, a baseline review, the planted commits) are shared with the other
compound review tests."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from speedrift.fleet.opsconfig import CompoundReviewConfig
from speedrift.fleetops import compound
from speedrift.fleetops.compound_report import Review
from speedrift.fleetops.compound_scan import (
    By,
    CommitFact,
    FileChange,
    Flag,
    FlagReason,
    commit_flags,
    scan,
)
from speedrift.times import now_utc
from tests.cli.support import Cli
from tests.gitrepo import commit_file, make_repo, sh_git

QUIET = 'default_runtime = "claude"\n[compound_review]\nsummarize = false\n'


def a_repo(tmp_path: Path, toml: str = QUIET) -> Path:
    """A repo with a graph and a committed speedrift.toml (by default: no summary)."""
    repo = make_repo(tmp_path / "repo", {"README.md": "# demo\n", "app.py": "print('v1')\n"})
    if toml:
        commit_file(repo, "speedrift.toml", toml, "speedrift config")
    return repo


def review(
    repo: Path,
    now: datetime | None = None,
    *,
    may_write: tuple[bool, str] = (True, "a test"),
    since: str | None = None,
    base: CompoundReviewConfig | None = None,
) -> Review:
    options = compound.Options(may_write=may_write, since=since, base=base, name="demo")
    return compound.review(repo, now=now or now_utc(), options=options)


def land_through_speedrift(repo: Path, task: str = "hello") -> str:
    """A real attempt: `speedrift add --exec` + `speedrift run`, landed by the merge queue. Its tip."""
    cli = Cli(repo)
    cli.ok("add", f"Write {task}", "--id", task, "--exec", f"echo hi > {task}.txt")
    cli.ok("run", task)
    return sh_git(repo, "rev-parse", "main")


def agent_commit_without_gates(repo: Path) -> str:
    """A commit carrying speedrift's marker that never went through the merge queue."""
    (repo / "sneak.py").write_text("print('sneaked in')\n")
    sh_git(repo, "add", "sneak.py")
    sh_git(repo, "commit", "-q", "-m", "t9: sneak a change in\n\nSpeedrift-Task: t9")
    return sh_git(repo, "rev-parse", "HEAD")


def plant(repo: Path) -> dict[str, str]:
    """The risky commits, each alone, plus a gated and a harmless human one. name -> sha."""
    shas = {
        "ci": commit_file(repo, ".github/workflows/ci.yml", "on: push\njobs: {}\n", "ci: run on push"),
        "hook": commit_file(repo, ".husky/pre-commit", "#!/bin/sh\nexit 0\n", "hooks: skip the checks"),
        "manifest": commit_file(
            repo, "pyproject.toml", "[project]\nname = 'demo'\ndependencies = ['httpx']\n", "add httpx"
        ),
        "large": commit_file(repo, "data/big.txt", "".join(f"line {n}\n" for n in range(500)), "big data"),
        "agent": agent_commit_without_gates(repo),
    }
    shas["gated"] = land_through_speedrift(repo)
    shas["human"] = commit_file(repo, "NOTES.md", "a small note\n", "a note")
    return shas


def reasons(flags: list[Flag]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for flag in flags:
        out.setdefault(flag.commit, set()).add(flag.reason.value)
    return out


# --- the planted repository ------------------------------------------------------------------------
def test_each_planted_risky_commit_is_flagged_with_its_reason_and_the_gated_one_is_not(
    tmp_path: Path,
) -> None:
    repo = a_repo(tmp_path)
    review(repo)  # the baseline: what follows is "since the last review"
    shas = plant(repo)
    found = review(repo).scan
    by_commit = reasons(found.flags)
    assert by_commit[shas["ci"]] == {"ci_config", "ungated"}
    assert by_commit[shas["hook"]] == {"hooks", "ungated"}
    assert by_commit[shas["manifest"]] == {"manifest", "ungated"}
    assert by_commit[shas["large"]] == {"large_diff", "ungated"}
    assert by_commit[shas["agent"]] == {"ungated"}
    assert by_commit[shas["human"]] == {"ungated"}
    assert shas["gated"] not in by_commit  # landed through the gates: nothing to flag
    flags = {(f.commit, f.reason): f for f in found.flags}
    assert flags[shas["ci"], FlagReason.CI_CONFIG].files == (".github/workflows/ci.yml",)
    assert flags[shas["hook"], FlagReason.HOOKS].files == (".husky/pre-commit",)
    manifest = flags[shas["manifest"], FlagReason.MANIFEST]
    assert manifest.files == ("pyproject.toml",) and "without its lockfile (uv.lock" in manifest.detail
    assert "+500/-0 lines" in flags[shas["large"], FlagReason.LARGE_DIFF].detail
    sneak = flags[shas["agent"], FlagReason.UNGATED]
    assert sneak.by is By.AGENT and sneak.needs_review and "task t9" in sneak.detail
    person = flags[shas["human"], FlagReason.UNGATED]
    assert person.by is By.HUMAN and not person.needs_review  # listed, no task asked


def test_a_commit_landed_by_a_real_attempt_is_gated_and_by_an_agent_the_others_are_not(
    tmp_path: Path,
) -> None:
    repo = a_repo(tmp_path)
    review(repo)
    shas = plant(repo)
    commits = {c.sha: c for c in review(repo).scan.commits}
    gated = commits[shas["gated"]]
    assert gated.gated and gated.by is By.AGENT and gated.attempt == "hello#1" and gated.task == "hello"
    assert gated.files == [FileChange("hello.txt", 1, 0)]
    sneak = commits[shas["agent"]]
    assert sneak.by is By.AGENT and not sneak.gated and sneak.task == "t9"
    for name in ("ci", "hook", "manifest", "large", "human"):
        assert commits[shas[name]].by is By.HUMAN and not commits[shas[name]].gated
    assert commits[shas["human"]].author == "Test Person" and commits[shas["human"]].subject == "a note"


def test_a_clean_range_of_gated_small_commits_flags_nothing(tmp_path: Path) -> None:
    repo = a_repo(tmp_path)
    review(repo)
    land_through_speedrift(repo, "one")
    land_through_speedrift(repo, "two")
    found = review(repo).scan
    assert len(found.commits) == 2 and all(c.gated and c.by is By.AGENT for c in found.commits)
    assert found.flags == []


def test_a_large_diff_is_judged_against_the_configured_threshold(tmp_path: Path) -> None:
    repo = a_repo(tmp_path, QUIET + "large_diff_lines = 1000\n")
    review(repo)
    commit_file(repo, "data/big.txt", "".join(f"line {n}\n" for n in range(500)), "big data")
    assert "large_diff" not in {f.reason.value for f in review(repo).scan.flags}
    commit_file(repo, "data/bigger.txt", "".join(f"line {n}\n" for n in range(1001)), "bigger")
    assert "large_diff" in {f.reason.value for f in review(repo).scan.flags}


# --- the range ----------------------------------------------------------------------------------------
def test_a_first_review_reads_the_last_24_hours_at_most_50_commits(tmp_path: Path) -> None:
    repo = a_repo(tmp_path)
    for n in range(55):
        sh_git(repo, "commit", "-q", "--allow-empty", "-m", f"empty {n}")
    found = review(repo).scan
    assert found.base is None and len(found.commits) == 50 and found.truncated
    assert found.commits[0].subject == "empty 54"  # the newest first
    assert "first review" in found.window


def test_the_next_review_starts_after_the_last_reviewed_commit(tmp_path: Path) -> None:
    repo = a_repo(tmp_path)
    first = review(repo)
    sha = commit_file(repo, "x.txt", "x\n", "after the review")
    second = review(repo).scan
    assert second.base == first.scan.tip and [c.sha for c in second.commits] == [sha]
    assert review(repo).scan.commits == []  # nothing new


def test_since_reviews_the_commits_after_the_given_revision(tmp_path: Path) -> None:
    repo = a_repo(tmp_path)
    start = sh_git(repo, "rev-parse", "HEAD")
    one = commit_file(repo, "a.txt", "a\n", "one")
    two = commit_file(repo, "b.txt", "b\n", "two")
    review(repo)
    again = review(repo, since=start).scan
    assert [c.sha for c in again.commits] == [two, one] and start[:7] in again.window


def test_a_rewritten_history_falls_back_to_the_first_review_window_and_says_so(tmp_path: Path) -> None:
    repo = a_repo(tmp_path)
    commit_file(repo, "a.txt", "a\n", "one")
    review(repo)
    sh_git(repo, "reset", "-q", "--hard", "HEAD~1")
    rewritten = commit_file(repo, "a.txt", "other\n", "one, rewritten")
    found = review(repo).scan
    assert found.base is None and "no longer on main" in found.window
    assert rewritten in [c.sha for c in found.commits]


def test_paths_are_read_as_data_even_with_tabs_and_newlines(tmp_path: Path) -> None:
    repo = a_repo(tmp_path)
    review(repo)
    odd = "odd\tname\nwith lines.txt"
    sha = commit_file(repo, odd, "x\n", "odd | subject <b>")
    found = scan(repo, "main", now=now_utc(), base=sha + "~1", large_diff_lines=400)
    assert found.commits[0].files == [FileChange(odd, 1, 0)]
    assert found.commits[0].subject == "odd | subject <b>"


# --- the flags of one commit (pure) -------------------------------------------------------------------
def fact(*files: tuple[str, int], by: By = By.HUMAN, gated: bool = True) -> CommitFact:
    changes = [FileChange(path, lines, 0) for path, lines in files]
    return CommitFact("a" * 40, [], "A", "a@x", None, "s", changes, None, by=by, gated=gated)


def flagged(commit: CommitFact, limit: int = 400) -> Mapping[str, Flag]:
    return {f.reason.value: f for f in commit_flags(commit, limit)}


def test_a_manifest_with_its_lock_is_flagged_as_a_dependency_change_with_its_lock() -> None:
    found = flagged(fact(("web/package.json", 3), ("web/package-lock.json", 40)))
    assert set(found) == {"manifest"}
    assert "changed with its lockfile web/package-lock.json" in found["manifest"].detail


def test_a_lockfile_without_its_manifest_is_flagged() -> None:
    assert set(flagged(fact(("uv.lock", 12)))) == {"lockfile"}
    assert set(flagged(fact(("uv.lock", 12), ("pyproject.toml", 1)))) == {"manifest"}


def test_every_ci_system_and_hook_manager_named_is_recognised() -> None:
    for path in (
        ".github/workflows/x.yml",
        ".gitlab-ci.yml",
        ".circleci/config.yml",
        "Jenkinsfile",
        "ci/Jenkinsfile",
        "azure-pipelines.yml",
        ".buildkite/pipeline.yml",
    ):
        assert set(flagged(fact((path, 1)))) == {"ci_config"}, path
    for path in (".githooks/pre-push", ".husky/pre-commit", ".pre-commit-config.yaml", "lefthook.yml"):
        assert set(flagged(fact((path, 1)))) == {"hooks"}, path
    assert flagged(fact(("docs/workflows/ci.yml", 1), ("src/lefthook.yml", 1))) == {}


def test_an_ungated_commit_asks_for_a_review_task_only_when_an_agent_made_it() -> None:
    assert flagged(fact(("a.py", 1), by=By.AGENT, gated=False))["ungated"].needs_review
    assert not flagged(fact(("a.py", 1), by=By.HUMAN, gated=False))["ungated"].needs_review
