"""The secrets gate: an added credential is a hard failure, named by kind and place, never by value."""

from __future__ import annotations

import json

from speedrift.gates import detect
from tests.gates.conftest import NewRepo, gate

AWS_KEY = "AKIA" + "Q3EXAMPLE7KEY2TE"
GITHUB = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"


def test_a_leaked_key_fails_the_gate_and_stops_the_run_without_showing_the_value(new_repo: NewRepo) -> None:
    repo = new_repo({"app.py": "x = 1\n"})
    repo.change({"app.py": f'x = 1\nAWS = "{AWS_KEY}"\n', "deploy.sh": f"export GH={GITHUB}\n"})
    bundle = repo.gates()
    result = gate(bundle, "secrets")
    assert (result.status, result.failure_class) == ("fail", "secret_leak")
    assert sorted((f.file, f.line, f.kind) for f in result.findings) == [
        ("app.py", 2, "aws-access-key"),
        ("deploy.sh", 1, "github-token"),
    ]
    assert bundle.stopped_early == "secrets"
    assert [r.status for r in bundle.results[2:]] == ["skipped"] * 7
    everything = json.dumps([repr(r) for r in bundle.results])
    assert AWS_KEY not in everything and GITHUB not in everything


def test_a_secret_already_in_the_file_at_the_base_warns_instead_of_failing(new_repo: NewRepo) -> None:
    repo = new_repo({"legacy.py": f'KEY = "{AWS_KEY}"\n'})
    repo.change({"legacy.py": f'KEY = "{AWS_KEY}"\nOTHER = 2\n'})
    result = gate(repo.gates(only=("secrets",)), "secrets")
    assert result.status == "warn"
    assert [f.new for f in result.findings] == [False]


def test_the_baseline_is_read_from_the_base_so_an_attempt_cannot_allow_its_own_leak(
    new_repo: NewRepo,
) -> None:
    allowed = {"results": {"x.py": [{"type": "AWS Access Key", "hashed_secret": detect.sha1(AWS_KEY)}]}}
    repo = new_repo({".secrets.baseline": json.dumps(allowed)})
    repo.change({"moved.py": f'KEY = "{AWS_KEY}"\n'})
    assert gate(repo.gates(only=("secrets",)), "secrets").status == "pass"

    sneaky = new_repo()
    sneaky.change({"x.py": f'KEY = "{AWS_KEY}"\n', ".secrets.baseline": json.dumps(allowed)})
    assert gate(sneaky.gates(only=("secrets",)), "secrets").status == "fail"


def test_configured_excludes_and_inline_pragmas_are_honoured(new_repo: NewRepo) -> None:
    repo = new_repo()
    repo.change(
        {
            "tests/fixtures/fake.env": f"AWS={AWS_KEY}\n",
            "ok.py": f'KEY = "{AWS_KEY}"  # pragma: allowlist secret\n',
        }
    )
    config = {"secrets": {"exclude": ["tests/fixtures/**"]}}
    assert gate(repo.gates(config, only=("secrets",)), "secrets").status == "pass"


def test_deleted_and_binary_files_are_not_scanned(new_repo: NewRepo) -> None:
    repo = new_repo({"old.py": f'KEY = "{AWS_KEY}"  # pragma: allowlist secret\n'})
    repo.change({"old.py": None, "blob.bin": b"\x00\x01" + AWS_KEY.encode() + b"\x00"})
    assert gate(repo.gates(only=("secrets",)), "secrets").status == "skipped"


def test_a_non_utf8_file_is_still_scanned(new_repo: NewRepo) -> None:
    repo = new_repo()
    repo.change({"legacy.cfg": b"name = caf\xe9\naws_key = " + AWS_KEY.encode() + b"\n"})
    result = gate(repo.gates(only=("secrets",)), "secrets")
    assert result.status == "fail"
    assert [(f.file, f.line, f.kind) for f in result.findings] == [("legacy.cfg", 2, "aws-access-key")]
