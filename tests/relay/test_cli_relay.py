"""`fedem pull`, `fedem push`, `fedem lineage` and `fedem finetune --hub`: thin commands, one-line errors, exit 2."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from fedem.cli import main
from fedem.hub.filehub import FileHub

from .conftest import copy_adapter, edit_json, rewrite_weights


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.delenv("FEDEM_AUTHOR", raising=False)
    monkeypatch.setenv("FEDEM_CACHE", str(tmp_path / "cache"))
    url = f"file://{tmp_path / 'hub'}"
    FileHub(tmp_path / "hub").init()
    monkeypatch.setenv("FEDEM_HUB", url)  # the default --hub
    runner = CliRunner()

    def invoke(*args, code=0):
        result = runner.invoke(main, [str(a) for a in args])
        assert result.exit_code == code, result.output
        return result

    invoke.url = url
    return invoke


def assert_one_error_line(result, *needles):
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    for n in needles:
        assert n in lines[0], lines[0]


def test_push_pull_lineage(cli, adapter_pkg, tiny_base, tmp_path):
    out = cli("push", "demo", adapter_pkg.parent, "-m", "first hop").output  # a run folder works too
    assert out.startswith("published demo@") and "(parent -) by alice" in out
    out = cli("pull", "demo", "--output", tmp_path / "got", "--base", tiny_base).output
    assert out.startswith("pulled demo@") and "r=8" in out and (tmp_path / "got" / "fedem.json").is_file()
    out = cli("lineage", "demo").output.splitlines()
    assert out[0].split()[:4] == ["REVISION", "PARENT", "CONTRIBUTOR", "AUTHOR"]
    assert "alice" in out[1] and "mamba2" in out[1] and len(out) == 2
    full = cli("lineage", "demo", "--full", "--hub", cli.url).output
    assert len(full.splitlines()[1].split()[0]) == 64


def test_errors_are_one_line_exit_2(cli, adapter_pkg, tmp_path):
    assert_one_error_line(cli("pull", "../x", code=2), "invalid adapter name '../x'")
    assert_one_error_line(cli("push", "../x", adapter_pkg, code=2), "invalid adapter name")
    assert_one_error_line(cli("lineage", "nope", code=2), "unknown repo 'nope'")
    assert_one_error_line(cli("pull", "nope", code=2), "unknown repo 'nope'")
    assert_one_error_line(cli("push", "demo", tmp_path / "missing", code=2), "adapter folder not found")
    bad = copy_adapter(adapter_pkg, tmp_path / "bad")
    (bad / "adapter_model.pt").write_bytes(b"\x80\x04.")
    assert_one_error_line(cli("push", "demo", bad, code=2), "pickle files run code")
    wrong = edit_json(
        copy_adapter(adapter_pkg, tmp_path / "wrong"), "fedem.json", lambda m: m.update(adapter="x")
    )
    assert_one_error_line(cli("push", "demo", wrong, code=2), "this is adapter 'x', not 'demo'")
    cli("push", "demo", adapter_pkg)
    assert_one_error_line(cli("pull", "demo", "--revision", "deadbeefdead", code=2), "unknown revision")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.json").write_text("{}")
    assert_one_error_line(
        cli("pull", "demo", "--output", tmp_path / "full", code=2), "not an empty directory"
    )
    # a stale push: the head moved; the message names it
    other = rewrite_weights(
        copy_adapter(adapter_pkg, tmp_path / "o"), lambda t: {k: -v for k, v in t.items()}
    )
    assert_one_error_line(cli("push", "demo", other, code=2), "moved on: its head is now", "by alice")
    assert_one_error_line(cli("push", "demo", adapter_pkg, code=2), "already published as its head")


def test_finetune_hub_flags(cli, tiny_base, tmp_path):
    base = ["finetune", "--base", tiny_base, "--output", tmp_path / "o", "--no-progress"]
    assert_one_error_line(cli(*base, "--revision", "abc", code=2), "--revision and --new need --hub")
    assert_one_error_line(cli(*base, "--hub", cli.url, code=2), "--hub needs --adapter NAME")
    assert_one_error_line(cli(*base, "--hub", cli.url, "--adapter", "demo", code=2), "pass --new")
    assert_one_error_line(cli(*base, "--hub", cli.url, "--adapter", "../x", code=2), "invalid adapter name")
    assert not (tmp_path / "o").exists()
