"""The wave Markdown (plans/render.py): the documented format, deterministic bytes, fences that
keep any body whole, atomic writes of valid specs only, and the importer reading it back to the
identical spec."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from speedrift.errors import InvalidValue
from speedrift.plans import spec
from speedrift.plans.render import render, write

CONTRACT = {
    "completion": "integrated",
    "durability": "durable",
    "proof": "integration",
    "doc_impact": "owned",
}
PROMPT = (
    "Add a token bucket in front of /v1/*.\n\n### Not a heading: this is the prompt\n## Agent x: nor this\n"
    "```python\nbucket = Bucket(100)\n```\n````\nFile ownership:\n- src/limiter.py\n"
)


def rich() -> dict[str, Any]:
    """A wave with every field set, and bodies that a naive reader would cut."""
    return {
        "schema": spec.SCHEMA_ID,
        "wave": 5,
        "title": "Token-bucket rate limiting",
        "mode": "dark-factory",
        "commit_message": "Feat: add `limiter` to the public API",
        "summary": "The public API gets a limiter.\n\n## Not a section\n```\nnot a fence end",
        "sequencing": {
            "after_waves": [3, 4],
            "needs_artifacts": ["docs/api.md", "build/`odd` name.json"],
            "note": "Runs after wave 4 (request ids).\nLimiter keys use the principal.",
        },
        "deploy_environments": [
            {"id": "staging", "kind": "docker-compose", "default": True, "notes": "local compose (stack)"},
            {"id": "prod", "kind": "kubernetes"},
        ],
        "component_promotions": [{"component": "api-rate-limiter", "level": "baseline-proved"}],
        "validation": ["python -m pytest -q", "echo `date` && make lint"],
        "closure": {
            "integration": "Check the gateway config keys.",
            "documentation": "Update docs/api/rate-limits.md.",
            "evaluation": "  indented first line\nand a second",
        },
        "prose": {"Reference rule": "Follow docs/reference.md.", "Eval targets": "- id: limiter-overhead"},
        "tasks": [
            {
                "id": "limiter",
                "title": "Limiter middleware",
                "role": "implementation",
                "after": ["schema"],
                "owned": ["src/limiter.py", "tests/test_limiter.py"],
                "deliverables": ["src/limiter.py"],
                "components": ["api-rate-limiter"],
                "capabilities": ["rate-limiting", "redis"],
                "exit_contract": CONTRACT,
                "runtime": {
                    "runtime": "claude",
                    "model": "opus",
                    "fallbacks": ["codex", "opencode"],
                    "wall_clock_minutes": 40,
                    "max_turns": 60,
                    "max_cost_usd": 2.5,
                },
                "validation": ["pytest -q tests/test_limiter.py"],
                "extra": {"codex": {"sandbox": "workspace-write"}, "note": "```\n### x"},
                "prompt": PROMPT,
            },
            {
                "id": "schema",
                "title": "Limits schema",
                "role": "design",
                "owned": ["docs/limits.schema.json"],
                "exit_contract": CONTRACT,
                "runtime": {"max_cost_usd": 3},
                "prompt": "Write the schema.",
            },
            {
                "id": "ship",
                "title": "Deploy",
                "role": "deploy",
                "after": ["limiter"],
                "owned": ["deploy/**"],
                "deploy": {"environment": "staging", "rollback": "kubectl rollout undo deploy/api"},
                "exit_contract": CONTRACT,
                "prompt": "Ship it.",
            },
        ],
    }


SMALL = {
    "schema": spec.SCHEMA_ID,
    "wave": 2,
    "title": "Small",
    "mode": "oversight",
    "tasks": [{"id": "a", "title": "A", "role": "implementation", "owned": ["src/a.py"], "prompt": "Do a."}],
}
SMALL_MARKDOWN = """\
# Wave 2 - Small

## Project profile

- oversight-mode: oversight

## Agent a: A

### Role

- implementation

### Owned files

- `src/a.py`

### Prompt

```text
Do a.
```
"""


def test_the_rich_spec_is_schema_valid() -> None:
    assert spec.schema_problems(rich()) == []


def test_a_small_wave_renders_exactly_as_the_format_says() -> None:
    assert render(SMALL) == SMALL_MARKDOWN


def test_rendering_is_deterministic_whatever_the_key_order() -> None:
    value = rich()
    shuffled = json.loads(json.dumps(value, sort_keys=True))
    shuffled["prose"] = dict(reversed(list(value["prose"].items())))
    first = render(value)
    assert render(value) == first == render(shuffled)
    assert first.endswith("\n") and not first.endswith("\n\n")


def test_the_sections_come_in_the_documented_order() -> None:
    text = render(rich())
    order = [
        "# Wave 5 - Token-bucket rate limiting",
        "**Commit message**: ``Feat: add `limiter` to the public API``",
        "## Project profile\n\n- oversight-mode: dark-factory",
        "## Summary",
        "## Sequencing note\n\n- after-waves: 3, 4\n"
        "- needs-artifacts: `docs/api.md`, ``build/`odd` name.json``\n"
        "- note: Runs after wave 4 (request ids).\n  Limiter keys use the principal.",
        "## Deploy environments\n\n- `staging`: `docker-compose` default (local compose (stack))\n"
        "- `prod`: `kubernetes`",
        "## Component promotions\n\n- api-rate-limiter: baseline-proved",
        "## Validation\n\n- `python -m pytest -q`\n- ``echo `date` && make lint``",
        "## Closure\n\n### Integration\n\nCheck the gateway config keys.\n\n### Documentation",
        "## Eval targets",
        "## Reference rule",
        "## Agent limiter: Limiter middleware",
        "### Role\n\n- implementation",
        "### Depends on\n\n- schema",
        "### Executor\n\n- id: claude\n- model: opus\n- fallbacks: codex, opencode\n- budget.minutes: 40\n"
        "- budget.turns: 60\n- budget.cost-usd: 2.5",
        "### Owned files\n\n- `src/limiter.py`\n- `tests/test_limiter.py`",
        "### Components\n\n- api-rate-limiter",
        "### Capabilities\n\n- rate-limiting\n- redis",
        "### Deliverables\n\n- `src/limiter.py`",
        "### Exit contract\n\n- completion: integrated\n- durability: durable\n- proof: integration\n"
        "- doc-impact: owned",
        "### Validation\n\n- `pytest -q tests/test_limiter.py`",
        "### Extra\n\n```json\n{\n",
        "### Prompt\n\n`````text\nAdd a token bucket",
        "## Agent schema: Limits schema",
        "- budget.cost-usd: 3\n",
        "## Agent ship: Deploy",
        "### Deploy\n\n- environment: staging\n- rollback: kubectl rollout undo deploy/api",
    ]
    positions = [text.find(piece) for piece in order]
    assert -1 not in positions, [piece for piece, at in zip(order, positions, strict=True) if at < 0]
    assert positions == sorted(positions)


def test_a_body_that_could_be_misread_is_fenced_longer_than_any_fence_inside() -> None:
    text = render(rich())
    assert (
        "## Summary\n\n```text\nThe public API gets a limiter.\n\n## Not a section\n```\nnot a fence end\n```"
        not in text
    )
    assert "## Summary\n\n````text\nThe public API gets a limiter." in text  # ``` inside: four
    assert "### Evaluation\n\n```text\n  indented first line\nand a second\n```" in text
    assert "`````text\n" + PROMPT + "\n`````" in text  # ```` inside the prompt: five
    plain = render({**SMALL, "summary": "Plain words.\nTwo lines."})
    assert "## Summary\n\nPlain words.\nTwo lines.\n" in plain


def test_fields_that_are_not_set_are_not_rendered() -> None:
    for heading in ("Summary", "Sequencing note", "Deploy environments", "Validation", "Closure", "Executor"):
        assert f"# {heading}" not in SMALL_MARKDOWN
    assert "Commit message" not in SMALL_MARKDOWN


def test_write_puts_the_canonical_spec_and_its_markdown_in_the_repo(tmp_path: Path) -> None:
    written = write(tmp_path, rich())
    assert written == [spec.spec_path(tmp_path, 5), spec.markdown_path(tmp_path, 5)]
    assert written[0].read_bytes() == spec.canonical(rich())
    assert written[1].read_text(encoding="utf-8") == render(rich())
    assert sorted(p.name for p in written[0].parent.iterdir()) == ["wave-5.json"]  # no temp file left


def test_write_refuses_an_invalid_spec_and_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(InvalidValue) as raised:
        write(tmp_path, {**SMALL, "mode": "yolo"})
    assert "$.mode" in raised.value.message
    assert not (tmp_path / spec.PLANS_DIR).exists()


def test_the_importer_reads_a_rendered_wave_back_to_the_identical_spec() -> None:
    from speedrift.plans.importer import parse_markdown

    for value in (rich(), SMALL):
        imported = parse_markdown(render(value), file=f"wave-{value['wave']}.md")
        assert spec.canonical(imported.spec) == spec.canonical(value)
        assert (imported.unmapped, imported.problems) == ([], [])
