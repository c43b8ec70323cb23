"""archdrift: the code's packages and imports against the layers declared in docs/architecture.md
— undeclared packages, imports that point up or sideways, no declaration, a broken declaration."""

from __future__ import annotations

from pathlib import Path

from speedrift.lanes.builtin import archdrift
from speedrift.lanes.builtin._blobcache import read_stats
from speedrift.lanes.builtin.archdrift import LANE
from speedrift.lanes.model import Severity
from speedrift.lanes.spec import LaneOutput
from tests.gitrepo import commit_file, make_repo, sh_git
from tests.lanes.treesupport import kinds, run_lane

LAYERS = '# Architecture\n\nProse.\n\n```layers\nlayers = [["core"], ["api", "jobs"], ["cli"]]\n```\n'
CLEAN = {
    "src/app/__init__.py": "",
    "src/app/util.py": "def slug(text):\n    return text.lower()\n",
    "src/app/core/__init__.py": "",
    "src/app/core/models.py": "from app.util import slug\n\n\nclass User:\n    name = slug('A')\n",
    "src/app/api/__init__.py": "",
    "src/app/api/routes.py": "from app.core.models import User\nfrom ..core import models\n",
    "src/app/jobs/__init__.py": "",
    "src/app/jobs/nightly.py": "import app.core.models\n",
    "src/app/cli/__init__.py": "",
    "src/app/cli/main.py": (
        "from app.api import routes\nfrom app import jobs\n\n\ndef main():\n"
        "    from app.jobs import nightly\n"
    ),
    "tests/test_models.py": "from app.cli import main\n",
    "docs/architecture.md": LAYERS,
}


def _found(out: LaneOutput, kind: str) -> list[str]:
    return sorted(f.key for f in out.findings if f.kind == kind)


def test_code_that_follows_its_declared_layers_is_clean(tmp_path: Path) -> None:
    out = run_lane(LANE, make_repo(tmp_path / "r", CLEAN))
    assert out.findings == [] and "4 package(s) under src/app" in out.summary


def test_an_import_up_or_sideways_is_a_layer_violation_per_file(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "r",
        {
            **CLEAN,
            "src/app/core/models.py": "from app.api import routes\n\n\ndef f():\n    from ..cli import up\n",
            "src/app/api/routes.py": "from app.jobs.nightly import run\n",
            "src/app/util.py": "from app.core import models\n",
        },
    )
    out = run_lane(LANE, repo)
    assert _found(out, "layer_violation") == [
        "api->jobs:src/app/api/routes.py",
        "core->api:src/app/core/models.py",
        "core->cli:src/app/core/models.py",
        "foundation->core:src/app/util.py",
    ]
    up = next(f for f in out.findings if f.key == "core->api:src/app/core/models.py")
    assert (up.file, up.line, up.severity) == ("src/app/core/models.py", 1, Severity.ERROR)
    assert "line 1: from app.api import routes" in up.evidence
    lazy = next(f for f in out.findings if f.key == "core->cli:src/app/core/models.py")
    assert lazy.line == 5 and "a higher layer" in lazy.message
    peer = next(f for f in out.findings if f.key.startswith("api->jobs"))
    assert "a peer" in peer.message


def test_a_package_the_architecture_does_not_name_is_architecture_not_updated(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", CLEAN)
    base = sh_git(repo, "rev-parse", "HEAD")
    commit_file(repo, "src/app/billing/__init__.py", "")
    commit_file(repo, "src/app/billing/charge.py", "from app.core.models import User\n")
    out = run_lane(LANE, repo)
    [finding] = out.findings
    assert (finding.kind, finding.key, finding.file) == (
        "architecture_not_updated",
        "billing",
        "docs/architecture.md",
    )
    assert finding.severity == Severity.WARNING
    ranged = run_lane(LANE, repo, base=base)
    assert "added without the architecture being updated" in ranged.findings[0].message
    assert ranged.findings[0].fingerprint == finding.fingerprint
    assert run_lane(LANE, repo, settings={"ignore_packages": ["billing"]}).findings == []


def test_several_packages_and_no_declaration_is_advice_to_declare_one(tmp_path: Path) -> None:
    files = {k: v for k, v in CLEAN.items() if k != "docs/architecture.md"}
    out = run_lane(LANE, make_repo(tmp_path / "r", files))
    [finding] = out.findings
    assert (finding.kind, finding.severity) == ("missing_architecture", Severity.INFO)
    assert "there is no docs/architecture.md" in finding.message
    prose = run_lane(LANE, make_repo(tmp_path / "p", {**files, "docs/architecture.md": "# Words only\n"}))
    assert kinds(prose) == ["missing_architecture"] and "has no ```layers block" in prose.findings[0].message


def test_a_single_package_needs_no_architecture(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"src/tiny/__init__.py": "", "src/tiny/core.py": "X = 1\n"})
    assert run_lane(LANE, repo).findings == []
    flat = make_repo(tmp_path / "f", {"solo/__init__.py": "", "tests/__init__.py": "", "setup.py": ""})
    assert run_lane(LANE, flat).findings == []


def test_a_malformed_layers_block_is_invalid_architecture_naming_the_line(tmp_path: Path) -> None:
    broken = '# A\n\n```layers\nlayers = [["core"], ["api"\n```\n'
    out = run_lane(LANE, make_repo(tmp_path / "a", {**CLEAN, "docs/architecture.md": broken}))
    [finding] = out.findings
    assert (finding.kind, finding.severity, finding.line) == ("invalid_architecture", Severity.ERROR, 4)
    assert "docs/architecture.md:4" in finding.message

    unknown = '# A\n\n```layers\nlayers = [["core"]]\nlayer = [["api"]]\n```\n'
    out = run_lane(LANE, make_repo(tmp_path / "b", {**CLEAN, "docs/architecture.md": unknown}))
    assert [(f.kind, f.line) for f in out.findings] == [("invalid_architecture", 5)]
    assert "unknown key 'layer'" in out.findings[0].message

    twice = '```layers\nlayers = [["core"], ["core", "api"]]\n```\n'
    out = run_lane(LANE, make_repo(tmp_path / "c", {**CLEAN, "docs/architecture.md": twice}))
    assert "'core' is in two layers" in out.findings[0].message and out.findings[0].line == 2


def test_the_architecture_file_and_source_root_settings_are_honoured(tmp_path: Path) -> None:
    files = {k.replace("src/app/", "lib/app/"): v for k, v in CLEAN.items() if k != "docs/architecture.md"}
    files["ARCH.md"] = LAYERS.replace("layers = ", 'root = "lib/app"\nlayers = ')
    files["lib/app/core/models.py"] = "from app.cli import main\n"
    repo = make_repo(tmp_path / "r", files)
    assert run_lane(LANE, repo).findings == []  # no src/ and no top-level package: nothing to hold
    declared = run_lane(LANE, repo, settings={"architecture_file": "ARCH.md"})
    assert _found(declared, "layer_violation") == ["core->cli:lib/app/core/models.py"]
    other_root = run_lane(LANE, repo, settings={"architecture_file": "ARCH.md", "source_root": "nowhere"})
    assert other_root.findings == []


def test_top_level_packages_of_a_flat_repo_are_the_units(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "r",
        {
            "storage/__init__.py": "",
            "storage/db.py": "import web.views\n",
            "web/__init__.py": "",
            "web/views.py": "from storage import db\n",
            "tests/__init__.py": "",
            "docs/architecture.md": '```layers\nlayers = ["storage", "web"]\n```\n',
        },
    )
    assert _found(run_lane(LANE, repo), "layer_violation") == ["storage->web:storage/db.py"]


def test_imports_are_parsed_again_only_for_changed_files(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", CLEAN)
    state = repo / ".speedrift" / "lanes" / "archdrift" / archdrift.CACHE_FILE
    run_lane(LANE, repo)
    total = read_stats(state)["files"]
    assert read_stats(state)["parsed"] == total
    commit_file(repo, "src/app/core/models.py", "from app.cli import main\n")
    out = run_lane(LANE, repo)
    assert read_stats(state) == {"files": total, "parsed": 1, "cached": total - 1}
    assert _found(out, "layer_violation") == ["core->cli:src/app/core/models.py"]
