"""API bodies under arbitrary bytes: the parser gives a JSON object or a 400/422 BadRequest, and a
real server answered over HTTP never says 5xx, whatever the body, its size or its headers."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from speedrift import hubdir
from speedrift.graph.store import init_graph_dir
from speedrift.web.api import MAX_BODY, BadRequest, parse_body
from speedrift.web.server import DashboardServer, start_in_thread
from tests.fuzz.support import FUZZ, deep_values, json_values, nasty_fragments, tried

MODES: list[object] = ["observe", "supervise", "autonomous", "bogus", None, 1, [], {}]
LEASES = [
    None,
    "2h",
    "soon",
    "99999999999999999999w",
    "9" * 5000 + "d",
    1e300,
    -1,
    0,
    10**30,
    True,
    "30d",
    [1],
]


@st.composite
def mode_bodies(draw: st.DrawFn) -> bytes:
    """Bodies shaped like a mode change with hostile values, or any JSON, or any bytes."""
    shape = draw(st.integers(0, 3))
    if shape == 0:
        body: dict[str, Any] = {"mode": draw(st.sampled_from(MODES))}
        if draw(st.booleans()):
            body["lease_ttl"] = draw(st.sampled_from(LEASES))
        for key in draw(st.lists(st.sampled_from(["owner", "reason"]), max_size=2)):
            body[key] = draw(st.text(max_size=30) | st.sampled_from(["a\nb", "\u202e", "x" * 600]))
        return orjson.dumps(body) if _encodable(body) else b"{}"
    if shape == 1:
        return b'{"mode":"observe","reason":' + draw(nasty_fragments | deep_values()) + b"}"
    if shape == 2:
        return json.dumps(draw(json_values)).encode()  # integers past 64 bits too
    return draw(st.binary(max_size=300))


# Bodies at the limit, built rather than drawn byte by byte (drawing 16 KB of bytes is slow):
# valid JSON padded to a size, or filler.
_around_the_limit = st.builds(
    lambda size, json_shaped: (
        b'{"mode":"observe","pad":"' + b"p" * (size - 27) + b'"}' if json_shaped else b"\xff" * size
    ),
    st.integers(MAX_BODY - 10, MAX_BODY + 100),
    st.booleans(),
)


def _encodable(body: dict[str, Any]) -> bool:
    try:
        orjson.dumps(body)
    except TypeError:  # integers past 64 bits
        return False
    return True


@FUZZ
@given(mode_bodies() | _around_the_limit)
def test_a_body_is_a_json_object_or_a_400_or_422(raw: bytes) -> None:
    tried("api: body parsing")
    try:
        body = parse_body(raw)
    except BadRequest as refused:
        assert refused.status in (400, 422) and refused.message
        return
    assert isinstance(body, dict)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DashboardServer, str]]:
    root = tmp_path_factory.mktemp("api-fuzz")
    repo = root / "app"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    init_graph_dir(repo)
    eco = root / "ecosystem.toml"
    eco.write_text('schema = 1\n[repos.app]\npath = "app"\n')
    served, _state = start_in_thread(eco, "127.0.0.1", 0, watch_interval=0.5)
    try:
        token = hubdir.read_token(hubdir.hub_dir(eco))
        assert token is not None
        yield served, token
    finally:
        served.stop()


@settings(FUZZ, max_examples=max(20, FUZZ.max_examples // 4))  # each is a real request, and many write
@given(
    body=mode_bodies() | _around_the_limit,
    content_type=st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded", ""]),
    chunked=st.booleans(),
)
def test_a_real_server_never_answers_a_mutation_body_with_a_5xx(
    server: tuple[DashboardServer, str], body: bytes, content_type: str, chunked: bool
) -> None:
    tried("api: real HTTP requests")
    served, token = server
    headers = {
        "authorization": f"Bearer {token}",
        "origin": served.url.rstrip("/"),
        "content-type": content_type,
    }
    content: bytes | Iterator[bytes] = iter([body[:5000], body[5000:]]) if chunked else body
    response = httpx.post(f"{served.url}api/repos/app/mode", content=content, headers=headers, timeout=30)

    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.json()["error"]
    if len(body) > MAX_BODY:
        assert response.status_code == 413
