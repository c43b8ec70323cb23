"""The chaos suite's checks are not vacuous: on a clean workshop they find nothing, and each kind of
damage the kills could leave — a torn record, a lost ledger record, a double landing, a task done
without its landing, a stuck claim, deleted unmerged work, a git lock — is found and counted.

Real files, real git, the real chaos ecosystem (no hub, no kills: the damage is made by hand).
"""

from __future__ import annotations

from pathlib import Path

from speedrift import layout
from speedrift.cli.chaos import ecosystem, invariants
from speedrift.cli.chaos.figures import VIOLATIONS, Figures
from speedrift.graph import ops
from speedrift.register.ledger import Ledger


def git(repo: Path, *args: str) -> str:
    return ecosystem.git(repo, *args)


def judge(shop: ecosystem.Workshop, tips: dict[str, set[str]], seen: set[str]) -> Figures:
    figures = Figures(seed=0, budget_s=0)
    logs = shop.root / "logs"
    logs.mkdir(exist_ok=True)
    invariants.check(figures, shop, logs, shop.root / "state", tips, seen)
    return figures


def test_the_checks_find_nothing_on_a_clean_workshop_and_each_kind_of_damage_once_it_is_made(
    tmp_path: Path,
) -> None:
    shop = ecosystem.build(tmp_path)
    for _ in range(4):
        shop.add_task("line")
    line, store = shop.repo("line"), shop.store("line")
    Ledger(shop.hub).append({"cycle_id": "c-20260101T000000Z-aaaaaa", "generated_at": "2026-01-01T00:00:00Z"})

    clean = judge(shop, {}, {"c-20260101T000000Z-aaaaaa"})
    assert clean.violation_total == 0, clean.details

    # a torn record, and a JSONL log whose last line lost its newline
    (layout.state_dir(line) / "torn.json").write_text('{"half": ')
    (layout.state_dir(line) / "half.jsonl").write_text('{"a": 1}\n{"b": ')
    # l0000 landed twice: its line twice on main, two commits with its trailer
    (line / "out").mkdir()
    for _ in range(2):
        with open(line / "out" / "l0000.txt", "a") as out:
            out.write("l0000\n")
        git(line, "add", "out")
        git(line, "commit", "-qm", "l0000: again\n\nSpeedrift-Task: l0000")
    # l0001 marked done with nothing on main; l0002 claimed by nobody alive
    store.mutate(lambda g, now: ops.done(g, "l0001", now=now, actor="chaos"))
    store.mutate(lambda g, now: ops.claim(g, "l0002", now=now, actor="chaos"))
    # an attempt's commit seen during the run, then its branch deleted with the work nowhere else
    git(line, "checkout", "-qb", "speedrift/l0003-a1")
    (line / "unmerged.txt").write_text("work that exists only on this branch\n")
    git(line, "add", "unmerged.txt")
    git(line, "commit", "-qm", "unmerged work")
    tip = git(line, "rev-parse", "HEAD").strip()
    git(line, "checkout", "-q", "main")
    git(line, "branch", "-D", "speedrift/l0003-a1")
    # a git lock left behind
    (line / ".git" / "index.lock").write_text("")
    # a cycle a hub printed, one seen in the ledger during the run: neither is in the ledger now
    (shop.root / "logs" / "hub-001.out").write_text(
        "2026-01-01T00:00:01.000000Z c-20260101T000001Z-bbbbbb execute: 1 healthy; 0 planned\n"
    )

    damaged = judge(shop, {"line": {tip}}, {"c-20260101T000000Z-aaaaaa", "c-20260101T000002Z-cccccc"})

    found = {kind: damaged.violations[kind] for kind in VIOLATIONS}
    assert found["torn file"] >= 2, damaged.details
    assert found["lost ledger record"] == 2, damaged.details
    assert found["double landing"] >= 1 and found["done without landing"] == 1, damaged.details
    assert found["stuck claim"] == 1 and found["deleted unmerged work"] == 1, damaged.details
    assert found["git lock left"] >= 1, damaged.details


def test_the_secrets_sweep_finds_a_planted_value_bare_base64_or_hex_anywhere_in_a_file(
    tmp_path: Path,
) -> None:
    import base64

    from speedrift.cli.chaos import planted

    values = planted.plant()
    token = values["GITHUB_TOKEN"]
    kept, skipped = tmp_path / "speedrift", tmp_path / "speedrift" / "worktrees" / "an-agents-checkout"
    skipped.mkdir(parents=True)
    (kept / "clean.log").write_text("nothing to see\n")
    assert planted.sweep([kept], values).hits == []

    (kept / "bare.log").write_text(f"token={token}\n")
    (kept / "b64.jsonl").write_bytes(b'{"x":"' + base64.b64encode(b"Bearer " + token.encode()) + b'"}\n')
    (kept / "hex.txt").write_text(f"dump {token.encode().hex()} end")
    (skipped / "agent-output.txt").write_text(token)  # the agent's own files are not swept

    found = planted.sweep([kept], values, skip_dirs=[skipped])
    assert sorted(hit.split("/")[-1] for hit in found.hits) == [
        "b64.jsonl: GITHUB_TOKEN (base64+1)",
        "bare.log: GITHUB_TOKEN (bare)",
        "hex.txt: GITHUB_TOKEN (hex)",
    ]
