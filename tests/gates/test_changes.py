"""Reading an attempt's diff: statuses, renames, binary files, odd names, uncommitted work."""

from __future__ import annotations

from speedrift.gates import changes
from tests.gates.conftest import NewRepo


def test_added_modified_deleted_and_renamed_files_are_listed_with_their_base_paths(new_repo: NewRepo) -> None:
    repo = new_repo({"keep.py": "x = 1\n", "gone.txt": "bye\n", "old/name.py": "a = 1\n" * 20})
    repo.write({"old/name.py": None})
    repo.change({"keep.py": "x = 2\n", "gone.txt": None, "new.txt": "hi\n", "new/name.py": "a = 1\n" * 20})
    found = {c.path: c for c in changes.collect(repo.path, repo.base, repo.head())}
    assert (found["keep.py"].status, found["keep.py"].base_path) == ("M", "keep.py")
    assert (found["gone.txt"].status, found["gone.txt"].exists) == ("D", False)
    assert (found["new.txt"].status, found["new.txt"].base_path) == ("A", None)
    renamed = found["new/name.py"]
    assert (renamed.status, renamed.old_path, renamed.base_path) == ("R", "old/name.py", "old/name.py")
    assert renamed.old_blob and renamed.new_blob and len(renamed.old_blob) == 40


def test_binary_files_are_recognised_and_not_treated_as_text(new_repo: NewRepo) -> None:
    repo = new_repo()
    repo.change({"logo.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00" + bytes(range(256)), "notes.txt": "text\n"})
    found = {c.path: c for c in changes.collect(repo.path, repo.base, repo.head())}
    assert found["logo.png"].binary and not found["notes.txt"].binary


def test_a_non_utf8_file_name_survives_the_round_trip_to_the_filesystem(new_repo: NewRepo) -> None:
    repo = new_repo()
    name = b"caf\xe9.txt".decode("utf-8", "surrogateescape")
    repo.change({name: "contenu\n"})
    (change,) = changes.collect(repo.path, repo.base, repo.head())
    assert (repo.path / change.path).read_text() == "contenu\n"
    assert change.display == "caf\ufffd.txt"


def test_uncommitted_and_untracked_files_count_when_checking_the_working_tree(new_repo: NewRepo) -> None:
    repo = new_repo({"a.py": "a = 1\n"})
    repo.write({"a.py": "a = 2\n", "fresh.py": "b = 1\n", ".speedrift/cache/x.json": "{}"})
    committed = changes.collect(repo.path, repo.base, repo.head())
    working = {c.path: c.status for c in changes.collect(repo.path, repo.base, None)}
    assert committed == []
    assert working == {"a.py": "M", "fresh.py": "A"}  # speedrift's own state is never a change


def test_blobs_are_read_in_one_batch_and_unknown_ones_are_left_out(new_repo: NewRepo) -> None:
    repo = new_repo({"a.txt": "alpha\n"})
    repo.change({"a.txt": "beta\n"})
    (change,) = changes.collect(repo.path, repo.base, repo.head())
    assert change.old_blob and change.new_blob
    blobs = changes.read_blobs(repo.path, [change.old_blob, change.new_blob, "f" * 40])
    assert blobs == {change.old_blob: b"alpha\n", change.new_blob: b"beta\n"}
