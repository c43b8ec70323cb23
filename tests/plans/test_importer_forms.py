"""The importer (plans/importer.py) on speedrift's own wave Markdown: a hand-written file per the
documented format, a rich spec and any schema-valid spec in normal form read back byte for byte
after plans/render.py, and any text at all read without raising (what it cannot read is a problem
with its line; what it reads without a problem is a schema-valid spec)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from speedrift.plans import spec
from speedrift.plans.importer import Imported, parse_markdown
from speedrift.plans.render import render

CONTRACT = {
    "completion": "integrated",
    "durability": "durable",
    "proof": "integration",
    "doc_impact": "owned",
}


HAND_WRITTEN = """\
# Wave 2 - Search

**Commit message**: ``Feat: `search` endpoint``

## Project profile

- oversight-mode: oversight

## Summary

```text
## Search lands
```

## Sequencing note

- after-waves: 1

## Validation

- `pytest -q`

## Closure

### Evaluation

Check recall.

## Agent index: Build the index

### Role

- infra

### Depends on

- api

### Executor

- id: codex
- budget.cost-usd: 1.5

### Owned files

- `search/**`
- ``odd`name.py``

### Deploy

- environment: staging
- rollback: drop the index

### Extra

```json
{"owner": "search-team"}
```

### Prompt

```text
Build it.
```

## Agent api: API

### Role

- implementation

### Prompt

````text
```
File ownership:
- not/scraped.py
```
````
"""


def test_speedrift_markdown_written_by_hand_reads_into_the_spec_it_says() -> None:
    imported = parse_markdown(HAND_WRITTEN, file="plans/waves/wave-2.md")
    assert imported.problems == [] and imported.unmapped == []
    assert imported.spec == {
        "schema": spec.SCHEMA_ID,
        "wave": 2,
        "title": "Search",
        "mode": "oversight",
        "commit_message": "Feat: `search` endpoint",
        "summary": "## Search lands",
        "sequencing": {"after_waves": [1]},
        "validation": ["pytest -q"],
        "closure": {"evaluation": "Check recall."},
        "tasks": [
            {
                "id": "index",
                "title": "Build the index",
                "role": "infra",
                "after": ["api"],
                "runtime": {"runtime": "codex", "max_cost_usd": 1.5},
                "owned": ["search/**", "odd`name.py"],
                "deploy": {"environment": "staging", "rollback": "drop the index"},
                "extra": {"owner": "search-team"},
                "prompt": "Build it.",
            },
            {
                "id": "api",
                "title": "API",
                "role": "implementation",
                "owned": [],  # explicit form: the prompt is never scraped
                "prompt": "```\nFile ownership:\n- not/scraped.py\n```",
            },
        ],
    }


def _rich() -> dict[str, Any]:
    return {
        "schema": spec.SCHEMA_ID,
        "wave": 12,
        "title": "Rich — every field",
        "mode": "dark-factory",
        "commit_message": "Feat: ``odd`` message",
        "summary": "  Leading blanks\n\n### and a heading\n",
        "sequencing": {
            "after_waves": [3, 11],
            "needs_artifacts": ["a b.json", "`x`"],
            "note": "one\n\n  two",
        },
        "deploy_environments": [{"id": "prod", "kind": "k8s", "default": True, "notes": "main (eu)"}],
        "component_promotions": [{"component": "search", "level": "pilot-live"}],
        "validation": ["make test", "echo '`'"],
        "closure": {"integration": "~~~\nfenced\n~~~", "documentation": "Docs.", "evaluation": "Eval."},
        "prose": {"Agent notes": "not an agent", "Reference rule": "", "Introduction": "Intro."},
        "tasks": [
            {
                "id": "t-1",
                "title": "First: task",
                "role": "security",
                "after": ["t2"],
                "owned": ["src/**", "docs/a b.md"],
                "deliverables": ["src/x.py"],
                "components": ["search"],
                "capabilities": ["index.v2"],
                "exit_contract": CONTRACT,
                "runtime": {
                    "runtime": "opencode",
                    "model": "m/1",
                    "fallbacks": ["claude"],
                    "max_cost_usd": 1e-05,
                },
                "validation": ["pytest -q -k 'a or b'"],
                "deploy": {"environment": "prod", "rollback": "helm rollback api"},
                "extra": {"executor": {"profile": "p"}, "sections": {"Risks": "## x\n```"}},
                "prompt": "  indented\n```\n### not a heading\n~~~~\n\n",
            },
            {"id": "t2", "title": "Second", "role": "qa", "owned": [], "prompt": "\n"},
        ],
    }


def test_a_rich_spec_round_trips_through_render_and_import_byte_for_byte() -> None:
    value = _rich()
    assert spec.schema_problems(value) == []
    imported = parse_markdown(render(value), file="wave.md")
    assert imported.problems == [] and imported.unmapped == []
    assert spec.canonical(imported.spec) == spec.canonical(value)
    text = render(value).split("\n")
    assert imported.lines["$.tasks[0].owned[1]"] == text.index("- `docs/a b.md`") + 1
    assert imported.lines["$.tasks[1]"] == text.index("## Agent t2: Second") + 1


# Specs in the normal form the round trip needs (docs/plans.md): one-line values without a space,
# tab, quote or backtick at either end (fallback names without a comma), prose headings that are
# not headings speedrift reads, and no list, object or text that is set but empty.
Strategies = dict[str, st.SearchStrategy[Any]]
_ONE_LINE = (
    st.text(st.characters(codec="utf-8", exclude_characters="\r\n,"), max_size=12)
    .map(lambda text: text.strip(" \t\"'`"))
    .filter(bool)
)
_TEXT = st.text(st.characters(codec="utf-8"), min_size=1, max_size=40)
_READ = {"project profile", "summary", "sequencing note", "deploy environments", "component promotions"}
_HEADING = _ONE_LINE.filter(
    lambda key: key.casefold() not in _READ | {"validation", "closure"} and not key.startswith("Agent ")
)
_SLUG = st.from_regex(r"\A[a-z0-9][a-z0-9._-]{0,8}\Z")


def _some(values: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    return st.lists(values, min_size=1, max_size=2)


def _object(required: Strategies, optional: Strategies | None = None) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(required, optional=optional or {})


def _by_id(item: dict[str, Any]) -> Any:
    return item["id"]


_RUNTIME: Strategies = {
    "model": _ONE_LINE,
    "fallbacks": _some(_ONE_LINE),
    "max_turns": st.integers(1, 10**6),
    "max_cost_usd": st.floats(1e-6, 1e6),
}
_TASK_REQUIRED: Strategies = {
    "id": st.from_regex(r"\A[a-z0-9][a-z0-9-]{0,8}\Z"),
    "title": _ONE_LINE,
    "role": _ONE_LINE,
    "owned": st.lists(_ONE_LINE, max_size=2),
    "prompt": _TEXT,
}
_TASK_OPTIONAL: Strategies = {
    "deliverables": _some(_ONE_LINE),
    "after": st.lists(_SLUG, min_size=1, max_size=2, unique=True),
    "validation": _some(_ONE_LINE),
    "capabilities": _some(_SLUG),
    "exit_contract": st.just(CONTRACT),
    "deploy": _object({"environment": _SLUG, "rollback": _ONE_LINE}),
    "runtime": _object({"runtime": _ONE_LINE}, _RUNTIME),
    "extra": st.dictionaries(_ONE_LINE, _TEXT, min_size=1, max_size=2),
}
_SEQUENCING: Strategies = {
    "needs_artifacts": st.lists(_ONE_LINE, min_size=1, max_size=2, unique=True),
    "note": _TEXT,
}
_ENVIRONMENT = _object({"id": _SLUG, "kind": _SLUG}, {"default": st.just(True), "notes": _ONE_LINE})
_SPEC_REQUIRED: Strategies = {
    "schema": st.just(spec.SCHEMA_ID),
    "wave": st.integers(0, 10**6),
    "title": _ONE_LINE,
    "mode": st.sampled_from(["oversight", "dark-factory"]),
    "tasks": st.lists(_object(_TASK_REQUIRED, _TASK_OPTIONAL), max_size=2, unique_by=_by_id),
}
_SPEC_OPTIONAL: Strategies = {
    "commit_message": _ONE_LINE,
    "summary": _TEXT,
    "sequencing": _object(
        {"after_waves": st.lists(st.integers(0, 99), min_size=1, max_size=3, unique=True)}, _SEQUENCING
    ),
    "validation": _some(_ONE_LINE),
    "closure": _object({"integration": _TEXT}, {"evaluation": _TEXT}),
    "prose": st.dictionaries(_HEADING, st.text(max_size=30), min_size=1, max_size=2),
    "deploy_environments": st.lists(_ENVIRONMENT, min_size=1, max_size=2, unique_by=_by_id),
}
_SPEC = _object(_SPEC_REQUIRED, _SPEC_OPTIONAL)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_SPEC)
def test_any_schema_valid_spec_in_normal_form_round_trips_through_render(value: dict[str, Any]) -> None:
    if spec.schema_problems(value):  # e.g. a title over 200 characters: not a spec
        return
    imported = parse_markdown(render(value), file="wave.md")
    assert imported.problems == [] and imported.unmapped == []
    assert spec.canonical(imported.spec) == spec.canonical(value)


# --- never raises ---------------------------------------------------------------------------------
PIECES = [
    "# Wave 4 - t",
    "## Agent A1: x",
    "## Agent : y",
    "## Project profile",
    "- oversight-mode: dark-factory",
    "## Sequencing note",
    "- after-waves: 1, x",
    "- note: n",
    "  more",
    "## Closure",
    "### Integration",
    "### Prompt",
    "### Executor",
    "- budget.turns: 0",
    "- budget.cost-usd: nan",
    "### Extra",
    "### Exit contract",
    "### Proof artifacts",
    "- path: | kind:",
    "### Owned files",
    "- `a`",
    "```text",
    "````",
    "~~~",
    "```",
    "File ownership:",
    "Validation:",
    "- ./d/",
    "{}",
    "- ",
    "## Deploy environments",
    "- `p`: `k` default (",
    "## Component promotions",
    "- c: pilot-live",
    "",
    "**Commit message**: ``",
]


def _assert_sound(imported: Imported, text: str) -> None:
    last = len(text.split("\n")) + 1
    assert all(1 <= item.line <= last for item in imported.problems + imported.unmapped)
    assert all(isinstance(line, int) and line >= 1 for line in imported.lines.values())
    if not imported.problems:
        assert spec.schema_problems(imported.spec) == []
        json.dumps(imported.spec)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=30)), max_size=40))
def test_any_sequence_of_wave_like_lines_is_read_without_raising(parts: list[str]) -> None:
    text = "\n".join(parts)
    _assert_sound(parse_markdown(text, file="wave-1.md"), text)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_any_text_is_read_without_raising(text: str) -> None:
    _assert_sound(parse_markdown(text, file="w.md", default_mode="oversight"), text)
