"""The built-in lanes as one set: every one is in the policy's default order, has a summary for
`lanes list`, and declares settings whose defaults the policy validates against."""

from __future__ import annotations

from speedrift.lanes.builtin import BUILTIN
from speedrift.lanes.policy import DEFAULT_ORDER
from speedrift.lanes.spec import SettingsError, check_settings


def test_the_default_order_names_every_built_in_lane_once_in_the_issues_order() -> None:
    assert tuple(BUILTIN) == DEFAULT_ORDER


def test_every_built_in_lane_describes_itself_and_refuses_a_setting_it_does_not_have() -> None:
    for name, lane in BUILTIN.items():
        assert lane.name == name and lane.summary.strip(), name
        assert check_settings(lane, {}) == dict(lane.defaults)
        try:
            check_settings(lane, {"no_such_setting": 1})
        except SettingsError as error:
            assert error.key == "no_such_setting"
        else:
            raise AssertionError(f"{name} accepted an unknown setting")
