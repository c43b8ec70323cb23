"""secdrift's checks by file name and manifest: sensitive artifacts tracked in the tree (``.env``,
SSH and TLS private keys, keystores, registry credentials) and the supply-chain posture of each
dependency manifest (one with dependencies but no lockfile committed next to it).

Pure functions of paths and bytes: the lane hands in the tree's paths and the few files whose
content decides (a ``.pem`` holding a private key, an ``.npmrc`` holding a token). Nothing here
returns or keeps a credential's value: a match says *what* the file holds, never the value.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from speedrift import safetoml
from speedrift.gates.testdetect import PRUNED
from speedrift.lanes.builtin._manifests import LOCKS_FOR
from speedrift.lanes.model import Severity

# .env files meant to be committed: they show the variables, not their values
_ENV_PLACEHOLDERS = frozenset({"example", "sample", "template", "dist", "defaults"})
_SSH_KEYS = frozenset({"id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", "id_ecdsa_sk", "id_ed25519_sk"})
_KEY_SUFFIXES = (".pem", ".key")
_PKCS12 = (".p12", ".pfx")
_KEYSTORES = (".keystore", ".jks")
_PRIVATE_KEY = re.compile(rb"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
# a value that names where the secret comes from (${NPM_TOKEN}) is not the secret
_NPM_AUTH = re.compile(rb"(?m)^\s*(?:[^\s=#;]*:)?_(?:authToken|auth|password)\s*=\s*(?!\$\{)(\S+)")
_PYPI_PASSWORD = re.compile(rb"(?m)^\s*password\s*[:=]\s*(?!\$\{|%\()(\S+)")
_GO_REQUIRE = re.compile(r"(?m)^\s*require\b")
_PINNED = re.compile(r"(?m)^\s*[A-Za-z0-9][A-Za-z0-9._-]*(?:\[[^\]]*\])?\s*===?\s*\S")


@dataclass(frozen=True, slots=True)
class Artifact:
    path: str
    what: str  # "a .env file", "an SSH private key", …
    severity: Severity
    fix: str


def _pruned(path: str) -> bool:
    """Under a dependency, environment or build directory: not the repo's own file."""
    return any(part in PRUNED or part.endswith(".egg-info") for part in path.split("/")[:-1])


def needs_content(path: str) -> bool:
    """Whether :func:`artifact` must see the file's bytes to decide."""
    name = posixpath.basename(path)
    return name in (".npmrc", ".pypirc") or name.endswith(_KEY_SUFFIXES)


def artifact(path: str, content: bytes | None) -> Artifact | None:
    """What sensitive thing the tracked file at ``path`` is, or None."""
    if _pruned(path):
        return None
    name = posixpath.basename(path)
    if name == ".env" or (
        name.startswith(".env.") and not _ENV_PLACEHOLDERS.intersection(name.split(".")[2:])
    ):
        return Artifact(
            path,
            "a .env file",
            Severity.ERROR,
            f"Remove {path} from git (git rm --cached {path}), add it to .gitignore, rotate every value "
            "it held, and commit a .env.example with the variable names only.",
        )
    if name in _SSH_KEYS:
        return Artifact(
            path,
            "an SSH private key",
            Severity.CRITICAL,
            f"Remove {path} from git, revoke the key wherever it is authorised, and generate a new one "
            "that never enters the repo.",
        )
    if name.endswith(_KEY_SUFFIXES) and content is not None and _PRIVATE_KEY.search(content):
        return Artifact(
            path,
            "a private key file",
            Severity.CRITICAL,
            f"Remove {path} from git, revoke or replace the key (and any certificate issued for it), "
            "and load keys from a secret store at runtime.",
        )
    if name.endswith(_PKCS12) or name.endswith(_KEYSTORES):
        what = "a PKCS#12 key bundle" if name.endswith(_PKCS12) else "a Java keystore"
        return Artifact(
            path,
            what,
            Severity.ERROR,
            f"Remove {path} from git and replace the keys it holds; keystores belong in a secret store.",
        )
    if name == ".npmrc" and content is not None and _NPM_AUTH.search(content):
        return Artifact(
            path,
            "an .npmrc holding a registry credential",
            Severity.ERROR,
            f"Revoke the token in {path}, replace it with ${{NPM_TOKEN}} (read from the environment), "
            "and commit only the variable reference.",
        )
    if name == ".pypirc" and content is not None and _PYPI_PASSWORD.search(content):
        return Artifact(
            path,
            "a .pypirc holding a PyPI password or token",
            Severity.ERROR,
            f"Revoke the PyPI token in {path}, remove the file from git, and pass the token to twine "
            "through the environment (TWINE_PASSWORD).",
        )
    if name == "credentials.json":
        return Artifact(
            path,
            "a credentials.json file",
            Severity.ERROR,
            f"Remove {path} from git, revoke the client secret or service-account key it holds, and "
            "load credentials from the environment or a secret store.",
        )
    return None


# --- manifests and their locks --------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Unlocked:
    manifest: str
    ecosystem: str  # npm | python | cargo | go
    locks: tuple[str, ...]  # the lockfiles that would do
    fix: str


_NPM_LOCKS = LOCKS_FOR["package.json"]
# a pyproject is pinned by its own family's lock, a Pipfile.lock, or a requirements.lock beside it
_PY_LOCKS = (*LOCKS_FOR["pyproject.toml"], *LOCKS_FOR["Pipfile"], "requirements.lock")
MANIFESTS = frozenset({"package.json", "pyproject.toml", "Cargo.toml", "go.mod"})


def manifest_reads(paths: Iterable[str]) -> list[str]:
    """The files :func:`unlocked` needs the bytes of: each manifest, and pinned-requirements
    candidates (a ``requirements*.txt`` with ``==`` pins locks a pyproject next to it)."""
    wanted = []
    for path in paths:
        name = posixpath.basename(path)
        if _pruned(path):
            continue
        if name in MANIFESTS or (name.startswith("requirements") and name.endswith(".txt")):
            wanted.append(path)
    return wanted


def _ancestors(folder: str) -> list[str]:
    """``a/b`` -> ["a/b", "a", ""]: where a workspace's lockfile may sit."""
    found = [folder]
    while folder:
        folder = posixpath.dirname(folder)
        found.append(folder)
    return found


def _has(tree: set[str], folder: str, names: Iterable[str]) -> bool:
    return any(posixpath.join(folder, name) in tree for name in names)


def _npm_dependencies(data: bytes) -> bool:
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return False
    if not isinstance(document, dict):
        return False
    return any(
        isinstance(document.get(key), dict) and document[key]
        for key in ("dependencies", "devDependencies", "optionalDependencies")
    )


def _toml(data: bytes) -> dict[str, object]:
    try:
        return safetoml.loads(safetoml.decode(data))
    except safetoml.MalformedToml:
        return {}


def _python_dependencies(data: bytes) -> bool:
    document = _toml(data)
    project = document.get("project")
    if (
        isinstance(project, dict)
        and isinstance(project.get("dependencies"), list)
        and project["dependencies"]
    ):
        return True
    tool = document.get("tool")
    poetry = tool.get("poetry") if isinstance(tool, dict) else None
    deps = poetry.get("dependencies") if isinstance(poetry, dict) else None
    return isinstance(deps, dict) and any(name != "python" for name in deps)


def _cargo_binary(data: bytes, folder: str, tree: set[str]) -> bool:
    document = _toml(data)
    if not isinstance(document.get("package"), dict):
        return False  # a virtual workspace manifest: its members decide
    if isinstance(document.get("bin"), list) and document["bin"]:
        return True
    prefix = posixpath.join(folder, "src/bin/")
    return posixpath.join(folder, "src/main.rs") in tree or any(p.startswith(prefix) for p in tree)


def unlocked(tree: set[str], contents: Mapping[str, bytes]) -> list[Unlocked]:
    """Manifests with dependencies and no lockfile next to them (or, for workspaces, above them)."""
    pinned = {
        posixpath.dirname(path)
        for path, data in contents.items()
        if posixpath.basename(path).startswith("requirements")
        and path.endswith(".txt")
        and _PINNED.search(data.decode("utf-8", "replace"))
    }
    found: list[Unlocked] = []
    for path in sorted(contents):
        name, folder = posixpath.basename(path), posixpath.dirname(path)
        data = contents[path]
        if name == "package.json" and _npm_dependencies(data):
            if not any(_has(tree, up, _NPM_LOCKS) for up in _ancestors(folder)):
                found.append(
                    Unlocked(
                        path,
                        "npm",
                        _NPM_LOCKS[:4],
                        f"Run the package manager in {folder or 'the repo root'} (npm install, yarn or "
                        "pnpm install) and commit the lockfile it writes, so every build resolves the "
                        "same versions.",
                    )
                )
        elif name == "pyproject.toml" and _python_dependencies(data):
            if not any(_has(tree, up, _PY_LOCKS) or up in pinned for up in _ancestors(folder)):
                found.append(
                    Unlocked(
                        path,
                        "python",
                        (*_PY_LOCKS[:3], "requirements.txt with == pins"),
                        f"Lock the dependencies of {path} (uv lock, poetry lock or pdm lock, or pip-compile "
                        "to a pinned requirements.txt) and commit the lockfile.",
                    )
                )
        elif name == "Cargo.toml" and _cargo_binary(data, folder, tree):
            if not any(_has(tree, up, ("Cargo.lock",)) for up in _ancestors(folder)):
                found.append(
                    Unlocked(
                        path,
                        "cargo",
                        ("Cargo.lock",),
                        f"Run cargo generate-lockfile in {folder or 'the repo root'} and commit Cargo.lock "
                        "(a binary crate's lockfile belongs in git).",
                    )
                )
        elif (
            name == "go.mod"
            and _GO_REQUIRE.search(data.decode("utf-8", "replace"))
            and not _has(tree, folder, ("go.sum",))
        ):
            found.append(
                Unlocked(
                    path,
                    "go",
                    ("go.sum",),
                    f"Run go mod tidy in {folder or 'the repo root'} and commit go.sum, so module "
                    "downloads are verified against their checksums.",
                )
            )
    return found
