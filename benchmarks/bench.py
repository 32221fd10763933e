"""``make bench``: every figure beside its baseline measured in the same run, as a ratio.

Sections: training throughput and peak memory (each model in its own process), adapter hub
push+pull round trips, registry reconciliation at 10,000 adapters, the gate's K=8 run, and
merging 4 adapters into a 130m-shaped base against PEFT, mergekit and the I/O floor (each in
its own process), a K=4 nightly split by stage against the merge alone, and one simulated
day of the federation against its training steps alone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _train(kind: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.train_bench", kind],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "TRANSFORMERS_VERBOSITY": "error"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _row(name: str, value: float, unit: str, base_name: str, base: float, note: str = "") -> None:
    ratio = value / base if base else float("nan")
    print(f"{name:34s} {value:12,.3f} {unit:6s} | {base_name:28s} {base:12,.3f} | ratio {ratio:8.2f}  {note}")


def demo_adapter(folder: Path) -> Path:
    """An untrained adapter with the demo's shape (small Seshu, r=8 on in_proj), as saved by fedem."""
    from fedem.adapter.lora import add_lora
    from fedem.model import build_model
    from fedem.train import LoraSpec

    add_lora(build_model("small"), LoraSpec(), "mamba2").save_pretrained(folder, safe_serialization=True)
    return folder


def main() -> None:
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    print("== training (batch 8 x 256 bytes, AdamW, CPU threads as available) ==")
    res = {k: _train(k) for k in ("llama", "seshu", "mamba1-mambapy", "mamba1-stock")}
    llama, seshu, stock = res["llama"], res["seshu"], res["mamba1-stock"]
    print(f"  params: seshu {seshu['params']:,}  llama {llama['params']:,}  threads {seshu['threads']}")
    _row(
        "seshu (mamba2) tok/s",
        seshu["tokens_per_s"],
        "tok/s",
        "llama same size tok/s",
        llama["tokens_per_s"],
        "goal >= 0.40 (within 2.5x)",
    )
    _row(
        "seshu (mamba2) tok/s",
        seshu["tokens_per_s"],
        "tok/s",
        "stock mamba-1 tok/s",
        stock["tokens_per_s"],
        "goal >= 20",
    )
    _row(
        "mamba-1 + mambapy tok/s",
        res["mamba1-mambapy"]["tokens_per_s"],
        "tok/s",
        "stock mamba-1 tok/s",
        stock["tokens_per_s"],
    )
    for k in ("seshu", "mamba1-mambapy", "mamba1-stock"):
        _row(f"{k} peak RSS", res[k]["peak_rss_mb"], "MB", "llama peak RSS", llama["peak_rss_mb"])

    print("== hub: push + pull of the demo-shaped adapter ==")
    from benchmarks import hub_bench

    with tempfile.TemporaryDirectory() as tmp:
        adapter = demo_adapter(Path(tmp) / "adapter")
        t = time.perf_counter()
        for i in range(5):  # the physical floor: copy the folder there and back
            shutil.copytree(adapter, Path(tmp) / f"c{i}")
            shutil.copytree(Path(tmp) / f"c{i}", Path(tmp) / f"d{i}")
        floor = (time.perf_counter() - t) / 5
        rows = {name: value for name, value, _ in hub_bench.run(adapter)}
    print(f"  adapter bytes: {rows['hub.adapter_bytes']:,.0f}")
    for backend in ("file", "hf_fake"):
        _row(
            f"hub {backend}:// push+pull",
            rows[f"hub.{backend}.roundtrip"],
            "ms",
            "plain copy there and back",
            floor * 1000,
        )
    if "hub.hf_fake.requests_per_roundtrip" in rows:
        print(f"  hf requests per round trip: {rows['hub.hf_fake.requests_per_roundtrip']:.1f}")

    print("== registry: 10,000 adapters ==")
    from benchmarks import registry_bench

    reg = {name: value for name, value, _ in registry_bench.run()}
    _row("reconcile, pure core", reg["registry.reconcile_pure_10k"], "s", "goal", 1.0)
    _row("reconcile + git commit + push", reg["registry.reconcile_git_10k"], "s", "goal", 5.0)
    _row(
        "reconcile + git commit + push",
        reg["registry.reconcile_git_10k"],
        "s",
        "parse 10k files alone",
        reg["registry.load_10k_files"],
    )

    print("== gate: K=8 candidates on the small Seshu, 64 documents x 12 languages ==")
    from benchmarks import gate_bench

    gate = {name: value for name, value, _ in gate_bench.run(cli=True)}
    _row(
        "gate, 8 candidates",
        gate["gate.k8_seconds"],
        "s",
        "8 x perplexity call, same docs",
        gate["gate.k8_plain_perplexity_seconds"],
        "goal <= 0.35",
    )
    _row(
        "gate, 8 candidates",
        gate["gate.k8_seconds"],
        "s",
        "8 x `fedem perplexity` command",
        gate["gate.k8_perplexity_commands_seconds"],
    )
    print(
        f"  candidates scored on every language: {gate['gate.candidates_scored_on_every_language']:.0f}/8, "
        f"accepted {gate['gate.accepted']:.0f}/8"
    )

    from benchmarks import merge_bench

    merge_bench.report(merge_bench.measure())

    from benchmarks import nightly_bench

    nightly_bench.report(nightly_bench.measure())

    from benchmarks import sim_bench

    sim_bench.report(sim_bench.measure())


if __name__ == "__main__":
    main()
