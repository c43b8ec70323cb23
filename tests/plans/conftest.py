"""Fixtures the plan tests share with the worker-plane tests: the fake claude on PATH and its
scenario file (tests/fleet/conftest.py)."""

from tests.fleet.conftest import scenario  # noqa: F401 - a shared fixture
