"""The project profile (plans/project.py): defaults and detected values with their origin, a
save/load round trip that keeps the file's comments, and bad files named with their line."""

from __future__ import annotations

from pathlib import Path

import pytest

from speedrift.errors import InvalidValue
from speedrift.plans import project
from speedrift.plans.project import Origin, Profile
from speedrift.plans.spec import PROJECT_FILE, Mode


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_without_a_file_the_profile_is_detected_from_the_repo_or_defaulted(tmp_path: Path) -> None:
    repo = tmp_path / "acme-api"
    _write(repo / "tests" / "test_calc.py", "def test_one() -> None:\n    assert True\n")
    profile = project.load(repo)
    assert profile.name == "acme-api" and profile.origin("name") is Origin.DETECTED
    assert profile.tests == ("pytest",) and profile.origin("tests") is Origin.DETECTED
    assert profile.default_mode is Mode.OVERSIGHT and profile.origin("default_mode") is Origin.DEFAULT
    assert profile.new_project is False and profile.origin("new_project") is Origin.DEFAULT
    assert profile.runtimes == ("claude",) and profile.origin("runtimes") is Origin.DEFAULT


def test_the_repos_speedrift_toml_gives_the_runtime_and_the_test_command(tmp_path: Path) -> None:
    _write(
        tmp_path / "speedrift.toml",
        'default_runtime = "codex"\n\n[gates.tests]\ncommand = ["make", "check", "-j 2"]\n',
    )
    profile = project.load(tmp_path)
    assert profile.runtimes == ("codex",) and profile.origin("runtimes") is Origin.DETECTED
    assert profile.tests == ("make check '-j 2'",) and profile.origin("tests") is Origin.DETECTED


def test_a_saved_profile_loads_back_the_same_with_every_value_from_the_file(tmp_path: Path) -> None:
    given = Profile(
        name="Acme API",
        new_project=True,
        default_mode=Mode.DARK_FACTORY,
        runtimes=("codex", "claude"),
        tests=("python -m pytest -q", "npm test"),
    )
    written = project.save(tmp_path, given)
    assert written == tmp_path / PROJECT_FILE
    loaded = project.load(tmp_path)
    assert loaded.values() == given.values()
    assert {loaded.origin(name) for name in project.FIELDS} == {Origin.FILE}
    assert loaded.as_dict()["origins"]["runtimes"] == "file"


def test_a_partial_file_sets_its_keys_and_leaves_the_rest_to_defaults(tmp_path: Path) -> None:
    _write(tmp_path / PROJECT_FILE, 'default_mode = "dark-factory"\n')
    profile = project.load(tmp_path)
    assert profile.default_mode is Mode.DARK_FACTORY and profile.origin("default_mode") is Origin.FILE
    assert profile.origin("name") is Origin.DETECTED and profile.origin("tests") is Origin.DEFAULT


def test_saving_keeps_the_comments_of_the_existing_file(tmp_path: Path) -> None:
    _write(tmp_path / PROJECT_FILE, '# chosen by the team, 2026\nname = "old"  # the product name\n')
    project.save(tmp_path, Profile(name="new"))
    text = (tmp_path / PROJECT_FILE).read_text(encoding="utf-8")
    assert "# chosen by the team, 2026" in text and "# the product name" in text
    assert project.load(tmp_path).name == "new"


def test_bad_toml_is_refused_naming_the_file_and_line(tmp_path: Path) -> None:
    _write(tmp_path / PROJECT_FILE, 'name = "x"\n\ndefault_mode = \n')
    with pytest.raises(InvalidValue) as raised:
        project.load(tmp_path)
    assert f"{PROJECT_FILE}:3" in raised.value.message and raised.value.hint


@pytest.mark.parametrize(
    ("text", "words", "line"),
    [
        ('name = "x"\nmood = "happy"\n', "not a profile key", 2),
        ('runtimes = ["claude", "gemini"]\n', "unknown runtime 'gemini'", 1),
        ('runtimes = ["claude", "claude"]\n', "listed twice", 1),
        ('\ndefault_mode = "yolo"\n', "not a mode", 2),
        ("new_project = 1\n", "true or false", 1),
        ('tests = ["pytest", ""]\n', "one-line texts", 1),
        ('name = ""\n', "one line of text", 1),
    ],
    ids=[
        "unknown-key",
        "unknown-runtime",
        "runtime-twice",
        "bad-mode",
        "not-a-bool",
        "empty-test",
        "empty-name",
    ],
)
def test_a_bad_value_is_refused_naming_the_file_key_and_line(
    tmp_path: Path, text: str, words: str, line: int
) -> None:
    _write(tmp_path / PROJECT_FILE, text)
    with pytest.raises(InvalidValue) as raised:
        project.load(tmp_path)
    assert words in raised.value.message
    assert f"{PROJECT_FILE}:{line}: " in raised.value.message


def test_a_profile_that_is_not_valid_is_never_saved(tmp_path: Path) -> None:
    with pytest.raises(InvalidValue):
        project.save(tmp_path, Profile(name="x", runtimes=("gemini",)))
    assert not (tmp_path / PROJECT_FILE).exists()
