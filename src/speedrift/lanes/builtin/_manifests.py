"""Which lockfiles pin which dependency manifest: the one table depsdrift (a manifest changed
without its lock) and secdrift (a manifest committed without any lock) both read."""

from __future__ import annotations

# manifest file name -> the lock files of its family (requirements*.in pair with their .txt)
LOCKS_FOR: dict[str, tuple[str, ...]] = {
    "pyproject.toml": ("uv.lock", "poetry.lock", "pdm.lock", "pylock.toml"),
    "Pipfile": ("Pipfile.lock",),
    "package.json": (
        "package-lock.json",
        "npm-shrinkwrap.json",
        "yarn.lock",
        "pnpm-lock.yaml",
        "bun.lock",
        "bun.lockb",
    ),
    "Cargo.toml": ("Cargo.lock",),
    "go.mod": ("go.sum",),
    "Gemfile": ("Gemfile.lock",),
    "composer.json": ("composer.lock",),
}
