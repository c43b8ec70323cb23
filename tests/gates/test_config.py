"""The [gates] table: defaults, and errors that name the file and the key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from speedrift.fleet.config import ConfigError, load_config
from speedrift.gates.config import GatesConfig


def test_a_repo_without_a_gates_table_gets_every_gate_with_defaults(tmp_path: Path) -> None:
    config = load_config(tmp_path).gates
    assert config == GatesConfig()
    assert (config.scope, config.required, config.timeout_for("tests")) == ("default", [], 600)


def test_the_table_is_read_with_its_nested_sections(tmp_path: Path) -> None:
    (tmp_path / "speedrift.toml").write_text(
        '[gates]\nrequired = ["tests"]\nscope = "strict"\n\n[gates.timeouts]\ntests = 90\n\n'
        '[gates.tests]\ncommand = ["make", "test"]\n\n[gates.schemas]\n"a/*.json" = "s.json"\n'
    )
    config = load_config(tmp_path).gates
    assert config.required == ["tests"] and config.scope == "strict"
    assert config.timeout_for("tests") == 90 and config.timeout_for("lint") == 600
    assert config.tests.command == ["make", "test"] and config.schemas == {"a/*.json": "s.json"}


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ('[gates]\nrequired = ["nonsense"]\n', "gates.required.0"),
        ("[gates.timeouts]\ntests = -1\n", "gates.timeouts.tests"),
        ('[gates.lint]\nruff = "sometimes"\n', "gates.lint.ruff"),
        ("[gates]\nunknown_key = 1\n", "gates.unknown_key"),
    ],
)
def test_bad_values_are_errors_naming_the_key_path(tmp_path: Path, toml: str, key: str) -> None:
    (tmp_path / "speedrift.toml").write_text(toml)
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    assert key in str(caught.value) and "speedrift.toml" in str(caught.value)
