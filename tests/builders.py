"""Tiny builders for graphs in tests: real graph.jsonl bytes, decoded by the real codec."""

from __future__ import annotations

from typing import Any

import orjson

from speedrift.graph.codec import Graph


def task(task_id: str, status: str = "open", **fields: Any) -> dict[str, Any]:
    return {"kind": "task", "id": task_id, "title": task_id.replace("-", " "), "status": status, **fields}


def graph_of(*nodes: dict[str, Any]) -> Graph:
    return Graph.from_bytes(b"".join(orjson.dumps(n) + b"\n" for n in nodes))
