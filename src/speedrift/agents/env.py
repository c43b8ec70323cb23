"""The environment an agent runs in: an allow-list, never a copy of ours.

An agent executes model-written commands, so anything in its environment is one `env` away from
a prompt-injected exfiltration. It gets the variables a CLI needs to run (PATH, HOME, locale,
terminal, temp dir, zone, CA bundles) plus names the repo's config allows. Credentials — forge
tokens, cloud keys, model API keys — are withheld even when allowed or passed in `extra`, unless
named in `passthrough_secrets`: a secret reaches an agent only by being named as one. Which names
are credentials is one table in the foundation (speedrift/secret_patterns.py); the values of those
withheld and passed are handed to the redactor, so that what the agent prints or commits of them
is caught.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
from collections.abc import Mapping, Sequence

from speedrift import redact, secret_patterns

BASE_ALLOW = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LANGUAGE",
    "LC_*",
    "TERM",
    "COLORTERM",
    "NO_COLOR",
    "TMPDIR",
    "TZ",
    "SSL_CERT_FILE",  # a CA bundle path, needed behind TLS-inspecting proxies; not a secret
    "SSL_CERT_DIR",
    "NODE_EXTRA_CA_CERTS",
)

# Names that hold credentials (globs, matched case-insensitively): one table, in the foundation,
# shared with the redactor and the secrets gate (speedrift/secret_patterns.py).
SECRET_PATTERNS = secret_patterns.SECRET_NAMES


@functools.lru_cache(maxsize=64)
def _globs(patterns: tuple[str, ...]) -> re.Pattern[str]:
    """One compiled regex for a set of globs (fnmatch's own translation, case-sensitive): the
    environment is filtered for every process speedrift starts, so it is matched once per name,
    not once per name and glob."""
    return re.compile("|".join(fnmatch.translate(p) for p in patterns) or "(?!)")


_globs(BASE_ALLOW)  # compiled at import: a worker process forked later inherits it


is_secret_name = secret_patterns.is_secret_name


def agent_env(
    extra: Mapping[str, str],
    allow: Sequence[str] = (),
    passthrough_secrets: Sequence[str] = (),
    *,
    source: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Scrubbed environment for an agent: allowed names from `source` (default: ours), then `extra`.

    `allow` entries may be globs (`MY_TOOL_*`); `passthrough_secrets` are exact names. Every secret
    withheld or passed is remembered by the redactor (speedrift/redact.py) first: from then on this
    process writes none of them, encoded or not, and the secrets gate searches diffs for them.
    """
    source = os.environ if source is None else source
    redact.remember_environment(passthrough_secrets, source)
    redact.remember_environment(passthrough_secrets, extra)
    secrets = set(passthrough_secrets)
    allowed = _globs((*BASE_ALLOW, *allow))

    def permitted(name: str) -> bool:
        return name in secrets or not is_secret_name(name)

    env = {name: value for name, value in source.items() if allowed.match(name) and permitted(name)}
    env |= {name: value for name, value in extra.items() if permitted(name)}
    env |= {name: source[name] for name in secrets if name in source and name not in extra}
    return env


def withheld(
    extra: Mapping[str, str],
    passthrough_secrets: Sequence[str] = (),
    *,
    source: Mapping[str, str] | None = None,
) -> list[str]:
    """Credential names present in `source` or `extra` that `agent_env` keeps from the agent
    (for a log line saying what was withheld; values are never shown)."""
    source = os.environ if source is None else source
    names = set(source) | set(extra)
    return sorted(n for n in names if is_secret_name(n) and n not in set(passthrough_secrets))


def without_credentials(source: Mapping[str, str] | None = None) -> dict[str, str]:
    """Our environment minus every credential-named variable: for the repo's own commands that
    speedrift runs outside an agent (qadrift's test suite, redrift's verify commands) — they need
    the developer's toolchain (virtualenv, PYTHONPATH, proxies), never a secret."""
    source = os.environ if source is None else source
    return {name: value for name, value in source.items() if not is_secret_name(name)}
