"""ecosystem.toml's fleet-operations tables (control/ecosystem/opstables.py): ``[[agents]]`` and the
rest loaded into FleetOps, every mistake reported with its key path and its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from speedrift.control.ecosystem.load import parse_ecosystem
from speedrift.errors import UsageError
from speedrift.fleet.opsconfig import Layer

HEAD = 'schema = 1\n[repos.app]\npath = "app"\n[repos.web]\npath = "web"\n'


def _problems(text: str, tmp_path: Path) -> str:
    with pytest.raises(UsageError) as raised:
        parse_ecosystem(text, tmp_path / "ecosystem.toml")
    return raised.value.message


def _line(message: str, path: Path, key: str) -> int:
    for line in message.splitlines():
        if f": {key}:" in line:
            return int(line.strip().removeprefix(f"{path}:").split(":", 1)[0])
    raise AssertionError(f"{key} not reported in:\n{message}")


def test_agents_and_the_other_tables_load_with_their_defaults(tmp_path: Path) -> None:
    text = HEAD + (
        '[[agents]]\nname = "nightly"\nlayer = "core"\nrepos = ["app", "web"]\n'
        'schedule = "0 3 * * *"\ntz = "Europe/Berlin"\nprompt = "tidy up"\n'
        '[[agents]]\nname = "guard"\nlayer = "safety"\nrepos = ["app"]\nexec = "./watch.sh"\n'
        "restart = { cooldown_s = 30, max_restarts = 3 }\n"
        "[budgets]\ndaily_usd = 25.0\n"
        '[prices."codex:gpt-5"]\ninput_per_mtok = 1.25\noutput_per_mtok = 10.0\n'
    )
    ops = parse_ecosystem(text, tmp_path / "ecosystem.toml").ops

    nightly, guard = ops.agents
    assert nightly.layer is Layer.CORE and nightly.repos == ["app", "web"] and nightly.tz == "Europe/Berlin"
    assert guard.restart.cooldown_s == 30 and guard.restart.max_restarts == 3
    assert guard.restart.window_s == 12 * 3600  # the default
    assert ops.agent("guard") is guard and ops.agent("nope") is None
    assert ops.budgets.daily_usd == 25.0
    assert ops.prices["codex:gpt-5"].output_per_mtok == 10.0
    assert ops.nightwatch.interval_s == 300 and ops.compound_review.schedule == "0 2 * * *"


def test_each_agent_mistake_is_reported_at_its_own_line(tmp_path: Path) -> None:
    text = HEAD + (
        '[[agents]]\nname = "ok"\nlayer = "growth"\nrepos = ["app"]\nprompt = "x"\n'  # lines 6-10
        '[[agents]]\nname = "bad"\nlayer = "core"\nrepos = ["app"]\nprompt = "y"\n'  # 11-15
        'schedule = "61 * * * *"\n'  # 16
        'colour = "blue"\n'  # 17
        '[[agents]]\nname = "lost"\nlayer = "safety"\nrepos = ["nowhere"]\nexec = "true"\n'  # 18-22
        '[[agents]]\nname = "ok"\nlayer = "growth"\nrepos = ["web"]\nprompt = "again"\n'  # 23-27
        '[[agents]]\nname = "zone"\nlayer = "core"\nrepos = ["app"]\nschedule = "@daily"\n'  # 28-32
        'tz = "Mars/Olympus"\nprompt = "z"\n'  # 33-34
    )
    path = tmp_path / "ecosystem.toml"
    message = _problems(text, tmp_path)

    assert _line(message, path, "agents.1.schedule") == 16
    assert "'61 * * * *'" in message
    assert _line(message, path, "agents.1.colour") == 17
    assert _line(message, path, "agents.2.repos") == 21 and "'nowhere' not registered" in message
    assert _line(message, path, "agents.3.name") == 24 and "declared twice" in message
    assert _line(message, path, "agents.4.tz") == 33 and "Mars/Olympus" in message


def test_an_agent_without_work_or_with_the_wrong_layer_for_a_schedule_is_refused(tmp_path: Path) -> None:
    text = HEAD + (
        '[[agents]]\nname = "idle"\nlayer = "growth"\nrepos = ["app"]\n'  # 6-9: no prompt/role/exec
        '[[agents]]\nname = "timed"\nlayer = "safety"\nrepos = ["app"]\nexec = "x"\nschedule = "@daily"\n'
        '[[agents]]\nname = "nowhere"\nlayer = "growth"\nrepos = []\nprompt = "p"\n'  # 16-20
    )
    path = tmp_path / "ecosystem.toml"
    message = _problems(text, tmp_path)

    assert _line(message, path, "agents.0") == 6 and "needs a prompt, a role or an exec command" in message
    assert _line(message, path, "agents.1") == 10 and "only core agents run on one" in message
    assert _line(message, path, "agents.2.repos") == 19 and "names no repo" in message


def test_a_misspelt_table_and_a_wrong_type_are_reported_at_their_lines(tmp_path: Path) -> None:
    text = (
        "agents = 3\n" + HEAD + '[budgets]\ndaily_usd = "lots"\n[nightwatch]\nminor = 0.5\nmoderate = 0.1\n'
    )
    path = tmp_path / "ecosystem.toml"
    message = _problems(text, tmp_path)

    assert _line(message, path, "agents") == 1 and "must be an array of tables" in message
    assert _line(message, path, "budgets.daily_usd") == 8 and "'lots'" in message
    assert _line(message, path, "nightwatch") == 9 and "thresholds must rise" in message
