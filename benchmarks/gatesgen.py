"""A generated Python project for the gates benchmark: packages of modules that import each other,
a pytest suite, some JSON/YAML config, and a little lint / type / SAST debt like real code has.

Deterministic for a given (modules, seed). Files are returned as {path: text}; ``write_repo``
puts them in a new git repository (the base commit holds only a README, the "full" commit holds
the project, so a gate run from base to full checks every file).
"""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

PYPROJECT = """[project]
name = "generated"
version = "0.1.0"

[tool.ruff]
line-length = 110

[tool.ruff.lint]
select = ["E", "F", "W"]

[tool.mypy]
files = ["pkg"]
check_untyped_defs = true

[tool.pytest.ini_options]
testpaths = ["tests"]
pythonpath = ["."]
"""


def module_text(package: int, index: int, rng: random.Random) -> str:
    lines = [
        f'"""Package {package}, module {index}: generated."""',
        "",
        "from __future__ import annotations",
        "",
    ]
    debt = rng.random()
    if debt < 0.05:
        lines.append("import os  # unused: lint debt")
    if debt > 0.97:
        lines.append("import subprocess")
    if index:
        lines.append(f"from pkg.p{package:02d}.m{index - 1:03d} import Thing{index - 1}, f{index - 1}")
    lines += ["", ""]
    lines += [
        f"def f{index}(value: int) -> int:",
        f'    """Adds {index} after the previous module\'s step."""',
        f"    return {'f' + str(index - 1) + '(value)' if index else 'value'} + {index}",
        "",
        "",
        f"class Thing{index}:",
        "    def __init__(self, size: int) -> None:",
        "        self.size = size",
        "        self.items: list[int] = []",
        "",
        "    def add(self, item: int) -> None:",
        "        self.items.append(item * self.size)",
        "",
        "    def total(self) -> int:",
        "        return sum(self.items)",
        "",
        "    def describe(self) -> str:",
        f'        return f"Thing{index}(size={{self.size}}, items={{len(self.items)}})"',
        "",
    ]
    if index:
        lines += [
            "",
            f"def combine{index}(count: int) -> int:",
            f"    thing = Thing{index - 1}(count)",
            "    for step in range(count):",
            "        thing.add(step)",
            f"    return thing.total() + f{index}(count)",
            "",
        ]
    if debt < 0.02:
        lines += ["", "def legacy() -> int:", '    return "not an int"  # type debt', ""]
    if debt > 0.97:
        lines += [
            "",
            "def run(command: str) -> None:",
            "    subprocess.run(command, shell=True)  # SAST debt",
            "",
        ]
    for extra in range(rng.randint(2, 6)):
        lines += [
            "",
            f"def helper_{index}_{extra}(values: list[int], scale: float = 1.0) -> float:",
            "    total = 0.0",
            "    for position, value in enumerate(values):",
            "        if position % 2:",
            "            total += value * scale",
            "        else:",
            "            total -= value / (scale or 1.0)",
            "    return total",
            "",
        ]
    return "\n".join(lines)


def test_text(package: int, modules: int) -> str:
    chosen = sorted({0, modules // 2, modules - 1})
    lines = ["from __future__ import annotations", ""]
    lines += [f"from pkg.p{package:02d}.m{i:03d} import Thing{i}, f{i}" for i in chosen]
    for i in chosen:
        lines += [
            "",
            "",
            f"def test_f{i}_adds_its_steps() -> None:",
            f"    assert f{i}(1) == 1 + {sum(range(i + 1))}",
            "",
            "",
            f"def test_thing{i}_totals() -> None:",
            f"    thing = Thing{i}(2)",
            "    thing.add(3)",
            "    assert thing.total() == 6",
        ]
    return "\n".join(lines) + "\n"


def generate(modules: int = 2000, seed: int = 7, per_package: int = 100) -> dict[str, str]:
    rng = random.Random(seed)
    files: dict[str, str] = {"pyproject.toml": PYPROJECT, "pkg/__init__.py": ""}
    packages = max(1, modules // per_package)
    for package in range(packages):
        files[f"pkg/p{package:02d}/__init__.py"] = ""
        for index in range(per_package):
            files[f"pkg/p{package:02d}/m{index:03d}.py"] = module_text(package, index, rng)
        files[f"tests/test_p{package:02d}.py"] = test_text(package, per_package)
    for index in range(40):
        files[f"config/service{index:02d}.json"] = json.dumps(
            {"name": f"service{index}", "port": 8000 + index, "replicas": rng.randint(1, 5)}, indent=2
        )
        files[f"deploy/service{index:02d}.yaml"] = (
            f"name: service{index}\nport: {8000 + index}\nenv: [a, b]\n"
        )
    return files


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def write_repo(path: Path, files: dict[str, str]) -> tuple[str, str]:
    """A repo whose first commit is a README and whose second holds ``files``: (base, full)."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "bench")
    git(path, "config", "user.email", "bench@example.invalid")
    (path / "README.md").write_text("# generated\n")
    (path / ".gitignore").write_text(
        ".speedrift/\n.mypy_cache/\n.ruff_cache/\n__pycache__/\n.pytest_cache/\n"
    )
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "base")
    base = git(path, "rev-parse", "HEAD")
    for rel, text in files.items():
        target = path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "the project")
    return base, git(path, "rev-parse", "HEAD")


def small_change(path: Path, count: int = 5) -> str:
    """Commit an edit of ``count`` modules on top; returns the new commit."""
    modules = sorted((path / "pkg").glob("p*/m*.py"))
    for index in range(count):
        target = modules[(index * 37) % len(modules)]
        target.write_text(
            target.read_text() + f"\n\ndef added_{index}(value: int) -> int:\n    return value * {index}\n"
        )
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "a small change")
    return git(path, "rev-parse", "HEAD")
