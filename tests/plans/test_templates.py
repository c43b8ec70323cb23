"""The shipped template packs: five shapes of wave, each a sound partial wave in the wave schema's
own terms, named in the Architect's prompt, listed by `speedrift plan templates`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from speedrift.errors import NotFound
from speedrift.plans import spec, templates
from tests.cli.support import Cli

SHAPES = ["implementation", "infra", "migration", "qa", "release"]


def test_the_five_shapes_are_shipped() -> None:
    assert templates.names() == SHAPES
    assert [pack.name for pack in templates.all_packs()] == SHAPES


@pytest.mark.parametrize("name", SHAPES)
def test_each_pack_is_a_partial_wave_in_the_wave_schemas_terms(name: str) -> None:
    pack = templates.load(name)
    assert templates.problems(dict(pack.value)) == []
    ids = [task["id"] for task in pack.value["tasks"]]
    assert len(set(ids)) == len(ids)
    for task in pack.value["tasks"]:
        assert spec.TaskRole(task["role"])
        spec.ExitContract(**task["exit_contract"])  # the four levels, each one of its order
        assert set(task.get("after", [])) <= set(ids) - {task["id"]}
    # its mode and closure guidance drop into a wave as they are
    wave = {
        "schema": spec.SCHEMA_ID,
        "wave": 1,
        "title": pack.title,
        "mode": pack.mode.value,
        "closure": pack.value["closure"],
        "tasks": [],
    }
    assert spec.schema_problems(wave) == []
    assert pack.shape.strip() and pack.value["validation"].strip()


def test_the_release_pack_rolls_every_deploy_back_and_verifies_staging_before_production() -> None:
    release = templates.load("release")
    deploys = {t["id"]: t for t in release.value["tasks"] if t["role"] == "deploy"}
    assert sorted(deploys) == ["deploy-production", "deploy-staging"]
    assert all(t["deploy"]["rollback"].strip() for t in deploys.values())
    assert deploys["deploy-production"]["after"] == ["verify-staging"]


def test_an_unknown_pack_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(NotFound) as raised:
        templates.load("hotfix")
    assert "no template pack named 'hotfix'" in raised.value.message
    assert raised.value.hint is not None
    assert all(name in raised.value.hint for name in SHAPES)


def test_a_malformed_pack_is_reported_with_each_json_path() -> None:
    broken: dict[str, Any] = {
        "name": "odd",
        "title": "Odd",
        "shape": "odd",
        "mode": "autopilot",
        "validation": "tests",
        "closure": {"release": "no such stage"},
        "tasks": [
            {
                "id": "Build",
                "role": "developer",
                "title": "Build",
                "owns": "x",
                "does": "y",
                "exit_contract": {
                    "completion": "done",
                    "durability": "none",
                    "proof": "unit",
                    "doc_impact": "none",
                },
            }
        ],
    }
    found = "\n".join(templates.problems(broken))
    for place in (
        "$.mode",
        "$.closure",
        "$.tasks[0].id",
        "$.tasks[0].role",
        "$.tasks[0].exit_contract.completion",
    ):
        assert place in found, place


def test_the_prompt_text_holds_the_shape_and_the_whole_pack() -> None:
    qa = templates.load("qa")
    text = qa.prompt_text()
    assert qa.shape in text and "template pack `qa`" in text and "typical mode: dark-factory" in text
    assert '"id": "inventory"' in text and qa.value["closure"]["evaluation"] in text


def test_plan_templates_lists_the_packs_anywhere_as_text_and_json(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    listed = cli.ok("plan", "templates").stdout
    assert all(name in listed for name in SHAPES)
    assert "version → build → deploy-staging → verify-staging → deploy-production" in listed
    rows = cli.ok("plan", "templates", "--json").json()
    assert [r["name"] for r in rows] == SHAPES
    assert rows[3]["mode"] == "dark-factory" and rows[3]["pack"] == dict(templates.load("qa").value)
