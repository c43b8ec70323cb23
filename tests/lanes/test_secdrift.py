"""secdrift: secrets, sensitive files and unlocked manifests in the whole tree at head — found
wherever and whenever they were committed, named by kind and place, never by value."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from speedrift import redact
from speedrift.gates import detect
from speedrift.lanes.builtin import secdrift
from speedrift.lanes.builtin._blobcache import read_stats
from speedrift.lanes.builtin.secdrift import LANE
from speedrift.lanes.model import LaneFinding, Severity
from tests.gitrepo import commit_file, make_repo, sh_git
from tests.lanes.treesupport import kinds, run_lane

AWS_KEY = "AKIA" + "Q3EXAMPLE7KEY2TE"
GITHUB = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
GENERIC = "hunter2" + "xYz9Qw8Lm7KpRt"  # only its assignment to a credential name makes it a secret
ENTROPY = "Zm9vYmFyYmF6cXV4cXV1eDEy" + "MzQ1Njc4OTBhYmNkZWZnaGlqa2xtbm9w"  # only detect-secrets finds it
PRIVATE_KEY = "-----BEGIN RSA " + "PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\n-----END RSA " + "PRIVATE KEY-----\n"


def _secrets(findings: Sequence[LaneFinding]) -> list[LaneFinding]:
    return [f for f in findings if f.kind == "secret"]


def _everything_written(findings: Sequence[LaneFinding], summary: str, state: Path) -> str:
    text = json.dumps([f.to_json() for f in findings]) + summary
    return text + "".join(p.read_text() for p in state.rglob("*") if p.is_file())


def test_a_key_committed_in_the_root_commit_is_found_at_head_without_its_value(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"deploy/config.py": f'AWS_KEY = "{AWS_KEY}"\n'})
    for number in range(3):
        commit_file(repo, f"notes/{number}.md", f"note {number}\n")
    out = run_lane(LANE, repo)
    [finding] = _secrets(out.findings)
    assert (finding.file, finding.line, finding.severity) == ("deploy/config.py", 1, Severity.ERROR)
    assert "aws-access-key" in finding.tags and "deploy/config.py:1" in finding.message
    assert finding.key == detect.sha1(AWS_KEY)
    assert AWS_KEY not in _everything_written(out.findings, out.summary, repo / ".speedrift")


def test_a_key_removed_from_the_tree_is_not_found_even_though_history_holds_it(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"app.py": "x = 1\n"})
    commit_file(repo, "app.py", f'x = 1\nTOKEN = "{GITHUB}"\n', "leak")
    commit_file(repo, "app.py", "x = 1\n", "remove the leak")
    assert _secrets(run_lane(LANE, repo).findings) == []


def test_severity_follows_the_kind_private_key_critical_provider_token_error_generic_warning(
    tmp_path: Path,
) -> None:
    repo = make_repo(
        tmp_path / "r",
        {
            "keys/server.txt": PRIVATE_KEY,
            "ci/publish.sh": f"export GH={GITHUB}\n",
            "settings.py": f'db_password = "{GENERIC}"\n',
        },
    )
    found = {f.file: f for f in _secrets(run_lane(LANE, repo).findings)}
    assert found["keys/server.txt"].severity == Severity.CRITICAL
    assert found["ci/publish.sh"].severity == Severity.ERROR
    assert found["settings.py"].severity == Severity.WARNING
    assert len(found) == 3  # the key's header is one secret, not one per detector


def test_the_same_value_twice_in_a_file_is_one_finding_naming_both_lines(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"a.py": f'A = "{AWS_KEY}"\nx = 2\nB = "{AWS_KEY}"\n'})
    [finding] = _secrets(run_lane(LANE, repo).findings)
    assert finding.line == 1 and "and line 3" in finding.message


def test_the_baseline_at_head_allows_a_known_fixture_value(tmp_path: Path) -> None:
    allowed = {"results": {"a.py": [{"type": "AWS Access Key", "hashed_secret": detect.sha1(AWS_KEY)}]}}
    repo = make_repo(
        tmp_path / "r",
        {"fixtures/a.py": f'K = "{AWS_KEY}"\n', ".secrets.baseline": json.dumps(allowed)},
    )
    assert _secrets(run_lane(LANE, repo).findings) == []
    elsewhere = _secrets(run_lane(LANE, repo, settings={"baseline": "elsewhere.json"}).findings)
    assert "fixtures/a.py" in [f.file for f in elsewhere]


def test_excluded_globs_and_allowlist_pragmas_are_not_reported(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "r",
        {
            "tests/fixtures/fake.py": f'K = "{AWS_KEY}"\n',
            "ok.py": f'K = "{AWS_KEY}"  # pragma: allowlist secret\n',
        },
    )
    assert [f.file for f in _secrets(run_lane(LANE, repo).findings)] == ["tests/fixtures/fake.py"]
    assert _secrets(run_lane(LANE, repo, settings={"exclude": ["tests/fixtures/**"]}).findings) == []


def test_size_and_count_limits_bound_what_is_scanned(tmp_path: Path) -> None:
    padding = "# filler\n" * 40
    repo = make_repo(tmp_path / "r", {"a.py": f'K = "{AWS_KEY}"\n{padding}', "b.py": f'G = "{GITHUB}"\n'})
    assert [f.file for f in _secrets(run_lane(LANE, repo).findings)] == ["a.py", "b.py"]
    small = run_lane(LANE, repo, settings={"max_file_bytes": 100}, state=False)
    assert [f.file for f in _secrets(small.findings)] == ["b.py"]
    assert "over max_file_bytes" in small.summary
    first = run_lane(LANE, repo, settings={"scan_max_files": 2}, state=False)  # .gitignore and a.py
    assert [f.file for f in _secrets(first.findings)] == ["a.py"]
    assert "1 past scan_max_files" in first.summary


def test_entropy_hits_come_from_detect_secrets_and_stop_without_it(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"blob.py": f'payload = "{ENTROPY}"\n'})
    assert [f.tags[-1] for f in _secrets(run_lane(LANE, repo).findings)] == ["high-entropy-string"]
    assert _secrets(run_lane(LANE, repo, settings={"use_detect_secrets": False}).findings) == []


def test_sensitive_artifacts_are_found_and_their_look_alikes_are_not(tmp_path: Path) -> None:
    certificate = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    repo = make_repo(
        tmp_path / "r",
        {
            ".env": "DEBUG=1\n",
            "web/.env.production": "DEBUG=0\n",
            ".env.example": "API_KEY=\n",
            "web/.env.local.sample": "API_KEY=\n",
            "ops/id_ed25519": "not really a key\n",
            "ops/id_ed25519.pub": "ssh-ed25519 AAAA\n",
            "tls/server.pem": PRIVATE_KEY,
            "tls/ca.pem": certificate,
            "signing/app.keystore": "binary\n",
            "signing/cert.p12": "binary\n",
            ".npmrc": "//registry.npmjs.org/:_authToken=npm_abcdefabcdefabcdefabcdefabcdefabcdef\n",
            "pkg/.npmrc": "//registry.npmjs.org/:_authToken=${NPM_TOKEN}\n",
            "gcp/credentials.json": "{}\n",
            "node_modules/lib/.env": "X=1\n",
        },
    )
    found = {f.file: f for f in run_lane(LANE, repo).findings if f.kind == "sensitive_artifact"}
    assert sorted(found) == [
        ".env",
        ".npmrc",
        "gcp/credentials.json",
        "ops/id_ed25519",
        "signing/app.keystore",
        "signing/cert.p12",
        "tls/server.pem",
        "web/.env.production",
    ]
    assert found["ops/id_ed25519"].severity == Severity.CRITICAL
    assert found[".env"].severity == Severity.ERROR and found[".env"].key == ".env"


def test_manifests_without_their_lockfile_are_posture_findings(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "r",
        {
            "web/package.json": json.dumps({"dependencies": {"left-pad": "^1.0.0"}}),
            "locked/package.json": json.dumps({"dependencies": {"left-pad": "^1.0.0"}}),
            "locked/yarn.lock": "# yarn\n",
            "empty/package.json": json.dumps({"name": "x", "scripts": {}}),
            "py/pyproject.toml": '[project]\nname = "x"\ndependencies = ["httpx>=0.27"]\n',
            "pinned/pyproject.toml": '[project]\nname = "y"\ndependencies = ["httpx"]\n',
            "pinned/requirements.txt": "httpx==0.27.0\n",
            "tool/Cargo.toml": '[package]\nname = "tool"\nversion = "0.1.0"\n',
            "tool/src/main.rs": "fn main() {}\n",
            "lib/Cargo.toml": '[package]\nname = "lib"\nversion = "0.1.0"\n',
            "lib/src/lib.rs": "\n",
            "svc/go.mod": "module svc\n\ngo 1.22\n\nrequire example.com/x v1.0.0\n",
            "bare/go.mod": "module bare\n\ngo 1.22\n",
        },
    )
    found = [f for f in run_lane(LANE, repo).findings if f.kind == "manifest_without_lock"]
    assert sorted(f.key for f in found) == [
        "py/pyproject.toml",
        "svc/go.mod",
        "tool/Cargo.toml",
        "web/package.json",
    ]
    assert {f.severity for f in found} == {Severity.WARNING}


def test_a_workspace_lock_above_the_manifest_covers_it(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "r",
        {
            "package-lock.json": "{}\n",
            "packages/a/package.json": json.dumps({"devDependencies": {"vitest": "1"}}),
        },
    )
    assert "manifest_without_lock" not in kinds(run_lane(LANE, repo))


def test_a_rerun_after_a_small_change_scans_only_the_changed_blobs(tmp_path: Path) -> None:
    files = {f"src/mod{i}.py": f"def f{i}():\n    return {i}\n" for i in range(12)}
    files["src/legacy.py"] = f'LEGACY = "{AWS_KEY}"\n'
    repo = make_repo(tmp_path / "r", files)
    state = repo / ".speedrift" / "lanes" / "secdrift" / secdrift.CACHE_FILE
    first = run_lane(LANE, repo)
    total = read_stats(state)["files"]
    assert read_stats(state) == {"files": total, "scanned": total, "cached": 0}
    assert run_lane(LANE, repo).findings == first.findings
    assert read_stats(state)["scanned"] == 0

    for i in range(2):
        (repo / f"src/mod{i}.py").write_text(f"def f{i}():\n    return {i + 100}\n")
    (repo / "src/new.py").write_text(f'TOKEN = "{GITHUB}"\n')
    sh_git(repo, "add", "-A")
    sh_git(repo, "commit", "-q", "-m", "three files")
    after = run_lane(LANE, repo)
    assert read_stats(state) == {"files": total + 1, "scanned": 3, "cached": total - 2}
    # the cached file's key is still reported, the new file's key too
    assert sorted(f.file for f in _secrets(after.findings)) == ["src/legacy.py", "src/new.py"]
    assert AWS_KEY not in state.read_text() and GITHUB not in state.read_text()


def test_a_value_found_through_the_cache_is_still_handed_to_the_redactor(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"settings.py": f'db_password = "{GENERIC}"\n'})
    run_lane(LANE, repo)  # fills the cache
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from speedrift import redact\n"
        "from speedrift.lanes.builtin.secdrift import LANE\n"
        "from speedrift.lanes.builtin._blobcache import read_stats\n"
        "from tests.lanes.treesupport import run_lane\n"
        "repo = Path(sys.argv[1])\n"
        "run_lane(LANE, repo)\n"
        "state = repo / '.speedrift/lanes/secdrift/blobs.json'\n"
        "print(read_stats(state)['scanned'], redact.redact_text(sys.argv[2]))\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", script, str(repo), GENERIC],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split() == ["0", "[REDACTED:assigned-credential]"]


def test_values_found_in_this_process_are_remembered_for_redaction(tmp_path: Path) -> None:
    value = "s3cr3t" + "Passw0rdQx9Lm2"
    repo = make_repo(tmp_path / "r", {"conf.py": f'api_token = "{value}"\n'})
    assert _secrets(run_lane(LANE, repo, state=False).findings)
    assert value not in redact.redact_text(f"log line {value}")


def test_the_risk_score_weighs_each_severity_as_the_original_did(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "r",
        {"k.txt": PRIVATE_KEY, "a.py": f'A = "{AWS_KEY}"\n', "s.py": f'db_password = "{GENERIC}"\n'},
    )
    out = run_lane(LANE, repo)
    assert kinds(out) == ["secret", "secret", "secret"]
    assert out.score == 28 + 16 + 8
    many = [LaneFinding("secdrift", "secret", "m", Severity.CRITICAL, key=str(i)) for i in range(4)]
    assert secdrift.risk_score(many) == 100
    assert secdrift.risk_score([LaneFinding("secdrift", "x", "m", Severity.INFO)]) == 3


def test_a_clean_repo_has_no_findings_and_no_risk(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "r",
        {
            "src/app.py": 'import os\n\nTOKEN = os.environ["API_TOKEN"]\nSHA = "' + "a" * 40 + '"\n',
            "package.json": json.dumps({"dependencies": {"x": "1"}}),
            "package-lock.json": "{}\n",
            ".env.example": "API_TOKEN=\n",
            "README.md": "Set API_TOKEN in your environment.\n",
        },
    )
    out = run_lane(LANE, repo)
    assert out.findings == [] and out.score == 0
