"""Executor preflight: is a runtime's CLI installed, runnable and (where it can say so) logged in?

Checked without a model call, with the environment the agent itself would get (a key withheld
from the agent does not count as present), and only through what each real CLI reports offline
(reference/agent-clis.md; verified against Claude Code 2.1.197, codex-cli 0.169.0, opencode
1.18.33):

- installed: the executable on the agent's PATH (the shell runtime: ``/bin/sh``, or the first word
  of its configured ``command``);
- runnable: ``<cli> --version`` exits 0 within a short timeout (a CLI that does not answer in time
  is "unknown", not broken: a loaded machine is no reason to pause a runtime);
- authenticated: ``claude auth status --json`` says ``loggedIn`` (API key, OAuth token or a
  third-party provider); ``codex login status`` exits 0 — otherwise a configured custom model
  provider's ``env_key`` must be in the agent's environment; opencode has no offline verdict
  (providers configured in opencode.json are only checked by a request), so its auth is
  "unknown", with what ``opencode auth list`` reports as detail. Unknown is never reported as ok.

Results that say "ready" are cached for :data:`CACHE_SECONDS`, in the process and machine-wide in
the state home (``preflight-verdicts.json``): every attempt runs in a new worker process, and a
node CLI's preflight costs 0.5-2 s of process starts, which each attempt would otherwise pay
again. :func:`forget` drops a runtime's, in both (after a failure classed auth_failure or
env_bootstrap, the caller checks again). The file holds no secret: a verdict is keyed by a digest
of the runtime, its executable, the locations in its environment and the *names* of the
credentials it is given.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import threading
import time
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from speedrift import fsutil, procs, safejson, statehome
from speedrift.agents import choose
from speedrift.times import iso_utc, now_utc

CheckStatus = Literal["ok", "failed", "unknown", "n/a"]
CACHE_SECONDS = 300.0
TIMEOUT_S = 20.0  # node CLIs take 0.5–2 s to start; a loaded 2-core machine needs the headroom
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

LOGIN_FIX = {
    "claude": (
        "log Claude Code in (`claude auth login`), or set ANTHROPIC_API_KEY and name it in "
        "[env] secrets of speedrift.toml"
    ),
    "codex": (
        "log the Codex CLI in (`codex login`, or `printenv OPENAI_API_KEY | codex login --with-api-key`)"
    ),
    "opencode": "log OpenCode in to its provider (`opencode auth login`)",
    "shell": "",
    "demo": "",
}


@dataclass(frozen=True, slots=True)
class Preflight:
    runtime: str
    executable: str  # what was looked for
    path: str | None  # where it was found
    installed: CheckStatus
    runnable: CheckStatus
    version: str | None
    auth: CheckStatus
    auth_detail: str
    problem: str  # "" when ready: else what is wrong, in one line
    fix: str  # "" when ready: else what a person does
    checked_at: datetime

    @property
    def ready(self) -> bool:
        return self.installed == "ok" and self.runnable != "failed" and self.auth != "failed"

    @property
    def status(self) -> str:
        if self.installed != "ok":
            return "not_installed"
        if self.runnable == "failed":
            return "not_runnable"
        if self.auth == "failed":
            return "not_authenticated"
        return "ready"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["checked_at"] = iso_utc(self.checked_at)
        out["status"] = self.status
        out["ready"] = self.ready
        return out


def executable_for(runtime: str, options: Mapping[str, Any], *, exec_task: bool) -> str:
    """What must exist for ``runtime`` to run a task (``exec_task``: the task has ``exec``)."""
    if runtime == "shell":
        command = options.get("command")
        if not exec_task and isinstance(command, list) and command and isinstance(command[0], str):
            return command[0]
        return "/bin/sh"
    return choose.runtime_for(runtime).executable


def check(
    runtime: str,
    *,
    env: Mapping[str, str],
    options: Mapping[str, Any] | None = None,
    exec_task: bool = False,
    cwd: Path | None = None,
    timeout: float = TIMEOUT_S,
    now: datetime | None = None,
) -> Preflight:
    """The preflight of ``runtime`` as an agent started with ``env`` in ``cwd`` would meet it."""
    options = options or {}
    now = now or now_utc()
    spec = choose.runtime_for(runtime)
    wanted = executable_for(runtime, options, exec_task=exec_task)
    found = shutil.which(wanted, path=env.get("PATH", os.defpath))

    def result(**fields: Any) -> Preflight:
        return Preflight(runtime=runtime, executable=wanted, checked_at=now, **fields)

    if found is None:
        return result(
            path=None,
            installed="failed",
            runnable="unknown",
            version=None,
            auth="unknown",
            auth_detail="not checked: the CLI is not installed",
            problem=f"{wanted} is not installed (not found on the agent's PATH)",
            fix=spec.install_hint,
        )
    if runtime in ("shell", "demo"):
        return result(
            path=found,
            installed="ok",
            runnable="n/a",
            version=None,
            auth="n/a",
            auth_detail="a shell command needs no login"
            if runtime == "shell"
            else "the scripted demo agent calls no model and needs no login",
            problem="",
            fix="",
        )
    where = cwd if cwd is not None and cwd.is_dir() else None
    runnable, version, problem = _version(found, env, where, timeout)
    if runnable == "failed":
        return result(
            path=found,
            installed="ok",
            runnable="failed",
            version=None,
            auth="unknown",
            auth_detail="not checked: the CLI does not run",
            problem=problem,
            fix=f"reinstall it ({spec.install_hint})",
        )
    auth, detail = AUTH_CHECKS[runtime](found, env, where, timeout)
    return result(
        path=found,
        installed="ok",
        runnable=runnable,
        version=version,
        auth=auth,
        auth_detail=detail,
        problem=f"{runtime} is not logged in: {detail}" if auth == "failed" else "",
        fix=_login_fix(runtime, detail) if auth == "failed" else "",
    )


def _login_fix(runtime: str, detail: str) -> str:
    missing = re.search(r"\$([A-Z_][A-Z0-9_]*)", detail)
    if runtime == "codex" and missing:
        return f"set {missing.group(1)} and name it in [env] secrets of speedrift.toml"
    return LOGIN_FIX.get(runtime, "")


def _run(
    argv: list[str], env: Mapping[str, str], cwd: Path | None, timeout: float
) -> tuple[int, str, str] | None:
    """(exit code, stdout, stderr) — None when it did not finish within ``timeout``."""
    try:
        done = procs.run(argv, env=env, cwd=cwd, timeout=timeout, end_group=True, text=True)
    except procs.ProcessTimeout:
        return None
    return done.returncode, done.stdout, done.stderr


def _tail(text: str, limit: int = 200) -> str:
    lines = [line.strip() for line in _ANSI.sub("", text).splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    return last if len(last) <= limit else last[: limit - 1] + "…"


def _version(
    path: str, env: Mapping[str, str], cwd: Path | None, timeout: float
) -> tuple[CheckStatus, str | None, str]:
    name = Path(path).name
    try:
        done = _run([path, "--version"], env, cwd, timeout)
    except OSError as error:
        return "failed", None, f"`{name} --version` could not start: {error.strerror or error}"
    if done is None:
        return "unknown", None, f"`{name} --version` did not answer within {timeout:g}s"
    code, out, err = done
    if code != 0:
        said = _tail(err or out) or "no output"
        return "failed", None, f"`{name} --version` exited {code}: {said}"
    first = next((line.strip() for line in _ANSI.sub("", out).splitlines() if line.strip()), "")
    return "ok", first[:100] or None, ""


def _claude_auth(
    path: str, env: Mapping[str, str], cwd: Path | None, timeout: float
) -> tuple[CheckStatus, str]:
    try:
        done = _run([path, "auth", "status", "--json"], env, cwd, timeout)
    except OSError as error:
        return "unknown", f"`claude auth status` could not start: {error.strerror or error}"
    if done is None:
        return "unknown", f"`claude auth status` did not answer within {timeout:g}s"
    code, out, err = done
    try:
        status = json.loads(out)
    except ValueError:
        status = None
    if not isinstance(status, dict) or not isinstance(status.get("loggedIn"), bool):
        said = _tail(err or out) or f"exit code {code}"
        return "unknown", f"`claude auth status` gave no verdict ({said})"
    if status["loggedIn"]:
        how = [str(status[k]) for k in ("authMethod", "apiKeySource", "apiProvider") if status.get(k)]
        return "ok", "logged in" + (f" ({', '.join(how)})" if how else "")
    return "failed", "`claude auth status` says not logged in (no credentials reach the agent)"


def _codex_home(env: Mapping[str, str]) -> Path | None:
    if env.get("CODEX_HOME"):
        return Path(env["CODEX_HOME"])
    return Path(env["HOME"]) / ".codex" if env.get("HOME") else None


def _codex_provider(env: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(custom model provider, the environment variable its key comes from) from config.toml."""
    home = _codex_home(env)
    if home is None:
        return None, None
    try:
        config = tomllib.loads((home / "config.toml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None, None
    provider = config.get("model_provider")
    if not isinstance(provider, str) or provider == "openai":
        return None, None
    table = (config.get("model_providers") or {}).get(provider)
    key = table.get("env_key") if isinstance(table, dict) else None
    return provider, key if isinstance(key, str) and key else None


def _codex_auth(
    path: str, env: Mapping[str, str], cwd: Path | None, timeout: float
) -> tuple[CheckStatus, str]:
    provider, env_key = _codex_provider(env)
    if provider is not None:  # `codex login` is about OpenAI; a custom provider takes its own key
        if env_key is None:
            return "unknown", f"model provider {provider!r} (no env_key: its auth is checked by a request)"
        if not env.get(env_key):
            return (
                "failed",
                f"model provider {provider!r} reads its key from ${env_key}, which the agent does not get",
            )
        return "ok", f"model provider {provider!r} with its key in ${env_key}"
    try:
        done = _run([path, "login", "status"], env, cwd, timeout)
    except OSError as error:
        return "unknown", f"`codex login status` could not start: {error.strerror or error}"
    if done is None:
        return "unknown", f"`codex login status` did not answer within {timeout:g}s"
    code, out, err = done
    said = _tail(out) or _tail(err) or f"exit code {code}"
    if code == 0:
        return "ok", said
    for name in ("CODEX_API_KEY", "OPENAI_API_KEY"):
        if env.get(name):
            return "unknown", f"`codex login status`: {said}; ${name} is set (checked by the first request)"
    if "not logged in" in (out + err).lower():
        return "failed", "`codex login status` says not logged in"
    return "unknown", f"`codex login status` gave no verdict ({said})"


_COUNT = re.compile(r"(\d+)\s+(credentials?|environment variables?)")


def _opencode_auth(
    path: str, env: Mapping[str, str], cwd: Path | None, timeout: float
) -> tuple[CheckStatus, str]:
    tail = "providers configured in opencode.json are checked only by a request"
    try:
        done = _run([path, "auth", "list"], env, cwd, timeout)
    except OSError as error:
        return "unknown", f"`opencode auth list` could not start: {error.strerror or error}; {tail}"
    if done is None:
        return "unknown", f"`opencode auth list` did not answer within {timeout:g}s; {tail}"
    counts = {kind.rstrip("s"): int(n) for n, kind in _COUNT.findall(_ANSI.sub("", done[1] + done[2]))}
    stored = counts.get("credential", 0)
    from_env = counts.get("environment variable", 0)
    return "unknown", f"{stored} stored credential(s), {from_env} provider key(s) in the environment; {tail}"


AUTH_CHECKS = {"claude": _claude_auth, "codex": _codex_auth, "opencode": _opencode_auth}


# --- the per-process cache ------------------------------------------------------------------------
_cache: dict[tuple[Any, ...], tuple[Preflight, float]] = {}
_cache_lock = threading.Lock()
_KEY_ENV = ("PATH", "HOME", "CODEX_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME")


def _key(
    runtime: str, env: Mapping[str, str], options: Mapping[str, Any], exec_task: bool
) -> tuple[Any, ...]:
    names = tuple(sorted(k for k in env if k.endswith(("_KEY", "_TOKEN"))))
    return (
        runtime,
        executable_for(runtime, options, exec_task=exec_task),
        tuple(env.get(k) for k in _KEY_ENV),
        names,
    )


def cached_check(
    runtime: str,
    *,
    env: Mapping[str, str],
    options: Mapping[str, Any] | None = None,
    exec_task: bool = False,
    cwd: Path | None = None,
    clock: Any = time.monotonic,
    wall: Any = time.time,
) -> Preflight:
    """:func:`check`, reusing a "ready" verdict of the last :data:`CACHE_SECONDS`: this process's,
    else one another process on the machine recorded (``wall`` is its clock)."""
    options = options or {}
    key = _key(runtime, env, options, exec_task)
    with _cache_lock:
        hit = _cache.get(key)
    if hit is not None and clock() - hit[1] < CACHE_SECONDS:
        return hit[0]
    shared = _shared_get(key, wall())
    if shared is not None:
        with _cache_lock:
            _cache[key] = (shared, clock())
        return shared
    result = check(runtime, env=env, options=options, exec_task=exec_task, cwd=cwd)
    with _cache_lock:
        if result.ready:
            _cache[key] = (result, clock())
        else:
            _cache.pop(key, None)
    _shared_put(key, result, wall())
    return result


# --- the machine-wide cache: a small JSON file, written whole (rename), read leniently -------------
_MAX_SHARED = 64  # verdicts kept in the file (the newest)


def _digest(key: tuple[Any, ...]) -> str:
    return hashlib.sha256(json.dumps(key, default=str).encode()).hexdigest()[:32]


def _shared_read() -> dict[str, Any]:
    try:
        data = safejson.loads(statehome.preflight_path().read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, safejson.MalformedJson):
        return {}  # none yet, or unreadable: checked afresh (and rewritten)
    return data if isinstance(data, dict) else {}


def _shared_write(entries: dict[str, Any]) -> None:
    newest = dict(sorted(entries.items(), key=lambda kv: -float(kv[1].get("at", 0)))[:_MAX_SHARED])
    with contextlib.suppress(OSError):  # a cache: an unwritable state home costs a check, no more
        fsutil.write_atomic(statehome.preflight_path(), json.dumps(newest).encode(), durable=False)


def _shared_get(key: tuple[Any, ...], now: float) -> Preflight | None:
    entry = _shared_read().get(_digest(key))
    if not isinstance(entry, dict):
        return None
    at = entry.get("at")
    if not isinstance(at, int | float) or not 0 <= now - at < CACHE_SECONDS:
        return None
    found = _from_record(entry.get("verdict"))
    return found if found is not None and found.ready and found.runtime == key[0] else None


def _shared_put(key: tuple[Any, ...], result: Preflight, now: float) -> None:
    entries = _shared_read()
    digest = _digest(key)
    if result.ready:
        verdict = asdict(result) | {"checked_at": result.checked_at.isoformat()}
        entries[digest] = {"at": now, "runtime": result.runtime, "verdict": verdict}
    elif digest in entries:
        del entries[digest]
    else:
        return
    _shared_write(entries)


def _from_record(raw: object) -> Preflight | None:
    """A verdict as :func:`_shared_put` wrote it, or None for anything else."""
    if not isinstance(raw, dict):
        return None
    statuses = ("ok", "failed", "unknown", "n/a")
    try:
        checked = datetime.fromisoformat(str(raw["checked_at"]))
        fields = {name: raw[name] for name in ("runtime", "executable", "auth_detail", "problem", "fix")}
        if not all(isinstance(v, str) for v in fields.values()):
            return None
        status = {name: raw[name] for name in ("installed", "runnable", "auth")}
        if not all(v in statuses for v in status.values()):
            return None
        path, version = raw["path"], raw["version"]
    except (KeyError, ValueError, TypeError):
        return None
    if not (path is None or isinstance(path, str)) or not (version is None or isinstance(version, str)):
        return None
    return Preflight(
        runtime=fields["runtime"],
        executable=fields["executable"],
        path=path,
        installed=status["installed"],
        runnable=status["runnable"],
        version=version,
        auth=status["auth"],
        auth_detail=fields["auth_detail"],
        problem=fields["problem"],
        fix=fields["fix"],
        checked_at=checked,
    )


def forget(runtime: str | None = None) -> None:
    """Drop the cached verdicts of ``runtime`` (every runtime's when None), this process's and the
    machine-wide ones."""
    with _cache_lock:
        for key in [k for k in _cache if runtime is None or k[0] == runtime]:
            del _cache[key]
    entries = _shared_read()
    kept = {d: e for d, e in entries.items() if runtime is not None and e.get("runtime") != runtime}
    if kept != entries:
        _shared_write(kept)
