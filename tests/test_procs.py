"""procs: the process-group runner, with real subprocesses — output captured, deadlines reach the
whole group (grandchildren included), detached children are reaped."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from speedrift import procs


def _state(pid: int) -> str:
    """The process's state letter from /proc, or "gone"."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1].split()[0]
    except FileNotFoundError:
        return "gone"


def _dead(pid: int) -> bool:
    return _state(pid) in ("gone", "Z", "X")


def _wait_for(condition: object, seconds: float = 30) -> bool:
    assert callable(condition)
    deadline = time.monotonic() + seconds  # the kernel acts promptly; a loaded VM may lag
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return bool(condition())


def test_output_and_exit_code_are_captured_as_bytes_or_text(tmp_path: Path) -> None:
    script = "import sys; print('out:' + sys.stdin.read()); print('err', file=sys.stderr); sys.exit(3)"
    done = procs.run([sys.executable, "-c", script], cwd=tmp_path, input=b"hi", timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (3, b"out:hi\n", b"err\n")
    text = procs.run(
        [sys.executable, "-c", "import sys; sys.stdout.buffer.write(b'a\\r\\nb')"],
        input="x",
        timeout=60,
        text=True,
    )
    assert text.stdout == "a\nb"  # universal newlines, as subprocess.run(text=True)


def test_without_input_stdin_is_empty_not_ours() -> None:
    done = procs.run(
        [sys.executable, "-c", "import sys; print(repr(sys.stdin.read()))"], timeout=60, text=True
    )
    assert done.stdout.strip() == "''"


def test_a_command_past_its_timeout_is_killed_with_its_whole_group(tmp_path: Path) -> None:
    marker = tmp_path / "grandchild.pid"
    script = f"echo started; sleep 600 & echo $! > {marker}; wait"
    with pytest.raises(procs.ProcessTimeout, match=r"timed out after 0\.5s") as caught:
        procs.run(["/bin/sh", "-c", script], timeout=0.5)
    assert caught.value.stdout == b"started\n" and caught.value.timeout == 0.5
    grandchild = int(marker.read_text())
    assert _wait_for(lambda: _dead(grandchild))


def test_a_grace_lets_the_group_handle_sigterm_before_sigkill(tmp_path: Path) -> None:
    polite = "trap 'echo bye; exit 0' TERM; sleep 600 & wait"
    with pytest.raises(procs.ProcessTimeout) as caught:
        procs.run(["/bin/sh", "-c", polite], timeout=0.3, grace_s=10)
    assert caught.value.stdout == b"bye\n"
    marker = tmp_path / "stubborn.pid"
    stubborn = f"trap '' TERM; sh -c 'trap \"\" TERM; sleep 600' & echo $! > {marker}; wait"
    with pytest.raises(procs.ProcessTimeout):
        procs.run(["/bin/sh", "-c", stubborn], timeout=0.3, grace_s=0.5)
    assert _wait_for(lambda: _dead(int(marker.read_text())))


def test_a_grandchild_holding_stdout_does_not_keep_the_call_open_and_end_group_kills_it(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "helper.pid"
    script = f"sleep 600 & echo $! > {marker}; echo done"
    done = procs.run(["/bin/sh", "-c", script], timeout=60)
    assert done.stdout == b"done\n"
    helper = int(marker.read_text())
    assert not _dead(helper)  # the call returned while its helper still held stdout: it did not wait
    os.kill(helper, signal.SIGKILL)
    assert _wait_for(lambda: _dead(helper))
    procs.run(["/bin/sh", "-c", script], timeout=60, end_group=True)
    assert _wait_for(lambda: _dead(int(marker.read_text())))


def test_start_now_finish_later_and_a_passed_deadline_starts_nothing(tmp_path: Path) -> None:
    running = procs.start(["/bin/sh", "-c", "echo later"], deadline=time.monotonic() + 60, cwd=tmp_path)
    assert running.finish().stdout == b"later\n"
    with pytest.raises(procs.ProcessTimeout):
        procs.start(["/bin/sh", "-c", f"touch {tmp_path / 'ran'}"], deadline=time.monotonic() - 1)
    assert not (tmp_path / "ran").exists()


def test_a_command_that_cannot_start_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        procs.run([str(tmp_path / "missing")], timeout=5)


def test_a_detached_child_writes_its_log_and_is_reaped(tmp_path: Path) -> None:
    log = tmp_path / "child.log"
    child = procs.spawn_detached(["/bin/sh", "-c", "echo hello; echo oops >&2"], log=log, cwd=tmp_path)
    assert _wait_for(lambda: child.returncode is not None)  # set by the reaper thread
    assert child.poll() == 0 and not procs.pid_alive(child.pid)  # reaped: no zombie left behind
    assert log.read_bytes() == b"hello\noops\n"


def test_end_group_and_signal_group(tmp_path: Path) -> None:
    marker = tmp_path / "helper.pid"
    proc = procs.popen_group(["/bin/sh", "-c", f"trap '' TERM; sleep 600 & echo $! > {marker}; wait"])
    assert _wait_for(lambda: marker.exists() and marker.read_text().strip() != "")
    assert procs.group_alive(proc.pid)
    procs.end_group(proc, grace_s=0.2)
    assert proc.returncode is not None and not procs.group_alive(proc.pid)
    assert _dead(int(marker.read_text()))
    alone = procs.popen_group(["true"])
    alone.wait()
    assert procs.signal_group(alone.pid, signal.SIGTERM) is False  # its group is gone
    with pytest.raises(ValueError):
        procs.signal_group(0, signal.SIGTERM)


def test_an_interrupt_while_waiting_kills_the_group(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "leader.pid"
    real_wait = subprocess.Popen.wait
    calls: list[int] = []

    def interrupted(self: subprocess.Popen[bytes], timeout: float | None = None) -> int:
        calls.append(self.pid)
        if len(calls) == 1:
            _wait_for(marker.exists)
            raise KeyboardInterrupt
        return real_wait(self, timeout)

    monkeypatch.setattr(subprocess.Popen, "wait", interrupted)
    with pytest.raises(KeyboardInterrupt):
        procs.run(["/bin/sh", "-c", f"echo $$ > {marker}; sleep 600"], timeout=600)
    monkeypatch.undo()
    assert _wait_for(lambda: not procs.group_alive(calls[0]))


def test_a_process_identity_tells_a_live_process_from_a_reused_pid(tmp_path: Path) -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        identity = procs.identity_of(child.pid)
        assert identity.started is not None and procs.identity_alive(identity)
        assert procs.ProcessIdentity.from_dict(identity.to_dict()) == identity
        reused = procs.ProcessIdentity(child.pid, identity.started + 1)  # same pid, another process
        assert not procs.identity_alive(reused)
    finally:
        child.kill()
        child.wait()
    assert not procs.identity_alive(identity)


def test_a_process_knows_its_own_identity_and_a_forked_child_its_own() -> None:
    mine = procs.identity_of()
    assert mine == procs.identity_of(os.getpid()) and mine.started is not None
    assert procs.identity_alive(mine)
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its own pid and start time, never the parent's remembered one
        child = procs.identity_of()
        os.write(writer, f"{child.pid} {child.started}".encode())
        os._exit(0)
    os.close(writer)
    said = os.read(reader, 100).decode().split()
    os.close(reader)
    os.waitpid(pid, 0)
    assert int(said[0]) == pid and said[0] != str(mine.pid)
    assert said[1] != "None" and int(said[1]) >= (mine.started or 0)
    assert procs.identity_of() == mine


def test_end_group_of_a_leader_that_exited_by_itself_reaps_it_with_its_own_status() -> None:
    proc = procs.popen_group(["/bin/sh", "-c", "exit 3"], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while _state(proc.pid) != "Z" and time.monotonic() < deadline:  # exited, not yet reaped
        time.sleep(0.01)
    procs.end_group(proc, grace_s=5)
    assert proc.returncode == 3  # it ended on its own: reaped with its own status, not a signal
    assert not procs.group_alive(proc.pid)


def test_a_zombie_or_a_hostile_record_is_not_alive() -> None:
    child = subprocess.Popen(["true"])
    identity = procs.identity_of(child.pid)
    deadline = time.monotonic() + 30
    while (
        Path(f"/proc/{child.pid}/stat").read_text().split(") ")[1][0] != "Z" and time.monotonic() < deadline
    ):
        time.sleep(0.01)
    assert procs.pid_alive(child.pid)  # a zombie still has its pid
    assert not procs.identity_alive(procs.identity_of(child.pid)) and identity.pid == child.pid
    child.wait()
    assert procs.ProcessIdentity.from_dict({"pid": "1; rm -rf /"}) is None
    assert procs.ProcessIdentity.from_dict(["pid", 1]) is None


def _one_user() -> tuple[str, int | None]:
    """A python and the user that two processes of one (non-root) user run as: ourselves (None),
    or when the suite runs as root (who may read anything) nobody, with a python nobody can run."""
    if os.geteuid() != 0:
        return sys.executable, None
    python = "/usr/bin/python3"
    if not os.access(python, os.X_OK):
        pytest.skip("running as root without /usr/bin/python3 for the user nobody")
    return python, 65534


@pytest.mark.parametrize("non_dumpable", [False, True])
def test_a_non_dumpable_process_keeps_its_environment_from_other_processes_of_its_user(
    non_dumpable: bool,
) -> None:
    """What `speedrift run`, the service, its workers and the hub do first (procs.make_non_dumpable):
    another process of the same user can no longer read their /proc/<pid>/environ. What they start
    with exec is dumpable again (git's open lock files stay visible to repo/gitlocks.py)."""
    python, uid = _one_user()
    src = str(Path(procs.__file__).parents[1])
    hold = (
        "import subprocess, sys, time; from speedrift import procs\n"
        "if sys.argv[1] == '1': assert procs.make_non_dumpable() and procs.is_dumpable() is False\n"
        "child = subprocess.Popen(['sleep', '120'])\n"
        "print(child.pid, flush=True); time.sleep(120)\n"
    )
    env = {"PATH": os.environ.get("PATH", os.defpath), "PYTHONPATH": src, "SECRET_CANARY": "canary-4a7c"}
    holder = subprocess.Popen(
        [python, "-c", hold, "1" if non_dumpable else "0"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        user=uid,
        group=uid,
        extra_groups=None if uid is None else [],
    )
    try:
        assert holder.stdout is not None
        child = int(holder.stdout.readline())
        read = "import sys; print(open(f'/proc/{sys.argv[1]}/environ', 'rb').read().count(b'canary-4a7c'))"
        seen = [
            subprocess.run(
                [python, "-c", read, str(pid)],
                capture_output=True,
                text=True,
                user=uid,
                group=uid,
                extra_groups=None if uid is None else [],
            )
            for pid in (holder.pid, child)
        ]
    finally:
        holder.kill()
        holder.wait()
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
    if non_dumpable:
        assert seen[0].returncode != 0 and "PermissionError" in seen[0].stderr
    else:
        assert seen[0].stdout.strip() == "1", seen[0]
    assert seen[1].stdout.strip() == "1", seen[1]  # its exec'd child: readable as before
