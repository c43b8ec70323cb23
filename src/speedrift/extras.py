"""The optional dependencies (pyproject extras), imported where they are needed and only then.

Job: ``require("distributed", "the dask executor")`` returns the module, or raises a UsageError
naming what needs it and the extra that installs it. Invariant: the default path (local attempts,
a SQLite register, the dashboard) never imports an optional package; the modules that do import
them through here, so the missing-package message is one sentence everywhere.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from speedrift.errors import UsageError

SCALE = "scale"  # distributed + psycopg: attempts on a Dask cluster, the register in PostgreSQL
EXTRA_OF = {"distributed": SCALE, "psycopg": SCALE}


def hint(extra: str = SCALE) -> str:
    return f"pip install 'speedrift[{extra}]'"


def require(module: str, needed_by: str) -> ModuleType:
    """``module`` imported; a UsageError saying ``needed_by`` needs it when it is not installed."""
    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.partition(".")[0]
        raise UsageError(
            f"{needed_by} needs the `{top}` package, which is not installed",
            hint=hint(EXTRA_OF.get(top, SCALE)),
        ) from None
