"""The scripted coding agent behind the `demo` runtime (agents/demo.py). Standard library only.

Run as ``python -I demo_agent.py --pace P`` in an attempt's worktree, inside the agent sandbox
and with the scrubbed environment every agent gets. It reads the prompt on stdin and behaves like
a coding agent: it streams Claude Code stream-json lines (``system/init`` with a session id,
``assistant`` messages with thinking, text and Read/Edit/Write/Bash ``tool_use`` blocks, ``user``
``tool_result`` blocks, a final ``result`` with usage and ``total_cost_usd``), paced over 10–60 s
times P, and really edits, writes and tests files in its working directory.

What it does is decided by the prompt alone, so a run is reproducible:

- the scenario: a ``demo-scenario: NAME`` line in the task's description (default ``land``);
- whether it is a retry: the prompt's "Earlier attempts" lines and "Guidance for this retry".

Scenarios (:data:`SCENARIOS`): ``land`` (a module and its passing test), ``failing_test`` (the
first attempt leaves a failing test, so the tests gate blocks it; the retry reads the failure and
fixes it), ``stubborn`` (fails the tests twice, so the hub writes a corrective task; the third
attempt lands), ``leak`` (the first attempt writes a made-up payment key, which the secrets gate
catches; a retry reads it from the environment instead), ``question`` (the first attempt posts a
``clarification_request`` through ``$SPEEDRIFT_SIGNAL_COMMAND`` and reports itself blocked; once
a person answers, the retry lands).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SCENARIOS = ("land", "failing_test", "stubborn", "leak", "question")
MARKER = re.compile(r"demo-scenario:\s*([a-z_]+)")
MODEL = "demo-scripted"
_TASK_LINE = re.compile(r"^# Task (\S+): ?(.*)$", re.MULTILINE)
_EARLIER = re.compile(r"^- attempt \d+:", re.MULTILINE)
_GUIDED = "## Guidance for this retry"


def plan(prompt: str) -> dict[str, Any]:
    """What this run does: task id and title, scenario, retry count, and whether it fails."""
    found = _TASK_LINE.search(prompt)
    task, title = (found.group(1), found.group(2).strip()) if found else ("task", "the task")
    marker = MARKER.search(prompt)
    scenario = marker.group(1) if marker and marker.group(1) in SCENARIOS else "land"
    earlier = len(_EARLIER.findall(prompt))
    guided = _GUIDED in prompt
    first = earlier == 0 and not guided
    misstep = {
        "land": False,
        "failing_test": first,
        "stubborn": earlier < 2,
        "leak": first,
        "question": first,
    }[scenario]
    name = re.sub(r"[^a-z0-9]+", "_", task.lower()).strip("_") or "task"
    if name[0].isdigit():
        name = "t_" + name
    context = next(
        (line.strip()[2:] for line in prompt.splitlines() if _EARLIER.match(line.strip())),
        prompt.split(_GUIDED, 1)[-1].strip().split("\n", 1)[0] if guided else "",
    )
    return {
        "context": context[:300],
        "task": task,
        "title": title,
        "scenario": scenario,
        "earlier": earlier,
        "guided": guided,
        "misstep": misstep,
        "module": name[:60],
    }


class Stream:
    """Writes stream-json lines, one per event, with the pauses between them."""

    def __init__(self, seconds: float, steps: int, seed: str) -> None:
        self.session = "demo-" + hashlib.sha256(seed.encode()).hexdigest()[:16]
        self.gap = seconds / max(1, steps)
        self.messages = 0
        self.tools = 0
        self.started = time.monotonic()
        self.output_tokens = 0

    def emit(self, event: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()

    def pause(self) -> None:
        time.sleep(self.gap)

    def init(self, cwd: Path) -> None:
        tools = ["Bash", "Edit", "Read", "Write"]
        self.emit(
            {
                "type": "system",
                "subtype": "init",
                "session_id": self.session,
                "model": MODEL,
                "cwd": str(cwd),
                "tools": tools,
                "permissionMode": "acceptEdits",
            }
        )

    def say(self, block: dict[str, Any]) -> None:
        self.messages += 1
        tokens = 40 + 7 * self.messages
        self.output_tokens += tokens
        message = {
            "id": f"msg_{self.session}_{self.messages}",
            "type": "message",
            "role": "assistant",
            "model": MODEL,
            "content": [block],
            "usage": {"input_tokens": 900 + 60 * self.messages, "output_tokens": tokens},
        }
        line = {"type": "assistant", "message": message, "parent_tool_use_id": None}
        self.emit(line | {"session_id": self.session})
        self.pause()

    def think(self, text: str) -> None:
        self.say({"type": "thinking", "thinking": text})

    def text(self, text: str) -> None:
        self.say({"type": "text", "text": text})

    def tool(self, name: str, arguments: dict[str, Any], result: str, *, error: bool = False) -> None:
        self.tools += 1
        tool_id = f"toolu_{self.session}_{self.tools}"
        self.say({"type": "tool_use", "id": tool_id, "name": name, "input": arguments})
        block = {"type": "tool_result", "tool_use_id": tool_id, "content": result, "is_error": error}
        self.emit(
            {
                "type": "user",
                "message": {"role": "user", "content": [block]},
                "parent_tool_use_id": None,
                "session_id": self.session,
            }
        )

    def result(self, summary: str) -> None:
        cost = round(0.0004 * self.output_tokens + 0.002 * self.messages, 4)
        self.emit(
            {
                "type": "result",
                "subtype": "success",
                "is_error": False,
                "duration_ms": int((time.monotonic() - self.started) * 1000),
                "num_turns": self.messages,
                "result": summary,
                "session_id": self.session,
                "total_cost_usd": cost,
                "usage": {
                    "input_tokens": 900 * self.messages,
                    "output_tokens": self.output_tokens,
                    "cache_read_input_tokens": 2000,
                    "cache_creation_input_tokens": 0,
                },
            }
        )


def _module(name: str, title: str, broken: bool) -> str:
    title = title.replace("\\", "/").replace('"', "'")
    body = "list(values)" if broken else "sorted(set(values))"
    doc = '"""The distinct values, in order."""'
    return f'"""{title}."""\n\n\ndef {name}(values):\n    {doc}\n    return {body}\n'


def _test(name: str) -> str:
    return (
        "import unittest\n\n"
        f"from {name} import {name}\n\n\n"
        f"class {name.title().replace('_', '')}Test(unittest.TestCase):\n"
        "    def test_distinct_values_in_order(self):\n"
        f"        self.assertEqual({name}([3, 1, 3, 2]), [1, 2, 3])\n\n\n"
        'if __name__ == "__main__":\n    unittest.main()\n'
    )


def _fake_key(seed: str) -> str:
    """A made-up key in a payment provider's live-key shape: the secrets gate must catch it."""
    digits = hashlib.sha256(("demo-leak:" + seed).encode()).hexdigest()
    letters = "".join(c.upper() if i % 3 == 0 else c for i, c in enumerate(digits))
    return "sk_" + "live_" + letters[:24]


def _run_tests(cwd: Path) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR", "TZ")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    done = subprocess.run(
        [sys.executable, "-m", "unittest", "discover", "-s", "tests"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, (done.stdout + done.stderr).strip()[-1500:]


def _ask(question: str, detail: str) -> str:
    """Post the question as a clarification_request through speedrift's own signal command."""
    command = os.environ.get("SPEEDRIFT_SIGNAL_COMMAND", "")
    if not command:
        return "SPEEDRIFT_SIGNAL_COMMAND is not set"
    payload = json.dumps({"summary": question, "detail": detail, "targets": ["human"]})
    done = subprocess.run(
        [*shlex.split(command), "clarification_request", "--json", payload],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return (done.stdout + done.stderr).strip()[-800:] or f"exit {done.returncode}"


def _report(status: str, summary: str, files: list[str], tests: list[str]) -> None:
    target = os.environ.get("SPEEDRIFT_RESULT")
    if not target:
        return
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    report = {"status": status, "summary": summary, "files_touched": files, "tests_added": tests}
    path.write_text(json.dumps(report, indent=2) + "\n")


def _write(stream: Stream, cwd: Path, rel: str, content: str) -> None:
    target = cwd / rel
    existed = target.exists()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(content)
    said = f"The file {target} has been updated." if existed else f"File created successfully at: {target}"
    stream.tool("Write", {"file_path": str(target), "content": content}, said)


def _edit(stream: Stream, cwd: Path, rel: str, old: str, new: str) -> None:
    target = cwd / rel
    text = target.read_text() if target.exists() else ""
    if old in text:
        target.write_text(text.replace(old, new, 1))
        said = f"The file {target} has been updated."
    else:
        target.write_text(new)
        said = f"The file {target} has been written."
    stream.tool("Edit", {"file_path": str(target), "old_string": old, "new_string": new}, said)


def run(prompt: str, cwd: Path, pace: float) -> int:
    todo = plan(prompt)
    seed = f"{todo['task']}#{todo['earlier']}#{todo['guided']}"
    fraction = int(hashlib.sha256(seed.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    stream = Stream((10.0 + 50.0 * fraction) * pace, 10, seed)
    name, scenario, misstep = todo["module"], todo["scenario"], todo["misstep"]
    module, test = f"{name}.py", f"tests/test_{name}.py"
    stream.init(cwd)
    if todo["earlier"] or todo["guided"]:
        stream.think(
            f"This is a retry of {todo['task']}: the prompt carries what went wrong before "
            f"({todo['context']}). I will not repeat the mistake."
        )
    else:
        stream.think(f"Task {todo['task']}: {todo['title']}. Let me look at the repository first.")
    listing = "\n".join(sorted(p.name for p in cwd.iterdir() if not p.name.startswith(".")))
    stream.tool("Bash", {"command": "ls", "description": "List the repository"}, listing)
    readme = cwd / "README.md"
    stream.tool("Read", {"file_path": str(readme)}, readme.read_text()[:1500] if readme.exists() else "")

    if scenario == "question" and misstep:
        question = f"{todo['title']}: should the result keep duplicates or drop them?"
        stream.text(
            "The description does not say whether duplicates are kept. I need to ask before I change code."
        )
        said = _ask(question, f"Task {todo['task']} can go either way; the README does not decide it.")
        stream.tool("Bash", {"command": "$SPEEDRIFT_SIGNAL_COMMAND clarification_request --json '…'"}, said)
        _report("blocked", question, [], [])
        stream.result(f"Blocked: {question}")
        return 0

    stream.text(f"Plan: add {module} with a function {name}() and a unit test in {test}.")
    broken = misstep and scenario in ("failing_test", "stubborn")
    if (cwd / module).exists():
        _edit(stream, cwd, module, (cwd / module).read_text(), _module(name, todo["title"], broken))
    else:
        _write(stream, cwd, module, _module(name, todo["title"], broken))
    _write(stream, cwd, test, _test(name))
    files, tests = [module, test], [test]
    settings = f"{name}_settings.py"
    if scenario == "leak":
        if misstep:
            stream.think("The client needs the payment key; I will put it next to the code for now.")
            _write(stream, cwd, settings, f'PAYMENT_API_KEY = "{_fake_key(seed)}"\n')
        else:
            stream.think(
                "The earlier attempt committed a key. Keys come from the environment, never the code."
            )
            content = 'import os\n\nPAYMENT_API_KEY = os.environ.get("PAYMENT_API_KEY", "")\n'
            _write(stream, cwd, settings, content)
        files.append(settings)
    code, output = _run_tests(cwd)
    command = "python -m unittest discover -s tests"
    stream.tool("Bash", {"command": command, "description": "Run the tests"}, output, error=code != 0)
    if code != 0 and not misstep:
        stream.text("A test fails; fixing the function to return the distinct values in order.")
        _edit(stream, cwd, module, "return list(values)", "return sorted(set(values))")
        code, output = _run_tests(cwd)
        again = {"command": command, "description": "Run the tests again"}
        stream.tool("Bash", again, output, error=code != 0)
    if code != 0:
        summary = f"Added {module}; one test fails but it looks unrelated to the change."
    else:
        summary = f"Added {module} with a passing test ({test})."
    stream.text(summary)
    _report("done", summary, files, tests)
    stream.result(summary)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="speedrift's scripted demo agent")
    parser.add_argument("--pace", type=float, default=1.0, help="multiplier of the 10-60 s a run takes")
    args = parser.parse_args(argv)
    if not args.pace > 0:
        parser.error("--pace must be above 0")
    prompt = sys.stdin.read()
    return run(prompt, Path.cwd(), args.pace)


if __name__ == "__main__":
    sys.exit(main())
