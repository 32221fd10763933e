"""A nightly of K=4 adapters on the demo model, its time split by stage, beside the merge alone.

``python -m benchmarks.nightly_bench``

- **base**: the demo's pretrain output (``runs/demo/pretrain``) when present, else the ``small``
  Seshu pretrained for a few steps here, published as the root of a file:// hub;
- **adapters**: 4 real 10-step hops on four languages (:func:`benchmarks.gate_bench._hops`),
  pushed to the hub, one registry hop each on a bare git remote;
- **policy**: the shipped gate with 64 documents per language over the 12 languages, but
  ``delta`` wide open so that every candidate is accepted and every stage runs (this measures
  time, not quality);
- **nightly**: :func:`fedem.nightly.run_nightly` end to end; its stages (read, pull, gate,
  merge, score, publish, mark) are timed by the job itself;
- **baseline**: ``merge_to_dir`` of the same 4 adapters into the same base, in this process.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import tempfile
import time
from pathlib import Path

K = 4


def _root(tmp: Path) -> Path:
    from fedem.data import DataSpec, SourceSpec
    from fedem.train import ModelSpec, PretrainConfig, TrainSpec, pretrain

    demo = Path("runs/demo/pretrain")
    if (demo / "model" / "fedem.json").is_file():
        return demo
    cfg = PretrainConfig(
        model=ModelSpec(preset="small"),
        data=DataSpec(sources=tuple(SourceSpec(embedded=x) for x in ("en", "hi", "te"))),
        train=TrainSpec(steps=5, batch_size=4, warmup_steps=1, log_every=100, save_every=100),
        output=str(tmp / "root"),
    )
    pretrain(cfg, progress=False, log=lambda *_: None)
    return tmp / "root"


def _remote(tmp: Path, hops) -> Path:
    from fedem.registry.model import Adapter, Hop, Spec, dump_adapter
    from fedem.registry.ops import init_registry

    env = {"GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x.invalid", "GIT_COMMITTER_NAME": "b"}
    os.environ.update({**env, "GIT_COMMITTER_EMAIL": "b@x.invalid", "GIT_CONFIG_GLOBAL": "/dev/null"})
    src = tmp / "src"
    (src / "registry" / "adapters").mkdir(parents=True)
    (src / "registry" / "policy.yaml").write_text("ttl_minutes: 180\nidentities: {bench: [bench]}\n")
    for name, lang, rev in hops:
        spec = Spec(base_model="seshu", targets=("in_proj",), rank=8, languages=(lang,))
        hop = Hop("bench", rev.id, rev.time.strftime("%Y-%m-%dT%H:%M:%SZ"), "2026-12-01T00:00:00Z")
        (src / "registry" / "adapters" / f"{name}.yaml").write_text(
            dump_adapter(Adapter(name, spec, hops=(hop,)))
        )
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "catalogue"]):
        subprocess.run(["git", *args], cwd=src, check=True, capture_output=True)
    remote = tmp / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True, capture_output=True)
    init_registry(src, str(remote))
    return remote


def measure() -> dict[str, float]:
    import warnings

    warnings.filterwarnings("ignore")
    from benchmarks.gate_bench import HOP_LANGS, _docs, _hops
    from fedem.evaluate.heldout import heldout_of as make_heldout
    from fedem.evaluate.heldout import write_heldout
    from fedem.gate.policy import GatePolicy
    from fedem.hub.filehub import FileHub
    from fedem.merge import MergeSpec, merge_to_dir
    from fedem.nightly import NightlyConfig, RegistrySource, run_nightly
    from fedem.publish import publish_root, pull_checkpoint
    from fedem.relay import push_adapter

    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        os.environ["FEDEM_CACHE"] = str(tmp / "cache")
        os.environ["FEDEM_GATE_SALT"] = "bench"
        os.environ["FEDEM_HELDOUT"] = str(
            write_heldout(tmp / "heldout.jsonl", make_heldout(_docs(), "bench"))
        )
        hub = FileHub(tmp / "hub")
        hub.init()
        publish_root(hub, _root(tmp))
        base = pull_checkpoint(hub, "seshu").folder
        hops = []
        for folder, lang in zip(_hops(base, tmp, K), HOP_LANGS, strict=False):
            name = f"bench-{lang}"
            hops.append((name, lang, push_adapter(hub, name, folder, author="bench")))
        cfg = NightlyConfig(
            registry=RegistrySource(remote=str(_remote(tmp, hops)), cache=str(tmp / "n.git")),
            gate=dataclasses.replace(GatePolicy(), delta=8.0, epsilon=0.0),
            output=str(tmp / "nightly"),
        )
        t0 = time.perf_counter()
        outcome = run_nightly(cfg, hub, log=lambda *_: None)
        total = time.perf_counter() - t0
        t0 = time.perf_counter()
        merge_to_dir(
            base, [tmp / f"hop-{lang}" / "adapter" for _, lang, _ in hops], MergeSpec(), tmp / "alone"
        )
        alone = time.perf_counter() - t0
    accepted = sum(v.decision == "accept" for v in outcome.verdicts)
    return {"total": total, "merge_alone": alone, "accepted": accepted, **outcome.timings}


def report(m: dict[str, float]) -> None:
    from benchmarks.bench import _row

    print(f"== nightly: K={K} adapters on the demo model, {m['accepted']:.0f}/{K} accepted ==")
    for stage in ("read", "pull", "gate", "merge", "score", "publish", "mark"):
        if stage in m:
            _row(f"nightly stage: {stage}", m[stage], "s", "merge alone, same run", m["merge_alone"])
    _row("nightly, all stages", m["total"], "s", "merge alone, same run", m["merge_alone"])


if __name__ == "__main__":
    report(measure())
