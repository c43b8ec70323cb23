from __future__ import annotations

from pathlib import Path

from speedrift.lanes.builtin.yagnidrift import LANE, words
from tests.gitrepo import commit_file, make_repo, sh_git
from tests.lanes.diffsupport import fenced, head, kinds, only, run, task


def _repo(tmp_path: Path) -> tuple[Path, str]:
    repo = make_repo(
        tmp_path / "repo", {"src/app/core.py": "class Order:\n    pass\n", "src/app/db.py": "x = 1\n"}
    )
    return repo, head(repo)


def _add(repo: Path, files: dict[str, str]) -> str:
    for rel, text in files.items():
        target = repo / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    sh_git(repo, "add", "-A")
    sh_git(repo, "commit", "-q", "-m", "add")
    return head(repo)


def test_names_split_into_words_at_case_changes_and_separators() -> None:
    assert words("AbstractBaseProviderFactory") == ["abstract", "base", "provider", "factory"]
    assert words("HTTPAdapter") == ["http", "adapter"]
    assert words("user_manager-v2") == ["user", "manager", "v", "2"]
    assert words("database") == ["database"]


def test_more_new_files_than_max_new_files_is_too_many_new_files(tmp_path: Path) -> None:
    repo, base = _repo(tmp_path)
    tip = _add(repo, {f"src/app/part{i}.py": f"X = {i}\n" for i in range(9)})
    out = run(LANE, repo, base=base, tip=tip)
    assert kinds(out) == ["too_many_new_files"]
    assert "9 files" in out.findings[0].message
    assert run(LANE, repo, base=base, tip=tip, policy={"max_new_files": 9}).findings == []
    assert run(LANE, repo, base=base, tip=tip, policy={"allow_paths": ["src/app/part*.py"]}).findings == []


def test_more_new_directories_than_max_new_dirs_is_too_many_new_dirs(tmp_path: Path) -> None:
    repo, base = _repo(tmp_path)
    tip = _add(repo, {"src/app/a/b/c/d.py": "X = 1\n", "src/app/e/f.py": "Y = 1\n"})
    out = run(LANE, repo, base=base, tip=tip)
    assert kinds(out) == ["too_many_new_dirs"]
    evidence = out.findings[0].evidence[0]
    assert "src/app/a/b/c" in evidence and "src/app/e" in evidence and "src/app," not in evidence
    assert run(LANE, repo, base=base, tip=tip, policy={"max_new_dirs": 4}).findings == []


def test_a_new_type_named_like_an_abstraction_is_speculative_abstraction(tmp_path: Path) -> None:
    repo, base = _repo(tmp_path)
    code = "class Order:\n    pass\n\n\nclass AbstractBaseProviderFactory:\n    pass\n"
    tip = commit_file(repo, "src/app/core.py", code)
    out = run(LANE, repo, base=base, tip=tip, task=task("t1"))
    assert kinds(out) == ["speculative_abstraction"]
    finding = out.findings[0]
    assert finding.key == "src/app/core.py:AbstractBaseProviderFactory" and finding.line == 5
    assert finding.subject == "t1" and "name: AbstractBaseProviderFactory" in finding.evidence


def test_a_new_file_named_like_an_abstraction_is_speculative_abstraction(tmp_path: Path) -> None:
    repo, base = _repo(tmp_path)
    tip = commit_file(repo, "src/app/user_manager.py", "def users():\n    return []\n")
    out = run(LANE, repo, base=base, tip=tip)
    assert [f.key for f in only(out, "speculative_abstraction")] == [
        "src/app/user_manager.py:user_manager.py"
    ]


def test_existing_types_tests_and_words_that_merely_contain_a_keyword_are_not_findings(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path / "repo", {"src/app/core.py": "class BaseModel:\n    pass\n"})
    base = head(repo)
    tip = _add(
        repo,
        {
            "src/app/core.py": "class BaseModel(object):\n    x = 1\n",  # the line changed, the type is old
            "src/app/database.py": "class DatabaseBaseline:\n    pass\n",
            "tests/test_provider_factory.py": "class FakeProvider:\n    pass\n",
        },
    )
    out = run(LANE, repo, base=base, tip=tip)
    assert out.findings == []


def test_the_keywords_and_the_switch_decide_what_is_speculative(tmp_path: Path) -> None:
    repo, base = _repo(tmp_path)
    tip = commit_file(repo, "src/app/core.py", "class Order:\n    pass\n\n\nclass OrderRegistry:\n    pass\n")
    assert run(LANE, repo, base=base, tip=tip).findings == []
    custom = run(LANE, repo, base=base, tip=tip, policy={"abstraction_keywords": ["registry"]})
    assert kinds(custom) == ["speculative_abstraction"]
    fence = task(
        "t1",
        fenced(
            "yagnidrift", 'abstraction_keywords = ["registry"]\nenforce_no_speculative_abstractions = false'
        ),
    )
    assert run(LANE, repo, base=base, tip=tip, task=fence).findings == []


def test_a_small_concrete_change_is_clean(tmp_path: Path) -> None:
    repo, base = _repo(tmp_path)
    commit_file(repo, "src/app/core.py", "class Order:\n    total = 0\n")
    tip = commit_file(repo, "src/app/pricing.py", "def price(order):\n    return order.total\n")
    assert run(LANE, repo, base=base, tip=tip).findings == []


def test_a_block_that_cannot_be_read_is_invalid_yagni_config(tmp_path: Path) -> None:
    repo, base = _repo(tmp_path)
    tip = commit_file(repo, "src/app/db.py", "x = 2\n")
    for body in ("max_new_files = ", 'max_new_files = "8"', "max_new_dirs = -1", "max_files = 3"):
        out = run(LANE, repo, base=base, tip=tip, task=task("t1", fenced("yagnidrift", body)))
        assert kinds(out) == ["invalid_yagni_config"], body
    schema = run(LANE, repo, base=base, tip=tip, task=task("t1", fenced("yagnidrift", "schema = 2")))
    assert kinds(schema) == ["unsupported_schema"]
