"""A huge diff: thousands of changed files go through the gates in batches, without argv limits."""

from __future__ import annotations

from tests.gates.conftest import NewRepo, gate

COUNT = 3000


def test_thousands_of_changed_files_are_checked_in_batches(new_repo: NewRepo) -> None:
    repo = new_repo({"pyproject.toml": '[tool.ruff.lint]\nselect = ["F"]\n'})
    # ~800-character paths: one argv holding all 3000 would exceed the kernel's 2 MB argument limit
    folder = "src/" + "/".join(["a_rather_long_directory_name_for_testing_argument_limits"] * 14)
    files: dict[str, str | bytes | None] = {
        f"{folder}/module_{i:05d}.py": f"def f_{i}(value: int) -> int:\n    return value + {i}\n"
        for i in range(COUNT)
    }
    files[f"{folder}/module_00007.py"] = "import os\n"  # one real finding among them
    repo.change(files)
    evidence = repo.gates(only=("syntax", "secrets", "lint"))
    assert evidence.extra["changed_files"] == str(COUNT)
    assert gate(evidence, "syntax").reason == f"{COUNT} file(s) parse"
    assert gate(evidence, "secrets").status == "pass"
    lint = gate(evidence, "lint")
    assert lint.status == "fail"
    assert [(f.file.rsplit("/", 1)[-1], f.rule) for f in lint.findings] == [("module_00007.py", "F401")]
