"""Finding secrets: detect-secrets plus speedrift's patterns, without the noise."""

from __future__ import annotations

from speedrift.gates import detect

AWS_KEY = "AKIA" + "Q3EXAMPLE7KEY2TE"  # 20 characters, like a real key id
GITHUB = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
HIGH_ENTROPY = "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWprbG1ub3A="


def kinds(text: str, path: str = "app.py") -> list[tuple[int, str]]:
    return [(h.line, h.kind) for h in detect.scan_text(path, text)]


def test_known_tokens_are_found_with_their_full_value() -> None:
    hits = detect.scan_text("app.py", f'KEY = "{AWS_KEY}"\nTOKEN = "{GITHUB}"\n')
    assert [(h.line, h.kind, h.value) for h in hits] == [
        (1, "aws-access-key", AWS_KEY),
        (2, "github-token", GITHUB),  # detect-secrets alone reports only the "ghp" prefix
    ]


def test_detect_secrets_entropy_findings_are_kept() -> None:
    assert kinds(f'blob = "{HIGH_ENTROPY}"\n') == [(1, "high-entropy-string")]


def test_git_shas_do_not_count_as_secrets() -> None:
    text = (
        'commit = "3f786850e387550fdab836ed7e6dc881de23001b"\n'
        'rev: "9fceb02d0ae598e95dc970b74767f19372d61af8"\n'
    )
    assert kinds(text) == []
    assert kinds(text, "ci.yaml") == []


def test_an_inline_allowlist_pragma_exempts_its_line() -> None:
    text = (
        f'KEY = "{AWS_KEY}"  # pragma: allowlist secret\n'
        f'# pragma: allowlist nextline secret\nT = "{GITHUB}"\n'
    )
    assert kinds(text) == []


def test_public_ip_addresses_are_not_secrets() -> None:
    assert kinds('SERVER = "8.8.8.8"\n') == []


def test_a_baseline_allows_known_hashes_and_its_exclude_filters() -> None:
    baseline = detect.Baseline.parse(
        {
            "results": {"old.py": [{"type": "AWS Access Key", "hashed_secret": detect.sha1(AWS_KEY)}]},
            "filters_used": [
                {"path": "detect_secrets.filters.regex.should_exclude_file", "pattern": [r"^fixtures/"]}
            ],
        }
    )
    (aws,) = detect.scan_text("new.py", f'K = "{AWS_KEY}"\n')
    (github,) = detect.scan_text("fixtures/x.py", f'T = "{GITHUB}"\n')
    (other,) = detect.scan_text("src/x.py", f'T = "{GITHUB}"\n')
    assert baseline.allows(aws, "") and baseline.allows(github, "")
    assert not baseline.allows(other, "")


def test_ordinary_code_never_reaches_the_slow_scanner_and_finds_nothing() -> None:
    files = [(f"pkg/m{i}.py", f"def f{i}(x):\n    return x + {i}\n" * 20, True) for i in range(300)]
    assert all(hits == [] for hits in detect.scan_files(files).values())
    assert detect._prefiltered("pkg/m1.py", files[1][1]) is None


def test_line_numbers_survive_the_compact_copy_detect_secrets_scans() -> None:
    filler = "x = 1\n" * 50
    text = f'{filler}blob = "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWprbG1ub3A="\n{filler}'
    assert kinds(text) == [(51, "high-entropy-string")]
