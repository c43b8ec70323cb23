"""Task fences: the TOML blocks in a task's description that configure a lane for that task, found by
their info string; a block that is not TOML is a FenceError naming the description's line."""

from __future__ import annotations

import pytest

from speedrift.errors import SpeedriftError
from speedrift.lanes.fences import FenceError, fence, fence_names

DESCRIPTION = """Add the parser.

```wg-contract
schema = 1
mode = "core"
touch = ["src/parser/**"]
```

Some notes.

~~~specdrift
spec = ["docs/parser.md"]
require_spec_update_when_code_changes = true
~~~
"""


def test_a_fence_is_its_toml_table() -> None:
    assert fence(DESCRIPTION, "wg-contract") == {"schema": 1, "mode": "core", "touch": ["src/parser/**"]}
    assert fence(DESCRIPTION, "specdrift") == {
        "spec": ["docs/parser.md"],
        "require_spec_update_when_code_changes": True,
    }


def test_a_missing_fence_or_description_is_none() -> None:
    assert fence(DESCRIPTION, "depsdrift") is None
    assert fence("", "specdrift") is None
    assert fence(None, "specdrift") is None
    assert fence(42, "specdrift") is None


def test_fence_names_lists_every_block_in_order() -> None:
    assert fence_names(DESCRIPTION) == ["wg-contract", "specdrift"]
    assert fence_names("no blocks here") == []


def test_the_first_block_of_a_name_wins() -> None:
    text = '```specdrift\nspec = ["a"]\n```\n\n```specdrift\nspec = ["b"]\n```\n'
    assert fence(text, "specdrift") == {"spec": ["a"]}


def test_an_indented_or_longer_fence_and_an_empty_block_are_read() -> None:
    assert fence('  ````depsdrift\n  manifests = ["a"]\n  ````\n', "depsdrift") == {"manifests": ["a"]}
    assert fence("```depsdrift\n```\n", "depsdrift") == {}


def test_a_block_of_another_name_hides_what_is_inside_it() -> None:
    text = '````markdown\n```specdrift\nspec = ["example"]\n```\n````\n'
    assert fence(text, "specdrift") is None
    assert fence_names(text) == ["markdown"]


def test_an_unclosed_fence_runs_to_the_end() -> None:
    assert fence("intro\n```yagnidrift\nmax_new_files = 3\n", "yagnidrift") == {"max_new_files": 3}


def test_a_toml_error_names_the_description_line_and_the_fence() -> None:
    with pytest.raises(FenceError) as caught:
        fence(DESCRIPTION.replace('mode = "core"', "mode = core"), "wg-contract")
    error = caught.value
    assert (error.name, error.line) == ("wg-contract", 5)  # the line in the description, 1-based
    assert str(error).startswith("```wg-contract``` block at description line 5: TOML syntax error")
    assert isinstance(error, SpeedriftError) and isinstance(error, ValueError)


def test_a_toml_error_in_a_later_fence_counts_the_lines_before_it() -> None:
    with pytest.raises(FenceError) as caught:
        fence(DESCRIPTION.replace("require_spec_update_when_code_changes = true", "x = = 1"), "specdrift")
    assert caught.value.line == 13


def test_a_duplicate_key_and_an_unclosed_array_name_their_lines() -> None:
    with pytest.raises(FenceError) as duplicate:
        fence("intro\n```specdrift\na = 1\na = 2\n```\n", "specdrift")
    assert duplicate.value.line == 4
    with pytest.raises(FenceError) as unclosed:
        fence("```specdrift\nspec = [\n", "specdrift")
    assert unclosed.value.line == 2


def test_windows_line_endings_keep_the_line_numbers() -> None:
    with pytest.raises(FenceError) as caught:
        fence("a\r\n```specdrift\r\nspec = 1\r\nx = \r\n```\r\n", "specdrift")
    assert caught.value.line == 4
    assert fence("a\r\n```specdrift\r\nspec = 1\r\n```\r\n", "specdrift") == {"spec": 1}


def test_a_line_separator_inside_a_toml_string_is_kept() -> None:
    assert fence('```specdrift\nnote = "a\u2028b"\n```\n', "specdrift") == {"note": "a\u2028b"}


def test_an_example_inside_a_plain_code_block_is_not_a_fence() -> None:
    assert fence('````\n```specdrift\nspec = ["example"]\n```\n````\n', "specdrift") is None


def test_a_fence_line_with_an_info_string_does_not_close_a_block() -> None:
    with pytest.raises(FenceError):  # the ```toml line is inside the block, and is not TOML
        fence('```specdrift\nspec = ["a"]\n```toml\nmore = 1\n```\n', "specdrift")
