"""Secret patterns speedrift knows by shape: SPEED's list, with entropy and context checks instead
of its bare "quoted 40-character base64" rule (which flags every git SHA).

Each pattern's first group is the secret value. The same table serves the secrets gate (which
adds detect-secrets' plugins) and the redactor applied to everything speedrift writes.

Also the one table of credential *names* (:data:`SECRET_NAMES`, :func:`is_secret_name`): the
variables agents/env.py withholds from an agent are the ones whose exact values redact.py
remembers and the secrets gate searches every diff for.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

_CREDENTIAL_WORDS = re.compile(r"(?i)secret|passw|token|api[_-]?key|private|credential|auth")
_HEX = re.compile(r"[0-9a-fA-F]+")
_PLACEHOLDER = re.compile(
    r"(?i)^(?:\$\{?.*|\{\{.*|<[^>]*>|\*+|x+|password|passwd|pass|secret|changeme|example)$"
)


def entropy(text: str) -> float:
    if not text:
        return 0.0
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def sha_shaped(value: str) -> bool:
    """A git object id (SHA-1 or SHA-256 hex): an identifier, not a credential."""
    return len(value) in (40, 64) and _HEX.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class Pattern:
    kind: str
    regex: re.Pattern[str]
    accept: Callable[[str, str], bool] = lambda value, line: True  # (value, whole line) -> is a secret


def _random_enough(minimum: float) -> Callable[[str, str], bool]:
    return lambda value, line: entropy(value) >= minimum and not _PLACEHOLDER.match(value)


def _url_password(value: str, line: str) -> bool:
    return not _PLACEHOLDER.match(value) and len(value) >= 3


def _assigned_credential(value: str, line: str) -> bool:
    if _PLACEHOLDER.match(value) or entropy(value) < 3.5:
        return False
    return not (sha_shaped(value) and not re.search(r"(?i)secret|passw", line))


PATTERNS: tuple[Pattern, ...] = (
    Pattern("aws-access-key", re.compile(r"\b((?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16})\b")),
    Pattern(
        "aws-secret-key",
        re.compile(
            r"(?i)aws.{0,24}?(?:secret|private).{0,24}?[\s'\":=]+([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
        ),
        _random_enough(3.5),
    ),
    Pattern("github-token", re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{36,255})\b")),
    Pattern("github-token", re.compile(r"\b(github_pat_[A-Za-z0-9_]{22,255})\b")),
    Pattern(
        "api-key",
        re.compile(r"(?<![A-Za-z0-9_-])(sk-(?:[A-Za-z0-9]+-)?[A-Za-z0-9_-]{20,})"),
        _random_enough(3.5),
    ),
    Pattern("stripe-key", re.compile(r"\b((?:sk|rk)_live_[A-Za-z0-9]{16,})\b")),
    Pattern("slack-token", re.compile(r"\b(xox[abposr]-[A-Za-z0-9-]{10,})\b")),
    Pattern("google-api-key", re.compile(r"\b(AIza[0-9A-Za-z_-]{35})(?![0-9A-Za-z_-])")),
    Pattern("npm-token", re.compile(r"\b(npm_[A-Za-z0-9]{36})\b")),
    Pattern(
        "jwt",
        re.compile(r"\b(eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,})"),
    ),
    Pattern("private-key", re.compile(r"(-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----)")),
    Pattern(
        "url-credentials",
        re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]{1,20}://[^\s:/@'\"]{1,100}:([^\s@/'\"]{1,200})@"),
        _url_password,
    ),
    Pattern(
        "assigned-credential",
        re.compile(
            r"(?i)\b[a-z0-9_]*(?:secret|token|passw(?:or)?d|api_?key|access_?key|private_?key)[a-z0-9_]*"
            r"['\"]?\s*[:=]\s*['\"]([A-Za-z0-9/+=_.\-]{16,})['\"]"
        ),
        _assigned_credential,
    ),
)


# --- names: which environment variables hold credentials -------------------------------------------
# Names that hold credentials. Globs, matched case-insensitively (agents/env.py withholds them).
SECRET_NAMES = (
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


_NAME_GLOBS = re.compile("|".join(fnmatch.translate(p) for p in SECRET_NAMES))
# the exact names above (no glob): each one a credential by itself, not a family of settings
_CREDENTIAL_NAMES = frozenset(p for p in SECRET_NAMES if "*" not in p)


def is_secret_name(name: str) -> bool:
    """A credential's name: kept from agents, its value searched for by the secrets gate."""
    upper = name.upper()
    return bool(_SECRET_SHAPE.search(upper) or _NAME_GLOBS.match(upper))


def is_credential_name(name: str) -> bool:
    """A name that says its value is a credential (``…_TOKEN``, ``GITHUB_TOKEN``…), as opposed to a
    family of settings withheld wholesale (``AWS_*`` holds ``AWS_REGION`` as well as keys)."""
    upper = name.upper()
    return bool(_SECRET_SHAPE.search(upper)) or upper in _CREDENTIAL_NAMES


# a stand-in where a value would be (an environment's values are already expanded, so a value that
# merely starts with "$" may well be a real password: only a whole ${…}, {{…}} or <…> counts)
_STAND_IN = re.compile(
    r"(?i)^(?:\$\{[^}]*\}|\{\{.*\}\}|<[^>]*>|\*+|x+|password|passwd|pass|secret|changeme|example)$"
)


def looks_random(value: str) -> bool:
    """Varied enough to be a key rather than a word or a setting (``us-east-1``, ``westeurope``)."""
    return entropy(value) >= 3.0 and not placeholder(value)


def placeholder(value: str) -> bool:
    """``changeme``, ``${VAR}``, ``xxxx``…: a stand-in, not a value."""
    return _STAND_IN.match(value) is not None


ALLOW_PRAGMA = re.compile(r"pragma:\s*allowlist[ -]secret")
ALLOW_NEXT = re.compile(r"pragma:\s*allowlist[ -]nextline[ -]secret")


@dataclass(frozen=True, slots=True)
class Match:
    kind: str
    value: str
    start: int
    end: int


def find(line: str) -> Iterator[Match]:
    """Secret-shaped values in one line of text (no allowlist applied)."""
    for pattern in PATTERNS:
        for found in pattern.regex.finditer(line):
            value = found.group(1)
            if value and pattern.accept(value, line):
                yield Match(pattern.kind, value, found.start(1), found.end(1))


def has_credential_context(line: str) -> bool:
    return _CREDENTIAL_WORDS.search(line) is not None


# a whole PEM block, for redaction (its body lines have no marker of their own)
PRIVATE_KEY_BLOCK = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----.{0,16000}?"
    r"(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|\Z)",
    re.S,
)
