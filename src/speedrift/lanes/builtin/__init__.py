"""The built-in lanes, by name (each module defines ``LANE``)."""

from __future__ import annotations

from speedrift.lanes.spec import Lane

BUILTIN: dict[str, Lane] = {}
