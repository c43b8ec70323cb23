"""Telling new findings from old ones across a diff, and the base-result cache."""

from __future__ import annotations

from pathlib import Path

from speedrift.gates import diffaware
from speedrift.gates.changes import zero_context_diff
from speedrift.gates.model import Finding
from tests.gates.conftest import NewRepo


def finding(
    file: str, line: int, message: str = "F401 `os` imported but unused", rule: str = "F401"
) -> Finding:
    return Finding(file=file, line=line, kind=rule, message=message, rule=rule)


def test_a_finding_that_moved_down_because_lines_were_inserted_above_it_is_old(new_repo: NewRepo) -> None:
    body = "".join(f"line{i} = {i}\n" for i in range(1, 21))
    repo = new_repo({"m.py": body})
    repo.change({"m.py": "new_a = 1\nnew_b = 2\nnew_c = 3\n" + body})
    maps = diffaware.line_maps(zero_context_diff(repo.path, repo.base, repo.head(), ["m.py"]))
    assert maps["m.py"].to_tip(10) == 13
    tip = [finding("m.py", 13, "E1 same"), finding("m.py", 2, "E1 same")]
    marked = diffaware.mark_new(tip, [finding("m.py", 10, "E1 same")], maps)
    assert [(f.line, f.new) for f in marked] == [(13, False), (2, True)]


def test_line_maps_follow_deletions_and_edits() -> None:
    diff = (
        b"diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n"
        b"@@ -3,2 +2,0 @@\n-a\n-b\n"  # base lines 3-4 deleted
        b"@@ -10 +8 @@\n-old\n+new\n"  # base line 10 edited
    )
    line_map = diffaware.line_maps(diff)["x.py"]
    assert [line_map.to_tip(n) for n in (1, 2, 5, 9, 10, 11)] == [1, 2, 3, 7, 8, 9]


def test_counts_decide_when_one_of_two_identical_findings_is_new() -> None:
    tip = [finding("a.py", 5), finding("a.py", 40)]
    marked = diffaware.mark_new(tip, [finding("a.py", 38)], {})
    assert [(f.line, f.new) for f in marked] == [(5, True), (40, False)]


def test_line_numbers_inside_messages_do_not_make_a_finding_new() -> None:
    tip = [finding("a.py", 9, 'Name "x" already defined on line 7', "no-redef")]
    base = [finding("a.py", 6, 'Name "x" already defined on line 4', "no-redef")]
    assert diffaware.mark_new(tip, base, {})[0].new is False


def test_a_renamed_file_is_compared_with_its_old_self() -> None:
    marked = diffaware.mark_new([finding("new.py", 3)], [finding("old.py", 3)], {}, {"old.py": "new.py"})
    assert marked[0].new is False


def test_the_cache_round_trips_findings_and_treats_garbage_as_a_miss(tmp_path: Path) -> None:
    cache = diffaware.Cache(tmp_path / "cache")
    key = diffaware.cache_key("base", "ruff", "cfg")
    assert cache.get("ruff", key) is None
    cache.put("ruff", key, {"a.py": diffaware.findings_to_json([finding("a.py", 1)])})
    stored = cache.get("ruff", key)
    assert stored is not None and diffaware.findings_from_json(stored["a.py"]) == [finding("a.py", 1)]
    (tmp_path / "cache" / "ruff" / f"{key}.json").write_text("{not json")
    assert cache.get("ruff", key) is None
