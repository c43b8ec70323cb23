"""The ``[gates]`` table of ``speedrift.toml``: which gates run, which block, and how.

Every key has a default, so a repo without the table gets every gate with tools discovered from
the repo's own configuration. Unknown keys are errors (the loader in fleet/config.py names the
file and the key path).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, model_validator

GateName = Literal["syntax", "secrets", "scope", "contract", "lint", "types", "tests", "sast", "sca"]
GATE_ORDER: tuple[GateName, ...] = (
    "syntax",
    "secrets",
    "scope",
    "contract",
    "lint",
    "types",
    "tests",
    "sast",
    "sca",
)
# auto: run when the repo configures the tool (e.g. [tool.ruff]); on: always; off: never
Switch = Literal["auto", "on", "off"]
ScopeMode = Literal["default", "strict", "disabled"]
BlockSeverity = Literal["critical", "high", "medium", "low"]
# auto: a repo with tests must run them to land, a repo without lands "done (unverified)";
# always: no tests (or tests that cannot run) never land; never: the tests gate never blocks for that
RequireTests = Literal["auto", "always", "never"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretsConfig(_Strict):
    baseline: str = ".secrets.baseline"  # a detect-secrets baseline, read from the base commit
    exclude: list[str] = Field(default_factory=list)  # globs of files never scanned


class TestsConfig(_Strict):
    command: list[str] | None = None  # argv; default: detected (pytest, npm, go, cargo, make test)
    junit: bool = True  # add --junitxml to a pytest command for per-test outcomes


class LintConfig(_Strict):
    ruff: Switch = "auto"
    eslint: Switch = "auto"


class TypesConfig(_Strict):
    mypy: Switch = "auto"
    tsc: Switch = "auto"


class SastConfig(_Strict):
    semgrep: Switch = "on"  # with speedrift's shipped rules; a repo's own rule files may be added
    ruff_security: Switch = "on"  # ruff's S (bandit) rules on changed Python files
    rules: list[str] = Field(default_factory=list)  # extra semgrep rule files, relative to the repo
    block_severity: BlockSeverity = "high"  # new findings at or above it fail the gate


class ScaConfig(_Strict):
    pip_audit: Switch = "auto"
    npm_audit: Switch = "auto"


class GatesConfig(_Strict):
    skip: list[GateName] = Field(default_factory=list)  # reported as skipped: disabled in speedrift.toml
    required: list[GateName] = Field(default_factory=list)  # warn/skipped block for these
    scope: ScopeMode = "default"  # the SCOPE_STRICT environment variable overrides it
    require_tests: RequireTests = "auto"  # does landing need the repo's tests to have run?
    timeout_seconds: float = Field(default=600, gt=0)  # per gate
    total_timeout_seconds: float = Field(default=3600, gt=0)  # the whole suite
    timeouts: dict[GateName, PositiveFloat] = Field(default_factory=dict)  # per-gate overrides, seconds
    max_file_mb: float = Field(default=10, gt=0)  # larger files get the cheap checks only
    schemas: dict[str, str] = Field(default_factory=dict)  # glob -> JSON Schema (path[#/pointer])
    tools: dict[str, str] = Field(default_factory=dict)  # tool name -> executable to use
    secrets: SecretsConfig = Field(default_factory=SecretsConfig)
    tests: TestsConfig = Field(default_factory=TestsConfig)
    lint: LintConfig = Field(default_factory=LintConfig)
    types: TypesConfig = Field(default_factory=TypesConfig)
    sast: SastConfig = Field(default_factory=SastConfig)
    sca: ScaConfig = Field(default_factory=ScaConfig)

    @model_validator(mode="after")
    def _tests_required_but_skipped(self) -> GatesConfig:
        if self.require_tests == "always" and "tests" in self.skip:
            raise ValueError(
                'require_tests = "always" contradicts skip = ["tests"] (remove "tests" from [gates] skip)'
            )
        return self

    def timeout_for(self, gate: str) -> float:
        for name, seconds in self.timeouts.items():
            if name == gate:
                return float(seconds)
        return self.timeout_seconds
