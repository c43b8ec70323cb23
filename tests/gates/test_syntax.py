"""The syntax gate: Python, JSON, TOML, YAML (and JavaScript with node) parse, or fail at file:line."""

from __future__ import annotations

from pathlib import Path

from tests.gates.conftest import NewRepo, gate, without_tools


def test_each_broken_format_fails_at_its_file_and_line(new_repo: NewRepo) -> None:
    repo = new_repo()
    repo.change(
        {
            "ok.py": "x = 1\n",
            "bad.py": "def f(:\n    pass\n",
            "bad.json": '{\n  "a": 1,\n  "b": \n}\n',
            "bad.toml": "[table]\nkey = \n",
            "bad.yaml": "a: 1\nb: [1, 2\nc: 3\n",
        }
    )
    result = gate(repo.gates(only=("syntax",)), "syntax")
    assert result.status == "fail" and result.failure_class == "implementation_error"
    found = {f.file: f.line for f in result.findings}
    assert found == {"bad.py": 1, "bad.json": 4, "bad.toml": 2, "bad.yaml": 3}


def test_valid_files_pass_and_yaml_with_custom_tags_is_not_a_syntax_error(new_repo: NewRepo) -> None:
    repo = new_repo()
    repo.change(
        {
            "a.py": "print('ok')\n",
            "b.json": "[1, 2]\n",
            "c.toml": "x = 1\n",
            "stack.yml": "Resources:\n  Bucket:\n    Name: !Ref BucketName\n---\nsecond: doc\n",
            "tsconfig.json": '{\n  // comments are allowed here\n  "compilerOptions": {}\n}\n',
        }
    )
    result = gate(repo.gates(only=("syntax",)), "syntax")
    assert (result.status, result.reason) == ("pass", "4 file(s) parse")


def test_binary_and_non_utf8_files_are_handled_without_crashing(new_repo: NewRepo) -> None:
    repo = new_repo()
    repo.change(
        {
            "image.json": b"\x89PNG\r\n\x1a\n\x00\x00binary",  # binary, whatever its name: not parsed
            "latin1.py": "# -*- coding: latin-1 -*-\nname = 'caf\xe9'\n".encode("latin-1"),
            "broken.py": b"name = '\xff\xfe'\n",  # not UTF-8 and no coding line: Python rejects it
            "broken.json": b'{"a": "\xff"}',
        }
    )
    result = gate(repo.gates(only=("syntax",)), "syntax")
    assert result.status == "fail"
    assert {f.file for f in result.findings} == {"broken.py", "broken.json"}


def test_javascript_is_checked_by_node_when_it_is_installed(new_repo: NewRepo, tmp_path: Path) -> None:
    repo = new_repo()
    repo.change({"app.js": "const ok = 1;\nconst = 2;\n", "ok.mjs": "export const a = 1;\n"})
    result = gate(repo.gates(only=("syntax",)), "syntax")
    assert result.status == "fail"
    assert [(f.file, f.line) for f in result.findings] == [("app.js", 2)]
    missing = gate(repo.gates(only=("syntax",), env=without_tools(tmp_path)), "syntax")
    assert missing.status == "skipped"
    assert "2 JavaScript file(s) not checked: node not installed (install Node.js)" in missing.reason


def test_a_diff_without_parsable_files_is_skipped_not_passed(new_repo: NewRepo) -> None:
    repo = new_repo()
    repo.change({"notes.txt": "hello\n"})
    assert gate(repo.gates(only=("syntax",)), "syntax").status == "skipped"
