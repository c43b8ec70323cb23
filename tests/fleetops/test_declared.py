"""The agents an ecosystem serves (fleetops/declared.py): ecosystem.toml and each repo's
speedrift.toml merged, one name meaning one agent, a broken repo config a problem not a crash."""

from __future__ import annotations

from pathlib import Path

from speedrift.fleet.opsconfig import AgentDef, FleetOps, Layer
from speedrift.fleetops.declared import declared_agents

GROWTH = 'name = "{name}"\nlayer = "growth"\nprompt = "help"\n'


def eco_agent(name: str, *repos: str) -> AgentDef:
    return AgentDef(name=name, layer=Layer.GROWTH, repos=list(repos), prompt="p")


def repo_with(tmp_path: Path, name: str, toml: str) -> Path:
    path = tmp_path / name
    path.mkdir()
    (path / "speedrift.toml").write_text(toml)
    return path


def test_ecosystem_and_repo_agents_are_merged_and_an_empty_repos_means_that_repo(tmp_path: Path) -> None:
    app = repo_with(tmp_path, "app", "[[agents]]\n" + GROWTH.format(name="app-helper"))
    web = repo_with(tmp_path, "web", "[[agents]]\n" + GROWTH.format(name="both") + 'repos = ["app", "web"]\n')
    ops = FleetOps(agents=(eco_agent("reviewer", "app", "web"),))

    served, problems = declared_agents(ops, {"app": app, "web": web})

    assert problems == []
    assert {(s.name, s.repos, s.source) for s in served} == {
        ("reviewer", ("app", "web"), "ecosystem.toml"),
        ("app-helper", ("app",), "app/speedrift.toml"),
        ("both", ("app", "web"), "web/speedrift.toml"),
    }


def test_the_same_name_in_ecosystem_toml_and_a_repo_is_an_error_naming_both_and_serves_neither(
    tmp_path: Path,
) -> None:
    app = repo_with(tmp_path, "app", "[[agents]]\n" + GROWTH.format(name="reviewer"))
    ops = FleetOps(agents=(eco_agent("reviewer", "app"), eco_agent("other", "app")))

    served, problems = declared_agents(ops, {"app": app})

    assert [s.name for s in served] == ["other"]
    (problem,) = problems
    assert "'reviewer' is declared in ecosystem.toml and app/speedrift.toml" in problem
    assert "renamed" in problem


def test_the_same_name_in_two_repos_is_an_error_too(tmp_path: Path) -> None:
    repos = {n: repo_with(tmp_path, n, "[[agents]]\n" + GROWTH.format(name="twin")) for n in ("app", "web")}
    served, problems = declared_agents(FleetOps(), repos)
    assert served == [] and problems == [
        "agent 'twin' is declared in app/speedrift.toml and web/speedrift.toml: neither is served until "
        "one is renamed (an agent's state, runs and pause are keyed by its name)"
    ]


def test_a_repo_config_that_does_not_load_is_a_problem_and_the_rest_is_served(tmp_path: Path) -> None:
    broken = repo_with(tmp_path, "broken", '[[agents]]\nname = "x"\nlayer = "sometimes"\nprompt = "p"\n')
    fine = repo_with(tmp_path, "fine", "[[agents]]\n" + GROWTH.format(name="ok"))

    served, problems = declared_agents(FleetOps(), {"broken": broken, "fine": fine})

    assert [s.name for s in served] == ["ok"]
    (problem,) = problems
    assert problem.startswith("broken/speedrift.toml: its agents are not served:")
    assert "layer" in problem


def test_a_repo_agent_serving_an_unregistered_repo_is_a_problem(tmp_path: Path) -> None:
    app = repo_with(
        tmp_path, "app", "[[agents]]\n" + GROWTH.format(name="roamer") + 'repos = ["elsewhere"]\n'
    )
    served, problems = declared_agents(FleetOps(), {"app": app})
    assert served == []
    assert "'elsewhere', not registered in ecosystem.toml" in problems[0]
    assert "leave repos empty to serve 'app'" in problems[0]
