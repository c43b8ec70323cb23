"""The contract gate: deliverables exist; mapped JSON/YAML and OpenAPI documents validate."""

from __future__ import annotations

import json

from tests.gates.conftest import NewRepo, gate

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["port"],
    "properties": {"port": {"type": "integer"}, "limits": {"$ref": "limits.json"}},
}
LIMITS = {"type": "object", "properties": {"max": {"type": "integer", "maximum": 10}}}
OPENAPI = """openapi: 3.0.3
info: {title: Shop, version: "1"}
paths:
  /items/{id}:
    get:
      parameters:
        - {name: id, in: path, required: true, schema: {type: string}}
      responses:
        "200": {description: ok}
components:
  schemas:
    Item:
      type: object
      required: [id]
      properties: {id: {type: string}}
"""


def test_missing_deliverables_fail_and_present_ones_pass(new_repo: NewRepo) -> None:
    repo = new_repo()
    repo.change({"docs/guide.md": "# guide\n", "out/report-1.csv": "a,b\n"})
    task = {"id": "t", "deliverables": ["docs/guide.md", "out/report-*.csv", "docs/missing.md"]}
    result = gate(repo.gates(task=task, only=("contract",)), "contract")
    assert (result.status, result.failure_class) == ("fail", "implementation_error")
    assert [(f.file, f.kind) for f in result.findings] == [("docs/missing.md", "missing-deliverable")]
    task["deliverables"] = task["deliverables"][:2]
    assert gate(repo.gates(task=task, only=("contract",)), "contract").status == "pass"


def test_changed_documents_validate_against_their_mapped_schema_with_relative_refs(new_repo: NewRepo) -> None:
    repo = new_repo({"schemas/service.json": json.dumps(SCHEMA), "schemas/limits.json": json.dumps(LIMITS)})
    repo.change(
        {
            "config/good.json": json.dumps({"port": 80, "limits": {"max": 3}}),
            "config/bad.yaml": "port: eighty\nlimits: {max: 99}\n",
            "other/free.json": json.dumps({"anything": True}),
        }
    )
    config = {"schemas": {"config/*": "schemas/service.json"}}
    result = gate(repo.gates(config, only=("contract",)), "contract")
    assert result.status == "fail"
    assert sorted(f.message for f in result.findings) == [
        "schema schemas/service.json: $.limits.max: 99 is greater than the maximum of 10",
        "schema schemas/service.json: $.port: 'eighty' is not of type 'integer'",
    ]
    assert {f.file for f in result.findings} == {"config/bad.yaml"}


def test_a_mapping_can_point_into_an_openapi_documents_component_schema(new_repo: NewRepo) -> None:
    repo = new_repo({"api/openapi.yaml": OPENAPI})
    repo.change({"examples/item.json": json.dumps({"name": "no id"})})
    config = {"schemas": {"examples/*.json": "api/openapi.yaml#/components/schemas/Item"}}
    result = gate(repo.gates(config, only=("contract",)), "contract")
    assert result.status == "fail"
    assert [f.message for f in result.findings] == [
        "schema api/openapi.yaml#/components/schemas/Item: $: 'id' is a required property"
    ]


def test_a_changed_openapi_document_is_checked_as_openapi_3(new_repo: NewRepo) -> None:
    repo = new_repo()
    broken = OPENAPI.replace(
        "        - {name: id, in: path, required: true, schema: {type: string}}\n",
        "        - {name: id, in: body}\n",
    )
    repo.change(
        {"api/openapi.yaml": broken.replace('info: {title: Shop, version: "1"}', "info: {title: Shop}")}
    )
    result = gate(repo.gates(only=("contract",)), "contract")
    assert result.status == "fail"
    assert all(f.message.startswith("OpenAPI 3: ") for f in result.findings)
    paths = " ".join(f.message for f in result.findings)
    assert (
        "$.info: 'version' is a required property" in paths
        and "$.paths./items/{id}.get.parameters[0]" in paths
    )
    repo.change({"api/openapi.yaml": OPENAPI})
    assert gate(repo.gates(only=("contract",)), "contract").status == "pass"


def test_a_mapped_schema_that_does_not_exist_is_an_environment_problem_naming_the_config_key(
    new_repo: NewRepo,
) -> None:
    repo = new_repo()
    repo.change({"config/a.json": "{}"})
    result = gate(
        repo.gates({"schemas": {"config/*.json": "schemas/nope.json"}}, only=("contract",)), "contract"
    )
    assert (result.status, result.failure_class) == ("fail", "env_bootstrap")
    assert '[gates.schemas] "config/*.json" = "schemas/nope.json"' in result.reason


def test_nothing_to_check_is_skipped(new_repo: NewRepo) -> None:
    repo = new_repo()
    repo.change({"notes.txt": "x\n"})
    assert gate(repo.gates(task={"id": "t"}, only=("contract",)), "contract").status == "skipped"
