"""Redaction: credential-shaped and remembered values never reach what speedrift writes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from speedrift import redact

# Fake credentials, built so this file holds no literal secret
AWS_KEY = "AKIA" + "Q3EXAMPLE7KEY2TE"  # 20 characters, like a real key id
GITHUB = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYz9q3EXAMPL"  # 40 characters
OPENAI = "sk-" + "proj-Xy9aB3cD4eF5gH6iJ7kL8mN9oP0qR"
GIT_SHA = "3f786850e387550fdab836ed7e6dc881de23001b"


@pytest.mark.parametrize(
    ("text", "kind", "secret"),
    [
        (f"export AWS_ACCESS_KEY_ID={AWS_KEY}", "aws-access-key", AWS_KEY),
        (f'token = "{GITHUB}"', "github-token", GITHUB),
        (f"aws_secret_access_key = {AWS_SECRET}", "aws-secret-key", AWS_SECRET),
        (f"OPENAI_API_KEY={OPENAI}", "api-key", OPENAI),
        ("postgres://app:Tr0ub4dor&3@db.internal/app", "url-credentials", "Tr0ub4dor&3"),
    ],
)
def test_each_known_credential_shape_is_replaced_by_its_kind(text: str, kind: str, secret: str) -> None:
    cleaned = redact.redact_text(text)
    assert secret not in cleaned
    assert f"[REDACTED:{kind}]" in cleaned


def test_a_private_key_block_is_removed_whole() -> None:
    block = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7y\nq9Zx\n-----END RSA PRIVATE KEY-----"
    cleaned = redact.redact_text(f"key:\n{block}\ndone")
    assert cleaned == "key:\n[REDACTED:private-key]\ndone"


def test_git_shas_and_ordinary_text_are_left_alone() -> None:
    text = f"merged {GIT_SHA} into main; see https://example.invalid/docs and password reset flow"
    assert redact.redact_text(text) == text


def test_a_remembered_value_is_redacted_everywhere_from_then_on() -> None:
    value = "plain-looking-but-secret-9Qz"
    assert redact.redact_text(f"x {value} y") == f"x {value} y"
    redact.remember([("secret-keyword", value)])
    assert redact.redact_text(f"x {value} y") == "x [REDACTED:secret-keyword] y"


def test_values_too_short_to_be_safe_to_replace_are_not_remembered() -> None:
    redact.remember([("github-token", "ghp")])
    assert redact.redact_text("ghp is a prefix") == "ghp is a prefix"


def test_a_value_remembered_after_a_record_was_written_is_redacted_when_it_is_written_again() -> None:
    # a run record is rewritten several times with the same strings; redaction remembers what it
    # cleaned, but never past a newly remembered value
    value = "hunter2-" + "zq8w4kd9p1x7"
    record = {"reason": f"login failed with {value}", f"key {value}": ["also " + value]}
    assert redact.redact_value(record) == record  # not known yet, not credential-shaped
    redact.remember([("password", value)])
    again = redact.redact_value(record)
    assert value not in str(again)
    assert again["reason"] == "login failed with [REDACTED:password]"
    assert again["key [REDACTED:password]"] == ["also [REDACTED:password]"]


def test_nested_json_values_and_keys_are_redacted() -> None:
    value = {"events": [{"text": f"using {AWS_KEY}"}], AWS_KEY: 3, "n": 1}
    cleaned = redact.redact_value(value)
    assert AWS_KEY not in repr(cleaned)
    assert cleaned["n"] == 1


def test_scrubbing_a_run_directory_rewrites_only_files_that_hold_the_value(tmp_path: Path) -> None:
    value = "zz-custom-credential-0042"
    (tmp_path / "sub").mkdir()
    holding = tmp_path / "sub" / "events.jsonl"
    holding.write_text(f'{{"text": "echo {value}"}}\n')
    os.chmod(holding, 0o640)
    clean = tmp_path / "prompt.md"
    clean.write_text("nothing here\n")
    before = clean.stat().st_mtime_ns
    changed = redact.scrub_tree(tmp_path, [value])
    assert changed == [holding]
    assert value not in holding.read_text() and "[REDACTED:" in holding.read_text()
    assert holding.stat().st_mode & 0o777 == 0o640  # permissions survive the atomic rewrite
    assert clean.stat().st_mtime_ns == before
    assert sorted(p.name for p in tmp_path.rglob("*")) == [
        "events.jsonl",
        "prompt.md",
        "sub",
    ]  # no temp files


def test_a_file_speedrift_wrote_raw_is_redacted_in_place(tmp_path: Path) -> None:
    log = tmp_path / "stderr.log"
    log.write_bytes(f"error: bad credentials {GITHUB}\n\xff binary tail\n".encode("utf-8", "surrogateescape"))
    assert redact.redact_file(log)
    assert GITHUB.encode() not in log.read_bytes()
    assert not redact.redact_file(log)  # nothing left to do
