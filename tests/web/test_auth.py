"""Who may talk to the dashboard: hosts, origins and the bearer token."""

from __future__ import annotations

from pathlib import Path

from speedrift import hubdir
from speedrift.web.auth import AccessPolicy, TokenSource, allowed_hosts, is_loopback


def test_loopback_names_with_the_bound_port_are_the_allowed_hosts() -> None:
    hosts = allowed_hosts("127.0.0.1", 8777)
    assert hosts == {"127.0.0.1:8777", "localhost:8777", "[::1]:8777"}
    assert "127.0.0.1:8778" not in hosts


def test_a_named_bind_host_is_allowed_but_the_wildcard_is_not_a_name() -> None:
    assert "dash.internal:9000" in allowed_hosts("dash.internal", 9000)
    assert "0.0.0.0:9000" not in allowed_hosts("0.0.0.0", 9000)
    assert "[::1]:9000" in allowed_hosts("::1", 9000)


def test_loopback_detection() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert is_loopback("127.8.0.1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("dash.example")


def test_the_token_is_required_and_compared_exactly() -> None:
    policy = AccessPolicy(token=TokenSource(None, fixed="s3cret"), hosts=allowed_hosts("127.0.0.1", 1))
    assert policy.token_status(None) == 401
    assert policy.token_status("Basic s3cret") == 401
    assert policy.token_status("Bearer ") == 401
    assert policy.token_status("Bearer s3cre") == 403
    assert policy.token_status("Bearer s3cret") == 200
    assert policy.token_status("bearer s3cret") == 200


def test_no_token_file_means_no_token_matches() -> None:
    policy = AccessPolicy(token=TokenSource(None, fixed=None), hosts=frozenset())
    assert policy.token_status("Bearer anything") == 403


def test_a_missing_origin_is_a_tool_and_a_foreign_one_is_refused() -> None:
    policy = AccessPolicy(token=TokenSource(None, fixed="t"), hosts=allowed_hosts("127.0.0.1", 8777))
    assert policy.origin_ok(None)
    assert policy.origin_ok("http://127.0.0.1:8777")
    assert policy.origin_ok("http://localhost:8777")
    assert not policy.origin_ok("http://evil.example")
    assert not policy.origin_ok("http://127.0.0.1:9999")
    assert not policy.origin_ok("null")


def test_a_rotated_token_takes_effect_without_a_restart(tmp_path: Path) -> None:
    first = hubdir.ensure_token(tmp_path)
    source = TokenSource(hubdir.token_path(tmp_path))
    assert source() == first
    second = hubdir.rotate_token(tmp_path)
    assert second != first
    assert source() == second
