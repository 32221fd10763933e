"""`fedem gate` refuses bad input in one line, exit 2, before loading anything, writing nothing."""

import json

import pytest
from click.testing import CliRunner

from fedem.cli import main

POLICY = "gate:\n  languages: [en, hi]\n  min_docs: 2\n  docs_per_language: 4\n"
ROWS = [{"lang": "en", "text": "The quick brown fox."}, {"lang": "en", "text": "Jumps over."}] + [
    {"lang": "hi", "text": "नमस्ते दुनिया"},
    {"lang": "hi", "text": "यह एक परीक्षण है"},
]


@pytest.mark.parametrize(
    ("policy", "rows", "match"),
    [
        (POLICY, None, "held-out set $FEDEM_HELDOUT: held-out file not found"),
        (POLICY, [], "held-out set $FEDEM_HELDOUT: the held-out file holds no documents"),
        (POLICY, ROWS[:2], "language 'hi' has 0 documents, needs at least 2"),
        (POLICY + "  epsilon: abc\n", ROWS, "gate.epsilon: expected a number, got 'abc'"),
        ("gate:\n  languages: [en, klingon]\n", ROWS, "gate.languages[1]: expected one of en, hi"),
        (POLICY, "not json", "line 1: expected a JSON object"),
    ],
)
def test_bad_input(tmp_path, monkeypatch, policy, rows, match):
    held = tmp_path / "private" / "secret-heldout.jsonl"
    if rows is not None:
        held.parent.mkdir()
        text = (
            rows if isinstance(rows, str) else "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        )
        held.write_text(text, encoding="utf-8")
    (tmp_path / "nightly.yaml").write_text(policy)
    monkeypatch.setenv("FEDEM_HELDOUT", str(held))
    monkeypatch.setenv("FEDEM_GATE_SALT", "s")
    out = tmp_path / "report.json"
    res = CliRunner().invoke(
        main,
        ["gate", str(tmp_path / "no-base"), "--candidate", f"{tmp_path}/a:hi"]
        + ["--policy", str(tmp_path / "nightly.yaml"), "--date", "2026-12-01", "--output", str(out)],
    )
    assert res.exit_code == 2, res.output
    assert res.output.startswith("error: ") and res.output.count("\n") == 1 and match in res.output
    assert "secret-heldout" not in res.output  # the private path is never shown
    assert not out.exists()


def test_candidate_needs_languages_or_a_registry(tmp_path):
    res = CliRunner().invoke(main, ["gate", str(tmp_path), "--candidate", str(tmp_path / "a")])
    assert res.exit_code == 2 and "expected DIR:LANG[,LANG]" in res.output
