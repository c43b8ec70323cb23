"""The wave importer (plans/importer.py) on wave-orchestration's authored Markdown — the
reference's example wave (fixtures/reference/wave-5.md, the example written for the research
report, §A.5) and hand-made waves — read into a spec with the line of every value; what is kept but
not modelled and what cannot be read, each with its line; fence-awareness; and `speedrift plan
import` through the real CLI. Speedrift's own form: test_importer_forms.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from speedrift.plans import spec
from speedrift.plans.import_grammar import KEPT_EXECUTOR
from speedrift.plans.importer import Imported, parse_markdown
from speedrift.plans.mdparse import code_span, fence_for, spans, unspan
from speedrift.plans.render import render
from tests.cli.support import Cli, git

FIXTURE = Path(__file__).parent / "fixtures" / "reference" / "wave-5.md"
CONTRACT = {
    "completion": "integrated",
    "durability": "durable",
    "proof": "integration",
    "doc_impact": "owned",
}


def _reference() -> Imported:
    return parse_markdown(FIXTURE.read_text(encoding="utf-8"), file="fixtures/reference/wave-5.md")


def _line_of(text: str, needle: str) -> int:
    """The 1-based line of the first line of ``text`` equal to ``needle``."""
    return text.split("\n").index(needle) + 1


def _wave(*agents: str, top: str = "") -> str:
    return "# Wave 3 - Test wave\n\n" + top + "".join(agents)


def _agent(
    agent_id: str = "A1", *, sections: str = "", prompt: str = "Do it.\n\nFile ownership:\n- src/a.py"
) -> str:
    opening, closing = fence_for(prompt, "text")
    return f"## Agent {agent_id}: Work\n\n{sections}### Prompt\n\n{opening}\n{prompt}\n{closing}\n\n"


def _problems(imported: Imported) -> list[tuple[int, str]]:
    return [(item.line, item.why) for item in imported.problems]


# --- the reference's example wave -------------------------------------------------------------------
def test_the_reference_example_wave_imports_into_a_schema_valid_spec() -> None:
    imported = _reference()
    assert imported.problems == []
    assert spec.schema_problems(imported.spec) == []
    value = imported.spec
    assert (value["wave"], value["mode"]) == (5, "dark-factory")  # wave from the file, mode from the profile
    assert value["title"] == "Token-bucket rate limiting for the public API"
    assert value["commit_message"] == "Feat: add token-bucket limiter to public API"
    assert value["deploy_environments"] == [
        {"id": "staging", "kind": "docker-compose", "default": True, "notes": "local compose stack"},
        {"id": "prod", "kind": "kubernetes"},
    ]
    assert value["component_promotions"] == [{"component": "api-rate-limiter", "level": "baseline-proved"}]
    assert "sequencing" not in value  # "Runs after wave 4 …" is prose: no order is guessed from it
    assert sorted(value["prose"]) == [
        "Context7 defaults",
        "Eval targets",
        "Project profile (imported)",
        "Sequencing note",
    ]
    assert (
        value["prose"]["Project profile (imported)"] == "- project: Acme API\n- new-project: no\n- lane: main"
    )


def test_the_reference_example_implementation_agent_becomes_one_task() -> None:
    [task] = _reference().spec["tasks"]
    assert (task["id"], task["title"], task["role"]) == ("a1", "Limiter Middleware", "implementation")
    assert task["owned"] == [
        "src/middleware/rate-limit.ts",
        "test/middleware/rate-limit.test.ts",
        "docs/api/rate-limits.md",
        ".tmp/wave-5-proof/**",  # a directory of the prompt's File ownership list
    ]
    assert task["validation"] == ["pnpm test -- test/middleware/rate-limit.test.ts"]
    assert task["deliverables"] == ["src/middleware/rate-limit.ts", "test/middleware/rate-limit.test.ts"]
    assert task["exit_contract"] == CONTRACT
    assert task["components"] == ["api-rate-limiter"] and task["capabilities"] == ["rate-limiting", "redis"]
    assert task["runtime"] == {
        "model": "gpt-5-codex",
        "fallbacks": ["claude"],
        "wall_clock_minutes": 40,
        "max_turns": 60,
    }
    assert task["extra"] == {
        "executor": {
            "profile": "implement-fast",
            "codex.config": "model_reasoning_effort=medium",
            "retry-policy": "fallback-allowed",
        },
        "context7": {
            "bundle": "node-typescript",
            "query": "express middleware error handling, ioredis pipelines",
        },
        "skills": ["role-implementation", "provider-docker-compose"],
        "proof_artifacts": [
            {
                "path": ".tmp/wave-5-proof/limiter-bench.json",
                "kind": "benchmark",
                "required_for": ["baseline-proved"],
            }
        ],
    }
    assert task["prompt"].startswith("Primary goal:\n- Add a Redis-backed token bucket")
    assert task["prompt"].endswith("Validation:\n- pnpm test -- test/middleware/rate-limit.test.ts")


def test_the_reference_example_closure_agents_become_closure_guidance_not_tasks() -> None:
    imported = _reference()
    closure = imported.spec["closure"]
    assert closure["integration"].startswith("Reconcile limiter config keys against the gateway")
    assert closure["documentation"].startswith("Record limiter status and rollout notes")
    # cont-QA (A0) and cont-EVAL (E0) both guide the evaluation stage, in the file's order
    first, second = closure["evaluation"].split("\n\nRun the smallest")
    assert first.startswith("Judge whether wave 5 is closure-ready")
    assert second.startswith(" latency-regression benchmark set")
    reported = {item.what: item.why for item in imported.unmapped if item.what.startswith("## Agent")}
    assert sorted(reported) == [
        "## Agent A0: cont-QA",
        "## Agent A8: Integration Steward",
        "## Agent A9: Documentation Steward",
        "## Agent E0: cont-EVAL",
    ]
    assert "compile adds the closure tasks itself" in reported["## Agent A8: Integration Steward"]


def test_the_reference_example_reports_what_it_keeps_with_lines() -> None:
    imported = _reference()
    text = FIXTURE.read_text(encoding="utf-8")
    found = {(item.line, item.what) for item in imported.unmapped}
    assert (_line_of(text, "## Context7 defaults"), "## Context7 defaults") in found
    assert (_line_of(text, "## Eval targets"), "## Eval targets") in found
    assert (_line_of(text, "## Sequencing note"), "## Sequencing note") in found
    assert (_line_of(text, "- project: Acme API"), "## Project profile: - project: Acme API") in found
    assert (_line_of(text, "- profile: implement-fast"), "Agent A1: ### Executor: profile") in found
    assert (
        _line_of(text, "- codex.config: model_reasoning_effort=medium"),
        "Agent A1: ### Executor: codex.config",
    ) in found
    assert (_line_of(text, "### Skills"), "Agent A1: ### Skills") in found
    assert (_line_of(text, "### Proof artifacts"), "Agent A1: ### Proof artifacts") in found
    context7 = [item for item in imported.unmapped if item.what == "Agent A1: ### Context7"]
    assert [item.why for item in context7] == ["speedrift has no Context7 bundles; kept in extra.context7"]
    assert [item.line for item in imported.unmapped] == sorted(item.line for item in imported.unmapped)


def test_the_reference_example_maps_every_value_to_its_line() -> None:
    imported = _reference()
    text = FIXTURE.read_text(encoding="utf-8")
    lines = imported.lines
    assert lines["$.title"] == 1 and lines["$.commit_message"] == 3
    assert lines["$.mode"] == _line_of(text, "- oversight-mode: dark-factory")
    assert lines["$.deploy_environments[1]"] == _line_of(text, "- `prod`: `kubernetes`")
    assert lines["$.tasks[0]"] == _line_of(text, "## Agent A1: Limiter Middleware")
    assert lines["$.tasks[0].owned[3]"] == _line_of(text, "- .tmp/wave-5-proof/")
    assert lines["$.tasks[0].validation[0]"] == _line_of(
        text, "- pnpm test -- test/middleware/rate-limit.test.ts"
    )
    assert lines["$.tasks[0].runtime.max_turns"] == _line_of(text, "- budget.turns: 60")
    assert lines["$.tasks[0].exit_contract.doc_impact"] == _line_of(text, "- doc-impact: owned")
    assert lines["$.tasks[0].deliverables[1]"] == _line_of(text, "- test/middleware/rate-limit.test.ts")
    assert (
        lines["$.tasks[0].prompt"]
        == _line_of(text, "- Add a Redis-backed token bucket (100 req/min per principal) in front of /v1/*.")
        - 1
    )
    assert lines["$.prose.Eval targets"] == _line_of(text, "## Eval targets")
    assert lines["$.closure.integration"] == _line_of(
        text, "Reconcile limiter config keys against the gateway and docs owners."
    )


def test_the_reference_example_round_trips_through_render() -> None:
    value = _reference().spec
    again = parse_markdown(render(value), file="plans/waves/wave-5.md")
    assert again.problems == [] and again.unmapped == []
    assert spec.canonical(again.spec) == spec.canonical(value)


# --- fences ---------------------------------------------------------------------------------------
def test_headings_inside_a_fenced_prompt_are_prompt_text_not_sections() -> None:
    prompt = (
        "Write the docs.\n\n"
        "````markdown\n### Deliverables\n- not/a/deliverable.md\n```\n"
        "## Agent Z9: not an agent\n```\n````\n\n"
        "~~~\n### Exit contract\n~~~\n\nFile ownership:\n- docs/guide.md"
    )
    imported = parse_markdown(_wave(_agent(prompt=prompt), _agent("A2")), file="wave-3.md")
    assert imported.problems == []
    first, second = imported.spec["tasks"]
    assert first["prompt"] == prompt
    assert "deliverables" not in first and "exit_contract" not in first
    assert first["owned"] == ["docs/guide.md"] and second["id"] == "a2"


def test_a_longer_fence_closes_only_on_a_fence_at_least_as_long() -> None:
    text = _wave(_agent(prompt="x"), top="## Notes\n\n~~~~\n## Still notes\n~~~\nstill\n~~~~~\n\n")
    imported = parse_markdown(text, file="wave-3.md")
    assert imported.problems == []
    assert imported.spec["prose"]["Notes"] == "~~~~\n## Still notes\n~~~\nstill\n~~~~~"


def test_a_fence_that_is_never_closed_is_a_problem_at_its_opening_line() -> None:
    text = _wave("## Agent A1: Work\n\n### Prompt\n\n```text\nDo it.\n\n## Agent A2: swallowed\n")
    imported = parse_markdown(text, file="wave-3.md")
    assert (7, "a fenced block that is never closed") in _problems(imported)
    assert [task["id"] for task in imported.spec["tasks"]] == ["a1"]


def test_code_spans_and_fences_read_back_what_they_wrap() -> None:
    for text in ("plain", "a`b", "``x``", " padded ", "`", "a ``` b"):
        assert unspan(code_span(text)) == text
    assert spans(", ".join(code_span(t) for t in ("a, b", "c`d"))) == ["a, b", "c`d"]
    assert spans("a, b") == ["a", "b"] and spans("`a` b") is None
    assert fence_for("x\n```\n  ````y\n   `````\n")[0] == "``````"
    assert fence_for("plain", "text") == ("```text", "```")


# --- what cannot be read, with its line ------------------------------------------------------------
def test_a_malformed_executor_line_is_a_problem_at_its_line_and_the_rest_is_read() -> None:
    sections = (
        "### Executor\n\n- id: claude\n- budget.minutes forty\n- budget.turns: many\n"
        "- codex.turbo: yes\n- model: opus\n\n"
    )
    imported = parse_markdown(_wave(_agent(sections=sections)), file="wave-3.md")
    assert _problems(imported) == [
        (8, "not a `- key: value` line of `### Executor`"),
        (9, "budget.turns is a positive whole number"),
        (10, "not an executor key wave-orchestration or speedrift knows"),
    ]
    assert imported.spec["tasks"][0]["runtime"] == {"runtime": "claude", "model": "opus"}


def test_a_local_executor_is_kept_in_extra_and_reported_not_made_a_runtime() -> None:
    sections = "### Executor\n\n- id: local\n- fallbacks: codex, local\n- budget.cost-usd: 2.5\n\n"
    imported = parse_markdown(_wave(_agent(sections=sections)), file="wave-3.md")
    task = imported.spec["tasks"][0]
    assert task["runtime"] == {"fallbacks": ["codex"], "max_cost_usd": 2.5}
    assert task["extra"]["executor"] == {"id": "local", "fallbacks": "codex, local"}
    assert {item.line for item in imported.unmapped} == {7, 8}


def test_an_unknown_section_is_kept_verbatim_as_prose_and_reported() -> None:
    top = "## Rollout notes\n\nShip on a Tuesday.\n\n### Not a subsection\n- keep me\n\n"
    imported = parse_markdown(_wave(_agent(), top=top), file="wave-3.md")
    assert imported.problems == []
    assert imported.spec["prose"] == {
        "Rollout notes": "Ship on a Tuesday.\n\n### Not a subsection\n- keep me"
    }
    assert imported.lines["$.prose.Rollout notes"] == 3
    assert [(item.line, item.what) for item in imported.unmapped] == [(3, "## Rollout notes")]


def test_an_unknown_agent_section_is_kept_in_extra_and_reported() -> None:
    imported = parse_markdown(_wave(_agent(sections="### Risks\n\nRedis may be down.\n\n")), file="wave-3.md")
    assert imported.spec["tasks"][0]["extra"] == {"sections": {"Risks": "Redis may be down."}}
    assert [(item.line, item.what) for item in imported.unmapped] == [(5, "Agent A1: ### Risks")]


def test_only_an_after_waves_line_orders_waves_and_prose_mixed_with_it_is_a_problem() -> None:
    speedrift = (
        "## Sequencing note\n\n- after-waves: 1, 2\n- needs-artifacts: `docs/api.md`\n"
        "- note: first\n  second\n\n"
    )
    value = parse_markdown(_wave(_agent(), top=speedrift), file="wave-3.md").spec
    assert value["sequencing"] == {
        "after_waves": [1, 2],
        "needs_artifacts": ["docs/api.md"],
        "note": "first\nsecond",
    }
    prose = "## Sequencing note\n\n- Runs after wave 2 and after waves 1, 0.\n\n"
    value = parse_markdown(_wave(_agent(), top=prose), file="wave-3.md").spec
    assert "sequencing" not in value and value["prose"]["Sequencing note"].startswith("- Runs after wave 2")
    mixed = "## Sequencing note\n\n- after-waves: 1\n- Runs after wave 2.\n\n"
    assert _problems(parse_markdown(_wave(_agent(), top=mixed), file="wave-3.md"))[0][0] == 6


def test_role_prompts_give_security_and_design_roles_and_closure_ids_are_recognised_without_them() -> None:
    security = _agent("A7", sections="### Role prompts\n\n- docs/agents/wave-security-role.md\n\n")
    design = _agent("D1", sections="### Role prompts\n\n- `docs/agents/wave-design-role.md`\n\n")
    steward = _agent("A8", prompt="Reconcile everything.")
    imported = parse_markdown(_wave(security, design, steward), file="wave-3.md")
    assert [(t["id"], t["role"]) for t in imported.spec["tasks"]] == [("a7", "security"), ("d1", "design")]
    assert imported.spec["closure"] == {"integration": "Reconcile everything."}
    assert imported.spec["tasks"][0]["extra"]["role_prompts"] == ["docs/agents/wave-security-role.md"]


def test_agent_ids_become_task_ids_and_a_clash_is_a_problem() -> None:
    imported = parse_markdown(_wave(_agent("QA.2"), _agent("qa 2")), file="wave-3.md")
    assert [t["id"] for t in imported.spec["tasks"]] == ["qa-2", "qa-2"]
    assert any("a second task with id 'qa-2'" in why for _line, why in _problems(imported))
    assert ("## Agent QA.2", "task ids are lowercase letters, digits and -: qa-2") in [
        (item.what, item.why) for item in imported.unmapped
    ]


def test_what_the_schema_refuses_is_a_problem_at_the_line_of_the_value() -> None:
    sections = "### Role\n\n- implementation\n\n### Depends on\n\n- a2\n- a2\n\n"
    imported = parse_markdown(_wave(_agent(sections=sections), _agent("A2")), file="wave-3.md")
    [(line, why)] = _problems(imported)
    assert line == 9 and "non-unique" in why  # `after` holds a2 twice: the line of ### Depends on


@pytest.mark.parametrize(
    ("sections", "line", "why"),
    [
        ("### Exit contract\n\n- completion: integrated\n- proof: sometimes\n\n", 8, "not a proof level"),
        ("### Exit contract\n\n- completion: integrated\n\n", 5, "missing durability, proof, doc-impact"),
        ("### Proof artifacts\n\n- path: a.json | required-for: shipped\n\n", 7, "not a maturity level"),
        ("### Components\n\n- Api_Limiter\n\n", 7, "not an id of lowercase letters"),
        ("### Extra\n\n```json\n[1]\n```\n\n", 7, "not a JSON object"),
    ],
)
def test_a_section_that_breaks_its_grammar_is_a_problem_at_its_line(
    sections: str, line: int, why: str
) -> None:
    imported = parse_markdown(_wave(_agent(sections=sections)), file="wave-3.md")
    assert any(found == line and why in message for found, message in _problems(imported)), _problems(
        imported
    )


def test_an_agent_without_a_prompt_is_a_problem() -> None:
    imported = parse_markdown(_wave("## Agent A1: Work\n\n### Deliverables\n\n- a.py\n"), file="wave-3.md")
    assert _problems(imported)[0] == (3, "no `### Prompt` section (a fenced block with the task's prompt)")


# --- the wave number and the mode -----------------------------------------------------------------
def test_the_wave_number_comes_from_the_argument_then_the_file_name_then_the_title() -> None:
    text = _wave(_agent())
    assert parse_markdown(text, file="x/wave-7.md", wave=8).spec["wave"] == 8
    from_name = parse_markdown(text, file="x/wave-7.md")
    assert from_name.spec["wave"] == 7
    assert [(i.line, i.why) for i in from_name.unmapped] == [(1, "the title says wave 3; the spec is wave 7")]
    assert parse_markdown(text, file="notes.md").spec["wave"] == 3
    untitled = parse_markdown("# Limiter\n\n" + _agent(), file="notes.md")
    assert untitled.spec["wave"] == 0 and untitled.spec["title"] == "Limiter"
    assert _problems(untitled) == [
        (1, "no wave number: not in the title, and the file is not named wave-<n>.md")
    ]


def test_the_mode_comes_from_the_profile_then_the_default() -> None:
    assert parse_markdown(_wave(_agent()), file="wave-3.md").spec["mode"] == "oversight"
    assert (
        parse_markdown(_wave(_agent()), file="wave-3.md", default_mode="dark-factory").spec["mode"]
        == "dark-factory"
    )
    profiled = _wave(_agent(), top="## Project profile\n\n- oversight-mode: yolo\n\n")
    assert _problems(parse_markdown(profiled, file="wave-3.md", default_mode="dark-factory")) == [
        (5, "not a mode: oversight, dark-factory")
    ]


def test_a_crlf_file_reads_like_its_lf_form() -> None:
    text = FIXTURE.read_text(encoding="utf-8")
    crlf = parse_markdown(text.replace("\n", "\r\n"), file="wave-5.md")
    assert spec.canonical(crlf.spec) == spec.canonical(_reference().spec)


# --- the CLI --------------------------------------------------------------------------------------
@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "acme"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    return path


def test_plan_import_writes_the_spec_and_markdown_and_says_what_lint_found(repo: Path) -> None:
    done = Cli(repo).fails(1, "plan", "import", str(FIXTURE))
    assert "Wave 5 - Token-bucket rate limiting for the public API (dark-factory): 1 task(s)" in done.stdout
    assert "written: plans/waves/specs/wave-5.json, plans/waves/wave-5.md" in done.stdout
    assert "Kept but not modelled (14):" in done.stdout
    assert "problem(s) in the wave — fix them before `speedrift plan compile`" in done.stdout
    assert "$.validation: a dark-factory wave has no validation commands" in done.stdout
    assert spec.spec_path(repo, 5).read_bytes() == spec.canonical(_reference().spec)
    assert spec.markdown_path(repo, 5).read_text(encoding="utf-8") == render(_reference().spec)


CLEAN = {
    "schema": spec.SCHEMA_ID,
    "wave": 2,
    "title": "Search",
    "mode": "oversight",
    "validation": ["pytest -q"],
    "tasks": [
        {
            "id": "index",
            "title": "Build the index",
            "role": "implementation",
            "owned": ["search/**"],
            "deliverables": ["search/index.py"],
            "exit_contract": CONTRACT,
            "runtime": {"runtime": "codex"},
            "prompt": "Build it.",
        }
    ],
}


def test_plan_import_of_a_clean_wave_exits_0_and_refuses_to_replace_it_without_force(repo: Path) -> None:
    source = repo / "search.md"
    source.write_text(render(CLEAN), encoding="utf-8")
    cli = Cli(repo)
    report = cli.json("plan", "import", str(source))
    assert report["written"] == ["plans/waves/specs/wave-2.json", "plans/waves/wave-2.md"]
    assert (report["wave"], report["unmapped"], report["problems"], report["lint"]) == (2, [], [], [])
    assert spec.spec_path(repo, 2).read_bytes() == spec.canonical(CLEAN)
    refused = cli.fails(1, "plan", "import", str(source))
    assert "plans/waves/specs/wave-2.json exists" in refused.stderr and "--force" in refused.stderr
    assert spec.spec_path(repo, 2).read_bytes() == spec.canonical(CLEAN)
    done = cli.ok("plan", "import", str(source), "--force")
    assert "Lint: no problems" in done.stdout
    moved = cli.json("plan", "import", str(source), "--wave", "6")
    assert moved["written"][0] == "plans/waves/specs/wave-6.json" and moved["spec"]["wave"] == 6


def test_plan_import_dry_run_prints_the_spec_and_writes_nothing(repo: Path) -> None:
    source = repo / "notes.md"
    source.write_text(render(CLEAN), encoding="utf-8")
    done = Cli(repo).ok("plan", "import", str(source), "--dry-run")
    assert '"schema": "speedrift.wave/1"' in done.stdout and "--dry-run: nothing written" in done.stdout
    assert not (repo / spec.PLANS_DIR).exists()


def test_plan_import_takes_the_mode_from_the_project_profile_when_the_file_names_none(repo: Path) -> None:
    (repo / "plans").mkdir()
    (repo / "plans" / "project.toml").write_text('default_mode = "dark-factory"\n', encoding="utf-8")
    source = repo / "wave-3.md"
    source.write_text(_wave(_agent()), encoding="utf-8")
    report = Cli(repo).fails(1, "plan", "import", str(source), "--json", "--dry-run").json()
    assert report["spec"]["mode"] == "dark-factory" and report["written"] == []
    kinds = {finding["kind"] for finding in report["lint"]}
    assert {"missing_validation", "tests_gate_off"} <= kinds  # what a dark-factory wave needs


def test_plan_import_of_a_file_with_problems_names_them_and_writes_nothing(repo: Path) -> None:
    source = repo / "wave-3.md"
    source.write_text(_wave(_agent(sections="### Executor\n\n- budget.turns: lots\n\n")), encoding="utf-8")
    done = Cli(repo).fails(1, "plan", "import", str(source))
    assert "cannot be imported: 1 problem(s); nothing written" in done.stdout
    assert "wave-3.md:7: budget.turns: lots — budget.turns is a positive whole number" in done.stdout
    assert not (repo / spec.PLANS_DIR).exists()
    Cli(repo).fails(2, "plan", "import", str(repo / "missing.md"))


def test_each_of_wave_orchestrations_41_executor_keys_is_read_and_the_unmodelled_ones_kept() -> None:
    modelled = {"id": "claude", "model": "opus", "fallbacks": "codex"}
    modelled |= {"budget.minutes": "5", "budget.turns": "9"}
    kept = {key: "1" for key in sorted(KEPT_EXECUTOR)}
    assert len(modelled) + len(kept) == 41
    lines = "".join(f"- {key}: {value}\n" for key, value in {**modelled, **kept}.items())
    imported = parse_markdown(_wave(_agent(sections=f"### Executor\n\n{lines}\n")), file="wave-3.md")
    assert imported.problems == []
    task = imported.spec["tasks"][0]
    assert task["extra"]["executor"] == kept
    assert task["runtime"] == {
        "runtime": "claude",
        "model": "opus",
        "fallbacks": ["codex"],
        "wall_clock_minutes": 5,
        "max_turns": 9,
    }
    assert len(imported.unmapped) == len(kept)
