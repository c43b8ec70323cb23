from __future__ import annotations

from pathlib import Path

from speedrift.lanes.builtin.datadrift import LANE
from tests.gitrepo import commit_file, make_repo
from tests.lanes.diffsupport import fenced, head, kinds, run, task

MODELS = (
    "from django.db import models\n\n\n"
    "class Order(models.Model):\n"
    "    total = models.IntegerField()\n\n"
    "    def double(self):\n"
    "        return self.total * 2\n"
)


def _repo(tmp_path: Path, migrations: bool = True) -> tuple[Path, str]:
    files = {"shop/models.py": MODELS, "shop/views.py": "def index():\n    return 1\n"}
    if migrations:
        files["shop/migrations/0001_initial.py"] = "# initial\n"
    repo = make_repo(tmp_path / "repo", files)
    return repo, head(repo)


def test_a_model_field_added_without_a_migration_is_schema_not_updated(tmp_path: Path) -> None:
    repo, base = _repo(tmp_path)
    changed = MODELS.replace("    total =", "    note = models.TextField()\n    total =")
    tip = commit_file(repo, "shop/models.py", changed)
    out = run(LANE, repo, base=base, tip=tip)
    assert kinds(out) == ["schema_not_updated"]
    assert out.findings[0].severity == "warning" and "shop/models.py" in out.findings[0].message


def test_a_model_field_with_its_migration_is_clean(tmp_path: Path) -> None:
    repo, base = _repo(tmp_path)
    commit_file(
        repo, "shop/models.py", MODELS.replace("    total =", "    note = models.TextField()\n    total =")
    )
    tip = commit_file(repo, "shop/migrations/0002_note.py", "# add note\n")
    assert run(LANE, repo, base=base, tip=tip).findings == []


def test_a_model_method_changed_is_not_a_schema_change(tmp_path: Path) -> None:
    repo, base = _repo(tmp_path)
    tip = commit_file(repo, "shop/models.py", MODELS.replace("* 2", "* 3"))
    assert run(LANE, repo, base=base, tip=tip).findings == []


def test_a_repo_without_migrations_is_not_judged_automatically(tmp_path: Path) -> None:
    repo, base = _repo(tmp_path, migrations=False)
    tip = commit_file(
        repo, "shop/models.py", MODELS.replace("    total =", "    note = models.TextField()\n    total =")
    )
    out = run(LANE, repo, base=base, tip=tip)
    assert out.findings == [] and "no migration" in out.summary


def test_model_globs_decide_which_files_are_models(tmp_path: Path) -> None:
    repo, base = _repo(tmp_path)
    tip = commit_file(repo, "shop/tables.py", "class Item(Base):\n    id = Column(Integer)\n")
    assert run(LANE, repo, base=base, tip=tip).findings == []
    out = run(LANE, repo, base=base, tip=tip, policy={"model_globs": ["**/tables.py"]})
    assert kinds(out) == ["schema_not_updated"]


def test_a_prisma_schema_change_needs_a_migration(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "repo",
        {
            "prisma/schema.prisma": "model User {\n  id Int @id\n}\n",
            "prisma/migrations/1/migration.sql": "--\n",
        },
    )
    base = head(repo)
    comment = commit_file(repo, "prisma/schema.prisma", "// users\nmodel User {\n  id Int @id\n}\n")
    assert run(LANE, repo, base=base, tip=comment).findings == []
    tip = commit_file(repo, "prisma/schema.prisma", "model User {\n  id Int @id\n  name String\n}\n")
    assert kinds(run(LANE, repo, base=base, tip=tip)) == ["schema_not_updated"]


def test_a_task_block_asks_for_a_schema_change_with_any_code_change(tmp_path: Path) -> None:
    repo, base = _repo(tmp_path)
    tip = commit_file(repo, "shop/views.py", "def index():\n    return 2\n")
    assert run(LANE, repo, base=base, tip=tip).findings == []
    block = task("t1", fenced("datadrift", 'schema = 1\nschema_files = ["db/schema.sql"]\nmigrations = []'))
    out = run(LANE, repo, base=base, tip=tip, task=block)
    assert kinds(out) == ["schema_not_updated"] and out.findings[0].subject == "t1"
    ignoring = task("t1", fenced("datadrift", 'schema_files = ["db/schema.sql"]\nignore = ["shop/views.py"]'))
    assert run(LANE, repo, base=base, tip=tip, task=ignoring).findings == []


def test_the_requirement_can_be_switched_off(tmp_path: Path) -> None:
    repo, base = _repo(tmp_path)
    tip = commit_file(
        repo, "shop/models.py", MODELS.replace("    total =", "    note = models.TextField()\n    total =")
    )
    out = run(LANE, repo, base=base, tip=tip, policy={"require_schema_update_when_code_changes": False})
    assert out.findings == []


def test_a_block_that_cannot_be_read_is_invalid_data_config(tmp_path: Path) -> None:
    repo, base = _repo(tmp_path)
    tip = commit_file(repo, "shop/views.py", "def index():\n    return 2\n")
    for body in ("migrations = [", "migrations = 3", "tables = []", "migrations = []\nschema_files = []"):
        out = run(LANE, repo, base=base, tip=tip, task=task("t1", fenced("datadrift", body)))
        assert kinds(out) == ["invalid_data_config"], body
    schema = run(LANE, repo, base=base, tip=tip, task=task("t1", fenced("datadrift", "schema = 3")))
    assert kinds(schema) == ["unsupported_schema"]


def test_the_migration_and_schema_globs_decide_what_moves_the_schema(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "repo",
        {"shop/models.py": MODELS, "shop/migrations/0001_initial.py": "#\n", "db/changes/001.txt": "#\n"},
    )
    base = head(repo)
    commit_file(
        repo, "shop/models.py", MODELS.replace("    total =", "    note = models.TextField()\n    total =")
    )
    in_default = commit_file(repo, "shop/migrations/0002_note.py", "# add note\n")
    assert run(LANE, repo, base=base, tip=in_default).findings == []
    own = {"migrations": ["db/changes/**"]}
    assert kinds(run(LANE, repo, base=base, tip=in_default, policy=own)) == ["schema_not_updated"]
    in_own = commit_file(repo, "db/changes/002.txt", "note\n")
    assert run(LANE, repo, base=base, tip=in_own, policy=own).findings == []
    schema_only = {"migrations": [], "schema_files": ["db/changes/*.txt"]}
    assert run(LANE, repo, base=base, tip=in_own, policy=schema_only).findings == []
    assert kinds(run(LANE, repo, base=base, tip=in_default, policy=schema_only)) == ["schema_not_updated"]
