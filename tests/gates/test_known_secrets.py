"""The secrets gate searches every diff for the exact secrets speedrift holds — the values of the
credentials in its environment, withheld from the agent, and of those passed through
``[env] secrets`` — bare and encoded, and names the variable and the encoding, never the value."""

from __future__ import annotations

import base64
import json
import secrets
import urllib.parse
from pathlib import Path

import pytest

from speedrift import redact
from speedrift.gates.config import GatesConfig
from speedrift.gates.model import EvidenceBundle, GateResult
from speedrift.gates.suite import GateSuite
from tests.gates.conftest import GateRepo, NewRepo, gate
from tests.gitrepo import sh_git

ONLY_SECRETS = {"skip": ["syntax", "scope", "contract", "lint", "types", "tests", "sast", "sca"]}


def fresh_value() -> str:
    """A credential-like value no pattern recognises by shape (so only the exact search finds it),
    new for every test: the redactor remembers values for the whole process."""
    return "q" + secrets.token_urlsafe(24).replace("-", "x").replace("_", "y")


def secrets_gate(repo: GateRepo, names: tuple[str, ...] = ()) -> tuple[GateResult, EvidenceBundle]:
    suite = GateSuite(GatesConfig.model_validate(ONLY_SECRETS), log_to_task=False, secret_names=names)
    bundle = suite.evaluate(repo.path, repo.path, repo.base, repo.head(), None)
    return gate(bundle, "secrets"), bundle


def kinds(result: GateResult) -> list[tuple[str, int | None, str]]:
    return sorted((f.file, f.line, f.kind) for f in result.findings)


def test_the_bare_value_its_base64_and_its_hex_of_a_withheld_secret_are_blocked_by_name(
    new_repo: NewRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    value = fresh_value()
    monkeypatch.setenv("SPEEDRIFT_TEST_DEPLOY_TOKEN", value)  # credential-named: withheld from agents
    encoded = base64.b64encode(value.encode()).decode()
    repo = new_repo({"app.py": "x = 1\n"})
    repo.change(
        {
            "notes.txt": f"plain {value}\n",
            "blob.txt": f"header\n{encoded}\n",
            "dump.txt": f"one\ntwo\n{value.encode().hex()}\n",
        }
    )

    result, bundle = secrets_gate(repo)

    assert (result.status, result.failure_class) == ("fail", "secret_leak")
    assert kinds(result) == [
        ("blob.txt", 2, "SPEEDRIFT_TEST_DEPLOY_TOKEN as base64"),
        ("dump.txt", 3, "SPEEDRIFT_TEST_DEPLOY_TOKEN as hex"),
        ("notes.txt", 1, "SPEEDRIFT_TEST_DEPLOY_TOKEN value"),
    ]
    assert "SPEEDRIFT_TEST_DEPLOY_TOKEN value at notes.txt:1" in result.reason
    written = json.dumps([repr(r) for r in bundle.results])
    for shown in (value, encoded[:-4], value.encode().hex()):
        assert shown not in written


def test_a_value_passed_through_env_secrets_is_blocked_whatever_its_name(
    new_repo: NewRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    value = fresh_value() + "/+ ="
    monkeypatch.setenv("DEPLOY_PHRASE", value)  # not credential-shaped: a secret only because it is named
    repo = new_repo({"app.py": "x = 1\n"})
    repo.change({"config/settings.ini": f"[deploy]\nphrase = {urllib.parse.quote(value)}\n"})

    unnamed, _ = secrets_gate(repo)
    named, _ = secrets_gate(repo, names=("DEPLOY_PHRASE",))

    assert unnamed.status == "pass"
    assert (named.status, named.failure_class) == ("fail", "secret_leak")
    assert kinds(named) == [("config/settings.ini", 2, "DEPLOY_PHRASE as url-encoded")]


def test_encodings_inside_longer_blobs_wrapped_lines_binary_files_and_commit_messages_are_found(
    new_repo: NewRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    value = fresh_value() * 2  # long enough that `base64` wraps it
    monkeypatch.setenv("SERVICE_API_KEY", value)
    raw = value.encode()
    wrapped = base64.b64encode(b"prefix:" + raw + b"\n")
    lines = b"\n".join(wrapped[i : i + 20] for i in range(0, len(wrapped), 20)).decode()
    repo = new_repo({"app.py": "x = 1\n"})
    repo.write(
        {
            "a.txt": base64.urlsafe_b64encode(b"xy" + raw).decode().rstrip("=") + "\n",
            "b.txt": f"data = '''\n{lines}\n'''\n",
            "c.bin": b"\x00\x01" + raw + b"\x00",
        }
    )
    sh_git(repo.path, "add", "-A")
    sh_git(repo.path, "commit", "-q", "-m", f"add data\n\ncredit: {value}")

    result, _ = secrets_gate(repo)

    assert result.status == "fail"
    found = kinds(result)
    assert any(f == "a.txt" and k.startswith("SERVICE_API_KEY as base64") for f, _n, k in found)
    assert ("b.txt", 2, "SERVICE_API_KEY as base64") in found
    assert ("c.bin", 1, "SERVICE_API_KEY value") in found
    assert any(
        f.startswith("(commit message of ") and (n, k) == (3, "SERVICE_API_KEY value") for f, n, k in found
    )


def test_short_plain_and_path_values_of_secret_names_are_no_false_positives(
    new_repo: NewRepo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text("apiVersion: v1\n")
    monkeypatch.setenv("SHORT_TOKEN", "abc123")  # under 8 characters
    monkeypatch.setenv("AWS_REGION", "us-east-1")  # withheld as AWS_*, but a setting, not a key
    monkeypatch.setenv("AWS_DEFAULT_OUTPUT", "json")
    monkeypatch.setenv("DB_PASSWORD", "changeme")  # a placeholder
    monkeypatch.setenv("KUBECONFIG", str(config))  # a path
    repo = new_repo({"app.py": "x = 1\n"})
    repo.change(
        {
            "deploy.yaml": "region: us-east-1\noutput: json\nid: abc123\npw: changeme\n",
            "notes.txt": f"kube config at {config}\n",
            "app.py": "x = 2  # abc123 us-east-1\n",
        }
    )

    result, _ = secrets_gate(repo)

    assert result.status == "pass", result.reason
    assert result.findings == ()


def test_a_known_value_already_in_the_file_at_the_base_warns_and_no_pragma_allows_a_new_one(
    new_repo: NewRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    value = fresh_value()
    monkeypatch.setenv("LEGACY_SECRET", value)
    repo = new_repo({"legacy.cfg": f"key = {value}\n"})
    repo.change(
        {
            "legacy.cfg": f"key = {value}\nother = 2\n",
            "new.py": f'KEY = "{value}"  # pragma: allowlist secret\n',
        }
    )

    result, _ = secrets_gate(repo)

    assert result.status == "fail"
    assert sorted((f.file, f.new) for f in result.findings) == [("legacy.cfg", False), ("new.py", True)]


def test_a_held_secret_is_redacted_bare_and_encoded_from_everything_written() -> None:
    value = fresh_value()
    raw = value.encode()
    assert redact.remember_environment(environ={"RELEASE_TOKEN": value, "AWS_REGION": "eu-west-1"}) == [
        "RELEASE_TOKEN"
    ]
    text = (
        f"bare {value}; b64 {base64.b64encode(raw).decode()}; "
        f"in a blob {base64.b64encode(b'xy' + raw).decode()}; hex {raw.hex()}"
    )

    cleaned = redact.redact_text(text)

    assert cleaned.count("[REDACTED:RELEASE_TOKEN]") == 4
    assert value not in cleaned and raw.hex() not in cleaned
    assert not any(needle.decode() in cleaned for _encoding, needle in redact.encoded_forms(value))
