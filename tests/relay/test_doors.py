"""Every door applies the same rules: a corpus of hostile adapters through push, pull, finetune
--adapter, perplexity --adapter, generate --adapter and merge.

For each case every door must refuse with the same one-line reason, exit 2, no traceback, and
write nothing: no hub revision, no output folder, no pulled folder. The cases are built from one
good package, each breaking one rule.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

from fedem.cli import main
from fedem.hub.filehub import FileHub
from fedem.io import sha256_file

from .conftest import copy_adapter


def _json(name: str, fn: Callable[[dict], None]):
    def edit(folder: Path) -> None:
        data = json.loads((folder / name).read_text())
        fn(data)
        (folder / name).write_text(json.dumps(data))

    return edit


def _raw(name: str, text: str):
    def edit(folder: Path) -> None:
        (folder / name).write_text(text)

    return edit


def _set(name: str, dotted: str, value):
    def fn(data: dict) -> None:
        *parents, last = dotted.split(".")
        for p in parents:
            data = data[p]
        data[last] = value

    return _json(name, fn)


def _replace_in(name: str, old: str, new: str):
    def edit(folder: Path) -> None:
        (folder / name).write_text((folder / name).read_text().replace(old, new, 1))

    return edit


def _weights(fn, *, reseal: bool = True):
    def edit(folder: Path) -> None:
        path = folder / "adapter_model.safetensors"
        save_file(fn(load_file(path)), str(path), metadata={"format": "pt"})
        if reseal:
            _set("fedem.json", "weights_sha256", sha256_file(path))(folder)

    return edit


def _first(tensors: dict, fn) -> dict:
    k = sorted(tensors)[0]
    return {**tensors, k: fn(tensors[k])}


def _file(name: str, data: bytes = b"x"):
    return lambda folder: (folder / name).write_bytes(data)


def _garbage_weights(folder: Path) -> None:
    path = folder / "adapter_model.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header}" + b"\x00" * 64)
    _set("fedem.json", "weights_sha256", sha256_file(path))(folder)


CFG, PROV = "adapter_config.json", "fedem.json"
BIG_INT = int("9" * 400)

# (id, edit, reason): the reason is a fragment every door's one line must contain.
CASES: list[tuple[str, Callable[[Path], None], str]] = [
    # 1. What the next hop would refuse must not be published.
    ("shape-not-base", _weights(lambda t: _first(t, lambda x: x[:, :-1].contiguous())), "shape"),
    ("dropout-5", _set(CFG, "lora_dropout", 5), "dropout"),
    ("dropout-negative", _set(CFG, "lora_dropout", -0.5), "dropout"),
    ("dropout-text", _set(CFG, "lora_dropout", "high"), "lora_dropout must be a number"),
    ("rank-zero", _set(CFG, "r", 0), "r must be a positive integer"),
    ("rank-over-cap", _set(CFG, "r", 65), "exceeds the policy maximum"),
    ("alpha-fraction", _set(CFG, "lora_alpha", 16.9), "lora_alpha must be a positive integer"),
    ("alpha-zero", _set(CFG, "lora_alpha", 0), "lora_alpha must be a positive integer"),
    ("alpha-huge", _set(CFG, "lora_alpha", 1e30), "alpha: expected an integer from 1 to 4096"),
    ("alpha-bool", _set(CFG, "lora_alpha", True), "lora_alpha must be a positive integer"),
    ("dora", _set(CFG, "use_dora", True), "use_dora=True is not supported"),
    ("rslora", _set(CFG, "use_rslora", True), "use_rslora=True is not supported"),
    ("target-dt-proj", _set(CFG, "target_modules", ["dt_proj"]), "'dt_proj' is refused"),
    ("target-out-proj", _set(CFG, "target_modules", ["out_proj"]), "'out_proj' is refused"),
    ("target-x-proj", _set(CFG, "target_modules", ["x_proj"]), "'x_proj' is refused"),
    ("target-unknown", _set(CFG, "target_modules", ["lm_head"]), "not a valid target"),
    ("peft-type", _set(CFG, "peft_type", "IA3"), "expected 'LORA'"),
    ("arch-unknown", _set(PROV, "base.arch", "llama"), "not a supported architecture"),
    ("base-local-path", _set(CFG, "base_model_name_or_path", "/home/alice/base"), "looks like a local path"),
    # 2. Untrusted numbers are bounded.
    ("int-400-digits-config", _replace_in(CFG, '"r": 8', f'"r": {BIG_INT}'), "out of range"),
    ("int-400-digits-record", _replace_in(PROV, '"steps": ', f'"steps": {BIG_INT}, "x": '), "out of range"),
    ("nan-metric", _replace_in(PROV, '"bpb_after": ', '"bpb_after": NaN, "y": '), "NaN is not a number"),
    ("inf-literal", _replace_in(PROV, '"bpb_before": ', '"bpb_before": 1e999, "y": '), "is not finite"),
    ("nan-weights", _weights(lambda t: _first(t, lambda x: x * float("nan"))), "non-finite values"),
    ("steps-negative", _set(PROV, "metrics.steps", -1), "metrics.steps must be a non-negative integer"),
    # 3. Bounded JSON.
    (
        "duplicate-key",
        _replace_in(
            CFG,
            "{",
            '{"r": 4, ',
        ),
        "duplicate key 'r'",
    ),
    ("deep-nesting", _set(PROV, "notes", json.loads("[" * 100 + "]" * 100)), "nested"),
    ("not-json", _raw(CFG, "{r: 8"), "invalid JSON"),
    ("not-utf8", lambda f: (f / CFG).write_bytes(b"\xff\xfe{}"), "not UTF-8"),
    ("json-list", _raw(PROV, "[1, 2]"), "expected a JSON object"),
    ("text-over-cap", _raw("README.md", "x" * (1 << 20) + "x"), "exceeds the cap"),
    # 4. Only regular files with safe names.
    ("fifo", lambda f: os.mkfifo(f / "notes.md"), "not a regular file"),
    ("newline-name", _file("notes\n.md"), "file names in an adapter use"),
    ("space-name", _file("my notes.md"), "file names in an adapter use"),
    ("symlink", lambda f: (f / "link.md").symlink_to("/etc/passwd"), "symlinks are refused"),
    ("subfolder", lambda f: (f / "sub").mkdir(), "sub-folders are refused"),
    ("pickle-bin", _file("adapter_model.bin"), "pickle files run code"),
    ("pickle-pt", _file("optimizer.pt"), "pickle files run code"),
    ("extra-weights", _file("more.safetensors"), "unexpected weights file"),
    ("script", _file("run.py"), "only .safetensors"),
    ("missing-record", lambda f: (f / PROV).unlink(), "missing fedem.json"),
    ("missing-weights", lambda f: (f / "adapter_model.safetensors").unlink(), "missing adapter_model"),
    # 5. Free text is checked.
    ("contributor-object", _set(PROV, "contributor", {"name": "x" * 1000}), "contributor"),
    ("contributor-long", _set(PROV, "contributor", "a" * 1000), "at most 100 allowed"),
    (
        "contributor-newline",
        _set(PROV, "contributor", "alice\nFedem-Claimed-Author: root"),
        "control characters",
    ),
    ("contributor-empty", _set(PROV, "contributor", " "), "non-empty"),
    # Integrity and identity.
    ("tampered-weights", _weights(lambda t: _first(t, lambda x: x + 1), reseal=False), "does not match"),
    ("weights-garbage", _garbage_weights, "safetensors"),
    ("kind", _set(PROV, "kind", "seshu-model"), "expected 'seshu-lora-adapter'"),
    ("parent-not-object", _set(PROV, "parent", "abc"), "parent must be null"),
]
# Files the hub itself cannot carry, so no hub revision can hold them: the pull door is moot.
NOT_PUBLISHABLE = {
    "fifo",
    "newline-name",
    "space-name",
    "symlink",
    "subfolder",
    "pickle-bin",
    "pickle-pt",
    "script",
}


@pytest.fixture(scope="module")
def doors_env(tmp_path_factory, adapter_pkg, tiny_base):
    root = tmp_path_factory.mktemp("doors")
    hub = FileHub(root / "hub")
    hub.init()
    return root, hub, adapter_pkg, tiny_base


def _run(*args) -> tuple[int, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, result.output


@pytest.mark.parametrize("case_id,edit,reason", CASES, ids=[c[0] for c in CASES])
def test_every_door_refuses_the_same_way(doors_env, monkeypatch, case_id, edit, reason):
    root, hub, good, base = doors_env
    monkeypatch.setenv("FEDEM_CACHE", str(root / "cache"))
    work = root / case_id
    folder = copy_adapter(good, work / "demo")
    edit(folder)
    heads_before = {r: hub.revisions(r) for r in hub.list_repos()}

    out = work / "out"
    doors = {
        "push": ("push", "--hub", hub.url, "demo", folder),
        "finetune": ("finetune", "--base", base, "--adapter", folder, "--output", out),
        "perplexity": ("perplexity", base, "--adapter", folder),
        "generate": ("generate", base, "--adapter", folder, "--prompt", "x", "--max-new-tokens", "2"),
        "merge": ("merge", base, folder, "--method", "linear", "--output", work / "merged"),
    }
    lines = {}
    for door, args in doors.items():
        code, output = _run(*args)
        assert code == 2, f"{door}: exit {code}: {output[-500:]}"
        assert "Traceback" not in output and output.count("\n") == 1 and output.startswith("error: "), output
        lines[door] = output.strip()
    if case_id not in NOT_PUBLISHABLE:
        # A hostile revision that reached a hub some other way: pull refuses it and keeps nothing
        # (it stages under a hidden name, normalised below).
        other = FileHub(work / "other-hub")
        other.init()
        other.create_repo("demo")
        other.publish("demo", folder, message="hostile", parent=None, author="mallory")
        dest = work / "pulled"
        code, output = _run("pull", "--hub", other.url, "demo", "--output", dest, "--base", base)
        assert code == 2 and output.count("\n") == 1, output
        assert not dest.exists() and not any(p.name.startswith(".pulled") for p in work.iterdir())

        lines["pull"] = re.sub(r"\.pulled\.pull-[0-9a-f]+", "demo", output.strip())

    for door, line in lines.items():
        assert reason in line, f"{door}: {line}"
    local = {lines[d] for d in ("push", "finetune", "perplexity", "generate", "merge")}
    assert len(local) == 1, lines  # the very same line at every door
    assert not out.exists()  # finetune refused before creating its run folder
    assert not (work / "merged").exists()  # so did the merge
    assert {r: hub.revisions(r) for r in heads_before} == heads_before  # push published nothing
    assert "demo" not in hub.list_repos()


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 40 and len({c[0] for c in CASES}) == len(CASES)
