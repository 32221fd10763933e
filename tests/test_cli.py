import json

from click.testing import CliRunner

from fedem.cli import main


def test_help_lists_every_command_with_one_line_help():
    out = CliRunner().invoke(main, ["--help"]).output
    for cmd in (
        "pretrain",
        "finetune",
        "perplexity",
        "generate",
        "hub",
        "registry",
        "claim",
        "push",
        "pull",
        "lineage",
    ):
        assert f"  {cmd} " in out, cmd


def test_pretrain_finetune_perplexity_generate_end_to_end(tmp_path, monkeypatch):
    runner = CliRunner()
    common = [
        "--set",
        "model.preset=tiny",
        "--set",
        "train.steps=6",
        "--set",
        "train.warmup_steps=1",
        "--set",
        "data.block_size=64",
        "--no-progress",
    ]
    r = runner.invoke(main, ["pretrain", "--output", str(tmp_path / "pt"), *common])
    assert r.exit_code == 0, r.output
    assert "held-out bits/byte" in r.output and "tok/s" in r.output
    prov = json.loads((tmp_path / "pt" / "model" / "fedem.json").read_text())
    assert prov["versions"]["torch"] and prov["data"]["fingerprint"] and prov["weights_sha256"]
    assert (tmp_path / "pt" / "config.yaml").is_file() and (tmp_path / "pt" / "log.jsonl").is_file()

    r = runner.invoke(
        main,
        [
            "finetune",
            "--base",
            str(tmp_path / "pt"),
            "--output",
            str(tmp_path / "ft"),
            "--set",
            "train.steps=4",
            "--set",
            "train.warmup_steps=1",
            "--set",
            "data.block_size=64",
            "--no-progress",
        ],
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        main,
        [
            "perplexity",
            str(tmp_path / "pt"),
            "--adapter",
            str(tmp_path / "ft"),
            "--block-size",
            "64",
            "--max-blocks",
            "8",
        ],
    )
    assert r.exit_code == 0 and r.output.startswith("bits/byte "), r.output
    r = runner.invoke(
        main,
        ["generate", str(tmp_path / "pt"), "--prompt", "नमस्ते", "--max-new-tokens", "5", "--temperature", "0"],
    )
    assert r.exit_code == 0 and r.output.startswith("नमस्ते"), r.output


def test_missing_model_is_one_line_exit_2(tmp_path):
    r = CliRunner().invoke(main, ["perplexity", str(tmp_path / "none")])
    assert r.exit_code == 2
    assert r.output.strip() == f"error: {tmp_path / 'none'}: not a model directory (no config.json)"
