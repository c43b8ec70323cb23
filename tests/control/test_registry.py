"""ecosystem.toml: the original hub's schema loads; every problem is reported with its file and line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from speedrift.control.ecosystem.load import (
    REGISTER_URL_ENV,
    key_lines,
    load_ecosystem,
    parse_ecosystem,
)
from speedrift.errors import NotFound, UsageError

ORIGINAL = """\
schema = 1
suite = "speedrift"
orchestrator = "driftdriver"
workspace_root = ".."

# the orchestrator itself
[repos.driftdriver]
role = "orchestrator"
url = "https://example.invalid/driftdriver.git"
tags = ["core", "hub"]
lifecycle = "active"
daemon_posture = "always-on"
service_port = 8777
cli = "driftdriver"
cli_install = "pipx install driftdriver"

[repos.coredrift]
path = "../coredrift"
role = "lane"
upstream_remote = "upstream"
upstream_branch = "main"
notes = "baseline lane"
depends_on = ["driftdriver"]
"""


def _write(tmp_path: Path, text: str) -> Path:
    folder = tmp_path / "speedrift-ecosystem"
    folder.mkdir(exist_ok=True)
    path = folder / "ecosystem.toml"
    path.write_text(text)
    return path


def _problems(path: Path) -> str:
    with pytest.raises(UsageError) as caught:
        load_ecosystem(path)
    return caught.value.message


def test_the_original_schema_loads_with_paths_resolved_against_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, ORIGINAL)
    eco = load_ecosystem(path)
    assert eco.path == path and eco.root == path.parent
    assert eco.workspace_root == tmp_path
    assert eco.suite == "speedrift" and eco.orchestrator == "driftdriver"
    hub, lane = eco.repos
    assert hub.name == "driftdriver" and hub.path == tmp_path / "driftdriver"  # url only: workspace/<name>
    assert hub.url == "https://example.invalid/driftdriver.git"
    assert hub.role == "orchestrator" and hub.tags == ("core", "hub") and hub.daemon_posture == "always-on"
    assert lane.path == tmp_path / "coredrift"
    assert (lane.upstream_remote, lane.upstream_branch, lane.notes) == ("upstream", "main", "baseline lane")
    assert lane.depends_on == ("driftdriver",) and lane.source == "ecosystem-toml"
    assert eco.repo_extras["driftdriver"] == {
        "service_port": 8777,
        "cli": "driftdriver",
        "cli_install": "pipx install driftdriver",
    }
    assert eco.repo("coredrift") is lane


def test_an_empty_file_is_an_ecosystem_with_no_repos_that_executes_nothing(tmp_path: Path) -> None:
    eco = load_ecosystem(_write(tmp_path, ""))
    assert eco.repos == ()
    assert eco.policy.plan_only is True
    assert eco.register_url is None
    assert eco.discovery.enabled is False and eco.discovery.max_age_days == 30
    assert eco.workspace_root == eco.root


def test_asking_for_an_unregistered_repo_names_the_registered_ones(tmp_path: Path) -> None:
    eco = load_ecosystem(_write(tmp_path, ORIGINAL))
    with pytest.raises(NotFound, match="registered: driftdriver, coredrift"):
        eco.repo("nope")


def test_a_missing_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="does not exist"):
        load_ecosystem(tmp_path / "ecosystem.toml")


def test_broken_toml_is_reported_at_file_line_and_column(tmp_path: Path) -> None:
    path = _write(tmp_path, 'schema = 1\n[repos.a]\npath = "a\nrole = "lane"\n')
    message = _problems(path)
    assert message.startswith(f"{path}:3:")
    assert "TOML syntax error" in message
    assert re.search(rf"{re.escape(str(path))}:3:\d+: ", message)


def test_unknown_keys_are_errors_with_the_line_they_are_on(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "schema = 1\ncolour = 'red'\n\n[repos.a]\npath = 'a'\nbranch = 'main'\n\n"
        "[policy]\nplan_onyl = false\n",
    )
    message = _problems(path)
    assert f"{path}:2: colour: unknown key" in message
    assert f"{path}:6: repos.a.branch: unknown key" in message
    assert f"{path}:9: policy.plan_onyl: unknown key" in message
    assert "3 problem(s)" in message


def test_bad_values_name_the_key_the_line_and_the_fix(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "[repos.a]\npath = 'a'\nlifecycle = 'dead'\ntags = 'x'\nservice_port = 99999\n"
        "[repos.b]\npath = 'b'\ndaemon_posture = 'sometimes'\nrole = 'king'\n"
        "[policy]\nplan_only = 'yes'\nmax_actions_per_cycle = -1\n",
    )
    message = _problems(path)
    assert (
        f"{path}:3: repos.a.lifecycle: 'dead' is not one of active, maintenance, retired, experimental"
        in message
    )
    assert 'fix: e.g. lifecycle = "active"' in message
    assert f"{path}:4: repos.a.tags: must be a list of strings" in message
    assert f"{path}:5: repos.a.service_port" in message
    assert f"{path}:8: repos.b.daemon_posture" in message
    assert f"{path}:9: repos.b.role: 'king'" in message
    assert f"{path}:11: policy.plan_only" in message  # a string is not a boolean
    assert f"{path}:12: policy.max_actions_per_cycle" in message


def test_repo_names_must_be_safe(tmp_path: Path) -> None:
    path = _write(tmp_path, '[repos."bad name:x"]\npath = "x"\n')
    message = _problems(path)
    assert f"{path}:1: repos.bad name:x: repo name 'bad name:x' has characters" in message


def test_two_entries_for_the_same_path_are_reported_with_both_names(tmp_path: Path) -> None:
    path = _write(tmp_path, "[repos.one]\npath = 'x'\n\n[repos.two]\npath = './x/'\n")
    message = _problems(path)
    assert f"{path}:4: repos.two: same path as [repos.one]" in message


def test_depends_on_must_name_registered_repos_other_than_itself(tmp_path: Path) -> None:
    path = _write(tmp_path, "[repos.a]\npath = 'a'\ndepends_on = ['a', 'ghost']\n")
    message = _problems(path)
    assert "repos.a.depends_on: a repo cannot depend on itself" in message
    assert "repos.a.depends_on: 'ghost' is not a registered repo" in message


def test_register_url_comes_from_the_file_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(REGISTER_URL_ENV, raising=False)
    path = _write(tmp_path, "[register]\nurl = 'postgresql://hub:secret@db.internal/speedrift'\n")
    assert load_ecosystem(path).register_url == "postgresql://hub:secret@db.internal/speedrift"
    monkeypatch.setenv(REGISTER_URL_ENV, f"sqlite:///{tmp_path}/other.db")
    assert load_ecosystem(path).register_url == f"sqlite:///{tmp_path}/other.db"
    monkeypatch.setenv(REGISTER_URL_ENV, "mysql://nope")
    with pytest.raises(UsageError, match=REGISTER_URL_ENV):
        load_ecosystem(path)


def test_an_unsupported_register_url_is_an_error_that_hides_the_password(tmp_path: Path) -> None:
    path = _write(tmp_path, "[register]\nurl = 'mysql://user:hunter2@db/x'\nhost = 'db'\n")
    message = _problems(path)
    assert "register.url: unsupported register URL 'mysql://user:***@db/x'" in message
    assert "hunter2" not in message
    assert "register.host: unknown key" in message


def test_discovery_settings_are_read_and_checked(tmp_path: Path) -> None:
    path = _write(tmp_path, "[discovery]\nenabled = true\nroot = 'work'\nmax_age_days = 7\n")
    settings = load_ecosystem(path).discovery
    assert settings.enabled and settings.root == path.parent / "work" and settings.max_age_days == 7
    bad = _write(tmp_path, "[discovery]\nenabled = 'yes'\nmax_age_days = 0\ndepth = 2\n")
    message = _problems(bad)
    assert "discovery.enabled: must be true or false" in message
    assert "discovery.max_age_days: must be a whole number >= 1" in message
    assert "discovery.depth: unknown key" in message


def test_an_unsupported_schema_version_is_refused(tmp_path: Path) -> None:
    assert "schema: unsupported schema 2" in _problems(_write(tmp_path, "schema = 2\n"))


def test_key_lines_follow_tables_quoted_keys_and_skip_multiline_values() -> None:
    text = (
        "a = 1\n"
        'notes = """\n'
        "[not.a.table]\n"
        'fake = 1\n"""\n'
        "[repos.'x y']\n"
        "tags = [\n"
        "  'one',\n"
        "  'two', # [comment]\n"
        "]\n"
        "path = 'p'\n"
        'inline.key = "v"\n'
    )
    lines = key_lines(text)
    assert lines[("a",)] == 1
    assert lines[("notes",)] == 2
    assert ("not", "a", "table") not in lines and ("fake",) not in lines
    assert lines[("repos", "x y")] == 6
    assert lines[("repos", "x y", "tags")] == 7
    assert lines[("repos", "x y", "path")] == 11
    assert lines[("repos", "x y", "inline", "key")] == 12


def test_parse_ecosystem_checks_text_before_it_is_a_file(tmp_path: Path) -> None:
    eco = parse_ecosystem("[repos.a]\npath = '/abs/a'\n", tmp_path / "ecosystem.toml")
    assert eco.repos[0].path == Path("/abs/a")
