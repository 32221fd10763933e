"""`fedem evaluate`: a per-language table and JSON report; bad input is one line, nothing written."""

import json

import pytest
from click.testing import CliRunner

from fedem.cli import main


def test_evaluate_prints_a_table_and_writes_the_report(tiny_base, eval_adapter, tmp_path):
    out = tmp_path / "eval.json"
    args = ["evaluate", str(tiny_base), "--adapter", str(eval_adapter), "--lang", "hi", "--lang", "en"]
    res = CliRunner().invoke(main, [*args, "--resamples", "200", "--output", str(out)])
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    assert set(report["languages"]) == {"hi", "en"} and report["max_length"] == 2048
    assert report["bootstrap"] == {"resamples": 200, "confidence": 0.95, "seed": 0}
    hi = report["adapters"][0]["languages"]["hi"]
    assert hi["lo"] <= hi["delta"] <= hi["hi"] and hi["documents"] == report["languages"]["hi"]["documents"]
    assert hi["delta"] == pytest.approx(hi["candidate_bpb"] - hi["reference_bpb"])
    lines = res.output.splitlines()
    assert lines[0].split()[:3] == ["LANG", "DOCS", "BASE"] and lines[1].startswith("hi ")
    assert "max_length 2048" in res.output and "[" in lines[1]


@pytest.mark.parametrize(
    ("setup", "flags", "match"),
    [
        (None, ["--data", "missing.jsonl"], "missing.jsonl: held-out file not found"),
        ("", ["--data", "held.jsonl"], "held.jsonl: the held-out file holds no documents"),
        (
            '{"text": "नमस्ते", "lang": "hi"}\n',
            ["--data", "held.jsonl", "--lang", "te"],
            "language 'te' has 0 documents",
        ),
        ('{"text": "x"}\n', ["--data", "held.jsonl"], "held.jsonl: line 1: expected a JSON object"),
        (None, ["--lang", "xx"], "--lang: unknown language 'xx'"),
        (None, ["--max-length", "0"], "--max-length"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tiny_base, tmp_path, monkeypatch, setup, flags, match):
    monkeypatch.chdir(tmp_path)
    if setup is not None:
        (tmp_path / "held.jsonl").write_text(setup, encoding="utf-8")
    res = CliRunner().invoke(main, ["evaluate", str(tiny_base), *flags, "--output", "out.json"])
    assert res.exit_code == 2, res.output
    assert res.output.count("\n") == 1 and match in res.output
    assert not (tmp_path / "out.json").exists()
