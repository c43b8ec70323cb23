"""A stand-in for the claude, codex and opencode CLIs that speaks each one's event stream.

The executables `claude`, `codex` and `opencode` next to this file call `main(<cli>)`. What the
fake does comes from a scenario JSON file named by $FAKE_AGENT_SCENARIO: a list of steps, run in
order. The lines each step prints copy the shapes of the real CLIs' streams (captured in
`../fixtures/streams/`), and file edits really happen in the working directory.

Steps (`{"do": …}`): record, start, edit, finish, auth_failure, usage_limit, max_turns,
tool_loop, garbage, reconnect, auth_retry, rejected, stderr, sleep, hold, spawn_grandchild,
ignore_sigterm, result_file, signal, try_write, exit, kill_self, session_store, refuse_resume,
server_error (claude).

Sessions, as the real CLIs keep them: each run appends its prompt to its session file unless
told not to keep it (claude `--no-session-persistence`, codex `--ephemeral`), and a run given a
session to continue (claude `--resume ID`, codex `exec … resume ID -`, opencode `--session ID`)
continues it — same id, the earlier prompts in `conversation` of the `record` step's file — or,
when the session is not there (claude looks only in the folder of its working directory) or the
scenario has a `refuse_resume` step, fails before any event as the CLI does (a line on stderr,
exit 1). The sessions are kept beside the scenario (`<scenario>.sessions/`), or where the CLI
itself keeps them under its HOME with a `{"do": "session_store", "where": "home"}` step.

A scenario may also be an object, `{"roles": {"developer": [[steps of run 1], [run 2], …],
"reviewer": [[…]], "*": [[…]]}}`: each run picks its role's list by $SPEEDRIFT_ROLE (no role: the
developer; a role not listed: "*"), or `"<role>:<task id>"` when listed for $SPEEDRIFT_TASK_ID, and
the nth run of that key takes the nth list (the last one repeats). The runs are counted in
`<scenario>.count.json` (or $FAKE_AGENT_COUNTER), which must be writable by the fake: such tests
run unsandboxed.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

SESSION = str(uuid.uuid4())
_STDIN: list[str] = []


def stdin_text() -> str:
    """The prompt on stdin, read once (the record step and the session file both want it)."""
    if not _STDIN:
        _STDIN.append(sys.stdin.read() if not sys.stdin.isatty() else "")
    return _STDIN[0]


def emit(obj: dict[str, Any] | str) -> None:
    sys.stdout.write((obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False)) + "\n")
    sys.stdout.flush()


class Claude:
    def start(self) -> None:
        emit(
            {"type": "system", "subtype": "init", "cwd": os.getcwd(), "session_id": SESSION, "model": "mock"}
        )

    def assistant(self, block: dict[str, Any], error: str | None = None) -> None:
        usage = {"input_tokens": 800, "cache_read_input_tokens": 200, "output_tokens": 1}
        message = {"id": f"msg_{uuid.uuid4().hex[:8]}", "type": "message", "role": "assistant"}
        line: dict[str, Any] = {
            "type": "assistant",
            "message": message
            | {"model": "<synthetic>" if error else "mock", "content": [block], "usage": usage},
            "parent_tool_use_id": None,
            "session_id": SESSION,
        }
        if error:
            line["error"] = error
        emit(line)

    def tool(self, name: str, args: dict[str, Any], n: int) -> None:
        self.assistant({"type": "tool_use", "id": f"toolu_{n}", "name": name, "input": args})
        result = {"type": "tool_result", "tool_use_id": f"toolu_{n}", "content": "ok"}
        emit({"type": "user", "message": {"role": "user", "content": [result]}, "session_id": SESSION})

    def result(self, text: str, *, subtype: str = "success", is_error: bool = False, **extra: Any) -> None:
        usage = {"input_tokens": 1600, "cache_read_input_tokens": 400, "output_tokens": 60}
        line = {
            "type": "result",
            "subtype": subtype,
            "is_error": is_error,
            "num_turns": extra.pop("num_turns", 2),
            "result": text,
            "total_cost_usd": 0.0097,
            "usage": usage,
            "session_id": SESSION,
        }
        emit(line | extra)

    def edit(self, path: str, content: str, n: int) -> None:
        self.tool("Write", {"file_path": path, "content": content}, n)

    def finish(self, text: str) -> None:
        self.assistant({"type": "text", "text": text})
        self.result(text, terminal_reason="completed")

    def auth_failure(self) -> int:
        text = "Invalid API key · Fix external API key"
        self.assistant({"type": "text", "text": text}, error="authentication_failed")
        self.result(text, is_error=True, api_error_status=401, num_turns=1)
        return 1

    def usage_limit(self, reset: datetime) -> int:
        info = {"status": "rejected", "resetsAt": int(reset.timestamp()), "rateLimitType": "five_hour"}
        emit({"type": "rate_limit_event", "rate_limit_info": info, "session_id": SESSION})
        text = f"You've hit your session limit · resets {_clock12(reset).lower().replace(' ', '')} (UTC)"
        self.assistant({"type": "text", "text": text}, error="rate_limit")
        self.result(text, is_error=True, api_error_status=429, num_turns=1)
        return 1

    def max_turns(self, turns: int) -> int:
        for n in range(turns):
            self.tool("Read", {"file_path": "README"}, n)
        errors = [f"Reached maximum number of turns ({turns})"]
        self.result("", subtype="error_max_turns", is_error=True, num_turns=turns + 1, errors=errors)
        return 1

    def auth_retry(self, attempt: int) -> None:
        emit(
            {
                "type": "system",
                "subtype": "api_retry",
                "attempt": attempt,
                "max_retries": 10,
                "retry_delay_ms": 500.0,
                "error_status": 401,
                "error": "authentication_failed",
            }
        )


class Codex:
    def __init__(self) -> None:
        self.items = 0

    def item(self, kind: str, item: dict[str, Any]) -> None:
        emit({"type": kind, "item": {"id": f"item_{self.items}"} | item})

    def start(self) -> None:
        emit({"type": "thread.started", "thread_id": SESSION})
        emit({"type": "turn.started"})

    def edit(self, path: str, content: str, n: int) -> None:
        change = {"type": "file_change", "changes": [{"path": str(Path.cwd() / path), "kind": "add"}]}
        self.item("item.started", change | {"status": "in_progress"})
        self.item("item.completed", change | {"status": "completed"})
        self.items += 1

    def tool(self, n: int) -> None:
        command = {
            "type": "command_execution",
            "command": "/bin/bash -lc 'cat README'",
            "aggregated_output": "",
        }
        self.item("item.started", command | {"exit_code": None, "status": "in_progress"})
        self.item("item.completed", command | {"exit_code": 0, "status": "completed"})
        self.items += 1

    def finish(self, text: str) -> None:
        self.item("item.completed", {"type": "agent_message", "text": text})
        usage = {
            "input_tokens": 2000,
            "cached_input_tokens": 400,
            "cache_write_input_tokens": 0,
            "output_tokens": 60,
        }
        emit({"type": "turn.completed", "usage": usage | {"reasoning_output_tokens": 0}})

    def fatal(self, message: str) -> int:
        emit({"type": "error", "message": message})
        emit({"type": "turn.failed", "error": {"message": message}})
        return 1

    def auth_failure(self) -> int:
        return self.fatal("unexpected status 401 Unauthorized: Incorrect API key provided: sk-mock.")

    def usage_limit(self, reset: datetime) -> int:
        return self.fatal(f"You’ve hit your usage limit. Try again at {_clock12(reset)}.")

    def reconnect(self, n: int) -> None:
        message = "stream disconnected before completion: error sending request"
        emit({"type": "error", "message": f"Reconnecting... {n}/5 ({message})"})


class OpenCode:
    def __init__(self) -> None:
        self.session = SESSION if SESSION.startswith("ses_") else "ses_" + uuid.uuid4().hex[:20]

    def line(self, kind: str, part: dict[str, Any] | None = None, **extra: Any) -> None:
        body: dict[str, Any] = {"type": kind, "timestamp": int(time.time() * 1000), "sessionID": self.session}
        if part is not None:
            body["part"] = {"id": "prt_" + uuid.uuid4().hex[:12], "sessionID": self.session} | part
        emit(body | extra)

    def start(self) -> None:
        pass  # opencode prints nothing until its first step has started

    def step(self, reason: str) -> None:
        tokens = {
            "total": 1030,
            "input": 800,
            "output": 30,
            "reasoning": 0,
            "cache": {"write": 0, "read": 200},
        }
        self.line("step_finish", {"type": "step-finish", "reason": reason, "tokens": tokens, "cost": 0.002})

    def tool(self, name: str, args: dict[str, Any], error: str | None = None) -> None:
        self.line("step_start", {"type": "step-start"})
        state: dict[str, Any] = {"status": "error", "input": args, "error": error} if error else {}
        state = state or {"status": "completed", "input": args, "output": "ok", "title": name}
        self.line("tool_use", {"type": "tool", "tool": name, "callID": "call_1", "state": state})
        self.step("tool-calls")

    def edit(self, path: str, content: str, n: int) -> None:
        self.tool("write", {"filePath": path, "content": content})

    def finish(self, text: str) -> None:
        self.line("step_start", {"type": "step-start"})
        self.line("text", {"type": "text", "text": text})
        self.step("stop")

    def api_error(self, message: str, status: int, headers: dict[str, str], body: str) -> int:
        data = {
            "message": message,
            "statusCode": status,
            "isRetryable": status == 429,
            "responseHeaders": headers,
            "responseBody": body,
        }
        self.line("error", error={"name": "APIError", "data": data})
        return 1

    def auth_failure(self) -> int:
        body = json.dumps({"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}})
        return self.api_error("Incorrect API key provided", 401, {}, body)

    def usage_limit(self, reset: datetime) -> int:
        error = {"type": "usage_limit_reached", "message": "The usage limit has been reached"}
        body = json.dumps({"error": error | {"resets_at": int(reset.timestamp())}})
        return self.api_error("The usage limit has been reached", 429, {"retry-after-ms": "10"}, body)

    def rejected(self) -> None:
        error = "The user rejected permission to use this specific tool call."
        self.tool("write", {"filePath": "../outside.txt", "content": "x"}, error=error)


def _clock12(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%I:%M %p").lstrip("0")


def _garbage() -> None:
    emit("not json at all")
    emit('{"type": "result", "truncated')
    emit("[1, 2, 3]")
    emit('{"type": 42, "usage": "lots", "message": [null]}')
    sys.stdout.buffer.write(b"\xff\xfe\x00binary\x80\n")
    sys.stdout.write("x" * 200_000 + "\n")
    sys.stdout.flush()


def _steps() -> list[dict[str, Any]]:
    path = Path(os.environ["FAKE_AGENT_SCENARIO"])
    data = json.loads(path.read_text())
    if isinstance(data, list):
        return data
    role = os.environ.get("SPEEDRIFT_ROLE") or "developer"
    task = os.environ.get("SPEEDRIFT_TASK_ID")
    if task and f"{role}:{task}" in data["roles"]:
        role = f"{role}:{task}"  # this task's own runs (parallel attempts stay deterministic)
    runs = data["roles"].get(role) or data["roles"]["*"]
    counter = Path(os.environ.get("FAKE_AGENT_COUNTER") or f"{path}.count.json")
    with open(f"{counter}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        counts = json.loads(counter.read_text()) if counter.exists() else {}
        n = counts.get(role, 0)
        counts[role] = n + 1
        counter.write_text(json.dumps(counts))
    chosen: list[dict[str, Any]] = runs[min(n, len(runs) - 1)]
    return chosen


def _signal(step: dict[str, Any]) -> None:
    """Run `speedrift signal` as the prompt tells an agent to ($SPEEDRIFT_SIGNAL_COMMAND)."""
    argv = [
        *shlex.split(os.environ["SPEEDRIFT_SIGNAL_COMMAND"]),
        step["kind"],
        "--json",
        json.dumps(step["payload"]),
    ]
    done = subprocess.run(argv, capture_output=True, text=True)
    if "out" in step:
        Path(step["out"]).write_text(
            json.dumps({"code": done.returncode, "stdout": done.stdout, "stderr": done.stderr})
        )


def _option(name: str) -> str | None:
    argv = sys.argv[1:]
    return argv[argv.index(name) + 1] if name in argv[:-1] else None


def _resumed(cli: str) -> str | None:
    """The session this run was told to continue."""
    if cli == "claude":
        return _option("--resume")
    if cli == "codex":
        return _option("resume")
    return _option("--session")


def _session_file(cli: str, session: str, steps: list[dict[str, Any]]) -> Path:
    """Where the CLI keeps ``session``: claude per working directory, the others by id."""
    if any(s["do"] == "session_store" and s.get("where") == "home" for s in steps):
        home = Path(os.environ["HOME"])
        root = {
            "claude": Path(os.environ.get("CLAUDE_CONFIG_DIR") or home / ".claude") / "projects",
            "codex": Path(os.environ.get("CODEX_HOME") or home / ".codex") / "sessions",
            "opencode": Path(os.environ.get("XDG_DATA_HOME") or home / ".local/share") / "opencode",
        }[cli]
    else:
        root = Path(f"{os.environ['FAKE_AGENT_SCENARIO']}.sessions") / cli
    if cli == "claude":
        return root / re.sub(r"[^a-zA-Z0-9]", "-", os.getcwd()) / f"{session}.jsonl"
    return root / f"{session}.jsonl"


def _prompt(cli: str) -> str:
    if cli == "opencode":
        path = _option("--file")
        return Path(path).read_text() if path else ""
    return stdin_text()


def _keeps_session(cli: str) -> bool:
    flag = {"claude": "--no-session-persistence", "codex": "--ephemeral"}.get(cli)
    return flag is None or flag not in sys.argv


def _open_session(cli: str, steps: list[dict[str, Any]]) -> tuple[list[str], int | None]:
    """The earlier prompts of the session this run continues (and its id made this run's), or
    the exit code of a refused resume."""
    global SESSION
    resumed = _resumed(cli)
    if resumed is None:
        if cli == "opencode":
            SESSION = "ses_" + uuid.uuid4().hex[:20]  # opencode's own id shape
        return [], None
    file = _session_file(cli, resumed, steps)
    if not file.is_file() or any(s["do"] == "refuse_resume" for s in steps):
        said = {
            "claude": f"No conversation found with session ID: {resumed}",
            "codex": f"Error: thread/resume: no rollout found for thread id {resumed}",
            "opencode": f"Error: Session not found: {resumed}",
        }[cli]
        sys.stderr.write(said + "\n")
        return [], 1
    SESSION = resumed
    return [json.loads(line)["prompt"] for line in file.read_text().splitlines() if line], None


def _keep_session(cli: str, steps: list[dict[str, Any]]) -> None:
    if not _keeps_session(cli):
        return
    file = _session_file(cli, SESSION, steps)
    try:  # a sandboxed run may not write beside the scenario: then nothing is kept, as on a full disk
        file.parent.mkdir(parents=True, exist_ok=True)
        with file.open("a") as kept:
            kept.write(json.dumps({"prompt": _prompt(cli)}) + "\n")
    except OSError:
        pass


def main(cli: str) -> int:
    steps = _steps()
    conversation, refused = _open_session(cli, steps)
    if refused is not None:
        return refused
    _keep_session(cli, steps)
    agent: Any = {"claude": Claude, "codex": Codex, "opencode": OpenCode}[cli]()
    for n, step in enumerate(steps):
        do = step["do"]
        if do == "record":  # what the session handed us: argv, stdin, cwd, environment
            seen = {
                "argv": sys.argv,
                "stdin": stdin_text(),
                "cwd": os.getcwd(),
                "env": dict(os.environ),
                "conversation": conversation,
            }
            Path(step["path"]).write_text(json.dumps(seen))
        elif do == "start":
            agent.start()
        elif do == "edit":
            agent.edit(step["path"], step["content"], n)
            Path(step["path"]).write_text(step["content"])
        elif do == "finish":
            agent.finish(step.get("text", "Done."))
        elif do in ("auth_failure", "usage_limit", "max_turns"):
            if do == "usage_limit":
                code = agent.usage_limit(datetime.now(UTC) + timedelta(seconds=step["reset_in_s"]))
            elif do == "max_turns":
                code = agent.max_turns(step["turns"])
            else:
                code = agent.auth_failure()
            return int(step.get("exit", code))
        elif do == "server_error":  # claude: an HTTP 500 the CLI gave up on (a transient fault)
            said = "API Error: 500 Internal server error. This is a server-side issue, usually temporary"
            agent.result(said, is_error=True, api_error_status=500, num_turns=1)
            return int(step.get("exit", 1))
        elif do == "tool_loop":
            for i in range(step["count"]):
                agent.tool(i) if cli == "codex" else agent.tool("read", {"filePath": "README"})
                time.sleep(step.get("every_s", 0))
        elif do == "garbage":
            _garbage()
        elif do == "emit":  # these stdout lines verbatim (a recorded stream, a provider's text)
            for line in step["lines"]:
                emit(line)
            if "exit" in step:
                return int(step["exit"])
        elif do == "reconnect":
            for i in range(step["count"]):
                agent.reconnect(i % 5 + 1)
                time.sleep(step["every_s"])
        elif do == "auth_retry":
            for attempt in (1, 2, 3):
                agent.auth_retry(attempt)
                time.sleep(0.05)
        elif do == "rejected":
            agent.rejected()
        elif do == "stderr":
            sys.stderr.write(step["text"] * step.get("times", 1))
            sys.stderr.flush()
        elif do == "sleep":
            time.sleep(step["s"])
        elif do == "hold":  # block until the test writes to this FIFO (tests/waiting.py: release)
            with open(step["fifo"]) as held:
                held.readline()
        elif do == "spawn_grandchild":
            child = subprocess.Popen(["sleep", str(step.get("s", 300))])
            Path(step["pid_file"]).write_text(str(child.pid))
        elif do == "ignore_sigterm":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        elif do == "result_file":
            Path(os.environ["SPEEDRIFT_RESULT"]).write_text(json.dumps(step["report"]))
        elif do == "try_write":  # a write that may be refused: the outcome goes to stderr
            try:
                Path(step["path"]).write_text(step["content"])
                sys.stderr.write(f"wrote {step['path']}\n")
            except OSError as error:
                sys.stderr.write(f"refused {step['path']}: {error.strerror}\n")
            sys.stderr.flush()
        elif do == "signal":
            _signal(step)
        elif do == "exit":
            return int(step["code"])
        elif do == "kill_self":
            os.kill(os.getpid(), signal.SIGKILL)
    return 0
