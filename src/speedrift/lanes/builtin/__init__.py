"""The built-in lanes, by name, in the policy's default order (each module defines ``LANE``)."""

from __future__ import annotations

from speedrift.lanes.builtin import (
    archdrift,
    coredrift,
    datadrift,
    depsdrift,
    plandrift,
    qadrift,
    redrift,
    secdrift,
    specdrift,
    therapydrift,
    uxdrift,
    yagnidrift,
)
from speedrift.lanes.spec import Lane

_ALL = (
    coredrift.LANE,
    specdrift.LANE,
    datadrift.LANE,
    archdrift.LANE,
    depsdrift.LANE,
    uxdrift.LANE,
    therapydrift.LANE,
    yagnidrift.LANE,
    redrift.LANE,
    secdrift.LANE,
    qadrift.LANE,
    plandrift.LANE,
)
BUILTIN: dict[str, Lane] = {lane.name: lane for lane in _ALL}
