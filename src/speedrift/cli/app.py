"""Entry point: registers every command group and turns errors into messages and exit codes.

Exit codes: 0 success, 1 refused or failed, 2 usage error.
"""

from __future__ import annotations

import sys

from speedrift.cli import admin_cmds, demo_cmd, query_cmds, task_cmds
from speedrift.cli.base import app
from speedrift.errors import SpeedriftError
from speedrift.graph.wgcompat import WgCompatError

__all__ = ["admin_cmds", "app", "demo_cmd", "main", "query_cmds", "task_cmds"]


def main(argv: list[str] | None = None) -> None:
    try:
        app(args=argv, prog_name="speedrift", standalone_mode=True)
    except SpeedriftError as error:
        sys.stderr.write(f"error: {error}\n")
        sys.exit(error.exit_code)
    except WgCompatError as error:
        sys.stderr.write(f"error: refusing to write a line wg could not read: {error}\n")
        sys.exit(1)
    except BrokenPipeError:
        sys.exit(0)
