"""``after = ["shop-api:design-api"]`` from inside a repo: ``ready``, ``blocked``, ``why-blocked`` and
``show`` resolve it when the ecosystem is named (``--ecosystem`` or ``$SPEEDRIFT_ECOSYSTEM``) and keep
it blocked, with the hint, when it is not; ``speedrift why`` resolves it from the ecosystem it reads."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.cli.support import Cli, git

HINT = (
    "shop-api:design-api is in another repo; name the ecosystem (--ecosystem or $SPEEDRIFT_ECOSYSTEM) "
    "to resolve it"
)


@pytest.fixture
def shop(template_repo: Path, tmp_path: Path) -> Path:
    """The peer repo `shop-api`: design-api done, endpoints open."""
    path = tmp_path / "shop"
    shutil.copytree(template_repo, path, symlinks=True)
    shop_cli = Cli(path)
    shop_cli.ok("add", "Design the API", "--id", "design-api")
    shop_cli.ok("add", "Endpoints", "--id", "endpoints")
    shop_cli.ok("done", "design-api")
    return path


@pytest.fixture
def ecosystem(tmp_path: Path, shop: Path, repo: Path) -> Path:
    path = tmp_path / "ecosystem.toml"
    path.write_text(f'[repos.shop-api]\npath = "{shop}"\n\n[repos.web]\npath = "{repo}"\n')
    return path


@pytest.fixture
def web(cli: Cli) -> Cli:
    cli.ok("add", "Build the UI", "--id", "ui", "--after", "shop-api:design-api")
    cli.ok("add", "Local", "--id", "local")
    return cli


def ready_ids(result_rows: list[dict[str, object]]) -> list[str]:
    return sorted(str(row["id"]) for row in result_rows)


def test_without_an_ecosystem_a_peer_dependency_stays_blocked_with_the_hint(web: Cli) -> None:
    assert ready_ids(web.json("ready", "--json")) == ["local"]
    assert "shop-api:design-api: missing" in web.ok("blocked").stdout
    assert HINT in web.ok("why-blocked", "ui").stdout


def test_ready_with_an_ecosystem_resolves_it_against_the_registered_repo(web: Cli, ecosystem: Path) -> None:
    assert ready_ids(web.json("ready", "--ecosystem", str(ecosystem), "--json")) == ["local", "ui"]
    assert web.json("blocked", "--ecosystem", str(ecosystem), "--json") == []
    tree = web.json("why-blocked", "ui", "--ecosystem", str(ecosystem), "--json")
    assert tree["reason"] == "ready: waiting to be picked up"


def test_the_environment_names_the_ecosystem_too(web: Cli, ecosystem: Path) -> None:
    env = {"SPEEDRIFT_ECOSYSTEM": str(ecosystem)}
    assert ready_ids(web.json("ready", "--json", env=env)) == ["local", "ui"]


def test_an_unfinished_peer_task_still_holds_it(web: Cli, ecosystem: Path, shop: Path) -> None:
    Cli(shop).ok("add", "Spec", "--id", "spec")
    web.ok("add", "Docs", "--id", "docs", "--after", "shop-api:spec")
    assert "docs" not in ready_ids(web.json("ready", "--ecosystem", str(ecosystem), "--json"))
    out = web.ok("why-blocked", "docs", "--ecosystem", str(ecosystem)).stdout
    assert "shop-api:spec [open] open in shop-api" in out


def test_a_missing_repo_or_task_is_a_named_break(web: Cli, ecosystem: Path) -> None:
    web.ok("add", "Bill", "--id", "bill", "--after", "billing:invoice")
    web.ok("add", "Typo", "--id", "typo", "--after", "shop-api:design-ap")
    rows = {r["id"]: r["reasons"] for r in web.json("blocked", "--ecosystem", str(ecosystem), "--json")}
    assert rows["bill"][0]["detail"] == "no repo billing in the ecosystem"
    assert rows["typo"][0]["detail"] == "no task design-ap in shop-api"
    out = web.ok("why-blocked", "typo", "--ecosystem", str(ecosystem)).stdout
    assert "shop-api:design-ap: no task design-ap in shop-api" in out


def test_why_resolves_it_from_the_ecosystem(web: Cli, ecosystem: Path, repo: Path) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "tasks")
    web.ok("hub", "once", "--ecosystem", str(ecosystem))
    answer = web.json("why", "web:ui", "--ecosystem", str(ecosystem), "--json")
    assert "is not ready" not in answer["answer"] and answer["answer"].startswith("ui is ready")
    web.ok("add", "Typo", "--id", "typo", "--after", "shop-api:design-ap")
    answer = web.json("why", "web:typo", "--ecosystem", str(ecosystem), "--json")
    assert answer["answer"] == "typo is not ready: blocked by (shop-api:design-ap)"
    assert (
        answer["blocked_by"]["blocked_by"][0]["reason"] == "shop-api:design-ap: no task design-ap in shop-api"
    )


def test_run_claims_a_task_whose_peer_is_done_only_when_the_ecosystem_is_named(
    web: Cli, ecosystem: Path, repo: Path
) -> None:
    web.ok("edit", "ui", "--exec", "echo ui > ui.txt")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "tasks")

    refused = web("run", "ui", "--quiet")
    assert refused.returncode == 1 and "shop-api:design-api: missing" in refused.stderr

    done = web("run", "ui", "--quiet", env={"SPEEDRIFT_ECOSYSTEM": str(ecosystem)})
    assert done.returncode == 0, done
    assert git(repo, "show", "HEAD:ui.txt").strip() == "ui"


def test_run_names_the_break_when_the_peer_task_does_not_exist(web: Cli, ecosystem: Path, repo: Path) -> None:
    web.ok("add", "Typo", "--id", "typo", "--after", "shop-api:design-ap", "--exec", "true")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "tasks")
    refused = web("run", "typo", "--quiet", "--ecosystem", str(ecosystem))
    assert refused.returncode == 1 and "no task design-ap in shop-api" in refused.stderr


def test_show_without_an_ecosystem_lists_the_peer_dependency_as_written_with_the_hint(web: Cli) -> None:
    out = web.ok("show", "ui").stdout
    assert "  after: shop-api:design-api\n" in out
    assert f"not ready: {HINT}" in out


def test_show_with_an_ecosystem_names_each_peer_tasks_status_there(web: Cli, ecosystem: Path) -> None:
    after = "local,shop-api:design-api,shop-api:endpoints,shop-api:design-ap,billing:invoice"
    web.ok("add", "Mixed", "--id", "mixed", "--after", after)
    out = web.ok("show", "mixed", "--ecosystem", str(ecosystem)).stdout
    assert (
        "after: local, shop-api:design-api (done), shop-api:endpoints (open), shop-api:design-ap "
        "(no task design-ap in shop-api), billing:invoice (no repo billing in the ecosystem)"
    ) in out
    assert "not ready: shop-api:endpoints open" in out
    assert "not ready: shop-api:design-api" not in out
    assert "not ready: shop-api:design-ap no task design-ap in shop-api" in out
    ui = web.ok("show", "ui", env={"SPEEDRIFT_ECOSYSTEM": str(ecosystem)}).stdout
    assert "after: shop-api:design-api (done)" in ui and "not ready" not in ui


def test_show_json_stays_the_raw_task_when_an_ecosystem_is_named(web: Cli, ecosystem: Path) -> None:
    resolved = web.json("show", "ui", "--ecosystem", str(ecosystem), "--json")
    assert resolved == web.json("show", "ui", "--json")
    assert resolved["after"] == ["shop-api:design-api"] and "peers" not in resolved
