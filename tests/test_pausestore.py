"""The machine-wide pause store: what a pause holds, what a damaged file reads as, what lifts it."""

from __future__ import annotations

import json
from datetime import timedelta

from speedrift import pausestore, statehome
from speedrift.pausestore import RuntimePause
from tests.conftest import NOW


def pause(runtime: str = "opencode", **fields: object) -> RuntimePause:
    base: dict[str, object] = {
        "cause": "usage_limit",
        "reason": "limit",
        "since": NOW,
        "until": NOW + timedelta(hours=1),
        "fix": "",
        "set_by": "test",
    }
    return RuntimePause(runtime, **(base | fields))  # type: ignore[arg-type]


def test_a_provider_pause_holds_that_provider_and_tasks_whose_provider_is_unknown() -> None:
    pausestore.put(pause(provider="anthropic"), NOW)
    book = pausestore.read()
    assert book.blocking("opencode", "anthropic", NOW) is not None
    assert book.blocking("opencode", None, NOW) is not None  # it may well be that provider
    assert book.blocking("opencode", "openai", NOW) is None


def test_a_damaged_store_reads_what_it_can_and_never_raises() -> None:
    path = statehome.pauses_path()
    path.write_text("{not json")
    assert pausestore.read() == pausestore.PauseBook()
    good = pause().to_dict()
    path.write_text(
        json.dumps({"pauses": [good, {"runtime": 3}, "x", {"runtime": "claude", "cause": "nope"}]})
    )
    assert [p.runtime for p in pausestore.read().pauses] == ["opencode"]
    pausestore.put(pause("claude"), NOW)  # a writer keeps what was readable
    assert sorted(p.runtime for p in pausestore.read().pauses) == ["claude", "opencode"]


def test_provider_text_is_kept_as_data_with_control_characters_escaped() -> None:
    raw = pause(reason="\x1b[31mboom\x07\x00").to_dict()
    assert RuntimePause.from_dict(raw) is not None
    assert RuntimePause.from_dict(raw).reason == "\\x1b[31mboom\\x07\\x00"  # type: ignore[union-attr]


def test_a_lapsed_pause_is_moved_to_the_lifted_list_by_the_next_writer() -> None:
    pausestore.put(pause("claude"), NOW)
    later = NOW + timedelta(hours=2)
    pausestore.put(pause("codex", since=later, until=later + timedelta(hours=1)), later)
    book = pausestore.read()
    assert [p.runtime for p in book.pauses] == ["codex"]
    assert [(gone.pause.runtime, gone.lifted_by) for gone in book.lifted] == [
        ("claude", "its reset time passed")
    ]


def test_the_store_is_private_to_its_user() -> None:
    pausestore.put(pause(), NOW)
    assert statehome.pauses_path().stat().st_mode & 0o077 == 0


def test_a_recorded_pause_holds_its_text_escaped_from_the_start() -> None:
    kept, new = pausestore.put(pause("claude", reason="HTTP 400: \x1b[2Jgone\x00"), NOW)
    assert new and kept.reason == "HTTP 400: \\x1b[2Jgone\\x00"
    assert pausestore.read().pauses == (kept,)
