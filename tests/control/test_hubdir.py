"""The hub directory: found from ecosystem.toml, private, with a token that is created once and rotated."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from speedrift import hubdir
from speedrift.errors import NotFound


def test_an_explicit_path_is_used_as_given_and_a_directory_means_its_ecosystem_toml(tmp_path: Path) -> None:
    toml = tmp_path / "eco" / "ecosystem.toml"
    toml.parent.mkdir()
    toml.write_text("schema = 1\n")
    assert hubdir.find_ecosystem(toml, tmp_path) == toml
    assert hubdir.find_ecosystem(Path("eco"), tmp_path) == toml
    assert hubdir.find_ecosystem(Path("eco/ecosystem.toml"), tmp_path) == toml


def test_without_an_explicit_path_the_current_directory_is_searched(tmp_path: Path) -> None:
    (tmp_path / "ecosystem.toml").write_text("")
    assert hubdir.find_ecosystem(None, tmp_path) == tmp_path / "ecosystem.toml"


def test_a_missing_ecosystem_names_what_was_searched_and_how_to_fix_it(tmp_path: Path) -> None:
    with pytest.raises(NotFound) as caught:
        hubdir.find_ecosystem(None, tmp_path)
    assert str(tmp_path / "ecosystem.toml") in caught.value.message
    assert "--ecosystem" in str(caught.value) and "speedrift demo" in str(caught.value)
    with pytest.raises(NotFound, match="does not exist"):
        hubdir.find_ecosystem(tmp_path / "nope.toml", tmp_path)


def test_the_hub_dir_sits_beside_ecosystem_toml_and_is_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(hubdir.HUB_DIR_ENV, raising=False)
    hub = hubdir.hub_dir(tmp_path / "ecosystem.toml")
    assert hub == tmp_path / ".speedrift-hub"
    assert stat.S_IMODE(hub.stat().st_mode) == 0o700
    assert hubdir.register_db_path(hub) == hub / "register.db"
    assert hubdir.cycles_path(hub) == hub / "ledger" / "cycles.jsonl"
    assert hubdir.pid_path(hub) == hub / "hub.pid"
    assert hubdir.logs_dir(hub) == hub / "logs"


def test_speedrift_hub_dir_overrides_the_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(hubdir.HUB_DIR_ENV, str(tmp_path / "elsewhere"))
    assert hubdir.hub_dir(tmp_path / "ecosystem.toml") == tmp_path / "elsewhere"
    assert (tmp_path / "elsewhere").is_dir()


def test_the_token_is_created_once_0600_and_read_back(tmp_path: Path) -> None:
    hub = tmp_path / "hub"
    assert hubdir.read_token(hub) is None
    token = hubdir.ensure_token(hub)
    assert len(token) >= 40
    assert hubdir.ensure_token(hub) == token
    assert hubdir.read_token(hub) == token
    assert stat.S_IMODE(hubdir.token_path(hub).stat().st_mode) == 0o600
    assert [p.name for p in hub.iterdir()] == ["token"]  # no temp file left behind


def test_rotating_the_token_replaces_it(tmp_path: Path) -> None:
    first = hubdir.ensure_token(tmp_path)
    second = hubdir.rotate_token(tmp_path)
    assert second != first
    assert hubdir.read_token(tmp_path) == second
    assert stat.S_IMODE(hubdir.token_path(tmp_path).stat().st_mode) == 0o600
