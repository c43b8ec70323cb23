"""The environment an agent runs in: an allow-list, never a copy of ours.

An agent executes model-written commands, so anything in its environment is one `env` away from
a prompt-injected exfiltration. It gets the variables a CLI needs to run (PATH, HOME, locale,
terminal, temp dir, zone, CA bundles) plus names the repo's config allows. Credentials — forge
tokens, cloud keys, model API keys — are withheld even when allowed or passed in `extra`, unless
named in `passthrough_secrets`: a secret reaches an agent only by being named as one.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
from collections.abc import Mapping, Sequence

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

# Names that hold credentials. Globs, matched case-insensitively.
SECRET_PATTERNS = (
    "GITHUB_TOKEN",
    "GH_TOKEN",
    "GH_ENTERPRISE_TOKEN",
    "GITHUB_ENTERPRISE_TOKEN",
    "GITLAB_TOKEN",
    "GL_TOKEN",
    "CI_JOB_TOKEN",
    "GITEA_TOKEN",
    "BITBUCKET_*",
    "AWS_*",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_API_KEY",
    "GCLOUD_*",
    "CLOUDSDK_*",
    "AZURE_*",
    "ARM_CLIENT_SECRET",
    # Model keys are caught by their shape (…_API_KEY, …_TOKEN); ANTHROPIC_BASE_URL, OPENAI_ORG_ID
    # and the like are configuration, which a test or a proxy setup legitimately passes.
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "OPENAI_API_KEY",
    "OPENROUTER_API_KEY",
    "GEMINI_API_KEY",
    "MISTRAL_API_KEY",
    "GROQ_API_KEY",
    "DEEPSEEK_API_KEY",
    "NPM_TOKEN",
    "NODE_AUTH_TOKEN",
    "PYPI_TOKEN",
    "TWINE_PASSWORD",
    "DOCKER_AUTH_CONFIG",
    "VAULT_TOKEN",
    "KUBECONFIG",
    "SSH_AUTH_SOCK",  # not a string secret, but it lends our SSH keys to whoever asks
    "DATABASE_URL",
)
# Any name that looks like a credential, whatever its prefix.
_SECRET_SHAPE = re.compile(r"(^|_)(TOKENS?|SECRETS?|PASSWORD|PASSWD|API_?KEY|KEY|CREDENTIALS?|AUTH)(_|$)")


@functools.lru_cache(maxsize=64)
def _globs(patterns: tuple[str, ...]) -> re.Pattern[str]:
    """One compiled regex for a set of globs (fnmatch's own translation, case-sensitive): the
    environment is filtered for every process speedrift starts, so it is matched once per name,
    not once per name and glob."""
    return re.compile("|".join(fnmatch.translate(p) for p in patterns) or "(?!)")


_SECRET_GLOBS = _globs(SECRET_PATTERNS)
_globs(BASE_ALLOW)  # compiled at import: a worker process forked later inherits it


def is_secret_name(name: str) -> bool:
    upper = name.upper()
    return bool(_SECRET_SHAPE.search(upper) or _SECRET_GLOBS.match(upper))


def agent_env(
    extra: Mapping[str, str],
    allow: Sequence[str] = (),
    passthrough_secrets: Sequence[str] = (),
    *,
    source: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Scrubbed environment for an agent: allowed names from `source` (default: ours), then `extra`.

    `allow` entries may be globs (`MY_TOOL_*`); `passthrough_secrets` are exact names.
    """
    source = os.environ if source is None else source
    secrets = set(passthrough_secrets)
    allowed = _globs((*BASE_ALLOW, *allow))

    def permitted(name: str) -> bool:
        return name in secrets or not is_secret_name(name)

    env = {
        name: value
        for name, value in source.items()
        if allowed.match(name) and permitted(name)
    }
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
