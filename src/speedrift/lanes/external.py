"""External lanes: an executable that prints the lane SDK's JSON, run contained.

:func:`lane_for` turns a policy's external lane (``[<lane>] command`` or an executable
``.workgraph/<lane>``) into a :class:`~speedrift.lanes.spec.Lane` whose ``run`` executes
``<command> check --json [--task <id>]`` — the original wrapper convention, never with
``--create-followups`` or ``--write-log``: an external lane only reports, and its findings reach the
graph through the guard (:mod:`speedrift.lanes.guard`) like every other lane's. Its context comes
in the environment: ``SPEEDRIFT_LANE`` (its name), ``SPEEDRIFT_LANE_REPO``, ``SPEEDRIFT_LANE_HEAD``,
``SPEEDRIFT_LANE_BASE``, ``SPEEDRIFT_LANE_TIP`` and ``SPEEDRIFT_LANE_TASK`` (each empty when there
is none) and ``SPEEDRIFT_LANE_SETTINGS`` (its ``[<lane>]`` settings as JSON); it runs in the repo.

Containment, the agents' rules: the environment is the agents' allow-list (agents/env.py: no
credential reaches it); the process runs in the agents' bubblewrap sandbox (agents/sandbox.py)
with the network cut, everything read-only — the repo included — but a private HOME, TMPDIR and
scratch directory that are removed afterwards; ``[sandbox] mode`` decides as it does for agents
(``required`` without a working bwrap refuses to run the lane, ``auto`` runs it unsandboxed and
says so in the lane's summary, ``off`` never sandboxes). The whole process group is killed at the
wall-clock limit (``timeout_s``), when stdout passes ``max_output_bytes`` (at most that many bytes
plus one are ever read) or stderr passes the same cap, and when the lane exits (nothing it
started outlives it).

Invariant: whatever the executable does — prints something that is not the SDK's JSON, names
another lane, prints a malformed finding, runs too long, prints too much, crashes, is missing —
:func:`run` raises :class:`LaneError` naming the lane and what happened (any quoted output
redacted); it never returns a pass it did not get and never lets the failure escape otherwise.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from speedrift import procs, redact, safejson, serialize
from speedrift.agents import env as agent_env
from speedrift.agents import sandbox
from speedrift.errors import SpeedriftError
from speedrift.lanes.context import LaneContext
from speedrift.lanes.model import LaneExit, LaneFinding, LaneScope, finding_from_json
from speedrift.lanes.policy import LanePolicy
from speedrift.lanes.spec import Lane, LaneOutput
from speedrift.termtext import printable
from speedrift.textclip import one_line

QUOTE_CHARS = 200  # of a non-JSON stdout, quoted in the error
STDERR_TAIL_BYTES = 8 * 1024  # of stderr, kept (the end: a traceback's conclusion)
STDERR_TAIL_LINES = 3  # lines of that tail named in a crash's error
_READ = 64 * 1024
_WAKE_S = 0.25  # how often a run whose pipes stay open is looked at for its leader's exit
NO_CLI = "shell"  # sandbox.Policy.runtime: no agent CLI's configuration or login is mapped in
NORMAL_EXITS = (LaneExit.OK, LaneExit.FINDINGS)


class LaneError(SpeedriftError):
    """An external lane could not judge; the runner records it as the lane's error (never a pass)."""

    def __init__(self, lane: str, problem: str, *, hint: str | None = None) -> None:
        super().__init__(f"external lane {lane}: {problem}", hint=hint)
        self.lane = lane
        self.problem = problem


@dataclass(frozen=True, slots=True)
class Containment:
    """What external lanes run in: the repo's ``[sandbox]`` table as agents get it (fleet/config.py
    reads it; the lanes layer cannot). The network is always cut."""

    mode: sandbox.Mode = "auto"
    hide: tuple[str, ...] = sandbox.HIDDEN  # SandboxConfig.hidden()
    env_allow: tuple[str, ...] = ()  # [env] allow: more variable names (never a credential)
    extra_env: Mapping[str, str] = field(default_factory=dict)


def lane_for(policy: LanePolicy, *, containment: Containment | None = None) -> Lane:
    """The :class:`Lane` running ``policy.command`` (a policy's external lane)."""
    if not policy.command:
        raise ValueError(f"{policy.name} has no command: it is not an external lane")
    contained = containment or Containment()

    def run(ctx: LaneContext) -> LaneOutput:
        return run_external(policy, ctx, contained)

    return Lane(
        name=policy.name,
        scope=LaneScope.DIFF,
        summary=f"external lane: {' '.join(policy.command)}",
        run=run,
        defaults=dict(policy.settings),  # accepted as given: the executable judges its own settings
        fence=None,  # the executable reads its own fence (the task id is on its command line)
        external=True,
        volatile=True,
    )


def argv_for(policy: LanePolicy, task_id: str) -> list[str]:
    """The wrapper convention: ``<command> check --json [--task <id>]``."""
    assert policy.command is not None
    return [*policy.command, "check", "--json", *(["--task", task_id] if task_id else [])]


def lane_env(policy: LanePolicy, ctx: LaneContext, contained: Containment) -> dict[str, str]:
    """The scrubbed environment (agents/env.py's allow-list) plus the lane's context."""
    view = ctx.view
    settings = ctx.settings if ctx.settings else policy.settings
    context = {
        "SPEEDRIFT_LANE": policy.name,
        "SPEEDRIFT_LANE_REPO": str(ctx.repo),
        "SPEEDRIFT_LANE_HEAD": view.head,
        "SPEEDRIFT_LANE_BASE": view.base or "",
        "SPEEDRIFT_LANE_TIP": view.tip or "",
        "SPEEDRIFT_LANE_TASK": ctx.task_id,
        "SPEEDRIFT_LANE_SETTINGS": serialize.dumps(dict(settings)).decode("utf-8"),
    }
    return agent_env.agent_env({**contained.extra_env, **context}, allow=contained.env_allow)


def run_external(policy: LanePolicy, ctx: LaneContext, contained: Containment) -> LaneOutput:
    """Run the lane's executable contained and read its JSON; :class:`LaneError` on any failure."""
    name = policy.name
    repo = ctx.repo
    env = lane_env(policy, ctx, contained)
    argv = argv_for(policy, ctx.task_id)
    argv[0] = _executable(name, argv[0], repo, env.get("PATH", os.defpath))
    decision = sandbox.decide(contained.mode, network=False)
    try:
        sandbox.require(contained.mode, decision)
    except sandbox.SandboxUnavailable as exc:
        raise LaneError(name, f"not run: {exc.message}", hint=exc.hint) from None
    note = ""
    if decision.used and decision.bwrap is not None:
        run_dir = Path(tempfile.mkdtemp(prefix=f"speedrift-lane-{_safe(name)}-"))
        try:
            scratch = run_dir / "work"
            scratch.mkdir()
            boxed = sandbox.Policy(
                decision.bwrap,
                worktree=scratch,  # the one writable place besides HOME and TMPDIR; the repo is not
                run_dir=run_dir,
                network=False,
                runtime=NO_CLI,
                hide=contained.hide,
            )
            try:
                wrapped = sandbox.wrap(boxed, argv, env, repo)
            except OSError as exc:
                raise LaneError(name, f"could not prepare its sandbox: {exc.strerror or exc}") from None
            captured = _capture(name, wrapped.argv, wrapped.env, repo, policy, sandboxed=True)
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)
    else:
        note = f"unsandboxed: {decision.why}"
        captured = _capture(name, argv, env, repo, policy, sandboxed=False)
    output = parse_output(name, captured.stdout, ctx.task_id)
    if note:
        summary = f"{output.summary} ({note})" if output.summary else note
        output = LaneOutput(output.findings, summary, output.score, output.artifacts)
    return output


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:40] or "lane"


def _executable(name: str, program: str, repo: Path, path: str) -> str:
    """The absolute path of the program to run; :class:`LaneError` when it is missing or not
    executable (a relative path is the repo's, a bare name is looked up on the lane's PATH)."""
    if "/" in program:
        candidate = Path(program) if os.path.isabs(program) else repo / program
        if not candidate.is_file():
            raise LaneError(
                name,
                f"its executable {program} does not exist",
                hint=f"fix [{name}] command in drift-policy.toml, or add the file",
            )
        if not os.access(candidate, os.X_OK):
            raise LaneError(name, f"{program} is not executable", hint=f"chmod +x {program}")
        return str(candidate.resolve())
    found = shutil.which(program, path=path)
    if found is None:
        raise LaneError(
            name,
            f"its executable {program} is not on the lane's PATH",
            hint=f"install {program}, or name it by path in [{name}] command",
        )
    return found


@dataclass(frozen=True, slots=True)
class Captured:
    returncode: int
    stdout: bytes
    stderr_tail: bytes


def _capture(
    name: str, argv: Sequence[str], env: Mapping[str, str], cwd: Path, policy: LanePolicy, *, sandboxed: bool
) -> Captured:
    """Run ``argv`` as its own process group, reading at most ``cap + 1`` bytes of stdout (and
    stderr) before the whole group is killed; the group is killed at the deadline and when the
    leader exits, and is gone when this returns or raises."""
    cap = policy.max_output_bytes
    try:
        proc = procs.popen_group(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as exc:
        raise LaneError(name, f"could not start {argv[0]}: {exc.strerror or exc}") from None
    assert proc.stdout is not None and proc.stderr is not None
    out = bytearray()
    err_total = 0
    err_tail = bytearray()
    problem: str | None = None
    leader_gone = False
    deadline = time.monotonic() + policy.timeout_s
    try:
        with selectors.DefaultSelector() as watched:
            for stream in (proc.stdout, proc.stderr):
                os.set_blocking(stream.fileno(), False)
                watched.register(stream, selectors.EVENT_READ)
            while watched.get_map():
                left = deadline - time.monotonic()
                if left <= 0:
                    problem = f"timed out after {policy.timeout_s:g}s (its process group was killed)"
                    break
                if not leader_gone and _exited(proc.pid):
                    # the lane exited: whatever it started and left holding its pipes goes with it
                    # (its leader is not reaped yet, so the group id cannot have been reused)
                    leader_gone = True
                    with contextlib.suppress(PermissionError):
                        procs.signal_group(proc.pid, signal.SIGKILL)
                for key, _ in watched.select(min(left, _WAKE_S)):
                    is_out = key.fileobj is proc.stdout
                    want = cap + 1 - len(out) if is_out else _READ
                    try:
                        chunk = os.read(key.fd, max(1, min(_READ, want)))
                    except BlockingIOError:
                        continue
                    if not chunk:
                        watched.unregister(key.fileobj)
                        continue
                    if is_out:
                        out += chunk
                        if len(out) > cap:
                            problem = f"printed more than {cap} bytes on stdout (max_output_bytes)"
                            break
                    else:
                        err_total += len(chunk)
                        err_tail = (err_tail + chunk)[-STDERR_TAIL_BYTES:]
                        if err_total > cap:
                            problem = f"printed more than {cap} bytes on stderr (max_output_bytes)"
                            break
                if problem is not None:
                    break
    finally:
        procs.end_group(proc, 0.0)
        proc.stdout.close()
        proc.stderr.close()
    if problem is not None:
        hint = None
        if problem.startswith("timed out"):
            hint = f"raise [{name}] timeout_s in drift-policy.toml, or make the lane faster"
        elif "max_output_bytes" in problem:
            hint = f"raise [{name}] max_output_bytes in drift-policy.toml, or make the lane print less"
        raise LaneError(name, problem, hint=hint)
    code = proc.returncode
    if code not in NORMAL_EXITS:
        raise LaneError(name, _exit_problem(code, bytes(err_tail), sandboxed))
    return Captured(code, bytes(out), bytes(err_tail))


def _exited(pid: int) -> bool:
    """Whether our child ``pid`` has exited, without reaping it."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _exit_problem(code: int, stderr: bytes, sandboxed: bool) -> str:
    if code < 0:
        what = f"was killed by {_signal_name(-code)}"
    elif sandboxed and code > 128 and _signal_name(code - 128, None):
        # bwrap reports a child killed by a signal as 128 + the signal, as a shell does
        what = f"was killed by {_signal_name(code - 128)} (exit code {code})"
    elif code == LaneExit.USAGE:
        what = "exited with code 2 (a usage error: its command line or configuration is wrong)"
    else:
        what = f"exited with code {code} (a lane exits 0 when clean, 3 with findings)"
    tail = stderr_tail(stderr)
    return f"{what}; stderr: {tail}" if tail else f"{what}; it wrote nothing on stderr"


def _signal_name(number: int, default: str | None = "") -> str | None:
    try:
        return signal.Signals(number).name
    except ValueError:
        return default if default is None else f"signal {number}"


def stderr_tail(stderr: bytes) -> str:
    """The last few non-empty lines of stderr on one line, redacted and printable."""
    text = redact.redact_text(stderr.decode("utf-8", "replace"))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return printable(" | ".join(lines[-STDERR_TAIL_LINES:]))[:600]


def quote(raw: bytes | str) -> str:
    """The start of an output, for an error message: redacted, one line, at most 200 characters."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return printable(one_line(redact.redact_text(text)))[:QUOTE_CHARS]


def parse_output(name: str, stdout: bytes, task_id: str = "") -> LaneOutput:
    """The SDK's JSON as a :class:`LaneOutput`; :class:`LaneError` when it is not that. A finding
    without a ``subject`` is about ``task_id`` (the task the lane was asked about), if any."""
    if not stdout.strip():
        raise LaneError(name, "printed nothing on stdout (expected the lane SDK's JSON)")
    try:
        data: Any = safejson.loads(stdout.strip())
    except safejson.MalformedJson as exc:
        raise LaneError(
            name, f"printed something that is not JSON ({exc.problem}): {quote(stdout)!r}"
        ) from None
    if not isinstance(data, dict):
        raise LaneError(name, f"printed JSON that is not an object: {quote(stdout)!r}")
    if "lane" not in data:
        raise LaneError(name, 'printed JSON without a "lane" key (not the lane SDK\'s output)')
    if data["lane"] != name:
        raise LaneError(name, f"printed the output of lane {quote(str(data['lane']))!r}, not {name!r}")
    raw_findings = data.get("findings", [])
    if not isinstance(raw_findings, list):
        raise LaneError(name, '"findings" is not a list')
    findings: list[LaneFinding] = []
    for index, raw in enumerate(raw_findings):
        if isinstance(raw, dict):
            raw = redact.redact_value(raw)  # what it quotes of the repo is recorded: no credential
            if task_id and not raw.get("subject"):
                raw = {**raw, "subject": task_id}
        try:
            findings.append(finding_from_json(name, raw, index))
        except ValueError as exc:
            raise LaneError(name, f"printed a malformed finding: {quote(str(exc))}") from None
    summary = data.get("summary", "")
    if not isinstance(summary, str):
        raise LaneError(name, '"summary" is not a string')
    return LaneOutput(tuple(findings), one_line(summary))
