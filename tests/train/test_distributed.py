"""`torchrun` / `accelerate launch` runs the same job on several ranks: rank 0 alone writes, and
two CPU ranks of batch b train exactly like one process of batch 2b (same data, same weights)."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from fedem import config as cfgio
from fedem.train import ModelSpec, PretrainConfig, pretrain


def test_two_cpu_ranks_equal_one_process_with_the_global_batch(tiny_data, tiny_train, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun not installed next to this python")
    two = PretrainConfig(
        model=ModelSpec(preset="tiny"),
        data=tiny_data(),
        train=tiny_train(steps=6, batch_size=2),
        output=str(tmp_path / "ddp"),
    )
    cfgio.dump(two, tmp_path / "ddp.yaml")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with socket.socket() as sock:  # a free loopback port for the rendezvous
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = subprocess.run(
        [
            str(torchrun),
            "--nproc_per_node",
            "2",
            "--master_addr",
            "127.0.0.1",
            "--master_port",
            str(port),
            "-m",
            "fedem",
            "pretrain",
            "--config",
            str(tmp_path / "ddp.yaml"),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.count("held-out bits/byte before") == 1, "only rank 0 logs"
    assert "tokens 1,536" in out.stdout  # 6 steps x 2 ranks x 2 blocks x 64 bytes

    one = cfgio.replace(two, train=cfgio.replace(two.train, batch_size=4), output=str(tmp_path / "one"))
    pretrain(one, progress=False, log=lambda *_: None)
    a = load_file(tmp_path / "ddp" / "model" / "model.safetensors")
    b = load_file(tmp_path / "one" / "model" / "model.safetensors")
    diff = max((a[k] - b[k]).abs().max().item() for k in a)
    assert diff < 1e-5, diff
