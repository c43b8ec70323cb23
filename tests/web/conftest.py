"""Fixtures for the dashboard: a demo-like ecosystem of real git repos, and a real Chromium.

The demo ecosystem (demo/ecosystem.py: five repos with real graphs) is built once per session and
copied for each test that needs one. Browser tests share one Chromium (Debian's, never a
downloaded one) for the whole session; each test gets its own context and page.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from speedrift.demo import ecosystem as demo

CHROMIUM = "/usr/bin/chromium"
BROWSER_TIMEOUT_MS = 30_000


@pytest.fixture(autouse=True)
def _own_hub_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each ecosystem's hub dir sits next to its ecosystem.toml, never a shared one from the env."""
    monkeypatch.delenv("SPEEDRIFT_HUB_DIR", raising=False)


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo-template") / "eco"
    demo.build(root)
    return root


@pytest.fixture
def demo_eco(demo_template: Path, tmp_path: Path) -> Path:
    """A private copy of the demo ecosystem; returns the path of its ecosystem.toml."""
    root = tmp_path / "eco"
    shutil.copytree(demo_template, root, symlinks=True)
    return root / "ecosystem.toml"


@pytest.fixture
def artifacts(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """Where a test keeps screenshots: tmp_path, and $SPEEDRIFT_ARTIFACTS/<test> when set."""
    folder = tmp_path / "artifacts"
    folder.mkdir(exist_ok=True)
    yield folder
    target = os.environ.get("SPEEDRIFT_ARTIFACTS")
    if target:
        destination = Path(target) / request.node.name
        destination.mkdir(parents=True, exist_ok=True)
        for item in folder.iterdir():
            shutil.copy2(item, destination / item.name)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is not installed: `apt-get install chromium` (scripts/ set it up)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield instance
        instance.close()


@contextlib.contextmanager
def browser_tab(browser: Any, width: int = 1280, height: int = 900, **context_options: Any) -> Iterator[Any]:
    """A page in its own browser context; a script error on the page fails the test at the end."""
    context = browser.new_context(viewport={"width": width, "height": height}, **context_options)
    context.set_default_timeout(BROWSER_TIMEOUT_MS)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield tab
    finally:
        context.close()
    assert errors == [], f"script errors on the page: {errors}"
