"""Gate fixtures: a tiny Seshu trained on en/hi/te, a private held-out file, and trained hops.

The base holds out 20% of documents (by text hash) so each language has dozens of held-out
documents; every hop uses the same fraction, so nothing scored was trained on.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

from fedem.io import sha256_file
from fedem.testing.federation import heldout_data, pretrain_base, write_private_heldout

HOP_STEPS = 30
HOP_LR = 1e-2


@pytest.fixture(scope="session")
def gate_base(tmp_path_factory) -> Path:
    """A tiny Mamba-2 Seshu trained long enough that a one-language hop can harm the others."""
    return pretrain_base(tmp_path_factory.mktemp("gate-base") / "run")


@pytest.fixture(scope="session")
def heldout_file(tmp_path_factory) -> Path:
    """The private held-out set: the base's held-out documents of en/hi/te as JSONL."""
    return write_private_heldout(tmp_path_factory.mktemp("private") / "heldout.jsonl")


def hop(base: Path, out: Path, name: str, contributor: str, source, *, replay: float | None = None) -> Path:
    """One LoRA hop of HOP_STEPS on ``source``; ``replay`` None keeps the default share."""
    from fedem.train import FinetuneConfig, TrainSpec, finetune

    kw = {} if replay is None else {"replay": replay}
    cfg = FinetuneConfig(
        base=str(base),
        name=name,
        contributor=contributor,
        data=heldout_data((source,), **kw),
        train=TrainSpec(
            steps=HOP_STEPS, batch_size=8, warmup_steps=2, log_every=100, save_every=1000, lr=HOP_LR
        ),
        output=str(out),
    )
    finetune(cfg, progress=False, log=lambda *_: None)
    return out / "adapter"


@pytest.fixture(scope="session")
def hops(gate_base, tmp_path_factory) -> dict[str, Path]:
    """Trained adapters: a Hindi hop with the default replay, the same hop without replay, and
    one trained on random bytes."""
    from fedem.data import SourceSpec

    root = tmp_path_factory.mktemp("hops")
    rng = random.Random(0)
    noise = "\n\n".join(
        "".join(chr(rng.randrange(0x20, 0x100)) for _ in range(rng.randrange(100, 400))) for _ in range(300)
    )
    (root / "noise.txt").write_text(noise, encoding="utf-8")
    hi = SourceSpec(embedded="hi")
    return {
        "good": hop(gate_base, root / "good", "seshu-hi", "alice", hi),
        "noreplay": hop(gate_base, root / "noreplay", "seshu-hi-2", "carol", hi, replay=0.0),
        "random": hop(gate_base, root / "random", "noise", "bob", SourceSpec(path=str(root / "noise.txt"))),
    }


def copy_adapter(src: Path, dst: Path, **provenance) -> Path:
    """A copy of an adapter package with ``fedem.json`` fields replaced (dotted keys)."""
    shutil.copytree(src, dst)
    meta = json.loads((dst / "fedem.json").read_text())
    for dotted, value in provenance.items():
        *parents, last = dotted.split(".")
        node = meta
        for p in parents:
            node = node[p]
        node[last] = value
    (dst / "fedem.json").write_text(json.dumps(meta))
    return dst


def rewrite_weights(folder: Path, fn) -> Path:
    """Replace the adapter's tensors by ``fn(tensors)`` and reseal fedem.json's weights_sha256."""
    from safetensors.torch import load_file, save_file

    path = folder / "adapter_model.safetensors"
    save_file(fn(load_file(path)), str(path), metadata={"format": "pt"})
    meta = json.loads((folder / "fedem.json").read_text())
    meta["weights_sha256"] = sha256_file(path)
    (folder / "fedem.json").write_text(json.dumps(meta))
    return folder
