"""Streaming: the output folder, sharded bases shard by shard, one rounding in bf16, and SIGKILL mid-merge."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from fedem.errors import FedemError
from fedem.merge import MergeSpec, merge_to_dir
from fedem.model import load_model, weights_sha256

from .conftest import lora_factors, read_tensors, tensor_bytes


def test_output_is_a_standard_model_folder_with_provenance(base, adapters, tmp_path):
    # A base as fedem pretrain leaves it: with its own fedem.json (which the merge must not copy).
    shutil.copytree(base.dir, tmp_path / "base")
    (tmp_path / "base" / "fedem.json").write_text(
        json.dumps(
            {
                "kind": "seshu-model",
                "weights_sha256": base.sha256,
                "config": {
                    "data": {"heldout_fraction": 0.1, "sources": [{"path": "corpus/hi.txt", "name": "hi"}]}
                },
            }
        )
    )
    out = tmp_path / "m"
    res = merge_to_dir(tmp_path / "base", adapters, MergeSpec("ties", weights=(1, 2, 3), density=0.4), out)
    assert {p.name for p in out.iterdir()} == {
        "config.json",
        "generation_config.json",
        "tokenizer_config.json",
        "model.safetensors",
        "fedem.json",
    }
    load_model(out)  # transformers loads it as it is
    meta = json.loads((out / "fedem.json").read_text())
    assert meta["kind"] == "seshu-model"
    assert meta["merge"]["method"] == "ties" and meta["merge"]["weights"] == [1.0, 2.0, 3.0]
    assert meta["merge"]["density"] == 0.4 and meta["merge"]["seed"] is None  # no randomness in TIES
    recorded = [(a["name"], a["weights_sha256"], a["weight"]) for a in meta["adapters"]]
    hashes = [json.loads((a / "fedem.json").read_text())["weights_sha256"] for a in adapters]
    assert recorded == list(zip(["a0", "a1", "a2"], hashes, [1.0, 2.0, 3.0], strict=True))
    assert meta["base"]["sha256"] == meta["init_sha256"] == base.sha256 and meta["base"]["identity_checked"]
    assert meta["base"]["path"] == meta["init"] == "base"  # the folder name, never the merger's absolute path
    assert meta["weights_sha256"] == res.weights_sha256 == weights_sha256(out)  # what adapters will record
    assert meta["config"]["data"]["heldout_fraction"] == 0.05  # the smallest of the base's and the adapters'
    # The base's mixture is carried: a hop on the merged model replays what the chain trained on.
    assert meta["config"]["data"]["sources"] == [{"path": "corpus/hi.txt", "name": "hi"}]
    assert (res.merged, res.copied) == (2, len(read_tensors(base.dir)) - 2)
    size = (base.dir / "model.safetensors").stat().st_size
    assert res.bytes_written == size and size <= res.bytes_read < size + 4 * sum(
        (a / "adapter_model.safetensors").stat().st_size for a in adapters
    )


def _reshard(base, folder: Path) -> Path:
    model = load_model(base.dir)
    model.save_pretrained(folder, safe_serialization=True, max_shard_size="80KB")
    for name in ("tokenizer_config.json",):
        (folder / name).write_bytes((base.dir / name).read_bytes())
    return folder


def test_sharded_base_gives_the_unsharded_bytes(base, adapters, tmp_path):
    sharded = _reshard(base, tmp_path / "sharded")
    shards = sorted(p.name for p in sharded.glob("*.safetensors"))
    assert len(shards) >= 3 and (sharded / "model.safetensors.index.json").is_file()
    spec = MergeSpec("dare_ties", weights=(0.5, 1.0, 2.0), density=0.5, seed=9)
    merge_to_dir(base.dir, adapters, spec, tmp_path / "single")
    # The same adapters, as trained on the sharded copy: its identity is another hash.
    with pytest.raises(FedemError, match="different base"):
        merge_to_dir(sharded, adapters, spec, tmp_path / "refused")
    moved = [_rebase(a, tmp_path / "moved" / a.name, weights_sha256(sharded)) for a in adapters]
    merge_to_dir(sharded, moved, spec, tmp_path / "multi")
    out = tmp_path / "multi"
    assert sorted(p.name for p in out.glob("*.safetensors")) == shards  # written shard by shard
    assert (out / "model.safetensors.index.json").read_bytes() == (
        sharded / "model.safetensors.index.json"
    ).read_bytes()
    single, multi = read_tensors(tmp_path / "single"), read_tensors(out)
    assert {k: tensor_bytes(v) for k, v in multi.items()} == {k: tensor_bytes(v) for k, v in single.items()}
    meta = json.loads((out / "fedem.json").read_text())
    assert meta["base"]["identity_checked"] and set(meta["shards"]["output"]) == set(shards)
    assert meta["weights_sha256"] == weights_sha256(out)
    load_model(out)


def _rebase(adapter: Path, dst: Path, base_sha: str) -> Path:
    """A copy of ``adapter`` recording another base (its weights, hence its DARE masks, unchanged)."""
    shutil.copytree(adapter, dst)
    meta = json.loads((dst / "fedem.json").read_text())
    meta["base"]["sha256"] = base_sha
    (dst / "fedem.json").write_text(json.dumps(meta))
    return dst


def test_bf16_base_is_rounded_once(base_bf16_mamba1, tmp_path):
    """fp32 accumulation, one rounding: the correctly rounded exact sum, unlike K merges in bf16."""
    b = base_bf16_mamba1
    ads = [b.adapter(tmp_path / f"a{k}", k, std=0.05) for k in range(4)]
    merge_to_dir(b.dir, ads, MergeSpec(), tmp_path / "m")
    got, w0 = read_tensors(tmp_path / "m"), read_tensors(b.dir)
    name = "backbone.layers.0.mixer.in_proj.weight"
    factors = [lora_factors(a)[name] for a in ads]
    exact = w0[name].double().numpy() + sum(2.0 * (B @ A) for A, B in factors)  # s = 8/4
    rounded = torch.from_numpy(exact).to(torch.bfloat16)
    # Equal but for the rare double-rounding case (fp64 -> fp32 -> bf16 vs fp64 -> bf16).
    assert (got[name] == rounded).double().mean() >= 0.999
    seq = w0[name].clone()  # one adapter at a time in bf16, as merge_and_unload of each does
    for A, B in factors:
        seq = (seq.float() + torch.from_numpy(2.0 * (B @ A)).float()).to(torch.bfloat16)
    assert (seq == rounded).double().mean() < 0.9


_KILLED = textwrap.dedent(
    """
    import sys, time
    from fedem.merge import MergeSpec, stream

    real, marker = stream.merged_weight, sys.argv[1]

    def stall(w0, terms, spec, name):
        # The first tensor's bytes are out; then stop, for the parent's SIGKILL.
        open(marker, "w").close()
        time.sleep(600)

    stream.merged_weight = stall
    stream.merge_to_dir(sys.argv[2], sys.argv[4:], MergeSpec(), sys.argv[3])
    """
)


def test_sigkill_mid_merge_leaves_no_output(base, adapters, tmp_path):
    marker, out = tmp_path / "started", tmp_path / "out" / "merged"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    args = [sys.executable, "-c", _KILLED, str(marker), str(base.dir), str(out), *map(str, adapters)]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        for _ in range(1200):  # a safety limit only: the test waits for the marker, not for a time
            if marker.exists() or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert marker.exists(), proc.communicate()[0].decode()[-2000:]
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()
    partial = [p for p in out.parent.iterdir() if p.name.startswith(".merged.") and p.name.endswith(".tmp")]
    assert partial and (partial[0] / "model.safetensors").stat().st_size > 0  # it was killed midway
    merge_to_dir(base.dir, adapters, MergeSpec(), out)  # the leftover does not block the next merge
    assert (out / "fedem.json").is_file()


def test_an_error_midway_stops_the_workers_and_leaves_nothing(base, adapters, tmp_path, monkeypatch):
    from fedem.merge import stream

    calls = []

    def fail_second(w0, terms, spec, name):
        calls.append(name)
        if len(calls) == 2:
            raise RuntimeError("disk on fire")
        return w0.clone()

    monkeypatch.setattr(stream, "merged_weight", fail_second)
    with pytest.raises(RuntimeError, match="disk on fire"):
        merge_to_dir(base.dir, adapters, MergeSpec(), tmp_path / "new" / "m")
    assert len(calls) == 2 and list(tmp_path.iterdir()) == []


def test_a_read_error_in_the_reader_thread_reaches_the_caller(base, tmp_path):
    import io

    from fedem.errors import ModelError
    from fedem.merge.tensors import TensorFile, stream_file

    copy = tmp_path / "model.safetensors"
    shutil.copy(base.dir / "model.safetensors", copy)
    with TensorFile(copy) as src:
        os.truncate(copy, src.size // 2)  # after the header was checked: the bytes vanish midway
        with pytest.raises(ModelError, match="truncated"):
            stream_file(src, io.BytesIO(), lambda name, t: t, set())
