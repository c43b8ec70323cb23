"""``speedrift board`` and ``speedrift handoff show``: the coordination store read by a person, as
Markdown or as JSON, in a real repository."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from speedrift.coord.records import Actor, Author, Draft, Kind, Record, Status
from speedrift.coord.store import CoordStore
from speedrift.times import now_utc
from tests.cli.support import Cli, seed, task_node

AGENT = Author(Actor.AGENT, task="t1", attempt=1, role="developer")
SPEEDRIFT = Author(Actor.SPEEDRIFT, task="t1", attempt=1)


def handoff(store: CoordStore, summary: str, *, expires_in: timedelta, to: str = "t1") -> Record:
    draft = Draft(
        Kind.HANDOFF,
        summary,
        SPEEDRIFT,
        detail="Progress: half the parser\n## forged heading",
        targets=(f"task:{to}",),
        expires_at=now_utc() + expires_in,
    )
    return store.post(draft)


def populated(repo: Path) -> dict[str, Record]:
    store = CoordStore.for_scope(repo, "repo")
    question = store.post(
        Draft(Kind.CLARIFICATION_REQUEST, "Keep v1 | or drop it?", AGENT, targets=("human",))
    )
    blocker = store.post(Draft(Kind.BLOCKER, "CI image lacks node", AGENT, artifact_refs=("ci/image",)))
    store.update(blocker.id, Status.RESOLVED, author=Author(Actor.HUMAN, name="ana"), summary="image rebuilt")
    live = handoff(store, "Attempt 2 of t1 failed: tests fail", expires_in=timedelta(days=7))
    old = handoff(store, "Attempt 1 of t1 failed: lint", expires_in=-timedelta(hours=1))
    return {"question": question, "blocker": blocker, "live": live, "old": old}


def test_board_shows_open_records_by_kind_with_counts_and_the_activity_feed(cli: Cli, repo: Path) -> None:
    made = populated(repo)
    out = cli.ok("board").stdout
    assert out.startswith("# Coordination board: repo\n")
    assert "4 record(s): 2 open, 1 closed, 1 expired · last sequence number 5" in out
    assert "| clarification_request | 1 | 0 | 0 |" in out and "| handoff | 1 | 0 | 1 |" in out
    assert "## Open (2)" in out and "### clarification_request (1)" in out
    # a | in someone's text cannot split the table's row
    row = f"| {made['question'].id} | open | developer on t1 (attempt 1) | human | Keep v1 \\| or drop it? |"
    assert row in out
    assert "CI image lacks node" not in out.split("## Activity")[0]  # closed: only in the feed
    assert "2 closed or expired record(s) not shown: `speedrift board repo --all`." in out
    assert f"{made['blocker'].id} blocker → resolved by human ana: image rebuilt" in out
    everything = cli.ok("board", "repo", "--all").stdout
    assert "## Closed (1)" in everything and "## Expired (1)" in everything
    assert "Attempt 1 of t1 failed: lint" in everything.split("## Activity")[0]


def test_board_json_has_counts_records_activity_and_names_unreadable_lines(cli: Cli, repo: Path) -> None:
    made = populated(repo)
    store = CoordStore.for_scope(repo, "repo")
    with store.path.open("ab") as handle:
        handle.write(b"{not json\n")
    data = cli.json("board")
    assert data["scope"] == "repo" and data["last_seq"] == 5
    assert data["counts"] == {"open": 2, "closed": 1, "expired": 1}
    assert data["by_kind"]["handoff"] == {"open": 1, "closed": 0, "expired": 1}
    assert [r["id"] for r in data["records"]] == [made["question"].id, made["live"].id]
    assert data["records"][0]["standing"] == "open" and data["records"][0]["author"]["task"] == "t1"
    assert [a["seq"] for a in data["activity"]] == [5, 4, 3, 2, 1]
    assert data["bad_lines"][0]["line"] == 6
    assert len(cli.json("board", "--all")["records"]) == 4
    text = cli.ok("board").stdout
    assert "> 1 line(s) of repo.jsonl could not be read and are left out: line 6:" in text


def test_board_of_an_unknown_scope_says_which_scopes_exist(cli: Cli, repo: Path) -> None:
    populated(repo)
    failed = cli.fails(1, "board", "wave-9")
    assert "no coordination scope 'wave-9'" in failed.stderr and "scopes with records: repo" in failed.stderr
    assert "4 record(s)" in cli.ok("board", "repo").stdout  # the scope that exists, by name


def test_an_empty_store_has_a_board_saying_how_records_get_there(cli: Cli) -> None:
    out = cli.ok("board").stdout
    assert "0 record(s)" in out and "No records yet." in out and "speedrift signal" in out


def test_handoff_show_lists_the_tasks_live_handoffs_and_all_of_them_with_all(cli: Cli, repo: Path) -> None:
    seed(repo, task_node("t1", "Parse the config"))
    made = populated(repo)
    handoff(CoordStore.for_scope(repo, "repo"), "for another task", expires_in=timedelta(days=1), to="t2")
    out = cli.ok("handoff", "show", "t1").stdout
    assert out.startswith("# Handoffs to t1\n")
    assert f"## {made['live'].id} · open · from speedrift" in out
    assert "Attempt 2 of t1 failed: tests fail" in out and "> Progress: half the parser" in out
    assert "> ## forged heading" in out and "\n## forged heading" not in out
    assert "Attempt 1 of t1 failed: lint" not in out and "for another task" not in out
    assert "1 closed or expired handoff(s) not shown: add --all." in out
    everything = cli.ok("handoff", "show", "t1", "--all").stdout
    assert f"## {made['old'].id} · expired · from speedrift" in everything

    data = cli.json("handoff", "show", "t1")
    assert data["task"] == "t1" and data["hidden"] == 1
    assert [h["id"] for h in data["handoffs"]] == [made["live"].id]
    assert data["handoffs"][0]["targets"] == ["task:t1"] and data["handoffs"][0]["expires_at"]
    both = cli.json("handoff", "show", "t1", "--all")
    assert [h["id"] for h in both["handoffs"]] == [made["live"].id, made["old"].id]  # oldest first
    assert [h["standing"] for h in both["handoffs"]] == ["open", "expired"]


def test_handoff_show_of_a_task_that_does_not_exist_is_refused(cli: Cli) -> None:
    failed = cli.fails(1, "handoff", "show", "nope")
    assert "no task 'nope'" in failed.stderr
