"""Entry point: parse argv, import only the chosen command's module, map errors to exit codes.

Exit codes: 0 success, 1 refused or failed, 2 usage error.
"""

from __future__ import annotations

import gc
import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

from speedrift.cli import parser as cli_parser
from speedrift.cli.output import printable
from speedrift.errors import SpeedriftError, storage_failure
from speedrift.graph.wgcompat import WgCompatError


def main(argv: list[str] | None = None) -> int:
    args = cli_parser.build().parse_args(argv)  # exits 2 on a usage error, 0 for --help
    module_name, function_name = args.handler.split(":")
    module = importlib.import_module(f"speedrift.cli.{module_name}")
    handler: Callable[[Any], int | None] = getattr(module, function_name)
    try:
        return handler(args) or 0
    except WgCompatError as error:  # a SpeedriftError too: caught first, for its own wording
        sys.stderr.write(
            f"error: refusing to write a line wg could not read: {printable(str(error), newlines=True)}\n"
        )
        return 1
    except SpeedriftError as error:
        sys.stderr.write(f"error: {printable(str(error), newlines=True)}\n")
        return error.exit_code
    except OSError as error:  # a full disk or a read-only filesystem: one clear line, no traceback
        if not storage_failure(error):
            raise
        where = f" {printable(str(error.filename))}" if error.filename else ""
        sys.stderr.write(
            f"error: cannot write{where}: {error.strerror}\n"
            "  fix: free some space or make the filesystem writable, then run the command again\n"
        )
        return 1


def run() -> None:
    """The console script. A short-lived process: decoded JSON holds no reference cycles, so the
    cyclic GC is off, and the interpreter skips tearing down a large graph object by object."""
    gc.disable()
    try:
        code = main()
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        # the reader went away (`speedrift list | head`): not an error; silence the final flush
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    os._exit(code)
