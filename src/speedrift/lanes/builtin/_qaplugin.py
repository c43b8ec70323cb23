"""A pytest plugin for qadrift's selected runs: pytest collects as it always does (its testpaths,
python_files, ignores, the command's own paths), except every Python file outside the selection,
and every folder holding none of it, which it skips.

qadrift copies this file next to the checkout as ``_speedrift_qadrift_select.py``, puts that folder
on the suite's ``PYTHONPATH`` and adds ``-p _speedrift_qadrift_select``; the variable
``SPEEDRIFT_QADRIFT_SELECTION`` names a file holding the checkout's path and then the selected
repo-relative paths, NUL-separated. Standalone: it imports nothing of speedrift (the suite runs
with the repo's Python, where speedrift is not installed).

Invariant: it only ever narrows collection — a file the suite would not collect stays uncollected,
and ``conftest.py`` / ``__init__.py`` are always left to pytest.
"""

from __future__ import annotations

import os
from pathlib import Path

SELECTION_VARIABLE = "SPEEDRIFT_QADRIFT_SELECTION"
MODULE_NAME = "_speedrift_qadrift_select"
ALWAYS = frozenset({"conftest.py", "__init__.py"})


def _load() -> tuple[str, frozenset[str], frozenset[str]]:
    listing = Path(os.environ[SELECTION_VARIABLE]).read_bytes().split(b"\0")
    root = os.path.realpath(os.fsdecode(listing[0]))
    files = frozenset(os.path.join(root, os.fsdecode(p)) for p in listing[1:] if p)
    folders = {root}
    for path in files:
        folder = os.path.dirname(path)
        while folder not in folders and folder.startswith(root + os.sep):
            folders.add(folder)
            folder = os.path.dirname(folder)
    return root, files, frozenset(folders)


_ROOT, _FILES, _FOLDERS = _load() if SELECTION_VARIABLE in os.environ else ("", frozenset(), frozenset())


def pytest_ignore_collect(collection_path: Path, config: object) -> bool | None:
    """True (skip) for what is outside the selection; None lets pytest decide."""
    if not _ROOT:
        return None
    path = os.path.realpath(collection_path)
    if not path.startswith(_ROOT + os.sep):
        return None
    if os.path.isdir(path):
        return None if path in _FOLDERS else True
    if os.path.basename(path) in ALWAYS:
        return None
    return None if path in _FILES else True
