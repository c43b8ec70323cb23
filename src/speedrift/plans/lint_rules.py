"""The lint rules of a wave: their kinds and, for each, what it reports, why and the usual fix.

The vocabulary plans/lint.py reports in and docs/plans.md lists (one line per rule). Pure data.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class LintKind(StrEnum):
    SCHEMA = "schema"
    WAVE_MISMATCH = "wave_mismatch"
    EMPTY_WAVE = "empty_wave"
    DUPLICATE_TASK = "duplicate_task"
    UNKNOWN_DEPENDENCY = "unknown_dependency"
    DEPENDENCY_CYCLE = "dependency_cycle"
    NO_OWNED_FILES = "no_owned_files"
    OWNERSHIP_OVERLAP = "ownership_overlap"
    PATH_OUTSIDE_REPO = "path_outside_repo"
    DELIVERABLE_NOT_A_FILE = "deliverable_not_a_file"
    DELIVERABLE_OUTSIDE_OWNED = "deliverable_outside_owned"
    MISSING_EXIT_CONTRACT = "missing_exit_contract"
    UNKNOWN_ROLE = "unknown_role"
    UNKNOWN_RUNTIME = "unknown_runtime"
    MISSING_VALIDATION = "missing_validation"
    TESTS_GATE_OFF = "tests_gate_off"
    DUPLICATE_DEPLOY_ENVIRONMENT = "duplicate_deploy_environment"
    MISSING_DEPLOY_ENVIRONMENT = "missing_deploy_environment"
    UNKNOWN_DEPLOY_ENVIRONMENT = "unknown_deploy_environment"
    MISSING_ROLLBACK = "missing_rollback"
    UNKNOWN_WAVE = "unknown_wave"
    UNKNOWN_COMPONENT = "unknown_component"
    DUPLICATE_COMPONENT = "duplicate_component"
    UNCLAIMED_COMPONENT = "unclaimed_component"
    UNMAPPED_MARKDOWN = "unmapped_markdown"


@dataclass(frozen=True)
class Rule:
    what: str  # what the rule reports
    why: str  # why that is a problem
    fix: str  # the usual fix (a finding may say something more precise)


K = LintKind  # short, for the table
RULES: dict[LintKind, Rule] = {
    K.SCHEMA: Rule(
        "the spec does not match the wave schema (or is not JSON, or its Markdown cannot be read)",
        "nothing else can read it reliably",
        "make it match the wave schema (docs/plans.md, The spec)",
    ),
    K.WAVE_MISMATCH: Rule(
        "the file's wave number (wave-<n>) differs from the spec's `wave`",
        "commands find waves by file name",
        "make the wave number and the file name agree",
    ),
    K.EMPTY_WAVE: Rule("a wave with no tasks", "it would close having done nothing", "add the wave's tasks"),
    K.DUPLICATE_TASK: Rule(
        "two tasks with one id", "ids name tasks in the graph", "give each task its own id"
    ),
    K.UNKNOWN_DEPENDENCY: Rule(
        "`after` names a task that is not in the wave",
        "the task could never start",
        "name a task of this wave (an earlier wave goes in sequencing.after_waves)",
    ),
    K.DEPENDENCY_CYCLE: Rule(
        "tasks that run after each other, directly or through others (or after themselves)",
        "none of them could start",
        "remove one of the dependencies",
    ),
    K.NO_OWNED_FILES: Rule(
        "a task that owns no file", "it may change nothing", "list the files (or globs) it may change"
    ),
    K.OWNERSHIP_OVERLAP: Rule(
        "two tasks that may run at the same time (neither after the other) own overlapping files",
        "parallel work on one file conflicts at merge",
        "make one run after the other (`after`), or give the files to one of them",
    ),
    K.PATH_OUTSIDE_REPO: Rule(
        "an owned file, deliverable or needed artifact outside the repository, or in .git/, "
        ".speedrift/ or the graph",
        "no task may write there",
        "give a path relative to the repository root, inside it",
    ),
    K.DELIVERABLE_NOT_A_FILE: Rule(
        "a deliverable that is a glob or a directory",
        "a deliverable is checked file by file",
        "name each file the task must deliver",
    ),
    K.DELIVERABLE_OUTSIDE_OWNED: Rule(
        "a deliverable the task does not own",
        "the task could not write it",
        "add it (or a glob covering it) to the task's owned files",
    ),
    K.MISSING_EXIT_CONTRACT: Rule(
        "a task with no exit contract",
        "nothing says when it is done",
        "add exit_contract {completion, durability, proof, doc_impact}",
    ),
    K.UNKNOWN_ROLE: Rule(
        "a task role speedrift does not know (closure roles included)",
        "no role runs it",
        "use implementation, qa, infra, deploy, design, security or docs",
    ),
    K.UNKNOWN_RUNTIME: Rule(
        "a runtime or fallback speedrift cannot run",
        "the task could not start",
        "use claude, codex, opencode or shell",
    ),
    K.MISSING_VALIDATION: Rule(
        "a dark-factory wave with no validation commands",
        "nobody checks the integrated result",
        "add the commands speedrift runs before the wave closes (e.g. the test suite)",
    ),
    K.TESTS_GATE_OFF: Rule(
        "a dark-factory wave in a repo whose tests gate cannot block (skipped, require_tests = "
        '"never", or "auto" with no tests found)',
        "untested work would land with no person watching",
        'set [gates] require_tests = "always" in speedrift.toml (and keep "tests" out of [gates] '
        "skip), or use mode oversight",
    ),
    K.DUPLICATE_DEPLOY_ENVIRONMENT: Rule(
        "an environment declared twice, or two marked default",
        "a deploy would not know which one is meant",
        "declare each environment once, one of them default",
    ),
    K.MISSING_DEPLOY_ENVIRONMENT: Rule(
        "a deploy task that names no environment while the wave has no default one (none declared, "
        "or several and none marked default)",
        "the deploy target would be a guess",
        "name the environment in the task's deploy, or mark one of deploy_environments default",
    ),
    K.UNKNOWN_DEPLOY_ENVIRONMENT: Rule(
        "a deploy task names an environment the wave does not declare",
        "the deploy target is unknown",
        "declare it in deploy_environments, or name one that is",
    ),
    K.MISSING_ROLLBACK: Rule(
        "a deploy task of a dark-factory wave without deploy.rollback",
        "no person will improvise one",
        "say in deploy.rollback how to undo the deploy",
    ),
    K.UNKNOWN_WAVE: Rule(
        "sequencing.after_waves names a wave with no spec, this wave or a later one",
        "the order of the waves would be undefined",
        "name earlier waves that exist",
    ),
    K.UNKNOWN_COMPONENT: Rule(
        "a task works on a component the wave does not promote",
        "its target maturity is unknown",
        "add it to component_promotions with its target level, or remove it",
    ),
    K.DUPLICATE_COMPONENT: Rule(
        "a component promoted twice", "its target level is ambiguous", "promote each component once"
    ),
    K.UNCLAIMED_COMPONENT: Rule(
        "a promoted component no task works on",
        "nobody delivers the promotion",
        "list it in the components of the tasks that deliver it, or drop the promotion",
    ),
    K.UNMAPPED_MARKDOWN: Rule(
        "a part of a wave's Markdown speedrift keeps (as prose or extra settings) but does not act on",
        "what it says is neither enforced nor run",
        "say it with the spec's fields (docs/plans.md), or drop it",
    ),
}
