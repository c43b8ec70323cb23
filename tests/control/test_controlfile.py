"""control.json: mode + lease per repo; missing or corrupt fails closed to observe; writes are atomic."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from speedrift.control.controlfile import load_control, read_control, release_lease, write_control
from speedrift.errors import NotFound, Refused, UsageError
from speedrift.layout import control_path
from tests.gitrepo import make_repo, sh_git

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


def test_a_repo_without_a_control_file_is_in_observe_mode_without_authority(repo: Path) -> None:
    state, problem = load_control(repo)
    assert state.mode == "observe" and problem is None
    assert state.authority(NOW) == (False, "control mode observe does not permit automation")
    assert not (repo / ".speedrift").exists()  # reading creates nothing


def test_supervise_without_an_owner_gives_the_lease_to_the_actor_until_the_ttl(repo: Path) -> None:
    state = write_control(
        repo, "supervise", owner=None, lease_ttl=timedelta(hours=2), actor="alice", reason="night", now=NOW
    )
    assert (state.lease_owner, state.lease_expires_at) == ("alice", NOW + timedelta(hours=2))
    assert read_control(repo) == state
    assert read_control(repo).authority(NOW + timedelta(hours=1))[0] is True
    allowed, why = read_control(repo).authority(NOW + timedelta(hours=2))
    assert allowed is False and "expired" in why


def test_the_file_has_the_documented_shape(repo: Path) -> None:
    write_control(repo, "autonomous", owner="hub-bot", lease_ttl=None, actor="bob", reason=None, now=NOW)
    assert orjson.loads(control_path(repo).read_bytes()) == {
        "schema": 1,
        "mode": "autonomous",
        "lease_owner": "hub-bot",
        "lease_expires_at": None,
        "updated_at": "2026-11-20T12:00:00Z",
        "updated_by": "bob",
        "reason": None,
    }
    assert read_control(repo).authority(NOW + timedelta(days=365))[0] is True  # no TTL: no expiry
    assert sorted(p.name for p in (repo / ".speedrift").iterdir()) == ["control.json", "control.lock"]


def test_the_state_directory_is_kept_out_of_git(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r")
    (repo / ".gitignore").write_text("")
    sh_git(repo, "commit", "-qam", "no ignore")
    write_control(repo, "observe", owner=None, lease_ttl=None, actor="a", reason=None, now=NOW)
    assert ".speedrift/" in (repo / ".git" / "info" / "exclude").read_text().splitlines()
    assert sh_git(repo, "status", "--porcelain") == ""


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b'{"mode": "godmode", "lease_owner": "x"}',
        b'{"mode": "autonomous", "lease_owner": "x", "lease_expires_at": "soon"}',
        b'{"mode": "autonomous", "lease_owner": 7}',
        b"[1, 2]",
    ],
)
def test_a_corrupt_file_fails_closed_to_observe_and_says_why(repo: Path, content: bytes) -> None:
    control_path(repo).parent.mkdir()
    control_path(repo).write_bytes(content)
    state, problem = load_control(repo)
    assert state.mode == "observe" and state.lease_owner is None
    assert problem is not None and str(control_path(repo)) in problem and "treated as observe" in problem
    surfaced = read_control(repo)
    assert surfaced.mode == "observe" and surfaced.reason == problem
    assert surfaced.authority(NOW)[0] is False


def test_bad_requests_are_usage_errors(repo: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown control mode"):
        write_control(repo, "godmode", owner=None, lease_ttl=None, actor="a", reason=None, now=NOW)
    with pytest.raises(UsageError, match="between 1 second and 30 days"):
        write_control(repo, "supervise", owner=None, lease_ttl=timedelta(0), actor="a", reason=None, now=NOW)
    with pytest.raises(NotFound):
        write_control(
            tmp_path / "nope", "observe", owner=None, lease_ttl=None, actor="a", reason=None, now=NOW
        )


def test_releasing_the_lease_keeps_the_mode_and_removes_authority(repo: Path) -> None:
    write_control(repo, "autonomous", owner="alice", lease_ttl=None, actor="alice", reason=None, now=NOW)
    with pytest.raises(Refused, match="held by alice, not bob"):
        release_lease(repo, actor="bob", owner="bob", now=NOW)
    state = release_lease(repo, actor="alice", owner="alice", now=NOW + timedelta(minutes=1))
    assert state.mode == "autonomous" and state.lease_owner is None
    assert read_control(repo).authority(NOW) == (False, "no lease owner")
    assert release_lease(repo, actor="alice", now=NOW) == read_control(repo)  # nothing to release: no-op


def test_readers_never_see_a_half_written_file_while_two_processes_write(repo: Path) -> None:
    script = (
        "import sys; from pathlib import Path; from datetime import datetime, UTC\n"
        "from speedrift.control.controlfile import write_control\n"
        "for i in range(40):\n"
        "    mode = 'supervise' if i % 2 else 'autonomous'\n"
        "    write_control(Path(sys.argv[1]), mode, owner=sys.argv[2], lease_ttl=None, actor=sys.argv[2],\n"
        "                  reason='x' * 2000, now=datetime.now(UTC))\n"
    )
    write_control(repo, "observe", owner=None, lease_ttl=None, actor="a", reason=None, now=NOW)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(repo), who]) for who in ("p", "q")]
    problems = []
    while any(p.poll() is None for p in procs):
        problems.append(load_control(repo)[1])
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    assert set(problems) <= {None}
    assert read_control(repo).lease_owner in ("p", "q")
