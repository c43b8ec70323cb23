"""A live fake-agent attempt for the CLI's follow commands (`speedrift tail -f`, `speedrift attach`):
the fake claude CLI's stream-json lines, a repo config that lets its scenario through, and a reader
that collects a follower's output lines without blocking."""

from __future__ import annotations

import json
import queue
from typing import IO, Any

RUN_CONFIG = '[env]\nallow = ["FAKE_AGENT_SCENARIO"]\n\n[sandbox]\nmode = "off"\n'


def assistant(block: dict[str, Any], n: int) -> str:
    message = {"id": f"msg_{n}", "type": "message", "role": "assistant", "content": [block], "usage": {}}
    return json.dumps({"type": "assistant", "message": message, "parent_tool_use_id": None})


def tool_result(tool_id: str, content: str, is_error: bool = False) -> str:
    block = {"type": "tool_result", "tool_use_id": tool_id, "content": content, "is_error": is_error}
    return json.dumps({"type": "user", "message": {"role": "user", "content": [block]}})


EDIT = {"file_path": "app.py", "old_string": "print('v1')\n", "new_string": "print('v2')\nprint('ok')\n"}
BASH = {"command": "pytest -q"}
READ = {"file_path": "README.md"}


def take(lines: queue.SimpleQueue[str], seen: list[str]) -> bool:
    while True:
        try:
            seen.append(lines.get_nowait())
        except queue.Empty:
            return True


def pump(stream: IO[str], lines: queue.SimpleQueue[str]) -> None:
    for line in stream:
        lines.put(line)
