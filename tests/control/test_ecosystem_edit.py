"""`repos add|remove` edit ecosystem.toml: comments and layout kept, every check before the write."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from speedrift.control.ecosystem.edit import add_repo, remove_repo
from speedrift.control.ecosystem.load import load_ecosystem
from speedrift.errors import NotFound, Refused, UsageError

COMMENTED = """\
# Our fleet. Keep this comment!
schema = 1

[policy]
plan_only = true  # never act on its own yet

# the billing service: owned by team B
[repos.billing]
path = "billing"   # relative to this file
tags = ["payments"]
"""


@pytest.fixture
def eco(tmp_path: Path) -> Path:
    path = tmp_path / "ecosystem.toml"
    path.write_text(COMMENTED)
    return path


def test_adding_keeps_every_comment_and_existing_line(eco: Path) -> None:
    add_repo(eco, "web", Path("web"), tags=["ui"], role="service", depends_on=["billing"])
    text = eco.read_text()
    assert text.startswith(COMMENTED)
    assert '[repos.web]\npath = "web"\nrole = "service"\ntags = ["ui"]\ndepends_on = ["billing"]\n' in text
    web = load_ecosystem(eco).repo("web")
    assert web.path == eco.parent / "web" and web.depends_on == ("billing",) and web.role == "service"


def test_removing_keeps_the_comments_of_everything_else(eco: Path) -> None:
    add_repo(eco, "web", Path("web"))
    remove_repo(eco, "web")
    assert eco.read_text().rstrip("\n") == COMMENTED.rstrip("\n")
    remove_repo(eco, "billing")
    text = eco.read_text()
    assert (
        "# Our fleet. Keep this comment!" in text and "plan_only = true  # never act on its own yet" in text
    )
    assert "[repos.billing]" not in text
    assert load_ecosystem(eco).repos == ()


def test_a_missing_file_is_created_valid_and_plan_only(tmp_path: Path) -> None:
    path = tmp_path / "new" / "ecosystem.toml"
    add_repo(path, "a", tmp_path / "new" / "a")
    eco = load_ecosystem(path)
    assert [e.name for e in eco.repos] == ["a"] and eco.policy.plan_only is True
    assert 'path = "a"' in path.read_text()  # stored relative to the file: portable
    with pytest.raises(NotFound):
        add_repo(tmp_path / "other.toml", "a", Path("a"), create=False)


def test_paths_outside_the_ecosystem_directory_are_stored_absolute(eco: Path, tmp_path: Path) -> None:
    outside = tmp_path.parent / "elsewhere"
    add_repo(eco, "far", outside)
    assert f'path = "{outside}"' in eco.read_text()


def test_a_duplicate_name_or_path_is_refused_and_nothing_is_written(eco: Path) -> None:
    before = eco.read_bytes()
    with pytest.raises(Refused, match="'billing' is already registered"):
        add_repo(eco, "billing", Path("other"))
    with pytest.raises(Refused, match="already registered as 'billing'"):
        add_repo(eco, "billing2", Path("billing"))
    assert eco.read_bytes() == before


def test_bad_names_fields_and_values_are_refused_before_writing(eco: Path) -> None:
    before = eco.read_bytes()
    with pytest.raises(UsageError, match="characters"):
        add_repo(eco, "no spaces", Path("x"))
    with pytest.raises(UsageError, match="unknown repo field"):
        add_repo(eco, "x", Path("x"), colour="red")
    with pytest.raises(UsageError, match=r"repos\.x\.lifecycle"):
        add_repo(eco, "x", Path("x"), lifecycle="dead")
    with pytest.raises(UsageError, match="'ghost' is not a registered repo"):
        add_repo(eco, "x", Path("x"), depends_on=["ghost"])
    with pytest.raises(UsageError, match="needs a path or a url"):
        add_repo(eco, "x", None)
    assert eco.read_bytes() == before


def test_a_broken_file_is_never_edited(eco: Path) -> None:
    eco.write_text(COMMENTED + "[repos.oops\n")
    before = eco.read_bytes()
    with pytest.raises(UsageError, match="TOML syntax error"):
        add_repo(eco, "x", Path("x"))
    with pytest.raises(UsageError):
        remove_repo(eco, "billing")
    assert eco.read_bytes() == before


def test_removing_an_unknown_repo_names_the_registered_ones(eco: Path) -> None:
    with pytest.raises(NotFound, match=r"registered: billing"):
        remove_repo(eco, "ghost")


def test_removing_a_repo_others_depend_on_needs_force_which_drops_the_references(eco: Path) -> None:
    add_repo(eco, "web", Path("web"), depends_on=["billing"])
    with pytest.raises(Refused, match="web declares depends_on 'billing'"):
        remove_repo(eco, "billing")
    remove_repo(eco, "billing", force=True)
    eco_now = load_ecosystem(eco)
    assert [e.name for e in eco_now.repos] == ["web"] and eco_now.repos[0].depends_on == ()


def test_two_processes_adding_at_once_lose_no_entry(eco: Path) -> None:
    script = (
        "import sys; from pathlib import Path\n"
        "from speedrift.control.ecosystem.edit import add_repo\n"
        "for i in range(8):\n"
        "    add_repo(Path(sys.argv[1]), f'{sys.argv[2]}{i}', Path(f'{sys.argv[2]}{i}'))\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(eco), prefix]) for prefix in ("p", "q")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    names = {e.name for e in load_ecosystem(eco).repos}
    assert names == {"billing"} | {f"{p}{i}" for p in "pq" for i in range(8)}
    assert eco.read_text().startswith(COMMENTED)
    assert not list(eco.parent.glob(".ecosystem.toml.*"))  # no temp file left
