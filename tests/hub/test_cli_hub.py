"""`fedem hub init` and `fedem hub ls` on both schemes."""

from __future__ import annotations

from click.testing import CliRunner

from fedem.cli import main
from fedem.hub import open_hub

from ._util import make_folder


def test_init_and_ls_file_hub(tmp_path, monkeypatch):
    url = f"file://{tmp_path / 'hub'}"
    runner = CliRunner()
    result = runner.invoke(main, ["hub", "init", url])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "hub" / ".fedem-hub").is_file()

    hub = open_hub(url)
    hub.create_repo("seshu-hi")
    r1 = hub.publish(
        "seshu-hi", make_folder(tmp_path / "a", {"a.json": b"1"}), message="first", parent=None, author="ann"
    )
    hub.publish(
        "seshu-hi", make_folder(tmp_path / "b", {"a.json": b"2"}), message="second", parent=r1.id, author="bo"
    )
    hub.tag("seshu-hi", r1.id, "accepted")

    monkeypatch.setenv("FEDEM_HUB", url)  # the default hub
    result = runner.invoke(main, ["hub", "ls"])
    assert result.exit_code == 0 and result.output.split() == ["seshu-hi"]
    result = runner.invoke(main, ["hub", "ls", "seshu-hi"])
    lines = result.output.splitlines()
    assert result.exit_code == 0 and lines[0].split()[:3] == ["REVISION", "PARENT", "AUTHOR"]
    assert lines[2].startswith(r1.id[:12]) and "accepted" in lines[2] and "first" in lines[2]
    assert "bo" in lines[1] and r1.id[:12] in lines[1]
    result = runner.invoke(main, ["hub", "ls", "--full", "--hub", url, "seshu-hi"])
    assert r1.id in result.output


def test_errors_are_one_line_exit_2(tmp_path):
    runner = CliRunner()
    url = f"file://{tmp_path / 'hub'}"
    runner.invoke(main, ["hub", "init", url])
    for args in (
        ["hub", "ls", "--hub", url, "nope"],
        ["hub", "ls", "--hub", "ftp://x"],
        ["hub", "ls", "--hub", url, "../x"],
    ):
        result = runner.invoke(main, args)
        assert result.exit_code == 2, result.output
        assert result.output.startswith("error: ") and result.output.count("\n") == 1


def test_init_and_ls_hf_hub(hf_env):
    runner = CliRunner()
    result = runner.invoke(main, ["hub", "init", "hf://fedem-test"])
    assert result.exit_code == 0 and "alice" in result.output, result.output
    open_hub("hf://fedem-test").create_repo("seshu-te")
    result = runner.invoke(main, ["hub", "ls", "--hub", "hf://fedem-test"])
    assert result.exit_code == 0 and result.output.split() == ["seshu-te"]
    result = runner.invoke(main, ["hub", "init", "hf://someone-else"])
    assert result.exit_code == 2 and "not a member" in result.output
