"""A reason is never cut in its actionable part: shortening keeps the trailing hint whole."""

from __future__ import annotations

from speedrift.gates import bundle as bundles
from speedrift.gates.context import result
from speedrift.gates.model import EvidenceBundle
from speedrift.gates.suite import default_gates
from speedrift.textclip import clip, split_hint

HINT = "(raise [gates.timeouts] tests in speedrift.toml if it needs longer)"
OUTPUT = " ".join(f"line{n}" for n in range(200))


def test_a_long_reason_keeps_its_hint_and_cuts_the_middle_of_the_tool_output() -> None:
    reason = f"timed out: the test command printed {OUTPUT} {HINT}"
    shortened = clip(reason, 120)
    assert shortened.endswith(HINT)
    assert shortened.startswith("timed out: the test command")
    assert "…" in shortened and "line199" in shortened  # the end of the output (its conclusion) stays


def test_nested_hints_are_kept_whole_and_a_hint_longer_than_the_limit_is_not_cut() -> None:
    reason = "ruff not installed (pip install ruff (or speedrift[gates]))"
    assert split_hint(reason) == ("ruff not installed", "(pip install ruff (or speedrift[gates]))")
    assert clip(reason, 30).endswith("(pip install ruff (or speedrift[gates]))")
    assert clip("x" * 50, 10) == "xxxxxx…xxx"  # no hint: the middle goes


def test_short_reasons_and_multiline_reasons_stay_readable() -> None:
    assert clip("1 test(s) passed", 80) == "1 test(s) passed"
    assert clip("first\n  second", 80) == "first second"
    assert clip("first\nsecond " + "x" * 100, 40, flatten=False).startswith("first\nsecond")


def test_the_summary_line_keeps_every_gates_hint_even_when_long() -> None:
    """Observed: the task log's line was cut at "set [gates.tests] comm…"."""
    no_tests = "no tests found (add tests, or set [gates.tests] command in speedrift.toml)"
    results = tuple(
        result(
            g.name,
            "skipped",
            no_tests if g.name == "tests" else f"{g.name} could not run: {OUTPUT} (install {g.name}-tool)",
        )
        for g in default_gates()
    )
    evidence = EvidenceBundle("a" * 40, "b" * 40, results, "2026-01-01T00:00:00+00:00")
    text = bundles.summary(evidence)
    assert f"tests: {no_tests}" in text
    for gate in default_gates():
        if gate.name != "tests":
            assert f"(install {gate.name}-tool)" in text
    assert text.endswith(" — unverified")


def test_a_failing_gates_long_output_is_shortened_in_the_summary_but_its_hint_is_not() -> None:
    results = (
        result("syntax", "pass", "ok"),
        result("tests", "fail", f"timed out: {OUTPUT} {HINT}"),
    )
    evidence = EvidenceBundle("a" * 40, "b" * 40, results, "2026-01-01T00:00:00+00:00")
    text = bundles.summary(evidence)
    assert HINT in text and text.endswith("— blocked by tests")
    assert len(text) <= bundles.SUMMARY_LIMIT
